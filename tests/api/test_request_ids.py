"""What a request_id promises, through a real server: a retry returns the first
answer and stores nothing twice; an id belongs to one method and one parent;
the same id with another request is refused."""

import grpc
from support import create_study, error_of, make_study
from support.trials import S, new_trial, report
from trialplane.v1 import (
    log_pb2,
    log_service_pb2_grpc,
    metrics_service_pb2_grpc,
    profiler_service_pb2_grpc,
    trial_pb2,
    worker_pb2,
)
from trialplane.v1 import (
    log_service_pb2 as ls,
)
from trialplane.v1 import (
    metrics_pb2 as mp,
)
from trialplane.v1 import (
    metrics_service_pb2 as ms,
)
from trialplane.v1 import (
    profiler_pb2 as pp,
)
from trialplane.v1 import (
    profiler_service_pb2 as ps,
)
from trialplane.v1 import (
    study_service_pb2 as ss,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)
from trialplane.v1 import (
    worker_service_pb2 as ws,
)


def reused(err) -> bool:
    return (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")


def test_create_study_retry_returns_the_first_study_and_another_study_is_refused(client):
    first = client.studies.CreateStudy(ss.CreateStudyRequest(study=make_study("one"), request_id="c-1"))
    again = client.studies.CreateStudy(ss.CreateStudyRequest(study=make_study("one"), request_id="c-1"))
    assert again.id == first.id
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(study=make_study("two"), request_id="c-1"))
    assert reused(err) and err.metadata == {"request_id": "c-1", "method": "CreateStudy"}


def test_create_trial_request_ids_are_scoped_to_their_study(client):
    a, b = create_study(client, "a"), create_study(client, "b")
    hp = {"lr": trial_pb2.ParameterValue(double_value=0.01), "layers": trial_pb2.ParameterValue(int_value=2),
          "optimizer": trial_pb2.ParameterValue(string_value="adam")}

    def create(study, name):
        return ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, name=name, hyperparameters=hp),
                                     request_id="t-1")

    first = client.trials.CreateTrial(create(a, "x"))
    assert client.trials.CreateTrial(create(a, "x")).id == first.id
    # Another trial under the same id is not answered with the first one.
    assert reused(error_of(client.trials.CreateTrial, create(a, "y")))
    # The same id in another study is another request.
    other = client.trials.CreateTrial(create(b, "x"))
    assert other.id != first.id and other.study_id == b.id
    names = [t.name for t in client.trials.ListTrials(ts.ListTrialsRequest(study_id=a.id)).trials]
    assert names == ["x"]


def test_register_worker_never_answers_with_another_trials_worker(client):
    t1, t2 = new_trial(client, "one"), new_trial(client, "two")

    def register(trial):
        return client.workers.RegisterWorker(ws.RegisterWorkerRequest(
            worker=worker_pb2.Worker(trial_id=trial.id, type="worker", rank=0), request_id="w-0"))

    w1 = register(t1)
    assert register(t1).id == w1.id
    w2 = register(t2)
    assert w2.id != w1.id and w2.trial_id == t2.id


def test_transition_request_ids_belong_to_their_method(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    stopped = client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, request_id="op-1"))
    assert stopped.state == S.TRIAL_STATE_STOPPING_CANCELED
    assert client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, request_id="op-1")).etag == stopped.etag
    assert reused(error_of(client.trials.StopTrial, ts.StopTrialRequest(id=trial.id, request_id="op-1", message="other")))
    killed = client.trials.KillTrial(ts.KillTrialRequest(id=trial.id, request_id="op-1"))
    assert killed.state == S.TRIAL_STATE_STOPPING_KILLED


def _report(trial_id, step):
    values = mp.Metrics()
    values.avg_metrics.update({"loss": 1.0 / step})
    return ms.ReportMetricsRequest(metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=values),
                                   group="training")


def test_add_events_retry_stores_nothing_twice(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    metrics = metrics_service_pb2_grpc.MetricsServiceStub(client.channel)
    scalar = mp.TrialEventItem(trial_id=trial.id, scalar=mp.ScalarEvent(metric="eval", variant="acc", iteration=1, value=0.5))
    vector = mp.TrialEventItem(trial_id=trial.id, vector=mp.VectorEvent(metric="hist", iteration=1, values=[1, 2]))
    request = ms.AddEventsRequest(reports=[_report(trial.id, 1), _report(trial.id, 2)], events=[scalar, vector],
                                  logs=[log_pb2.TaskLog(trial_id=trial.id, message="hello")], request_id="batch-1")
    first = metrics.AddEvents(request)
    again = metrics.AddEvents(request)
    assert first.added == again.added == 5 and list(again.errors) == []
    debug = metrics.ListDebugEvents(ms.ListDebugEventsRequest(trial_id=trial.id)).events
    assert len(debug) == 1
    logs = log_service_pb2_grpc.LogServiceStub(client.channel).ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs
    assert [x.message for x in logs] == ["hello"]
    other = ms.AddEventsRequest(events=[vector], request_id="batch-1")
    assert reused(error_of(metrics.AddEvents, other))


def test_add_logs_retry_stores_each_line_once(client):
    trial = new_trial(client)
    logs = log_service_pb2_grpc.LogServiceStub(client.channel)
    request = ls.AddLogsRequest(logs=[log_pb2.TaskLog(trial_id=trial.id, message=f"line {i}") for i in range(3)],
                                request_id="logs-1")
    assert logs.AddLogs(request).added == 3
    assert logs.AddLogs(request).added == 3
    stored = logs.ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs
    assert [x.message for x in stored] == ["line 0", "line 1", "line 2"]
    request.logs[0].message = "changed"
    assert reused(error_of(logs.AddLogs, request))


def test_report_profiler_metrics_retry_stores_the_samples_once(client):
    trial = new_trial(client)
    profiler = profiler_service_pb2_grpc.ProfilerServiceStub(client.channel)
    labels = pp.TrialProfilerMetricLabels(trial_id=trial.id, name="gpu", metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)
    now_us = 1_800_000_000_000_000
    batch = pp.TrialProfilerMetricsBatch(values=[1.0, 2.0], batches=[1, 2], timestamps=[now_us, now_us + 1], labels=labels)
    request = ps.ReportProfilerMetricsRequest(batch=batch, request_id="p-1")
    assert profiler.ReportProfilerMetrics(request).samples_stored == 2
    assert profiler.ReportProfilerMetrics(request).samples_stored == 2
    (series,) = profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series
    assert series.sample_count == 2
    request.batch.values[0] = 9.0
    assert reused(error_of(profiler.ReportProfilerMetrics, request))
