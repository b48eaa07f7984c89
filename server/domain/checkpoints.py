"""Checkpoints: their states, reports, two-phase deletion and retention."""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field

from .errors import FailedPrecondition, TrialFinished, ViolationCollector
from .models import Trial
from .trial_lifecycle import is_terminal

MAX_UUID = 128
MAX_FILES = 100_000


class CheckpointState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    PARTIALLY_DELETED = "PARTIALLY_DELETED"
    DELETED = "DELETED"


C = CheckpointState
# What a trial may report next for a checkpoint it reported before.
_REPORTABLE = {
    C.ACTIVE: {C.ACTIVE, C.COMPLETED, C.ERROR},
    C.COMPLETED: {C.COMPLETED},
    C.ERROR: {C.ERROR},
}


@dataclass
class Checkpoint:
    uuid: str
    trial_id: int
    state: CheckpointState
    trial_run_id: int = 0
    resources: dict[str, int] = field(default_factory=dict)
    steps_completed: int = 0
    metadata: dict = field(default_factory=dict)
    storage_uri: str = ""
    create_time: int = 0
    update_time: int = 0
    end_time: int | None = None
    validation_metrics: dict | None = None
    objective: float | None = None

    @property
    def size_bytes(self) -> int:
        return sum(self.resources.values())


def validate_report(c: Checkpoint) -> None:
    v = ViolationCollector()
    if not c.uuid:
        v.add("checkpoint.uuid", "must not be empty")
    elif len(c.uuid) > MAX_UUID:
        v.add("checkpoint.uuid", f"must be at most {MAX_UUID} characters")
    if c.trial_id <= 0:
        v.add("checkpoint.trial_id", "must name a trial")
    if c.state is None:
        v.add("checkpoint.state", "must be ACTIVE, COMPLETED or ERROR")
    elif c.state not in (C.ACTIVE, C.COMPLETED, C.ERROR):
        v.add("checkpoint.state", "a report sets ACTIVE, COMPLETED or ERROR; deletion goes through DeleteCheckpoints")
    if c.steps_completed < 0:
        v.add("checkpoint.steps_completed", "must not be negative")
    if len(c.resources) > MAX_FILES:
        v.add("checkpoint.resources", f"at most {MAX_FILES} files")
    for path, size in c.resources.items():
        if not path:
            v.add("checkpoint.resources", "file paths must not be empty")
            break
        if size < 0:
            v.add(f"checkpoint.resources[{path}]", "size must not be negative")
    if len(c.storage_uri) > 2048:
        v.add("checkpoint.storage_uri", "must be at most 2048 characters")
    v.raise_if_any()


def apply_report(current: Checkpoint | None, report: Checkpoint, trial: Trial, now: int) -> Checkpoint:
    """The checkpoint after a report of trial's; the first report creates
    it, in the trial's current run unless it names one, and only while the
    trial has not ended."""
    if current is None:
        if is_terminal(trial.state):
            raise TrialFinished(trial.id, trial.state, "no new checkpoints")
        c = copy.deepcopy(report)
        c.trial_run_id = c.trial_run_id or trial.trial_run_id
        c.create_time = c.update_time = now
        if c.state != C.ACTIVE:
            c.end_time = now
        return c
    if current.trial_id != report.trial_id:
        raise FailedPrecondition(
            f"checkpoint {current.uuid} belongs to trial {current.trial_id}",
            reason="RESOURCE_EXISTS",
            metadata={"uuid": current.uuid, "trial_id": current.trial_id},
        )
    if report.state not in _REPORTABLE.get(current.state, set()):
        raise FailedPrecondition(
            f"checkpoint {current.uuid}: {current.state.value} -> {report.state.value} is not allowed",
            reason="ILLEGAL_TRANSITION",
            metadata={"uuid": current.uuid, "from_state": current.state, "to_state": report.state},
        )
    c = copy.deepcopy(current)
    c.state = report.state
    if report.resources:
        c.resources = dict(report.resources)
    if report.metadata:
        c.metadata = dict(report.metadata)
    if report.storage_uri:
        c.storage_uri = report.storage_uri
    c.steps_completed = max(c.steps_completed, report.steps_completed)
    c.update_time = now
    if c.state != C.ACTIVE and c.end_time is None:
        c.end_time = now
    return c


def mark_for_deletion(c: Checkpoint, now: int) -> Checkpoint:
    if c.state in (C.PARTIALLY_DELETED, C.DELETED):
        return c
    if c.state == C.ACTIVE:
        raise FailedPrecondition(
            f"checkpoint {c.uuid} is still being written",
            reason="ILLEGAL_TRANSITION",
            metadata={"uuid": c.uuid, "from_state": c.state, "to_state": C.PARTIALLY_DELETED},
        )
    c = copy.deepcopy(c)
    c.state = C.PARTIALLY_DELETED
    c.update_time = now
    return c


def confirm_deleted(c: Checkpoint, now: int) -> Checkpoint:
    if c.state == C.DELETED:
        return c
    if c.state != C.PARTIALLY_DELETED:
        raise FailedPrecondition(
            f"checkpoint {c.uuid} is {c.state.value}; mark it for deletion first",
            reason="ILLEGAL_TRANSITION",
            metadata={"uuid": c.uuid, "from_state": c.state, "to_state": C.DELETED},
        )
    c = copy.deepcopy(c)
    c.state = C.DELETED
    c.resources = {}
    c.update_time = now
    return c


def retention_victims(checkpoints: list[Checkpoint], keep_best: int, keep_latest: int) -> list[Checkpoint]:
    """Completed checkpoints outside the best N (by signed objective) and the latest N."""
    completed = [c for c in checkpoints if c.state == C.COMPLETED]
    keep: set[str] = set()
    ranked = sorted((c for c in completed if c.objective is not None), key=lambda c: (c.objective, c.create_time))
    keep.update(c.uuid for c in ranked[:keep_best])
    latest = sorted(completed, key=lambda c: (c.create_time, c.uuid), reverse=True)
    keep.update(c.uuid for c in latest[:keep_latest])
    return [c for c in completed if c.uuid not in keep]
