"""The agent's parts that need no server: what it reports at the end, exit
markers, and the log queue's bound while the server is down."""

import threading

import grpc
import pytest
from trialplane.client.agent.calls import Link
from trialplane.client.agent.follow import Ended, read_marker
from trialplane.client.agent.outcome import (
    MAX_REASON_CHARS,
    Ending,
    clip,
    final_state,
    last_lines,
    reportable,
)
from trialplane.client.agent.shipper import LogShipper
from trialplane.client.sdk import Unavailable
from trialplane.v1 import log_pb2, trial_pb2

S = trial_pb2


@pytest.mark.parametrize(("current", "ending", "expected"), [
    (S.TRIAL_STATE_RUNNING, Ending(0), S.TRIAL_STATE_COMPLETED),
    (S.TRIAL_STATE_RUNNING, Ending(3), S.TRIAL_STATE_ERROR),
    (S.TRIAL_STATE_STARTING, Ending(None, signal_name="SIGKILL"), S.TRIAL_STATE_ERROR),
    (S.TRIAL_STATE_RUNNING, Ending(0, interrupted=True), S.TRIAL_STATE_ERROR),
    (S.TRIAL_STATE_RUNNING, Ending(None), S.TRIAL_STATE_COMPLETED),
    (S.TRIAL_STATE_STOPPING_CANCELED, Ending(0, stopped=True), S.TRIAL_STATE_CANCELED),
    (S.TRIAL_STATE_STOPPING_KILLED, Ending(None, signal_name="SIGKILL"), S.TRIAL_STATE_CANCELED),
    (S.TRIAL_STATE_STOPPING_COMPLETED, Ending(0), S.TRIAL_STATE_COMPLETED),
    (S.TRIAL_STATE_STOPPING_COMPLETED, Ending(1), S.TRIAL_STATE_ERROR),
    (S.TRIAL_STATE_STOPPING_ERROR, Ending(0), S.TRIAL_STATE_ERROR),
    (S.TRIAL_STATE_PAUSED, Ending(0, stopped=True), None),
    (S.TRIAL_STATE_CANCELED, Ending(0), None),
])
def test_the_final_state_is_one_the_trial_may_move_to(current, ending, expected):
    assert final_state(current, ending) == expected
    if expected is not None:
        from trialplane.server.domain.models import TrialState
        from trialplane.server.domain.trial_lifecycle import reported_transition_allowed

        name = lambda state: S.TrialState.Name(state).removeprefix("TRIAL_STATE_")  # noqa: E731
        assert reported_transition_allowed(TrialState[name(current)], TrialState[name(expected)])


def test_the_failure_reason_keeps_the_head_and_the_last_lines_that_fit():
    ending = Ending(3, last_lines=last_lines([f"line {i}" for i in range(100)], limit_chars=30), description="exit code 3")
    assert ending.failure_reason() == "exit code 3; last lines:\nline 97\nline 98\nline 99"
    assert clip("head\n" + "x" * 100, 20) == "head\n...\n" + "x" * 11


def test_exit_markers(tmp_path):
    marker = tmp_path / "exit"
    assert read_marker(marker) is None
    marker.write_text("")
    assert read_marker(marker) == Ended(None)
    marker.write_text("3\n")
    assert read_marker(marker) == Ended(3, "3")
    marker.write_text("completed")
    assert read_marker(marker) == Ended(0, "completed")
    marker.write_text("failed")
    assert read_marker(marker) == Ended(1, "failed")


class _FlakyLogs:
    """AddLogs that fails while `down` is set and records what it stored."""

    def __init__(self):
        self.down = threading.Event()
        self.stored: list[str] = []
        self.request_ids: list[str] = []

    def AddLogs(self, request):
        if self.down.is_set():
            raise Unavailable("down", code=grpc.StatusCode.UNAVAILABLE)
        self.request_ids.append(request.request_id)
        self.stored.extend(line.message for line in request.logs)


class _FakeClient:
    def __init__(self, logs):
        self.stubs = type("Stubs", (), {"logs": logs})()


def test_the_log_queue_is_bounded_while_the_server_is_down_and_drains_in_order_after():
    logs = _FlakyLogs()
    logs.down.set()
    shipper = LogShipper(_FakeClient(logs), Link("test"), 1, max_queued=50, interval=0.01)  # type: ignore[arg-type]
    try:
        for i in range(500):
            shipper.add("stdout", f"line {i}", log_pb2.LOG_LEVEL_INFO)
        assert not shipper.flush(0.2)
        # At most one batch in flight beside the full queue; the rest dropped.
        assert shipper.pending() <= 50 + 50
        assert shipper.dropped >= 400
        logs.down.clear()
        assert shipper.flush(30)
        kept = [int(text.split()[1]) for text in logs.stored]
        assert kept == sorted(kept) and kept[-1] == 499
        assert len(kept) + shipper.dropped == 500
        assert len(set(logs.request_ids)) == len(logs.request_ids)
    finally:
        shipper.close()


def test_what_the_agent_reports_of_an_ending_is_what_the_server_takes():
    # An exit marker's text can be long and hold a NUL; the server refuses
    # both, and a refused final report would leave the trial RUNNING.
    marker = "exited 1 (" + "x" * 6000 + "\x00)"
    ending = Ending(1, description=marker)
    assert len(reportable(ending.description)) <= MAX_REASON_CHARS and "\x00" not in reportable(ending.description)
    reason = ending.failure_reason()
    assert len(reason) <= MAX_REASON_CHARS and "\x00" not in reason and reason.startswith("exited 1 (xxx")
    with_lines = Ending(1, description="exited 1", last_lines=["Traceback", "boom\x00"]).failure_reason()
    assert with_lines == "exited 1; last lines:\nTraceback\nboom\ufffd"
