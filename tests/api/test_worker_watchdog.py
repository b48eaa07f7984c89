"""The watchdog fails an active trial whose registered workers went silent."""

from support.trials import new_trial
from trialplane.v1 import trial_pb2, worker_pb2
from trialplane.v1 import trial_service_pb2 as ts
from trialplane.v1 import worker_service_pb2 as ws


def register(client, trial_id, rank=0):
    return client.workers.RegisterWorker(
        ws.RegisterWorkerRequest(worker=worker_pb2.Worker(trial_id=trial_id, rank=rank, type="worker"))
    )


def test_watchdog_fails_a_trial_whose_workers_went_silent(clocked_client, clocked_server, clock):
    client = clocked_client
    sweep = lambda: clocked_server.call(clocked_server.app.watchdog.sweep())  # noqa: E731
    silent = new_trial(client, "silent", retry_strategy=trial_pb2.RetryStrategy(max_attempts=2))
    unwatched = new_trial(client, "no-workers")
    for t in (silent, unwatched):
        client.trials.ReportTrialState(ts.ReportTrialStateRequest(id=t.id, state=trial_pb2.TRIAL_STATE_RUNNING))
    worker = register(client, silent.id)
    clock.advance(300)
    client.workers.HeartbeatWorker(ws.HeartbeatWorkerRequest(id=worker.id))
    clock.advance(599)
    assert sweep() == 0
    clock.advance(2)
    assert sweep() == 1
    retried = client.trials.GetTrial(ts.GetTrialRequest(id=silent.id))
    # The first attempt failed; the retry strategy queued a second run.
    assert retried.state == trial_pb2.TRIAL_STATE_QUEUED and retried.trial_run_id == 2
    assert "no heartbeat" in retried.failure_reason
    assert client.trials.GetTrial(ts.GetTrialRequest(id=unwatched.id)).state == trial_pb2.TRIAL_STATE_RUNNING
    # The new run has no workers yet, so nothing more happens.
    clock.advance(10_000)
    assert sweep() == 0
