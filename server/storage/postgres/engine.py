"""PostgreSQL transactions for the storage core: a connection pool and the
threads that run transaction scripts on it.

The core's scripts are plain functions of a transaction, so each runs on a
thread of this engine with a pooled connection: BEGIN, the script, COMMIT,
and only then is the caller answered, so an answered write is committed in
PostgreSQL and a replica keeps nothing of it on its own disk. Small writes
made during one turn of the event loop (one-point reports, transitions,
heartbeats) share one transaction, each in a savepoint, so they pay for one
commit between them. Database connections are pool_size per replica,
however many clients call it.

Two replicas deciding on the same rows take turns on row locks; when
PostgreSQL still aborts one of them (a deadlock, a serialization failure,
a unique key another transaction took first) the whole script runs again on
fresh rows, which then see the winner's commit. A script that keeps losing
answers Aborted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from ...domain.errors import Aborted, Unavailable
from ..core.statements import Args, Row, Tx
from .migrations import migrate
from .statements import PostgresTx

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 5
CONNECT_SECONDS = 10.0
# Lost races are retried; nothing else is.
RETRIED = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected, pg_errors.UniqueViolation)


def _settle(batch: list[tuple[Callable, asyncio.Future]], done: Future) -> None:
    if done.exception() is not None:
        outcomes = [(False, Unavailable(f"the write failed: {done.exception()}"))] * len(batch)
    else:
        outcomes = done.result()
    for (_, future), (ok, value) in zip(batch, outcomes):
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)


class PostgresEngine:
    def __init__(self, dsn: str, pool_size: int = 8, schema: str | None = None):
        self.dsn = dsn
        # Connection settings every connection of this storage takes.
        self.options: dict = {"application_name": "trialplane"}
        if schema:
            self.options["options"] = f"-c search_path={schema}"
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, kwargs={"autocommit": True, **self.options},
                                   open=False,
                                   timeout=CONNECT_SECONDS, name="trialplane")
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._closed = False
        self._small: list[tuple[Callable[[Tx], Any], asyncio.Future]] = []

    def open(self) -> list[int]:
        """Connects and migrates; returns the migrations applied now."""
        try:
            # One connection first: a pool that cannot fill says only that
            # it timed out, this says why (refused, no such database, auth).
            psycopg.connect(self.dsn, autocommit=True, connect_timeout=int(CONNECT_SECONDS), **self.options).close()
            self.pool.open(wait=True, timeout=CONNECT_SECONDS)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            self.pool.close()
            reason = " ".join(str(exc).split())
            raise Unavailable(f"cannot connect to PostgreSQL: {reason}") from exc
        with self.pool.connection() as conn:
            applied = migrate(conn)
            row = conn.execute("SELECT current_database() || '.' || current_schema()").fetchone()
            assert row is not None
            self.scope: str = row[0]
        return applied

    def _run(self, fn: Callable[[Tx], T]) -> T:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with self.pool.connection() as conn:
                    with conn.transaction():
                        return fn(PostgresTx(conn))
            except RETRIED as exc:
                if attempt == ATTEMPTS:
                    raise Aborted(f"the write lost to concurrent changes {ATTEMPTS} times: {exc}") from exc
                log.debug("retrying a transaction that lost a race: %s", exc)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                raise Unavailable(f"PostgreSQL: {exc}") from exc
        raise AssertionError("unreachable")

    def _run_group(self, fns: list[Callable[[Tx], Any]]) -> list[tuple[bool, Any]]:
        """Runs small writes in one transaction, each in a savepoint, and
        commits once: (ok, result or exception) per write. A write that lost
        a race runs again on its own."""
        outcomes: list[tuple[bool | None, Any]] = []
        try:
            with self.pool.connection() as conn, conn.transaction():
                tx = PostgresTx(conn)
                for fn in fns:
                    try:
                        with conn.transaction():
                            outcomes.append((True, fn(tx)))
                    except RETRIED as exc:
                        outcomes.append((None, exc))
                    except (psycopg.OperationalError, PoolTimeout):
                        raise
                    except Exception as exc:  # noqa: BLE001 - handed to its caller
                        outcomes.append((False, exc))
        except RETRIED:
            # The commit itself lost: nothing of the group was written.
            outcomes = [(None, None)] * len(fns)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            return [(False, Unavailable(f"PostgreSQL: {exc}"))] * len(fns)
        settled: list[tuple[bool, Any]] = []
        for fn, (ok, value) in zip(fns, outcomes):
            if ok is None:
                try:
                    settled.append((True, self._run(fn)))
                except Exception as exc:  # noqa: BLE001 - handed to its caller
                    settled.append((False, exc))
            else:
                settled.append((ok, value))
        return settled

    async def write(self, fn: Callable[[Tx], T], small: bool = False) -> T:
        """small: a write of a few statements; those made during one turn of
        the event loop share one transaction and one commit (a commit waits
        for PostgreSQL to flush its log)."""
        if self._closed:
            raise Unavailable("the database is closing")
        loop = asyncio.get_running_loop()
        if not small:
            return await loop.run_in_executor(self._threads, self._run, fn)
        future = loop.create_future()
        self._small.append((fn, future))
        if len(self._small) == 1:
            loop.call_soon(self._flush_small, loop)
        return await future

    def _flush_small(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._small = self._small, []
        done = self._threads.submit(self._run_group, [fn for fn, _ in batch])
        done.add_done_callback(lambda f: loop.call_soon_threadsafe(_settle, batch, f))

    async def read(self, fn: Callable[[Tx], T], small: bool = False) -> T:
        if self._closed:
            raise Unavailable("the database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._threads, self._run, fn)

    def write_now(self, fn: Callable[[Tx], Any]) -> Future:
        return self._threads.submit(self._run, fn)

    def query_one(self, sql: str, args: Args = ()) -> Row | None:
        return self._run(lambda tx: tx.one(sql, args))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._threads.shutdown(wait=True)
        self.pool.close()
