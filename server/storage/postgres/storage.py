"""The storage core on PostgreSQL, for several stateless server replicas."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from ...domain.clock import now_us
from ..core.store import SqlStorage
from .announcements import AdvisoryLease, NotifyRelay, channel_name, lock_key
from .engine import PostgresEngine
from .partitions import TABLES, day_partitions, drop_if_expired, ensure_partitions

log = logging.getLogger(__name__)


class PostgresStorage(SqlStorage):
    engine: PostgresEngine

    def __init__(self, dsn: str, clock: Callable[[], int] = now_us, pool_size: int = 8, schema: str | None = None):
        super().__init__(clock)
        self.dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._opened = False

    async def open(self) -> None:
        self.engine = PostgresEngine(self.dsn, self._pool_size, self.schema)
        applied = await asyncio.get_running_loop().run_in_executor(None, self.engine.open)
        if applied:
            log.info("applied PostgreSQL migrations %s", applied)
        self.db = self.engine
        await self.engine.write(lambda tx: ensure_partitions(tx, self.clock()))
        self._relay = NotifyRelay(self.dsn, self.engine.options, channel_name(self.engine.scope))
        self._opened = True

    async def drop_expired_partitions(self, now: int, default_days: int) -> dict[str, int]:
        created = await self.engine.write(lambda tx: ensure_partitions(tx, now))
        if created:
            log.info("created partitions %s", ", ".join(created))
        dropped = {}
        for table in TABLES:
            for name, day in await self.engine.read(functools.partial(day_partitions, table=table.table)):
                def drop(tx, table=table, name=name, day=day):
                    return drop_if_expired(tx, table, name, day, now, default_days)
                rows = await self.engine.write(drop)
                if rows is not None:
                    dropped[name] = rows
        return dropped

    def change_relay(self) -> NotifyRelay:
        return self._relay

    def job_lease(self, job: str) -> AdvisoryLease:
        return AdvisoryLease(self.dsn, self.engine.options, lock_key(self.engine.scope, job))

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            self._relay.close()
            self.engine.close()
