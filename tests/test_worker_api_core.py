"""WorkerService through a real server: registration, heartbeats, states, rendezvous."""

import threading

import grpc
from google.protobuf import duration_pb2, field_mask_pb2

from trialplane.v1 import trial_pb2, trial_service_pb2 as ts, worker_pb2, worker_service_pb2 as ws

from conftest import error_of
from trial_helpers import new_trial

W = worker_pb2


def register(client, trial_id, rank=0, type="worker", request_id="", **fields):
    return client.workers.RegisterWorker(
        ws.RegisterWorkerRequest(worker=W.Worker(trial_id=trial_id, rank=rank, type=type, **fields), request_id=request_id)
    )


def test_register_round_trip_and_retry(client):
    trial = new_trial(client, resources=trial_pb2.Resources(worker_count=2))
    w = register(client, trial.id, rank=1, type="chief", address="10.0.0.1:29500", slots=4, tags=["gpu"], request_id="r1")
    assert (w.trial_id, w.rank, w.type, w.address, w.slots, list(w.tags)) == (trial.id, 1, "chief", "10.0.0.1:29500", 4, ["gpu"])
    assert w.state == W.WORKER_STATE_PENDING and w.trial_run_id == 1 and w.last_heartbeat_time.seconds > 0
    again = register(client, trial.id, rank=1, type="chief", request_id="r1")
    assert again.id == w.id
    assert [x.id for x in client.workers.ListWorkers(ws.ListWorkersRequest(trial_id=trial.id)).workers] == [w.id]
    err = error_of(register, client, trial.id, rank=1)
    assert err.code == grpc.StatusCode.ALREADY_EXISTS


def test_bad_registrations(client):
    trial = new_trial(client)
    assert error_of(register, client, 424242).code == grpc.StatusCode.NOT_FOUND
    assert "worker.trial_id" in error_of(register, client, 0).violations
    assert "worker.type" in error_of(register, client, trial.id, type="").violations
    assert "worker.rank" in error_of(register, client, trial.id, rank=-1).violations
    assert "worker.slots" in error_of(register, client, trial.id, slots=-2).violations
    assert "worker.tags" in error_of(register, client, trial.id, tags=["a", "a"]).violations
    client.trials.KillTrial(ts.KillTrialRequest(id=trial.id))
    err = error_of(register, client, trial.id)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "ILLEGAL_TRANSITION"


def test_restart_opens_a_new_run_for_workers(client):
    trial = new_trial(client)
    first = register(client, trial.id, rank=0)
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    second = register(client, trial.id, rank=0)
    assert (first.trial_run_id, second.trial_run_id) == (1, 2)
    runs = client.workers.ListWorkers(ws.ListWorkersRequest(trial_id=trial.id, trial_run_id=2)).workers
    assert [w.id for w in runs] == [second.id]


def test_states_heartbeats_updates_and_deletes(client):
    trial = new_trial(client)
    w = register(client, trial.id)
    beat = client.workers.HeartbeatWorker(ws.HeartbeatWorkerRequest(id=w.id))
    assert beat.last_heartbeat_time.ToMicroseconds() >= w.last_heartbeat_time.ToMicroseconds()
    state = lambda s: client.workers.ReportWorkerState(ws.ReportWorkerStateRequest(id=w.id, state=s))  # noqa: E731
    assert state(W.WORKER_STATE_RUNNING).state == W.WORKER_STATE_RUNNING
    assert state(W.WORKER_STATE_RUNNING).state == W.WORKER_STATE_RUNNING
    assert state(W.WORKER_STATE_COMPLETED).state == W.WORKER_STATE_COMPLETED
    err = error_of(state, W.WORKER_STATE_RUNNING)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (err.metadata["from_state"], err.metadata["to_state"]) == ("COMPLETED", "RUNNING")
    assert error_of(client.workers.HeartbeatWorker, ws.HeartbeatWorkerRequest(id=w.id)).code == grpc.StatusCode.FAILED_PRECONDITION
    assert "state" in error_of(state, W.WORKER_STATE_UNSPECIFIED).violations
    assert "unknown value 77" in error_of(state, 77).violations["state"]
    upd = client.workers.UpdateWorker(ws.UpdateWorkerRequest(
        worker=W.Worker(id=w.id, tags=["x"], address="h:1", slots=8, state=W.WORKER_STATE_ERROR),
        update_mask=field_mask_pb2.FieldMask(paths=["tags", "address", "slots"])))
    assert (list(upd.tags), upd.address, upd.slots, upd.state) == (["x"], "h:1", 8, W.WORKER_STATE_COMPLETED)
    err = error_of(client.workers.UpdateWorker, ws.UpdateWorkerRequest(
        worker=W.Worker(id=w.id), update_mask=field_mask_pb2.FieldMask(paths=["state"])))
    assert "update_mask" in err.violations
    assert client.workers.DeleteWorker(ws.DeleteWorkerRequest(id=w.id)).id == w.id
    assert error_of(client.workers.GetWorker, ws.GetWorkerRequest(id=w.id)).code == grpc.StatusCode.NOT_FOUND
    assert error_of(client.workers.GetWorker, ws.GetWorkerRequest(id=0)).code == grpc.StatusCode.INVALID_ARGUMENT


