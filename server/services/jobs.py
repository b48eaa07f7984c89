"""Background jobs: the watchdog that ends trials nobody finishes, and the
retention sweep. Each runs in the server's event loop, sweeping every
interval; a failed sweep is logged and tried again at the next one. Where
several server processes share a database, a job sweeps only in the process
that holds its lease (Storage.job_lease), and another takes over when that
one is gone."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from ..domain import trial_lifecycle
from ..domain.errors import DomainError
from ..storage.interface import Storage, TrialChange
from .change_feed import ChangeFeed

log = logging.getLogger("trialplane.server")


class Job:
    """A sweep repeated every interval, in the one process holding its lease."""

    name = ""

    def __init__(self, storage: Storage):
        self.storage = storage
        self.lease = storage.job_lease(self.name)
        # Sweeps this process ran (a test's view of which replica works).
        self.sweeps = 0
        # Called with (job, action, count) for what a sweep did (the metrics count it).
        self.on_action: Callable[[str, str, int], None] = lambda job, action, count: None

    async def sweep(self) -> int:
        raise NotImplementedError

    async def run(self, interval: float) -> None:
        """Sweeps, then every interval again."""
        while True:
            try:
                if self.lease is None or await self.lease.held():
                    self.sweeps += 1
                    await self.sweep()
            except Exception:  # noqa: BLE001 - keep sweeping
                log.exception("%s sweep failed", self.name)
            await asyncio.sleep(interval)

    async def release(self) -> None:
        if self.lease is not None:
            try:
                await self.lease.release()
            except Exception:  # noqa: BLE001 - the lease ends with the process anyway
                log.exception("releasing the %s lease failed", self.name)


class Watchdog(Job):
    """Ends trials that outlived a stop deadline or their max runtime, fails
    active trials whose workers all went silent, and stops running trials
    that stored no metric within their study's metrics_timeout."""

    name = "watchdog"

    def __init__(self, storage: Storage, feed: ChangeFeed, clock: Callable[[], int], heartbeat_timeout: float = 0.0):
        super().__init__(storage)
        self.feed = feed
        self.clock = clock
        self.heartbeat_timeout = heartbeat_timeout

    async def sweep(self) -> int:
        now = self.clock()
        work: list[tuple[int, str, TrialChange]] = [
            (trial_id, "deadline_passed", trial_lifecycle.expire) for trial_id in await self.storage.trials_due(now)
        ]
        if self.heartbeat_timeout > 0:
            silent = await self.storage.silent_trials(now - int(self.heartbeat_timeout * 1_000_000))
            timeout = self.heartbeat_timeout
            work += [(trial_id, "heartbeat_lost", lambda t, at: trial_lifecycle.lose_contact(t, at, timeout))
                     for trial_id in silent]
        for trial_id, seconds in await self.storage.metrics_overdue(now):
            work.append((trial_id, "metrics_overdue",
                         functools.partial(trial_lifecycle.miss_metrics_deadline, timeout_seconds=seconds)))
        changed = 0
        for trial_id, action, change in work:
            try:
                await self.storage.change_trial(trial_id, change)
            except DomainError as exc:
                log.info("watchdog skipped trial %s: %s", trial_id, exc)
                self.on_action(self.name, "skipped", 1)
                continue
            self.feed.trials.notify(trial_id)
            self.on_action(self.name, action, 1)
            changed += 1
        return changed


# The metrics' action label of each count a retention sweep keeps.
ACTIONS = {"rows in dropped partitions": "partition_rows_dropped", "profiler chunks": "profiler_chunks_deleted",
           "log lines": "log_lines_deleted"}


class RetentionJob(Job):
    """Deletes profiler samples and task log lines older than their trial's
    log_retention_days, in transactions of at most BATCH rows so that
    ingestion keeps flowing between them."""

    BATCH = 2000
    name = "retention"

    def __init__(self, storage: Storage, default_days: int, clock: Callable[[], int]):
        super().__init__(storage)
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
        """Drops the partitions that hold only expired rows, then deletes
        what expired elsewhere; returns the number of rows gone (profiler
        chunks and log lines, deleted or dropped with their partition)."""
        dropped = await self.storage.drop_expired_partitions(self.clock(), self.default_days)
        self.last_counts = {
            "rows in dropped partitions": sum(dropped.values()),
            "profiler chunks": await self._drain(self.storage.delete_expired_profiler),
            "log lines": await self._drain(self.storage.delete_expired_logs),
        }
        for what, count in self.last_counts.items():
            self.on_action(self.name, ACTIONS[what], count)
        if dropped:
            log.info("retention dropped partitions %s", ", ".join(f"{name} ({n} rows)" for name, n in dropped.items()))
        deleted = sum(self.last_counts.values())
        if deleted:
            log.info("retention deleted %s", ", ".join(f"{n} {what}" for what, n in self.last_counts.items()))
        return deleted
