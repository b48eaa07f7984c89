"""The storage core on PostgreSQL, for several stateless server replicas."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ...domain.clock import now_us
from ..core.store import SqlStorage
from .announcements import AdvisoryLease, NotifyRelay, channel_name, lock_key
from .engine import PostgresEngine

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
        self._relay = NotifyRelay(self.dsn, self.engine.options, channel_name(self.engine.scope))
        self._opened = True

    def change_relay(self) -> NotifyRelay:
        return self._relay

    def job_lease(self, job: str) -> AdvisoryLease:
        return AdvisoryLease(self.dsn, self.engine.options, lock_key(self.engine.scope, job))

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            self._relay.close()
            self.engine.close()
