"""Background jobs: the watchdog that ends trials nobody finishes, and the
retention sweep. Each runs in the server's event loop, sweeping every
interval; a failed sweep is logged and tried again at the next one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..domain import trial_lifecycle
from ..domain.errors import DomainError
from ..storage.interface import Storage, TrialChange
from .change_feed import ChangeFeed

log = logging.getLogger("trialplane.server")


class Watchdog:
    """Ends trials that outlived a stop deadline or their max runtime, and
    fails active trials whose workers all went silent."""

    def __init__(self, storage: Storage, feed: ChangeFeed, clock: Callable[[], int], heartbeat_timeout: float = 0.0):
        self.storage = storage
        self.feed = feed
        self.clock = clock
        self.heartbeat_timeout = heartbeat_timeout

    async def sweep(self) -> int:
        now = self.clock()
        work: list[tuple[int, TrialChange]] = [
            (trial_id, trial_lifecycle.expire) for trial_id in await self.storage.trials_due(now)
        ]
        if self.heartbeat_timeout > 0:
            silent = await self.storage.silent_trials(now - int(self.heartbeat_timeout * 1_000_000))
            timeout = self.heartbeat_timeout
            work += [(trial_id, lambda t, at: trial_lifecycle.lose_contact(t, at, timeout)) for trial_id in silent]
        changed = 0
        for trial_id, change in work:
            try:
                await self.storage.change_trial(trial_id, change)
            except DomainError as exc:
                log.info("watchdog skipped trial %s: %s", trial_id, exc)
                continue
            self.feed.trials.notify(trial_id)
            changed += 1
        return changed

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("watchdog sweep failed")


class RetentionJob:
    """Deletes profiler samples and task log lines older than their trial's
    log_retention_days, in transactions of at most BATCH rows so that
    ingestion keeps flowing between them."""

    BATCH = 2000

    def __init__(self, storage: Storage, default_days: int, clock: Callable[[], int]):
        self.storage = storage
        self.default_days = default_days
        self.clock = clock
        self.last_counts: dict[str, int] = {}

    async def _drain(self, delete) -> int:
        deleted = 0
        while True:
            n = await delete(self.clock(), self.default_days, self.BATCH)
            deleted += n
            if n < self.BATCH:
                return deleted

    async def sweep(self) -> int:
        """Deletes everything expired; returns the number of rows deleted
        (profiler chunks plus log lines)."""
        self.last_counts = {
            "profiler chunks": await self._drain(self.storage.delete_expired_profiler),
            "log lines": await self._drain(self.storage.delete_expired_logs),
        }
        return sum(self.last_counts.values())

    async def run(self, interval: float) -> None:
        while True:
            try:
                if await self.sweep():
                    log.info("retention deleted %s", ", ".join(f"{n} {what}" for what, n in self.last_counts.items()))
            except Exception:  # noqa: BLE001 - try again next time
                log.exception("retention sweep failed")
            await asyncio.sleep(interval)