def test_list_pages_and_filters(client):
    trial = new_trial(client)
    ids = [register(client, trial.id, rank=r).id for r in range(5)]
    client.workers.ReportWorkerState(ws.ReportWorkerStateRequest(id=ids[2], state=W.WORKER_STATE_RUNNING))
    seen, token = [], ""
    while True:
        resp = client.workers.ListWorkers(ws.ListWorkersRequest(trial_id=trial.id, page_size=2, page_token=token))
        seen.extend(w.id for w in resp.workers)
        token = resp.next_page_token
        if not token:
            break
    assert seen == ids
    running = client.workers.ListWorkers(ws.ListWorkersRequest(trial_id=trial.id, states=[W.WORKER_STATE_RUNNING])).workers
    assert [w.id for w in running] == [ids[2]]
    err = error_of(client.workers.ListWorkers, ws.ListWorkersRequest(trial_id=trial.id, page_token="nope!"))
    assert err.reason == "INVALID_PAGE_TOKEN"


def test_rendezvous_waits_for_every_worker(client):
    trial = new_trial(client, resources=trial_pb2.Resources(worker_count=2))
    second = register(client, trial.id, rank=1, address="h1:1", slots=4)
    pending = client.workers.GetRendezvousInfo.future(
        ws.GetRendezvousInfoRequest(trial_id=trial.id, worker_id=second.id), timeout=20)
    done = threading.Event()
    pending.add_done_callback(lambda _: done.set())
    assert not done.wait(0.3)
    first = register(client, trial.id, rank=0, address="h0:1", slots=2)
    info = pending.result(timeout=10)
    assert (list(info.addresses), info.rank, list(info.slots), info.trial_run_id) == (["h0:1", "h1:1"], 1, [2, 4], 1)
    mine = client.workers.GetRendezvousInfo(ws.GetRendezvousInfoRequest(trial_id=trial.id, worker_id=first.id))
    assert mine.rank == 0 and list(mine.addresses) == ["h0:1", "h1:1"]


def test_incomplete_rendezvous_is_unavailable(client):
    trial = new_trial(client, resources=trial_pb2.Resources(worker_count=3))
    w = register(client, trial.id)
    err = error_of(client.workers.GetRendezvousInfo, ws.GetRendezvousInfoRequest(
        trial_id=trial.id, worker_id=w.id, timeout=duration_pb2.Duration(nanos=200_000_000)))
    assert err.code == grpc.StatusCode.UNAVAILABLE and err.reason == "RENDEZVOUS_INCOMPLETE"
    assert (err.metadata["registered"], err.metadata["expected"]) == ("1", "3")
    err = error_of(client.workers.GetRendezvousInfo, ws.GetRendezvousInfoRequest(trial_id=trial.id, worker_id=9999))
    assert err.code == grpc.StatusCode.NOT_FOUND


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
