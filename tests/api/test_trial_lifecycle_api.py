"""Every trial transition, legal and illegal, through a real server.

The expected tables are written out here by hand, independent of the
server's own state machine code.
"""

import grpc
import pytest
from support import error_of
from support.trials import ALL_STATES, S, name, report, trial_in
from trialplane.v1 import errors_pb2, trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

ACTIVE = {"QUEUED", "ACTIVE", "PULLING", "STARTING", "RUNNING"}
ENDINGS_FROM_ACTIVE = {"STOPPING_COMPLETED", "STOPPING_ERROR", "COMPLETED", "CANCELED", "ERROR"}

# state -> states the agent running the trial may report next (besides the same state).
REPORTS = {
    "QUEUED": {"ACTIVE", "PULLING", "STARTING", "RUNNING"} | ENDINGS_FROM_ACTIVE,
    "ACTIVE": {"QUEUED", "PULLING", "STARTING", "RUNNING"} | ENDINGS_FROM_ACTIVE,
    "PULLING": {"STARTING", "RUNNING"} | ENDINGS_FROM_ACTIVE,
    "STARTING": {"RUNNING"} | ENDINGS_FROM_ACTIVE,
    "RUNNING": ENDINGS_FROM_ACTIVE,
    "PAUSED": {"CANCELED", "ERROR"},
    "STOPPING_CANCELED": {"STOPPING_ERROR", "CANCELED", "ERROR"},
    "STOPPING_KILLED": {"STOPPING_ERROR", "CANCELED", "ERROR"},
    "STOPPING_COMPLETED": {"STOPPING_ERROR", "COMPLETED", "ERROR"},
    "STOPPING_ERROR": {"ERROR"},
    "CANCELED": set(),
    "COMPLETED": set(),
    "ERROR": set(),
}

# (user operation, state) -> resulting state; missing pairs are illegal.
# A result equal to the start state means "accepted, nothing to do".
OPERATIONS = {
    "stop": {
        "QUEUED": "CANCELED", "PAUSED": "CANCELED", "ACTIVE": "STOPPING_CANCELED", "PULLING": "STOPPING_CANCELED",
        "STARTING": "STOPPING_CANCELED", "RUNNING": "STOPPING_CANCELED",
        "STOPPING_CANCELED": "STOPPING_CANCELED", "STOPPING_KILLED": "STOPPING_KILLED",
    },
    "kill": {
        "QUEUED": "CANCELED", "PAUSED": "CANCELED", "ACTIVE": "STOPPING_KILLED", "PULLING": "STOPPING_KILLED",
        "STARTING": "STOPPING_KILLED", "RUNNING": "STOPPING_KILLED", "STOPPING_CANCELED": "STOPPING_KILLED",
        "STOPPING_KILLED": "STOPPING_KILLED",
    },
    "pause": dict.fromkeys(ACTIVE | {"PAUSED"}, "PAUSED"),
    "activate": {"PAUSED": "QUEUED", **{s: s for s in ACTIVE}},
    "restart": dict.fromkeys(ACTIVE | {"PAUSED", "STOPPING_CANCELED", "STOPPING_KILLED", "STOPPING_COMPLETED", "STOPPING_ERROR"}, "QUEUED"),
    "early_exit": dict.fromkeys(ACTIVE, "STOPPING_COMPLETED"),
}


def _call(client, op, trial_id):
    t = client.trials
    if op == "stop":
        return t.StopTrial(ts.StopTrialRequest(id=trial_id))
    if op == "kill":
        return t.KillTrial(ts.KillTrialRequest(id=trial_id))
    if op == "pause":
        return t.PauseTrial(ts.PauseTrialRequest(id=trial_id))
    if op == "activate":
        return t.ActivateTrial(ts.ActivateTrialRequest(id=trial_id))
    if op == "restart":
        return t.RestartTrial(ts.RestartTrialRequest(id=trial_id))
    return t.ReportEarlyExit(
        ts.ReportEarlyExitRequest(id=trial_id, early_exit=trial_pb2.TrialEarlyExit(reason=trial_pb2.TRIAL_EARLY_EXIT_REASON_INVALID_HP))
    )


def _events(client, trial_id):
    return list(client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial_id)).events)


