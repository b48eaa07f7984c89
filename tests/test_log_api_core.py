"""LogService through a real server."""

import grpc
from google.protobuf import timestamp_pb2

from trialplane.v1 import (
    log_pb2,
    log_service_pb2 as ls,
    log_service_pb2_grpc,
    metrics_service_pb2 as ms,
    metrics_service_pb2_grpc,
    study_pb2,
    trial_pb2,
    trial_service_pb2 as ts,
)

from conftest import create_study, error_of
from trial_helpers import S, new_trial, report

L = log_pb2
T0 = 1_800_000_000


def stub(client):
    return log_service_pb2_grpc.LogServiceStub(client.channel)


def line(trial_id, i, message=None, level=L.LOG_LEVEL_INFO, worker="w0", **kw):
    return L.TaskLog(trial_id=trial_id, time=timestamp_pb2.Timestamp(seconds=T0 + i), level=level, worker=worker,
                     message=message if message is not None else f"line {i}", **kw)


def add(client, lines):
    return stub(client).AddLogs(ls.AddLogsRequest(logs=lines))


def pages(client, **kw):
    out, token = [], ""
    while True:
        resp = stub(client).ListLogs(ls.ListLogsRequest(page_token=token, **kw))
        out.append([x.message for x in resp.logs])
        token = resp.next_page_token
        if not token:
            return out


def test_add_and_scroll_from_head_and_tail(client):
    trial = new_trial(client)
    assert add(client, [line(trial.id, i, stream="stderr" if i == 3 else "", rank=i % 2) for i in range(10)]).added == 10
    head = pages(client, trial_id=trial.id, page_size=3)
    assert head == [["line 0", "line 1", "line 2"], ["line 3", "line 4", "line 5"], ["line 6", "line 7", "line 8"], ["line 9"]]
    tail = pages(client, trial_id=trial.id, page_size=3, from_tail=True)
    assert sum(tail, []) == [f"line {i}" for i in range(9, -1, -1)] and len(tail) == 4
    first = stub(client).ListLogs(ls.ListLogsRequest(trial_id=trial.id, page_size=4)).logs
    assert first[3].stream == "stderr" and first[1].rank == 1 and first[0].time.seconds == T0
    assert [x.id for x in first] == sorted(x.id for x in first)


def test_filters(client):
    trial = new_trial(client)
    add(client, [line(trial.id, 0, level=L.LOG_LEVEL_ERROR, worker="a"), line(trial.id, 1, worker="b"),
                 line(trial.id, 2, level=L.LOG_LEVEL_ERROR, worker="b")])
    assert pages(client, trial_id=trial.id, levels=[L.LOG_LEVEL_ERROR]) == [["line 0", "line 2"]]
    assert pages(client, trial_id=trial.id, worker="b") == [["line 1", "line 2"]]
    assert "levels[0]" in error_of(stub(client).ListLogs, ls.ListLogsRequest(trial_id=trial.id, levels=[42])).violations


def test_bad_batches_store_nothing(client):
    trial = new_trial(client)
    err = error_of(add, client, [line(trial.id, 0), line(999999, 1)])
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert pages(client, trial_id=trial.id) == [[]]
    assert "logs[0].level" in error_of(add, client, [line(trial.id, 0, level=99)]).violations
    err = error_of(add, client, [line(trial.id, 0)] * 10_001)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "10000" in err.message


def test_follow_until_the_trial_ends(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    add(client, [line(trial.id, 0), line(trial.id, 1)])
    first_id = stub(client).ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs[0].id
    follow = stub(client).WatchLogs(ls.WatchLogsRequest(trial_id=trial.id, after_id=first_id), timeout=30)
    assert [x.message for x in next(follow).logs] == ["line 1"]
    add(client, [line(trial.id, 2, "new")])
    assert [x.message for x in next(follow).logs] == ["new"]
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follow) == []


def test_download_with_a_format(client):
    trial = new_trial(client)
    add(client, [line(trial.id, 0, "hello", worker="w1"), line(trial.id, 1, "bye", level=L.LOG_LEVEL_WARNING)])
    download = lambda fmt="": b"".join(c.chunk for c in stub(client).DownloadLogs(ls.DownloadLogsRequest(trial_id=trial.id, format=fmt)))  # noqa: E731
    assert download("{level}|{worker}|{msg}") == b"INFO|w1|hello\nWARNING|w0|bye\n"
    text = download().decode()
    assert text.splitlines()[0].endswith(" w1 INFO hello") and text.startswith("2027-01-15T08:00:00.000+00:00")
    for bad in ["{nope}", "{", "{0}"]:
        assert "format" in error_of(download, bad).violations


def test_metric_definitions_turn_lines_into_points(client):
    study = create_study(client, "logs", metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(
        study_id=study.id,
        hyperparameters={"lr": trial_pb2.ParameterValue(double_value=0.01), "layers": trial_pb2.ParameterValue(int_value=2),
                         "optimizer": trial_pb2.ParameterValue(string_value="adam")},
        metric_definitions=[study_pb2.MetricDefinition(name="acc", regex=r"step (?P<step>\d+) acc=(?P<value>[0-9.]+)")],
    )))
    resp = add(client, [line(trial.id, 0, "step 1 loss=0.5"), line(trial.id, 1, "noise"), line(trial.id, 2, "loss=0.25"),
                        line(trial.id, 3, "step 40 acc=0.75")])
    assert (resp.added, resp.metric_points) == (4, 3)
    metrics = metrics_service_pb2_grpc.MetricsServiceStub(client.channel)
    loss, acc = metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="logs", names=["loss", "acc"])).series
    assert list(loss.values) == [0.5, 0.25] and list(loss.steps) == [0, 1]
    assert list(acc.values) == [0.75] and list(acc.steps) == [40]
    err = error_of(create_study, client, "bad", metric_definitions=[study_pb2.MetricDefinition(name="x", regex="(")])
    assert "does not compile" in err.violations["study.metric_definitions[0].regex"]
