"""The rendezvous of a trial run: waits until every rank of the run is held
by a live worker, then tells each worker the addresses in rank order."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..domain import worker_lifecycle
from ..domain.errors import NotFound, Unavailable
from ..domain.models import Worker
from ..storage.interface import Storage
from .change_feed import ChangeFeed

# A waiter looks again at least this often: workers another server process
# registers wake no one here.
POLL_SECONDS = 0.5


@dataclass
class Rendezvous:
    trial_run_id: int
    rank: int
    members: list[Worker]


async def rendezvous(storage: Storage, feed: ChangeFeed, trial_id: int, worker_id: int, timeout: float) -> Rendezvous:
    """The complete rendezvous of the worker's run; NotFound when the worker
    is not in the trial's current run, Unavailable (RENDEZVOUS_INCOMPLETE)
    when ranks are still missing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        trial = await storage.get_trial(trial_id)
        workers = await storage.run_workers(trial.id, trial.trial_run_id)
        me = next((w for w in workers if w.id == worker_id), None)
        if me is None:
            raise NotFound("worker", f"{worker_id} in run {trial.trial_run_id} of trial {trial.id}")
        worker_lifecycle.check_rendezvous_caller(trial, me)
        members = worker_lifecycle.rendezvous_members(trial, workers)
        expected = trial.resources.expected_workers
        if len(members) == expected:
            return Rendezvous(trial.trial_run_id, me.rank, members)
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(
                f"{len(members)} of {expected} ranks of run {trial.trial_run_id} have a live worker; retry later",
                reason="RENDEZVOUS_INCOMPLETE",
                metadata={"registered": len(members), "expected": expected},
            )
        await feed.workers.wait(trial.id, min(left, POLL_SECONDS))