@pytest.mark.parametrize("start", ALL_STATES, ids=name)
def test_every_reported_transition(client, start):
    for target in ALL_STATES:
        trial = trial_in(client, start)
        before = _events(client, trial.id)
        legal = name(target) in REPORTS[name(start)] or target == start
        if legal:
            after = report(client, trial.id, target)
            assert after.state == target
            events = _events(client, trial.id)
            if target != start:
                assert len(events) == len(before) + 1
                assert (events[-1].from_state, events[-1].to_state) == (start, target)
                assert events[-1].sequence == len(events)
            else:
                assert events == before
        else:
            err = error_of(report, client, trial.id, target)
            assert err.code == grpc.StatusCode.FAILED_PRECONDITION, (name(start), name(target))
            assert err.reason == "ILLEGAL_TRANSITION"
            assert err.metadata["from_state"] == S.TrialState.Name(start)
            assert err.metadata["to_state"] == S.TrialState.Name(target)
            typed = err.detail(errors_pb2.IllegalTransitionDetails)
            assert (typed.trial_id, typed.current_state, typed.requested_state) == (trial.id, start, target)
            assert {name(s) for s in typed.allowed_states} == set(REPORTS[name(start)]) - {name(start)}
            assert name(start) in err.message and name(target) in err.message
            assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).state == start
            assert _events(client, trial.id) == before


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_every_user_operation(client, op):
    for start in ALL_STATES:
        trial = trial_in(client, start)
        expected = OPERATIONS[op].get(name(start))
        if expected is None:
            err = error_of(_call, client, op, trial.id)
            assert err.code == grpc.StatusCode.FAILED_PRECONDITION, (op, name(start))
            assert err.reason == "ILLEGAL_TRANSITION"
            assert err.metadata["from_state"] == S.TrialState.Name(start)
            assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).state == start
            continue
        after = _call(client, op, trial.id)
        assert name(after.state) == expected, (op, name(start))
        if op == "restart":
            assert after.restarts == trial.restarts + 1
            assert after.trial_run_id == trial.trial_run_id + 1
        if expected in ("CANCELED", "COMPLETED", "ERROR"):
            assert after.HasField("end_time")
        if expected.startswith("STOPPING_"):
            assert after.HasField("stop_deadline")


def test_unspecified_and_unknown_states_are_invalid(client):
    trial = trial_in(client, S.TRIAL_STATE_QUEUED)
    err = error_of(report, client, trial.id, S.TRIAL_STATE_UNSPECIFIED)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "state" in err.violations
    err = error_of(report, client, trial.id, 99)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "unknown value 99" in err.violations["state"]
    err = error_of(
        client.trials.ReportEarlyExit, ts.ReportEarlyExitRequest(id=trial.id, early_exit=trial_pb2.TrialEarlyExit())
    )
    assert "early_exit.reason" in err.violations


def test_transition_texts_are_checked_before_anything_changes(client):
    trial = trial_in(client, S.TRIAL_STATE_RUNNING)
    for request, call in (
        (ts.StopTrialRequest(id=trial.id, message="m" * 4097), client.trials.StopTrial),
        (ts.KillTrialRequest(id=trial.id, message="killed\x00"), client.trials.KillTrial),
        (ts.ReportTrialStateRequest(id=trial.id, state=S.TRIAL_STATE_ERROR, failure_reason="f" * 4097),
         client.trials.ReportTrialState),
        (ts.ReportTrialStateRequest(id=trial.id, state=S.TRIAL_STATE_RUNNING, task_id="task\n1"),
         client.trials.ReportTrialState),
    ):
        err = error_of(call, request)
        field = next(name for name in ("message", "failure_reason", "task_id") if getattr(request, name, ""))
        assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    after = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert (after.state, after.etag) == (S.TRIAL_STATE_RUNNING, trial.etag)
    # A pod's name is a fine task id: up to 253 characters in Kubernetes.
    pod = "train-" + "a" * 240 + "-x7k2q"
    reported = client.trials.ReportTrialState(ts.ReportTrialStateRequest(
        id=trial.id, state=S.TRIAL_STATE_RUNNING, task_id=pod, runner_state="epoch 3 of 10"))
    assert list(reported.task_ids) == [pod] and reported.runner_state == "epoch 3 of 10"


