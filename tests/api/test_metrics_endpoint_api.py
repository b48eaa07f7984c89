"""The Prometheus endpoint (--metrics-port) scraped over HTTP after known
calls: counts by method and code, latency counts, the open stream gauge,
ingest counters, storage gauges and watchdog actions."""

from __future__ import annotations

import socket
import time
import urllib.request

import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client.parser import text_string_to_metric_families
from support import Client, error_of, postgres, start_server
from support.trials import S, new_trial, report
from trialplane.v1 import log_pb2, profiler_service_pb2_grpc
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import trial_service_pb2 as ts

TRIALS = "trialplane.v1.TrialService"
T0 = (time.time_ns() // 1000 // 1_000_000 - 86_400) * 1_000_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def observed(db_path, clock):
    srv = start_server(db_path, clock=clock, metrics_port=free_port())
    client = Client.connect(srv.address)
    yield srv, client
    client.channel.close()
    srv.stop()


def scrape(server) -> dict[tuple[str, tuple], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.app.metrics_port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def scrape_until(server, done, timeout: float = 10.0) -> dict[tuple[str, tuple], float]:
    """A scrape in which done(samples) holds: a call ended by an error is
    counted once its handler has returned, which may be just after the
    client has the error."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


def value(samples, name, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def calls(samples, service, method, code):
    return value(samples, "trialplane_rpc_calls_total", service=service, method=method, code=code)


def test_calls_are_counted_by_method_and_code(observed):
    server, client = observed
    trial = new_trial(client)
    for _ in range(3):
        client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    for _ in range(2):
        assert error_of(client.trials.GetTrial, ts.GetTrialRequest(id=trial.id + 100)).code == grpc.StatusCode.NOT_FOUND
    assert error_of(client.trials.GetTrial, ts.GetTrialRequest(id=-1)).code == grpc.StatusCode.INVALID_ARGUMENT
    samples = scrape_until(server, lambda s: calls(s, TRIALS, "GetTrial", "INVALID_ARGUMENT"))
    assert calls(samples, TRIALS, "CreateTrial", "OK") == 1
    assert calls(samples, TRIALS, "GetTrial", "OK") == 3
    assert calls(samples, TRIALS, "GetTrial", "NOT_FOUND") == 2
    assert calls(samples, TRIALS, "GetTrial", "INVALID_ARGUMENT") == 1
    assert value(samples, "trialplane_rpc_duration_seconds_count", service=TRIALS, method="GetTrial") == 6
    assert value(samples, "trialplane_rpc_duration_seconds_bucket", service=TRIALS, method="GetTrial", le="+Inf") == 6
    assert value(samples, "trialplane_rpc_duration_seconds_sum", service=TRIALS, method="GetTrial") > 0
    # The scrape itself goes on: a second one sees the calls made since.
    client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert calls(scrape(server), TRIALS, "GetTrial", "OK") == 4


def test_ingest_counters_equal_what_was_stored(observed):
    server, client = observed
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    columns = ms.ReportMetricColumnsRequest(trial_id=trial.id, blocks=[
        ms.MetricColumns(group="training", names=["loss", "acc"], steps=[1, 2, 3], values=[1.0] * 6),
        ms.MetricColumns(group="eval", names=["loss"], steps=[3], values=[0.5]),
    ])
    assert client.metrics.ReportMetricColumns(columns).points_stored == 7
    lines = [log_pb2.TaskLog(trial_id=trial.id, message=f"line {i}") for i in range(4)]
    assert client.logs.AddLogs(ls.AddLogsRequest(logs=lines)).added == 4
    batch = pp.TrialProfilerMetricsBatch(
        values=[1.0] * 5, batches=list(range(5)), timestamps=[T0 + i for i in range(5)],
        labels=pp.TrialProfilerMetricLabels(trial_id=trial.id, name="gpu", agent_id="a", gpu_uuid="g",
                                            metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM))
    profiler = profiler_service_pb2_grpc.ProfilerServiceStub(client.channel)
    assert profiler.ReportProfilerMetrics(ps.ReportProfilerMetricsRequest(batch=batch)).samples_stored == 5
    stream = [ps.StreamProfilerMetricsRequest(stream_id="s", sequence=1, batch=batch)]
    stream[0].batch.timestamps[:] = [T0 + 100 + i for i in range(5)]
    assert list(profiler.StreamProfilerMetrics(iter(stream), timeout=30))[-1].acknowledged_sequence == 1
    samples = scrape(server)
    assert value(samples, "trialplane_metric_points_stored_total") == 7
    assert value(samples, "trialplane_log_lines_stored_total") == 4
    assert value(samples, "trialplane_profiler_samples_stored_total") == 10
    if postgres.BACKEND == "postgres":
        assert value(samples, "trialplane_storage_pool_connections") >= 1
        assert value(samples, "trialplane_storage_pool_waiting_requests") == 0
    else:
        assert value(samples, "trialplane_storage_write_queue_depth") == 0
        assert value(samples, "trialplane_report_journal_capacity_bytes") > 0
        assert value(samples, "trialplane_report_journal_unstored_reports") == 0


def test_open_streams_go_up_and_down(observed):
    server, client = observed
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    follows = [client.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id)) for _ in range(2)]
    for follow in follows:
        follow.initial_metadata()
    open_streams = {"service": "trialplane.v1.LogService", "method": "WatchLogs"}
    assert value(scrape(server), "trialplane_rpc_open_streams", **open_streams) == 2
    follows[0].cancel()
    deadline = time.monotonic() + 10
    while value(samples := scrape(server), "trialplane_rpc_open_streams", **open_streams) != 1:
        assert time.monotonic() < deadline, "the cancelled stream is still counted as open"
        time.sleep(0.02)
    assert calls(samples, "trialplane.v1.LogService", "WatchLogs", "CANCELLED") == 1
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follows[1]) == []
    samples = scrape(server)
    assert value(samples, "trialplane_rpc_open_streams", **open_streams) == 0
    assert calls(samples, "trialplane.v1.LogService", "WatchLogs", "OK") == 1


def test_watchdog_actions_are_counted(observed, clock):
    server, client = observed
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, grace_period=duration_pb2.Duration(seconds=60)))
    clock.advance(61)
    assert server.call(server.app.watchdog.sweep()) == 1
    assert value(scrape(server), "trialplane_job_actions_total", job="watchdog", action="deadline_passed") == 1


def test_the_endpoint_is_off_by_default(server):
    assert server.app.metrics_port == 0 and server.app.observability._http is None
