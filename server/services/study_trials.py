"""A study's trials as a process last saw them, kept current by reading
only what changed (trials ordered by update_time, then id) since."""

from __future__ import annotations

import asyncio

from ..domain.models import Trial
from ..storage.interface import Storage

# Trials changed this long before the newest one seen are read again, so a
# replica whose clock runs behind cannot hide a change from the cursor.
CLOCK_SLACK_US = 5_000_000
PAGE = 1000


def slack_for(storage: Storage) -> int:
    """No slack where one process writes (its writes commit in the order of
    their times); the clock slack where replicas share the database."""
    return 0 if storage.change_relay() is None else CLOCK_SLACK_US


class StudyTrials:
    def __init__(self, study_id: int, slack_us: int = CLOCK_SLACK_US):
        """slack_us: how far behind the cursor to read again; 0 where one
        process writes the database and commits in update_time order."""
        self.study_id = study_id
        self.slack_us = slack_us
        self.trials: dict[int, Trial] = {}
        # (update_time, id) of the newest trial read.
        self.cursor: tuple[int, int] | None = None
        self._reading = asyncio.Lock()

    async def catch_up(self, storage: Storage) -> list[Trial]:
        """Reads the trials changed since the last call; returns those whose
        version is new to this tracker."""
        async with self._reading:
            changed: list[Trial] = []
            after = None if self.cursor is None else (
                self.cursor if not self.slack_us else (self.cursor[0] - self.slack_us, 0))
            while True:
                page = await storage.search_history(self.study_id, after, PAGE)
                for trial in page:
                    known = self.trials.get(trial.id)
                    if known is None or known.version < trial.version:
                        self.trials[trial.id] = trial
                        changed.append(trial)
                if page:
                    after = (page[-1].update_time, page[-1].id)
                    if self.cursor is None or after > self.cursor:
                        self.cursor = after
                if len(page) < PAGE:
                    return changed
