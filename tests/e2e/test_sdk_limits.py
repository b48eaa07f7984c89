"""The SDK and the agent against a server's limits: a follow refused a stream
slot waits the RetryInfo delay and opens once one frees, follows outlive the
server's stream lifetime without losing or repeating an item, and the log
shipper cuts its batches to the server's limit instead of dropping lines."""

from __future__ import annotations

import threading
import time

import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from support import start_server
from trialplane.client import Client, init
from trialplane.client.agent.calls import Link
from trialplane.client.agent.shipper import LogShipper
from trialplane.client.sdk.errors import ResourceExhausted
from trialplane.client.sdk.stubs import LIMIT_ATTEMPTS
from trialplane.v1 import log_pb2, trial_pb2
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_service_pb2 as ts

S = trial_pb2


def sample(server, name, **labels) -> float:
    return server.app.observability.registry.get_sample_value(name, labels) or 0.0


def wait_for(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.01)


def cuts(server, method, service="trialplane.v1.LogService") -> float:
    return sample(server, "trialplane_rpc_calls_total", service=service, method=method, code="RESOURCE_EXHAUSTED")


class Collect(threading.Thread):
    """Drains an iterator on its own thread."""

    def __init__(self, items):
        super().__init__(daemon=True)
        self.items, self.got, self.error = items, [], None
        self.start()

    def run(self):
        try:
            for item in self.items:
                self.got.append(item)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            self.error = exc

    def result(self):
        self.join(30)
        assert not self.is_alive() and self.error is None, self.error
        return self.got


def running_trial(sdk):
    trial = sdk.stubs.trials.CreateTrial(ts.CreateTrialRequest(trial=S.Trial(name="t")))
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=S.TRIAL_STATE_RUNNING))
    return trial


def complete(sdk, trial_id):
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial_id, state=S.TRIAL_STATE_COMPLETED))


def add_lines(sdk, trial_id, texts):
    sdk.stubs.logs.AddLogs(ls.AddLogsRequest(logs=[log_pb2.TaskLog(trial_id=trial_id, message=t) for t in texts]))


@pytest.fixture
def one_stream(db_path):
    srv = start_server(db_path, max_streams_per_principal=1, stream_retry_seconds=0.2)
    yield srv
    srv.stop()


def test_a_follow_waits_for_a_stream_slot(one_stream):
    server = one_stream
    with Client(server.address) as sdk:
        holder_trial, trial = running_trial(sdk), running_trial(sdk)
        holder = sdk.stubs.logs.WatchLogs(ls.WatchLogsRequest(trial_id=holder_trial.id))
        holding = Collect(holder)
        wait_for(lambda: server.app.stream_limits.open, "the first stream to open")
        follow = Collect(sdk.logs.follow(trial.id))
        wait_for(lambda: sample(server, "trialplane_stream_refusals_total") >= 1, "the follow to be refused")
        holder.close()
        assert holding.result() == []
        add_lines(sdk, trial.id, ["a", "b"])
        complete(sdk, trial.id)
        assert [line.message for line in follow.result()] == ["a", "b"]


@pytest.fixture
def short_streams(db_path):
    srv = start_server(db_path, max_stream_seconds=0.2)
    yield srv
    srv.stop()


def test_log_and_event_follows_resume_after_the_stream_lifetime(short_streams):
    server = short_streams
    with Client(server.address) as sdk:
        trial = running_trial(sdk)
        add_lines(sdk, trial.id, ["0", "1", "2"])
        lines = Collect(sdk.logs.follow(trial.id))
        events = Collect(sdk.trials.watch(trial.id))
        wait_for(lambda: cuts(server, "WatchLogs") >= 1, "a follow to be cut")
        add_lines(sdk, trial.id, ["3", "4"])
        wait_for(lambda: cuts(server, "WatchLogs") >= 2, "another cut")
        add_lines(sdk, trial.id, ["5"])
        wait_for(lambda: cuts(server, "WatchTrialEvents", "trialplane.v1.TrialService") >= 1, "an event follow cut")
        sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=S.TRIAL_STATE_STOPPING_COMPLETED))
        complete(sdk, trial.id)
        assert [line.message for line in lines.result()] == ["0", "1", "2", "3", "4", "5"]
        got = events.result()
        sequences = [e.sequence for e in got]
        assert sequences == sorted(set(sequences)) and sequences[0] == 1
        assert [e.to_state for e in got][-2:] == [S.TRIAL_STATE_STOPPING_COMPLETED, S.TRIAL_STATE_COMPLETED]


