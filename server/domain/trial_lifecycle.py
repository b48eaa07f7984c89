"""The trial state machine.

Every function takes the trial as stored, the current time and the request,
and returns a Change: the new trial plus the events to append. Storage runs
these functions inside its write transaction, so two racing clients see each
other's result and the loser gets FAILED_PRECONDITION (or ABORTED on an etag).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields

from .errors import FailedPrecondition, StaleTrialRun, invalid, require_etag
from .models import EarlyExitReason, Resources, Trial, TrialState, shallow_copy
from .tokens import redact

S = TrialState

# Sub-states of an active trial, in the order a run goes through them.
ACTIVE_ORDER = {S.QUEUED: 0, S.ACTIVE: 0, S.PULLING: 1, S.STARTING: 2, S.RUNNING: 3}
ACTIVE = frozenset(ACTIVE_ORDER)
# Active states in which the trial's workers run and must send heartbeats.
WORKING = ACTIVE - {S.QUEUED}
STOPPING = frozenset({S.STOPPING_CANCELED, S.STOPPING_KILLED, S.STOPPING_COMPLETED, S.STOPPING_ERROR})
TERMINAL = frozenset({S.CANCELED, S.COMPLETED, S.ERROR})
# Where each stopping state is headed.
STOPPING_OUTCOME = {
    S.STOPPING_CANCELED: S.CANCELED,
    S.STOPPING_KILLED: S.CANCELED,
    S.STOPPING_COMPLETED: S.COMPLETED,
    S.STOPPING_ERROR: S.ERROR,
}
# A state that holds no running container: stopping it needs no shutdown.
NOTHING_RUNNING = frozenset({S.QUEUED, S.PAUSED})

DEFAULT_GRACE_SECONDS = 600.0
KILL_GRACE_SECONDS = 30.0
# How long a trial that reported STOPPING_COMPLETED / STOPPING_ERROR has to
# report its terminal state before the server records it.
SHUTDOWN_GRACE_SECONDS = 600.0

US = 1_000_000


@dataclass
class EventDraft:
    from_state: TrialState
    to_state: TrialState
    trial_run_id: int
    message: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class Change:
    trial: Trial
    events: list[EventDraft] = field(default_factory=list)


def is_terminal(state: TrialState) -> bool:
    return state in TERMINAL


def reported_transition_allowed(src: TrialState, dst: TrialState) -> bool:
    """Whether the agent running a trial may move it from src to dst."""
    if src in TERMINAL:
        return False
    if dst in ACTIVE:
        return src in ACTIVE and ACTIVE_ORDER[dst] >= ACTIVE_ORDER[src]
    if dst == S.STOPPING_COMPLETED:
        return src in ACTIVE
    if dst == S.STOPPING_ERROR:
        return src in ACTIVE or src in STOPPING
    if dst == S.COMPLETED:
        return src in ACTIVE or src == S.STOPPING_COMPLETED
    if dst == S.CANCELED:
        return src in ACTIVE or src == S.PAUSED or src in (S.STOPPING_CANCELED, S.STOPPING_KILLED)
    if dst == S.ERROR:
        return src in ACTIVE or src in STOPPING or src == S.PAUSED
    # PAUSED, STOPPING_CANCELED and STOPPING_KILLED are user decisions.
    return False


def reportable_states(src: TrialState) -> list[TrialState]:
    """The states the agent running a trial in src may report next."""
    return [dst for dst in S if dst != src and reported_transition_allowed(src, dst)]


class IllegalTransition(FailedPrecondition):
    """A trial cannot move from its state to the requested one."""

    reason = "ILLEGAL_TRANSITION"

    def __init__(self, trial: Trial, dst: TrialState, action: str, allowed: list[TrialState] | None = None):
        super().__init__(
            f"cannot {action} trial {trial.id}: {trial.state.value} -> {dst.value} is not allowed",
            metadata={"trial_id": trial.id, "from_state": trial.state, "to_state": dst},
        )
        self.trial_id = trial.id
        self.current_state = trial.state
        self.requested_state = dst
        # Where the same method could have moved it instead (none for the
        # user operations: each has one destination).
        self.allowed_states = allowed or []


# The trial's own lists and dicts: a copy gets new ones, so changing them
# never changes the trial as stored. What they hold is shared; no
# transition changes a value inside them in place.
_CONTAINERS = tuple(f.name for f in fields(Trial) if f.default_factory in (list, dict))


def copied(trial: Trial) -> Trial:
    """The trial with containers of its own, at about a thirteenth of what a
    deepcopy costs."""
    t = shallow_copy(trial)
    for name in _CONTAINERS:
        setattr(t, name, copy.copy(getattr(trial, name)))
    return t


def _check_etag(trial: Trial, etag: str) -> None:
    require_etag("trial", trial.id, trial.version, etag)


def _check_run(trial: Trial, trial_run_id: int) -> None:
    if trial_run_id and trial_run_id != trial.trial_run_id:
        raise StaleTrialRun(trial.id, trial.trial_run_id, trial_run_id)


def _move(trial: Trial, dst: TrialState, now: int, message: str, details: dict | None = None) -> EventDraft:
    """Moves a (copied) trial to dst and keeps the time bookkeeping right."""
    src = trial.state
    if src == S.RUNNING and dst != S.RUNNING and trial.running_since is not None:
        trial.running_seconds += max(0, now - trial.running_since) / US
        trial.running_since = None
    if dst == S.RUNNING and src != S.RUNNING:
        trial.running_since = now
    if dst in ACTIVE and ACTIVE_ORDER[dst] > 0:
        if trial.start_time is None:
            trial.start_time = now
        if trial.runtime_deadline is None and trial.max_runtime_seconds > 0:
            trial.runtime_deadline = now + int(trial.max_runtime_seconds * US)
    if dst not in STOPPING:
        trial.stop_deadline = None
    if dst not in ACTIVE:
        trial.runtime_deadline = None
    if dst in TERMINAL:
        trial.end_time = now
    trial.state = dst
    return EventDraft(src, dst, trial.trial_run_id, redact(message), dict(details or {}))


def _stopping(trial: Trial, dst: TrialState, now: int, grace_seconds: float, message: str, details=None) -> EventDraft:
    event = _move(trial, dst, now, message, details)
    trial.stop_deadline = now + int(grace_seconds * US)
    return event


def _start_new_run(trial: Trial, now: int, message: str, details: dict, resources: Resources | None = None) -> EventDraft:
    event = _move(trial, S.QUEUED, now, message, details)
    trial.restarts += 1
    trial.trial_run_id += 1
    trial.runtime_deadline = None
    trial.runner_state = ""
    trial.early_exit_reason = None
    if resources is not None:
        trial.resources = resources
    event.details.setdefault("new_trial_run_id", trial.trial_run_id)
    return event


def stop(trial: Trial, now: int, *, grace_seconds: float | None, message: str = "", etag: str = "",
         details: dict | None = None) -> Change:
    """details: recorded on the event beside the grace period (an early-
    stopping decision's rule, step, threshold and value)."""
    _check_etag(trial, etag)
    t = copied(trial)
    grace = DEFAULT_GRACE_SECONDS if grace_seconds is None else grace_seconds
    if t.state in (S.STOPPING_CANCELED, S.STOPPING_KILLED):
        return Change(t)
    if t.state in NOTHING_RUNNING:
        return Change(t, [_move(t, S.CANCELED, now, message or "stopped before it ran", details)])
    if t.state in ACTIVE:
        ev = _stopping(t, S.STOPPING_CANCELED, now, grace, message or "stop requested",
                       {"grace_period_seconds": grace, **(details or {})})
        return Change(t, [ev])
    raise IllegalTransition(trial, S.STOPPING_CANCELED, "stop")


def kill(trial: Trial, now: int, *, message: str = "", etag: str = "") -> Change:
    _check_etag(trial, etag)
    t = copied(trial)
    if t.state == S.STOPPING_KILLED:
        return Change(t)
    if t.state in NOTHING_RUNNING:
        return Change(t, [_move(t, S.CANCELED, now, message or "killed before it ran")])
    if t.state in ACTIVE or t.state == S.STOPPING_CANCELED:
        return Change(t, [_stopping(t, S.STOPPING_KILLED, now, KILL_GRACE_SECONDS, message or "kill requested")])
    raise IllegalTransition(trial, S.STOPPING_KILLED, "kill")


def pause(trial: Trial, now: int, *, message: str = "", etag: str = "") -> Change:
    _check_etag(trial, etag)
    t = copied(trial)
    if t.state == S.PAUSED:
        return Change(t)
    if t.state in ACTIVE:
        return Change(t, [_move(t, S.PAUSED, now, message or "paused")])
    raise IllegalTransition(trial, S.PAUSED, "pause")


def activate(trial: Trial, now: int, *, message: str = "", etag: str = "") -> Change:
    _check_etag(trial, etag)
    t = copied(trial)
    if t.state in ACTIVE:
        return Change(t)
    if t.state == S.PAUSED:
        return Change(t, [_move(t, S.QUEUED, now, message or "activated")])
    raise IllegalTransition(trial, S.QUEUED, "activate")


def restart(trial: Trial, now: int, *, resources: Resources | None = None, message: str = "", etag: str = "") -> Change:
    _check_etag(trial, etag)
    if trial.state in TERMINAL:
        raise IllegalTransition(trial, S.QUEUED, "restart")
    t = copied(trial)
    details = {"previous_trial_run_id": t.trial_run_id}
    if resources is not None:
        details["new_resources"] = True
    return Change(t, [_start_new_run(t, now, message or "restart requested", details, resources)])


@dataclass
class StateReport:
    state: TrialState
    trial_run_id: int = 0
    message: str = ""
    failure_reason: str = ""
    runner_state: str = ""
    steps_completed: int = 0
    task_id: str = ""
    details: dict = field(default_factory=dict)
    etag: str = ""


def report_state(trial: Trial, now: int, report: StateReport) -> Change:
    """Applies a state report from the agent running the trial.

    A report of the current state is a no-op for the state (a safe retry) but
    still records progress. An ERROR report with attempts left under the retry
    strategy starts a new run instead of ending the trial.
    """
    _check_etag(trial, report.etag)
    _check_run(trial, report.trial_run_id)
    t = copied(trial)
    if report.state != t.state and not reported_transition_allowed(t.state, report.state):
        raise IllegalTransition(trial, report.state, "report state of", reportable_states(trial.state))
    if report.runner_state:
        t.runner_state = report.runner_state
    if report.steps_completed > t.steps_completed:
        t.steps_completed = report.steps_completed
    if report.task_id and report.task_id not in t.task_ids:
        t.task_ids.append(report.task_id)
    if report.failure_reason:
        t.failure_reason = redact(report.failure_reason)
    if report.state == t.state:
        return Change(t)
    failing = report.state in (S.ERROR, S.STOPPING_ERROR)
    attempts_used = t.restarts + 1
    if failing and t.state not in STOPPING and attempts_used < t.retry_max_attempts:
        details = dict(report.details)
        details.update({"automatic_retry": True, "attempt": attempts_used + 1, "max_attempts": t.retry_max_attempts})
        if report.failure_reason:
            details["failure_reason"] = t.failure_reason
        message = report.message or f"run {t.trial_run_id} failed; retrying ({attempts_used + 1}/{t.retry_max_attempts})"
        return Change(t, [_start_new_run(t, now, message, details)])
    if report.state in STOPPING:
        ev = _stopping(t, report.state, now, SHUTDOWN_GRACE_SECONDS, report.message, report.details)
    else:
        ev = _move(t, report.state, now, report.message, report.details)
    return Change(t, [ev])


def start(trial: Trial, now: int, message: str) -> Change:
    """A trial made for a caller that runs it itself: RUNNING at once."""
    t = copied(trial)
    return Change(t, [_move(t, S.RUNNING, now, message)])


def complete(trial: Trial, now: int, *, trial_run_id: int = 0, steps_completed: int = 0, message: str = "",
             etag: str = "") -> Change:
    """The caller that ran the trial ends it with its result (stored beside
    this change): from an active state, or STOPPING_COMPLETED, to COMPLETED."""
    _check_etag(trial, etag)
    _check_run(trial, trial_run_id)
    if not reported_transition_allowed(trial.state, S.COMPLETED):
        raise IllegalTransition(trial, S.COMPLETED, "complete")
    t = copied(trial)
    t.steps_completed = max(t.steps_completed, steps_completed)
    return Change(t, [_move(t, S.COMPLETED, now, message or "completed with its result")])


def report_early_exit(trial: Trial, now: int, reason: EarlyExitReason, trial_run_id: int = 0) -> Change:
    _check_run(trial, trial_run_id)
    t = copied(trial)
    if t.state == S.STOPPING_COMPLETED and t.early_exit_reason == reason:
        return Change(t)
    if t.state not in ACTIVE:
        raise IllegalTransition(trial, S.STOPPING_COMPLETED, "early-exit")
    t.early_exit_reason = reason
    ev = _stopping(t, S.STOPPING_COMPLETED, now, SHUTDOWN_GRACE_SECONDS, f"early exit: {reason.value}", {"early_exit_reason": reason.value})
    return Change(t, [ev])


def expire(trial: Trial, now: int) -> Change:
    """What the watchdog does with a trial whose deadline passed.

    A graceful stop that ran out of time escalates to a kill; any other
    stopping state that stayed silent is ended; a run past its max runtime is
    asked to stop.
    """
    t = copied(trial)
    if t.state in STOPPING and t.stop_deadline is not None and t.stop_deadline <= now:
        if t.state == S.STOPPING_CANCELED:
            return Change(t, [_stopping(t, S.STOPPING_KILLED, now, KILL_GRACE_SECONDS, "grace period expired; killing")])
        outcome = STOPPING_OUTCOME[t.state]
        return Change(t, [_move(t, outcome, now, f"no report from the trial before its deadline; marked {outcome.value}")])
    if t.state in ACTIVE and t.runtime_deadline is not None and t.runtime_deadline <= now:
        t.failure_reason = t.failure_reason or "max runtime exceeded"
        ev = _stopping(t, S.STOPPING_CANCELED, now, KILL_GRACE_SECONDS, "max runtime exceeded", {"max_runtime_seconds": t.max_runtime_seconds})
        return Change(t, [ev])
    return Change(t)


def update_fields(trial: Trial, incoming: Trial, attributes: list[str], etag: str = "") -> Change:
    """Copies the named user-editable attributes; never touches the state."""
    from .errors import ViolationCollector
    from .validation import check_trial_fields

    _check_etag(trial, etag)
    t = copied(trial)
    for attr in attributes:
        setattr(t, attr, copy.deepcopy(getattr(incoming, attr)))
    if not t.name:
        t.name = f"trial-{t.id}"
    violations = ViolationCollector()
    check_trial_fields(violations, t, set(attributes))
    violations.raise_if_any()
    return Change(t)


def miss_metrics_deadline(trial: Trial, now: int, *, timeout_seconds: float) -> Change:
    """A RUNNING trial that stored no metric within its study's timeout is
    asked to stop, like StopTrial, with the reason on the event."""
    return stop(trial, now, grace_seconds=None,
                message=f"no metric stored for {timeout_seconds:g} s (the study's metrics_timeout)",
                details={"metrics_timeout_seconds": timeout_seconds})


def lose_contact(trial: Trial, now: int, silent_seconds: float) -> Change:
    """What the watchdog does with an active trial none of whose workers has
    sent a heartbeat for silent_seconds: the run failed. The retry strategy
    applies as for a reported failure."""
    if trial.state not in ACTIVE:
        return Change(copied(trial))
    reason = f"no heartbeat from any worker of run {trial.trial_run_id} for {silent_seconds:.0f} s"
    report = StateReport(
        state=S.ERROR, trial_run_id=trial.trial_run_id, message=reason, failure_reason=reason,
        details={"lost_contact": True},
    )
    return report_state(trial, now, report)


def ensure_deletable(trial: Trial, force: bool, etag: str = "") -> None:
    _check_etag(trial, etag)
    if not force and trial.state not in TERMINAL:
        raise FailedPrecondition(
            f"trial {trial.id} is {trial.state.value}; stop it first or delete with force",
            reason="RESOURCE_IN_USE",
            metadata={"trial_id": trial.id, "state": trial.state},
        )


def validate_reported_state(state: TrialState | None) -> TrialState:
    if state is None:
        raise invalid("state", "must be set to a trial state")
    return state