def test_transitions_on_unknown_trial_are_not_found(client):
    for op in OPERATIONS:
        assert error_of(_call, client, op, 12345).code == grpc.StatusCode.NOT_FOUND
    assert error_of(report, client, 12345, S.TRIAL_STATE_RUNNING).code == grpc.StatusCode.NOT_FOUND
    assert error_of(_call, client, "stop", 0).code == grpc.StatusCode.INVALID_ARGUMENT


# --- the stop timeline that trial_service.proto documents on StopTrial ---------

def _at(trial) -> float:
    return trial.stop_deadline.ToMicroseconds() / 1e6 if trial.HasField("stop_deadline") else None


def test_stop_timeline_sigterm_grace_then_kill_grace_then_canceled(clocked_client, clocked_server, clock):
    from google.protobuf import duration_pb2

    client = clocked_client
    get = lambda i: client.trials.GetTrial(ts.GetTrialRequest(id=i))  # noqa: E731
    sweep = lambda: clocked_server.call(clocked_server.app.watchdog.sweep())  # noqa: E731
    now = lambda: clock() / 1e6  # noqa: E731

    # Default grace: STOPPING_CANCELED for 10 minutes (the agent sends SIGTERM) ...
    silent = trial_in(client, S.TRIAL_STATE_RUNNING, "silent")
    stopped = client.trials.StopTrial(ts.StopTrialRequest(id=silent.id))
    assert stopped.state == S.TRIAL_STATE_STOPPING_CANCELED
    assert _at(stopped) == pytest.approx(now() + 600, abs=2)
    # ... a second StopTrial changes nothing, not even the deadline ...
    again = client.trials.StopTrial(ts.StopTrialRequest(id=silent.id, grace_period=duration_pb2.Duration(seconds=1)))
    assert again.state == S.TRIAL_STATE_STOPPING_CANCELED and _at(again) == _at(stopped)
    clock.advance(598)
    assert sweep() == 0 and get(silent.id).state == S.TRIAL_STATE_STOPPING_CANCELED
    # ... then STOPPING_KILLED with 30 more seconds (the agent sends SIGKILL) ...
    clock.advance(3)
    assert sweep() == 1
    killed = get(silent.id)
    assert killed.state == S.TRIAL_STATE_STOPPING_KILLED
    assert _at(killed) == pytest.approx(now() + 30, abs=1)
    clock.advance(29)
    assert sweep() == 0 and get(silent.id).state == S.TRIAL_STATE_STOPPING_KILLED
    # ... then CANCELED without a word from the agent.
    clock.advance(2)
    assert sweep() == 1
    ended = get(silent.id)
    assert ended.state == S.TRIAL_STATE_CANCELED and _at(ended) is None
    assert ended.end_time.ToMicroseconds() / 1e6 == pytest.approx(now(), abs=1)
    events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=silent.id)).events
    assert [(name(e.from_state), name(e.to_state)) for e in events][-3:] == [
        ("RUNNING", "STOPPING_CANCELED"), ("STOPPING_CANCELED", "STOPPING_KILLED"), ("STOPPING_KILLED", "CANCELED")]

    # An agent that reports CANCELED ends the trial at once, in either stopping state.
    for kill_first in (False, True):
        polite = trial_in(client, S.TRIAL_STATE_RUNNING, f"polite-{kill_first}")
        client.trials.StopTrial(ts.StopTrialRequest(id=polite.id, grace_period=duration_pb2.Duration(seconds=5)))
        if kill_first:
            clock.advance(6)
            assert sweep() == 1 and get(polite.id).state == S.TRIAL_STATE_STOPPING_KILLED
        done = report(client, polite.id, S.TRIAL_STATE_CANCELED)
        assert done.state == S.TRIAL_STATE_CANCELED and _at(done) is None
        clock.advance(60)
        assert sweep() == 0 and get(polite.id).state == S.TRIAL_STATE_CANCELED

    # KillTrial skips the graceful part: STOPPING_KILLED for 30 s, then CANCELED.
    rude = trial_in(client, S.TRIAL_STATE_RUNNING, "rude")
    killed = client.trials.KillTrial(ts.KillTrialRequest(id=rude.id))
    assert killed.state == S.TRIAL_STATE_STOPPING_KILLED and _at(killed) == pytest.approx(now() + 30, abs=1)
    clock.advance(31)
    assert sweep() == 1 and get(rude.id).state == S.TRIAL_STATE_CANCELED
