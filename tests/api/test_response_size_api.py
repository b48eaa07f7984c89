"""Answers never exceed --max-message-bytes: raw pages are cut to fit and carry
a next_page_token, follow streams send smaller messages, and what cannot be
cut answers RESOURCE_EXHAUSTED with reason RESPONSE_TOO_LARGE."""

import time

import grpc
import pytest
from google.protobuf import timestamp_pb2
from support import Client, error_of, start_server
from support.trials import S, new_trial, report
from trialplane.v1 import (
    log_pb2,
    log_service_pb2_grpc,
    metrics_service_pb2_grpc,
    profiler_service_pb2_grpc,
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

LIMIT = 32_000
T0_US = (time.time_ns() // 1000 // 1_000_000 - 86_400) * 1_000_000


@pytest.fixture
def client(db_path):
    srv = start_server(db_path, max_message_bytes=LIMIT)
    c = Client.connect(srv.address)
    yield c
    c.channel.close()
    srv.stop()


def running(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    return trial


def metrics(client):
    return metrics_service_pb2_grpc.MetricsServiceStub(client.channel)


def logs(client):
    return log_service_pb2_grpc.LogServiceStub(client.channel)


def profiler(client):
    return profiler_service_pb2_grpc.ProfilerServiceStub(client.channel)


def report_points(client, trial_id, steps, names=("loss", "acc")):
    """Steps 1 to steps of each name."""
    stub = metrics(client)
    for start in range(1, steps + 1, 200):
        reports = []
        for step in range(start, min(start + 200, steps + 1)):
            m = mp.TrialMetrics(trial_id=trial_id, steps_completed=step)
            m.metrics.avg_metrics.update(dict.fromkeys(names, step / 7))
            reports.append(ms.ReportMetricsRequest(metrics=m, group="training"))
        assert not stub.AddEvents(ms.AddEventsRequest(reports=reports)).errors


def add_lines(client, trial_id, n, width):
    for start in range(0, n, 10):
        lines = [log_pb2.TaskLog(trial_id=trial_id, time=timestamp_pb2.Timestamp(seconds=1_800_000_000 + i), worker="w0",
                                 message=f"{i:05d} " + "é" * width) for i in range(start, min(start + 10, n))]
        logs(client).AddLogs(ls.AddLogsRequest(logs=lines))


def test_metric_history_pages_fit_the_limit(client):
    trial = running(client)
    report_points(client, trial.id, 3000)
    steps = {"loss": [], "acc": []}
    token, pages = "", 0
    while True:
        resp = metrics(client).GetMetricHistory(
            ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="training", names=["loss", "acc"], page_token=token))
        assert resp.ByteSize() <= LIMIT
        pages += 1
        for series in resp.series:
            steps[series.name].extend(series.steps)
        token = resp.next_page_token
        if not token:
            break
    assert pages > 2
    assert steps == {"loss": list(range(1, 3001)), "acc": list(range(1, 3001))}


def test_watch_metrics_messages_fit_the_limit(client):
    trial = running(client)
    report_points(client, trial.id, 3000, names=("loss",))
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    got = []
    sizes = []
    for resp in metrics(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id), timeout=30):
        sizes.append(resp.ByteSize())
        got.extend(s for series in resp.series for s in series.steps)
    assert got == list(range(1, 3001))
    assert len(sizes) > 2 and max(sizes) <= LIMIT


def test_log_pages_follow_and_download_fit_the_limit(client):
    trial = running(client)
    add_lines(client, trial.id, 60, 1500)  # 3 kB a line: 100 lines would be 300 kB
    token, got = "", []
    while True:
        resp = logs(client).ListLogs(ls.ListLogsRequest(trial_id=trial.id, page_token=token))
        assert resp.ByteSize() <= LIMIT and resp.logs
        got.extend(x.message[:5] for x in resp.logs)
        token = resp.next_page_token
        if not token:
            break
    assert got == [f"{i:05d}" for i in range(60)]
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    followed = []
    for resp in logs(client).WatchLogs(ls.WatchLogsRequest(trial_id=trial.id), timeout=30):
        assert resp.ByteSize() <= LIMIT
        followed.extend(x.message[:5] for x in resp.logs)
    assert followed == got
    chunks = [c.chunk for c in logs(client).DownloadLogs(ls.DownloadLogsRequest(trial_id=trial.id, format="{msg}"))]
    assert all(len(c) <= LIMIT for c in chunks)
    assert b"".join(chunks).decode() == "".join(f"{i:05d} " + "é" * 1500 + "\n" for i in range(60))


def test_download_splits_a_line_longer_than_the_limit(client):
    trial = running(client)
    add_lines(client, trial.id, 1, 14_000)  # 28 kB a line, more than fits with its format around it twice
    fmt = "{msg}{msg}"
    chunks = [c.chunk for c in logs(client).DownloadLogs(ls.DownloadLogsRequest(trial_id=trial.id, format=fmt))]
    assert len(chunks) > 1 and all(len(c) <= LIMIT for c in chunks)
    text = "00000 " + "é" * 14_000
    assert b"".join(chunks).decode() == text + text + "\n"


def samples_batch(trial_id, start, n):
    return pp.TrialProfilerMetricsBatch(
        values=[float(i) for i in range(start, start + n)], batches=list(range(start, start + n)),
        timestamps=[T0_US + i * 1000 for i in range(start, start + n)],
        labels=pp.TrialProfilerMetricLabels(trial_id=trial_id, name="gpu", metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM),
    )


def test_profiler_raw_pages_fit_the_limit_and_what_has_no_pages_is_refused(client):
    trial = running(client)
    stub = profiler(client)
    for i in range(10):
        stub.ReportProfilerMetrics(ps.ReportProfilerMetricsRequest(batch=samples_batch(trial.id, i * 1000, 1000)))
    series = samples_batch(trial.id, 0, 0).labels
    token, got, pages = "", [], 0
    while True:
        resp = stub.GetProfilerSamples(ps.GetProfilerSamplesRequest(series=[series], page_token=token))
        assert resp.ByteSize() <= LIMIT
        pages += 1
        got.extend(b for s in resp.series for b in s.samples.batches)
        token = resp.next_page_token
        if not token:
            break
    assert pages > 2 and got == list(range(10_000))
    # Buckets come in one answer: too many of them cannot be cut into pages.
    err = error_of(stub.GetProfilerSamples, ps.GetProfilerSamplesRequest(series=[series], buckets=10_000))
    assert (err.code, err.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESPONSE_TOO_LARGE")
    assert err.metadata == {"limit_bytes": str(LIMIT)}
    # The server goes on serving, and the same question with fewer buckets fits.
    resp = stub.GetProfilerSamples(ps.GetProfilerSamplesRequest(series=[series], buckets=100))
    assert sum(b.count for b in resp.series[0].buckets) == 10_000