def test_metric_watch_resumes_without_repeating_points(short_streams):
    server = short_streams
    with Client(server.address) as sdk:
        trial = running_trial(sdk)

        # A step of a group is reported once: the two series are in groups of their own.
        def columns(name, steps):
            block = ms.MetricColumns(group=f"{name}-group", names=[name], steps=steps, values=[float(s) for s in steps])
            sdk.stubs.metrics.ReportMetricColumns(ms.ReportMetricColumnsRequest(trial_id=trial.id, blocks=[block]))

        columns("loss", [1, 2, 3, 4, 5])
        columns("acc", [1, 2])
        watch = Collect(sdk.metrics.watch(trial.id))
        wait_for(lambda: cuts(server, "WatchMetrics", "trialplane.v1.MetricsService") >= 1, "the watch to be cut")
        columns("acc", [3, 4])
        columns("loss", [6])
        wait_for(lambda: cuts(server, "WatchMetrics", "trialplane.v1.MetricsService") >= 2, "another cut")
        complete(sdk, trial.id)
        steps: dict[str, list[int]] = {}
        for series in watch.result():
            steps.setdefault(series.name, []).extend(series.steps)
        assert steps == {"loss": [1, 2, 3, 4, 5, 6], "acc": [1, 2, 3, 4]}


def test_the_log_shipper_cuts_its_batches_to_the_server_limit(db_path):
    server = start_server(db_path, max_batch_items=3)
    try:
        with Client(server.address) as sdk:
            trial = running_trial(sdk)
            shipper = LogShipper(sdk, Link(server.address), trial.id, interval=0.05)
            for i in range(10):
                shipper.add("stdout", f"line {i}", log_pb2.LOG_LEVEL_INFO)
            assert shipper.flush(20)
            assert shipper.close() == 0
            assert shipper.batch_lines == 3 and shipper.sent == 10
            stored = sdk.stubs.logs.ListLogs(ls.ListLogsRequest(trial_id=trial.id, page_size=100)).logs
            assert [line.message for line in stored] == [f"line {i}" for i in range(10)]
    finally:
        server.stop()


def test_the_sdk_cuts_its_metric_batches_to_the_server_limit(db_path, tmp_path):
    server = start_server(db_path, max_batch_points=50)
    try:
        with Client(server.address) as sdk:
            trial = running_trial(sdk)
            run = init(trial.id, address=server.address, journal_dir=tmp_path / "journals")
            for step in range(40):
                run.log(step, {f"m{i}": float(step * 10 + i) for i in range(5)})
            result = run.close()
            assert (result.points_sent, result.points_pending) == (200, 0)
            for i in range(5):
                series = sdk.stubs.metrics.GetMetricHistory(ms.GetMetricHistoryRequest(
                    trial_ids=[trial.id], group="training", names=[f"m{i}"])).series[0]
                assert list(series.steps) == list(range(40))
                assert list(series.values) == [float(step * 10 + i) for step in range(40)]
            def calls(code):
                return sample(server, "trialplane_rpc_calls_total", service="trialplane.v1.MetricsService",
                              method="ReportMetricColumns", code=code)

            # The first batch held more than 50 values; the ones cut after it at most 50 each.
            assert calls("RESOURCE_EXHAUSTED") == 1 and calls("OK") >= 4
    finally:
        server.stop()


def limit_status(delay_seconds: float | None):
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="past a limit")
    details = [error_details_pb2.ErrorInfo(reason="LIMIT_EXCEEDED", domain="trialplane.v1",
                                           metadata={"limit": "1", "limit_name": "some_limit"})]
    if delay_seconds is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(delay_seconds * 1e9))
        details.append(retry)
    for detail in details:
        status.details.add().Pack(detail)
    return rpc_status.to_status(status)


def test_unary_calls_with_a_request_id_wait_out_a_retry_info(proxy):
    with Client(proxy.address) as sdk:
        trial = running_trial(sdk)
        proxy.fail("LogService/AddLogs", limit_status(0.05), limit_status(0.05))
        add_lines(sdk, trial.id, ["kept"])
        assert len(proxy.attempts_of("LogService/AddLogs")) == 3
        lines = sdk.stubs.logs.ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs
        assert [line.message for line in lines] == ["kept"]
        # Bounded: after LIMIT_ATTEMPTS refusals the last one is raised, with its delay.
        proxy.fail("LogService/AddLogs", *[limit_status(0.01)] * LIMIT_ATTEMPTS)
        with pytest.raises(ResourceExhausted) as info:
            add_lines(sdk, trial.id, ["refused"])
        assert info.value.retry_delay == 0.01
        # No request_id, or no RetryInfo: raised at once.
        proxy.fail("TrialService/GetTrial", limit_status(0.01))
        with pytest.raises(ResourceExhausted) as info:
            sdk.trials.get(trial.id)
        assert info.value.retry_delay == 0.01
        proxy.fail("LogService/AddLogs", limit_status(None))
        with pytest.raises(ResourceExhausted) as info:
            add_lines(sdk, trial.id, ["too many"])
        assert info.value.retry_delay is None
        assert [line.message for line in sdk.stubs.logs.ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs] == ["kept"]
