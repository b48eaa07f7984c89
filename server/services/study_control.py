"""Ending a study by hand: StopStudy and CompleteStudy."""

from __future__ import annotations

from ..domain import principal as who
from ..domain import study_lifecycle
from ..domain import trial_lifecycle as lifecycle
from ..domain.errors import FailedPrecondition
from ..domain.models import Study, StudyState
from ..storage.interface import Storage
from .change_feed import ChangeFeed

PAGE = 1000


async def complete_study(storage: Storage, study_id: int, reason: str) -> Study:
    message = reason or "completed by CompleteStudy"
    return await storage.update_study(study_id, lambda s: study_lifecycle.leave(s, StudyState.COMPLETED, message))


async def stop_study(storage: Storage, feed: ChangeFeed, study_id: int, reason: str) -> Study:
    """STOPPED, then a stop request to every unfinished trial; a trial that
    ended meanwhile is left as it is."""
    message = reason or "stopped by StopStudy"
    principal = who.current()
    by = {"principal": principal.describe()} if principal is not who.ANONYMOUS else None
    study = await storage.update_study(study_id, lambda s: study_lifecycle.leave(s, StudyState.STOPPED, message))
    after = None
    while True:
        trials = await storage.search_history(study_id, after, PAGE)
        for trial in trials:
            if lifecycle.is_terminal(trial.state) or trial.state in lifecycle.STOPPING:
                continue
            try:
                await storage.change_trial(
                    trial.id, lambda t, now: lifecycle.stop(t, now, grace_seconds=None, message=f"study: {message}",
                                                            details=by))
            except FailedPrecondition:
                continue
            feed.trials.notify(trial.id)
        if len(trials) < PAGE:
            return study
        after = (trials[-1].update_time, trials[-1].id)
