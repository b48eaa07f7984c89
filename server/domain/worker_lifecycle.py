"""Worker states: PENDING -> RUNNING -> COMPLETED | KILLED | ERROR."""

from __future__ import annotations

import copy

from .errors import FailedPrecondition
from .models import Trial, Worker, WorkerState
from .trial_lifecycle import TERMINAL as TRIAL_TERMINAL

W = WorkerState
WORKER_TERMINAL = frozenset({W.COMPLETED, W.KILLED, W.ERROR})
_ALLOWED = {
    W.PENDING: {W.RUNNING, W.COMPLETED, W.KILLED, W.ERROR},
    W.RUNNING: {W.COMPLETED, W.KILLED, W.ERROR},
}


def admit_registration(trial: Trial) -> None:
    if trial.state in TRIAL_TERMINAL:
        raise FailedPrecondition(
            f"trial {trial.id} is {trial.state.value}; no worker can join it",
            reason="ILLEGAL_TRANSITION",
            metadata={"trial_id": trial.id, "state": trial.state},
        )


def report_state(worker: Worker, now: int, state: WorkerState, message: str = "") -> Worker:
    w = copy.deepcopy(worker)
    if state == w.state:
        return w
    if state not in _ALLOWED.get(w.state, set()):
        raise FailedPrecondition(
            f"worker {w.id}: {w.state.value} -> {state.value} is not allowed",
            reason="ILLEGAL_TRANSITION",
            metadata={"worker_id": w.id, "from_state": w.state, "to_state": state},
        )
    w.state = state
    w.state_message = message
    w.last_heartbeat = now
    return w


def heartbeat(worker: Worker, now: int) -> Worker:
    if worker.state in WORKER_TERMINAL:
        raise FailedPrecondition(
            f"worker {worker.id} is {worker.state.value}; it should have stopped",
            reason="ILLEGAL_TRANSITION",
            metadata={"worker_id": worker.id, "state": worker.state},
        )
    w = copy.deepcopy(worker)
    w.last_heartbeat = now
    return w


LIVE = frozenset({W.PENDING, W.RUNNING, W.COMPLETED})


def check_rendezvous_caller(trial: Trial, worker: Worker) -> None:
    """A worker may rendezvous when it is alive and its rank is one of the run's."""
    if worker.state not in LIVE:
        raise FailedPrecondition(
            f"worker {worker.id} is {worker.state.value}",
            reason="ILLEGAL_TRANSITION",
            metadata={"worker_id": worker.id, "state": worker.state},
        )
    if worker.rank >= trial.resources.expected_workers:
        raise FailedPrecondition(
            f"worker {worker.id} has rank {worker.rank}, but run {trial.trial_run_id} has ranks"
            f" 0..{trial.resources.expected_workers - 1} (resources.worker_count)",
            reason="ILLEGAL_TRANSITION",
            metadata={"worker_id": worker.id, "rank": worker.rank, "expected": trial.resources.expected_workers},
        )


def rendezvous_members(trial: Trial, workers: list[Worker]) -> list[Worker]:
    """The live workers of the trial's current run holding ranks 0..worker_count-1,
    ordered by rank, so that a worker's rank is its index in the addresses.
    The rendezvous is complete when every rank is held."""
    by_rank = {
        w.rank: w
        for w in workers
        if w.trial_run_id == trial.trial_run_id and w.state in LIVE and w.rank < trial.resources.expected_workers
    }
    return [by_rank[r] for r in sorted(by_rank)]
