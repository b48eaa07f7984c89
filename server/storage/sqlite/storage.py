"""The embedded default: the storage core on one SQLite file."""

from __future__ import annotations

import os
from collections.abc import Callable

from ...domain.clock import now_us
from ..core.store import SqlStorage
from .engine import Engine
from .migrations import migrate


class SqliteStorage(SqlStorage):
    engine: Engine

    def __init__(self, path: str, clock: Callable[[], int] = now_us, readers: int = 4):
        super().__init__(clock)
        self.path = os.path.abspath(path)
        self._readers = readers
        self._opened = False

    async def open(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.engine = Engine(self.path, readers=self._readers)
        try:
            migrate(self.engine.writer_connection)
        except BaseException:
            self.engine.close()
            raise
        self.engine.start()
        self.db = self.engine
        self._opened = True

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            self.engine.close()
