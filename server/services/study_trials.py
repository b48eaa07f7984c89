"""A study's trials as a process last saw them, kept current by reading
only what changed (trials ordered by update_time, then id) since."""

from __future__ import annotations

import asyncio
import threading

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
        # absorb() also runs inside writes, on the storage's threads.
        self._absorbing = threading.Lock()

    def after(self) -> tuple[int, int] | None:
        """The key to read changed trials after."""
        cursor = self.cursor
        if cursor is None or not self.slack_us:
            return cursor
        return (cursor[0] - self.slack_us, 0)

    def absorb(self, page: list[Trial]) -> list[Trial]:
        """Takes in a page of trials read in (update_time, id) order; returns
        those whose version is new to this tracker."""
        changed: list[Trial] = []
        with self._absorbing:
            for trial in page:
                known = self.trials.get(trial.id)
                if known is None or known.version < trial.version:
                    self.trials[trial.id] = trial
                    changed.append(trial)
            if page:
                last = (page[-1].update_time, page[-1].id)
                if self.cursor is None or last > self.cursor:
                    self.cursor = last
        return changed

    async def catch_up(self, storage: Storage) -> list[Trial]:
        """Reads the trials changed since the last call; returns those whose
        version is new to this tracker."""
        async with self._reading:
            changed: list[Trial] = []
            after = self.after()
            while True:
                page = await storage.search_history(self.study_id, after, PAGE)
                changed.extend(self.absorb(page))
                if page:
                    after = (page[-1].update_time, page[-1].id)
                if len(page) < PAGE:
                    return changed
