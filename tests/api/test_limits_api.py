"""Configured limits through a real server: items per call, open streams per
caller and the lifetime of follows, each answered RESOURCE_EXHAUSTED with the
limit in its details, while the server goes on serving and keeps everything
it accepted."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from support import Client, error_of, start_server
from support.trials import S, new_trial, report
from trialplane.v1 import (
    log_pb2,
    metrics_pb2,
    profiler_service_pb2_grpc,
)
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import trial_service_pb2 as ts

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
T0 = (time.time_ns() // 1000 // 1_000_000 - 86_400) * 1_000_000


@pytest.fixture
def limited(db_path):
    srv = start_server(db_path, max_batch_points=10, max_batch_items=5, max_batch_samples=8,
                       max_streams_per_principal=2, stream_retry_seconds=0.5)
    client = Client.connect(srv.address)
    yield srv, client
    client.channel.close()
    srv.stop()


def _raise(error):
    raise error


def decoded(error: grpc.RpcError):
    return error_of(_raise, error)


def quota_and_retry(err):
    """The QuotaFailure violation and the RetryInfo delay (None without one) of a refusal."""
    quota = err.detail(error_details_pb2.QuotaFailure)
    retry = err.detail(error_details_pb2.RetryInfo)
    (violation,) = quota.violations
    return violation, (retry.retry_delay.ToTimedelta().total_seconds() if retry is not None else None)


def assert_batch_refusal(err, name, limit, requested):
    assert (err.code, err.reason) == (EXHAUSTED, "LIMIT_EXCEEDED")
    assert err.metadata == {"limit": str(limit), "limit_name": name, "requested": str(requested)}
    assert "split" in err.message
    violation, delay = quota_and_retry(err)
    assert (violation.quota_id, violation.quota_value, violation.subject) == (name, limit, "request")
    # Sending the same batch again cannot pass: no RetryInfo.
    assert delay is None


def report_request(trial_id, step, count):
    values = struct_pb2.Struct()
    values.update({f"m{i}": float(step + i) for i in range(count)})
    return ms.ReportMetricsRequest(
        metrics=metrics_pb2.TrialMetrics(trial_id=trial_id, steps_completed=step,
                                         metrics=metrics_pb2.Metrics(avg_metrics=values)),
        group="training")


def latest(client, trial_id):
    response = client.metrics.GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial_id]))
    return {s.name: s.last for s in response.summaries}


def log_lines(trial_id, count, prefix="line"):
    return [log_pb2.TaskLog(trial_id=trial_id, message=f"{prefix} {i}") for i in range(count)]


def stored_lines(client, trial_id):
    return [line.message for line in client.logs.ListLogs(ls.ListLogsRequest(trial_id=trial_id, page_size=1000)).logs]


def samples(trial_id, start, n):
    return pp.TrialProfilerMetricsBatch(
        values=[float(start + i) for i in range(n)], batches=[start + i for i in range(n)],
        timestamps=[T0 + (start + i) * 1000 for i in range(n)],
        labels=pp.TrialProfilerMetricLabels(trial_id=trial_id, name="gpu_util", agent_id="a", gpu_uuid="g",
                                            metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM))


def sample_count(client, trial_id):
    stub = profiler_service_pb2_grpc.ProfilerServiceStub(client.channel)
    series = stub.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial_id)).series
    return sum(s.sample_count for s in series)


def test_metric_values_per_call_are_bounded(limited):
    _, client = limited
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    assert_batch_refusal(error_of(client.metrics.ReportMetrics, report_request(trial.id, 1, 11)),
                         "max_batch_points", 10, 11)
    assert client.metrics.ReportMetrics(report_request(trial.id, 2, 10)).created
    columns = ms.ReportMetricColumnsRequest(trial_id=trial.id, blocks=[
        ms.MetricColumns(group="training", names=["a", "b"], steps=[3, 4, 5], values=[1.0] * 6),
        ms.MetricColumns(group="eval", names=["c", "d", "e"], steps=[3, 4], values=[2.0] * 6),
    ])
    assert_batch_refusal(error_of(client.metrics.ReportMetricColumns, columns), "max_batch_points", 10, 12)
    del columns.blocks[1]
    assert client.metrics.ReportMetricColumns(columns).points_stored == 6
    events = ms.AddEventsRequest(reports=[report_request(trial.id, 10, 6), report_request(trial.id, 11, 6)])
    assert_batch_refusal(error_of(client.metrics.AddEvents, events), "max_batch_points", 10, 12)
    # What was accepted is all there; nothing of the refused calls is.
    assert latest(client, trial.id) == {**{f"m{i}": 2.0 + i for i in range(10)}, "a": 1.0, "b": 1.0}


def test_lines_and_items_per_call_are_bounded(limited):
    _, client = limited
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    assert_batch_refusal(error_of(client.logs.AddLogs, ls.AddLogsRequest(logs=log_lines(trial.id, 6))),
                         "max_batch_items", 5, 6)
    assert client.logs.AddLogs(ls.AddLogsRequest(logs=log_lines(trial.id, 5))).added == 5
    events = ms.AddEventsRequest(events=[
        metrics_pb2.TrialEventItem(trial_id=trial.id, scalar=metrics_pb2.ScalarEvent(metric="s", iteration=i))
        for i in range(4)
    ], logs=log_lines(trial.id, 2, "event"))
    assert_batch_refusal(error_of(client.metrics.AddEvents, events), "max_batch_items", 5, 6)
    assert stored_lines(client, trial.id) == [f"line {i}" for i in range(5)]


def test_samples_per_profiler_batch_are_bounded(limited):
    _, client = limited
    trial = new_trial(client)
    stub = profiler_service_pb2_grpc.ProfilerServiceStub(client.channel)
    err = error_of(stub.ReportProfilerMetrics, ps.ReportProfilerMetricsRequest(batch=samples(trial.id, 0, 9)))
    assert_batch_refusal(err, "max_batch_samples", 8, 9)
    assert stub.ReportProfilerMetrics(ps.ReportProfilerMetricsRequest(batch=samples(trial.id, 0, 8))).samples_stored == 8
    # In the stream, a message past the limit ends it once what came before is stored and acknowledged.
    requests = [ps.StreamProfilerMetricsRequest(stream_id="s", sequence=1, batch=samples(trial.id, 100, 4)),
                ps.StreamProfilerMetricsRequest(stream_id="s", sequence=2, batch=samples(trial.id, 200, 9))]
    call = stub.StreamProfilerMetrics(iter(requests), timeout=30)
    acknowledged = []
    with pytest.raises(grpc.RpcError) as info:
        for response in call:
            acknowledged.append(response.acknowledged_sequence)
    assert info.value.code() == EXHAUSTED
    assert acknowledged[-1] == 1
    assert sample_count(client, trial.id) == 12


def open_follow(client, trial_id):
    """A WatchLogs stream the server has opened (its headers arrived)."""
    call = client.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial_id))
    call.initial_metadata()
    return call


def wait_for(condition, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def test_open_streams_per_caller_are_bounded(limited):
    server, client = limited
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    first, second = open_follow(client, trial.id), open_follow(client, trial.id)
    refused = client.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id))
    with pytest.raises(grpc.RpcError) as info:
        next(refused)
    err = decoded(info.value)
    assert (err.code, err.reason) == (EXHAUSTED, "LIMIT_EXCEEDED")
    assert err.metadata == {"limit": "2", "limit_name": "max_streams_per_principal"}
    violation, delay = quota_and_retry(err)
    assert (violation.quota_id, violation.quota_value, violation.subject) == (
        "max_streams_per_principal", 2, "host:127.0.0.1")
    assert delay == 0.5
    # Unary calls are not limited, and the open streams go on.
    client.logs.AddLogs(ls.AddLogsRequest(logs=log_lines(trial.id, 2)))
    assert [line.message for line in next(first).logs] == ["line 0", "line 1"]
    first.cancel()
    wait_for(lambda: server.app.stream_limits.open.get("host:127.0.0.1") == 1, "the cancelled stream to close")
    third = open_follow(client, trial.id)
    assert [line.message for line in next(third).logs] == ["line 0", "line 1"]
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert [line.message for r in second for line in r.logs] == ["line 0", "line 1"]
    assert list(third) == []
    wait_for(lambda: not server.app.stream_limits.open, "every stream to be released")


def test_a_follow_ends_at_its_lifetime_with_a_retry_delay_of_zero(db_path):
    srv = start_server(db_path, max_stream_seconds=0.2)
    client = Client.connect(srv.address)
    try:
        trial = new_trial(client)
        report(client, trial.id, S.TRIAL_STATE_RUNNING)
        client.logs.AddLogs(ls.AddLogsRequest(logs=log_lines(trial.id, 3)))
        call = client.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id))
        received = []
        with pytest.raises(grpc.RpcError) as info:
            for response in call:
                received.extend(line.message for line in response.logs)
        assert received == ["line 0", "line 1", "line 2"]
        err = decoded(info.value)
        assert (err.code, err.reason) == (EXHAUSTED, "LIMIT_EXCEEDED")
        assert err.metadata == {"limit": "0.2", "limit_name": "max_stream_seconds"}
        violation, delay = quota_and_retry(err)
        assert violation.quota_id == "max_stream_seconds" and delay == 0.0
        # Opened again from the cursor, the follow goes on where it was cut.
        client.logs.AddLogs(ls.AddLogsRequest(logs=log_lines(trial.id, 1, "after")))
        report(client, trial.id, S.TRIAL_STATE_COMPLETED)
        resumed = client.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id, after_id=3))
        assert [line.message for r in resumed for line in r.logs] == ["after 0"]
        # A follow of a finished trial drains what is left and ends cleanly.
        events = client.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial.id))
        assert [r.event.to_state for r in events][-1] == S.TRIAL_STATE_COMPLETED
    finally:
        client.channel.close()
        srv.stop()


def test_with_auth_on_open_streams_are_counted_per_token(db_path):
    from trialplane.v1 import token_pb2
    from trialplane.v1 import token_service_pb2 as tk

    srv = start_server(db_path, auth=True, max_streams_per_principal=1, stream_retry_seconds=0.5)
    admin = Client.connect(srv.address, db_path.with_suffix(".admin-token").read_text().strip())
    made = admin.tokens.CreateToken(tk.CreateTokenRequest(
        token=token_pb2.Token(name="reader", kind=token_pb2.TOKEN_KIND_USER, scopes=["read"])))
    reader = Client.connect(srv.address, made.secret)
    trial = new_trial(admin)
    report(admin, trial.id, S.TRIAL_STATE_RUNNING)
    mine, theirs = open_follow(admin, trial.id), open_follow(reader, trial.id)
    with pytest.raises(grpc.RpcError) as info:
        next(reader.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id)))
    violation, delay = quota_and_retry(decoded(info.value))
    assert (violation.subject, delay) == (f"user:{made.token.id}", 0.5)
    assert srv.app.stream_limits.open == {"user:1": 1, f"user:{made.token.id}": 1}
    for call in (mine, theirs):
        call.cancel()
    wait_for(lambda: not srv.app.stream_limits.open, "every stream to be released")
    for c in (admin, reader):
        c.channel.close()
    srv.stop()
