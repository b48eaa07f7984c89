"""SQLite connections: one writer thread with group commit, many readers.

Writes are functions of a connection queued to a single thread. That thread
takes everything queued, runs it in one transaction (each function inside a
savepoint, so one failing write does not undo its neighbours) and resolves the
callers' futures only after COMMIT returned: an answered write is durable.
Small writes made during one turn of the event loop are committed together
on the loop itself when the writer is idle, under the same lock: handing a
tiny transaction to another thread and back costs more than the transaction. Readers use their own
read-only connections from a thread pool and, thanks to WAL, never wait for
the writer.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ...domain.errors import Unavailable
from ..core.statements import Args, Tx
from .statements import SqliteTx

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
MMAP_BYTES = 1 << 30
MAX_GROUP = 512

WriteFn = Callable[[Tx], Any]


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Pages are read through a memory map instead of a read() per page:
    # reads of long series touch thousands of overflow pages.
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.row_factory = sqlite3.Row
    return conn


class Engine:
    def __init__(self, path: str, readers: int = 4):
        self.path = path
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer_conn = connect(path)
        self._writer_tx = SqliteTx(self._writer_conn)
        self._thread = threading.Thread(target=self._write_loop, name="sqlite-writer", daemon=True)
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._closed = False
        # Held by whoever uses the writer connection: the writer thread for a
        # group, or the event loop committing the small writes of one turn.
        self._write_lock = threading.Lock()
        self._small: list[tuple[WriteFn, asyncio.Future | Future]] = []
        # Writes handed to the writer thread and writes it has finished; each
        # counter has one writing thread. The loop commits small writes itself
        # only when the two are equal, so writes keep the order they came in.
        self._submitted = 0
        self._finished = 0
        self.transactions = 0
        self.writes = 0

    def queue_depth(self) -> int:
        """Writes waiting for the writer connection or being written (read
        by the metrics endpoint from its own thread: a snapshot)."""
        return self._submitted - self._finished + len(self._small)

    @property
    def writer_connection(self) -> sqlite3.Connection:
        """For start-up work (migrations) before start() only."""
        return self._writer_conn

    def start(self) -> None:
        self._thread.start()

    # --- writes ------------------------------------------------------------

    def submit(self, fn: WriteFn) -> Future:
        fut: Future = Future()
        if self._closed:
            fut.set_exception(Unavailable("the database is closing"))
            return fut
        self._submitted += 1
        self._queue.put((fn, fut))
        return fut

    def write_now(self, fn: WriteFn) -> Future:
        """Runs fn, from the event loop, at the end of this turn of it, in
        the transaction of the small writes made during the turn (in the
        order they were made), on the loop itself when the writer thread
        has nothing to do, else queued like submit(). For the journal's
        store of waiting reports: the write that made it store them follows
        in the same commit. A batch of many cheap statements run on the
        writer thread would hand the GIL back and forth with the busy loop
        at each statement, which costs both threads more than the
        statements."""
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        self._add_small(fn, fut)
        return fut

    def _run_inline(self, fns: list[WriteFn]) -> list[tuple[bool, Any]] | None:
        """(ok, result or exception) per fn, run in one transaction on the
        calling thread; None when the writer thread has writes of its own
        (they come first) or holds the connection."""
        if self._closed or self._submitted != self._finished or not self._write_lock.acquire(blocking=False):
            return None
        try:
            return self._transaction(self._writer_tx, fns)
        except Unavailable as exc:
            return [(False, exc)] * len(fns)
        except Exception as exc:  # noqa: BLE001 - the callers hear of it through their outcomes
            log.exception("write failed")
            self._abandon(self._writer_conn)
            return [(False, Unavailable(f"the write failed: {exc}"))] * len(fns)
        finally:
            self._write_lock.release()

    async def write(self, fn: WriteFn, small: bool = False) -> Any:
        """Runs fn in a write transaction; returns once it is committed.

        small: the write is a few statements. Small writes made during one
        turn of the event loop are committed together at the end of it, on
        the loop itself when the writer thread is idle."""
        if not small or self._closed:
            if self._small:
                # What was queued before this write goes first.
                self._flush_small()
            return await asyncio.wrap_future(self.submit(fn))
        future = asyncio.get_running_loop().create_future()
        self._add_small(fn, future)
        return await future

    def _add_small(self, fn: WriteFn, future) -> None:
        """Queues fn for the transaction at the end of this turn of the loop;
        future is an asyncio or a concurrent future."""
        self._small.append((fn, future))
        if len(self._small) == 1:
            asyncio.get_running_loop().call_soon(self._flush_small)

    def _flush_small(self) -> None:
        batch, self._small = self._small, []
        if not batch:
            return
        outcomes = self._run_inline([fn for fn, _ in batch])
        if outcomes is not None:
            for (_, future), (ok, value) in zip(batch, outcomes):
                if not future.done():
                    future.set_result(value) if ok else future.set_exception(value)
            return
        for fn, future in batch:
            asyncio.ensure_future(self._relay(self.submit(fn), future))

    @staticmethod
    async def _relay(source: Future, target: asyncio.Future | Future) -> None:
        try:
            result = await asyncio.wrap_future(source)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if not target.done():
                target.set_exception(exc)
        else:
            if not target.done():
                target.set_result(result)

    def _write_loop(self) -> None:
        tx = self._writer_tx
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            stop = False
            while len(batch) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            taken = len(batch)
            # A caller that gave up (its RPC was cancelled) gets nothing written.
            batch = [(fn, fut) for fn, fut in batch if fut.set_running_or_notify_cancel()]
            if batch:
                try:
                    with self._write_lock:
                        self._run_group(tx, batch)
                except Exception:  # noqa: BLE001 - the writer must outlive any one write
                    log.exception("write group failed")
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(Unavailable("the write failed; see the server log"))
            self._finished += taken
            # Not kept while the queue is empty: the writes hold their data.
            item = nxt = None
            batch = []
            if stop:
                break
        # Drain anything that raced with close().
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[1].set_running_or_notify_cancel():
                item[1].set_exception(Unavailable("the database closed"))

    def _transaction(self, tx: SqliteTx, fns: list[WriteFn]) -> list[tuple[bool, Any]]:
        """Runs each fn in its own savepoint of one transaction and commits.
        Returns (ok, result or exception) per fn; Unavailable when the
        transaction itself could not begin or commit."""
        conn = tx.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.error("cannot begin a write transaction: %s", exc)
            raise Unavailable(f"database busy: {exc}") from exc
        outcomes: list[tuple[bool, Any]] = []
        for fn in fns:
            conn.execute("SAVEPOINT w")
            try:
                result = fn(tx)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                try:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                except sqlite3.Error:
                    # SQLite rolled the whole transaction back itself (disk
                    # full, I/O error): nothing of this group was written.
                    self._abandon(conn)
                    raise Unavailable(f"the write failed: {exc}") from exc
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE w")
                outcomes.append((True, result))
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("commit failed: %s", exc)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise Unavailable(f"commit failed: {exc}") from exc
        self.transactions += 1
        self.writes += len(fns)
        return outcomes

    @staticmethod
    def _abandon(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _run_group(self, tx: SqliteTx, batch: list) -> None:
        try:
            outcomes = self._transaction(tx, [fn for fn, _ in batch])
        except Unavailable as exc:
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, fut), (ok, value) in zip(batch, outcomes):
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    # --- reads -------------------------------------------------------------

    def _reader(self) -> SqliteTx:
        tx = getattr(self._local, "tx", None)
        if tx is None:
            conn = connect(self.path, read_only=True)
            tx = self._local.tx = SqliteTx(conn)
            with self._reader_lock:
                self._reader_conns.append(conn)
        return tx

    def _read_in_thread(self, fn: Callable[[Tx], Any]) -> Any:
        """Runs fn on the calling thread's read-only connection."""
        tx = self._reader()
        tx.conn.execute("BEGIN")
        try:
            return fn(tx)
        finally:
            tx.conn.execute("COMMIT")

    def query_one(self, sql: str, params: Args = ()) -> sqlite3.Row | None:
        """One row of one statement, on the calling thread's read-only connection."""
        if self._closed:
            raise Unavailable("the database is closed")
        return self._reader().one(sql, params)

    async def read(self, fn: Callable[[Tx], Any], small: bool = False) -> Any:
        """Runs fn in a read transaction on a read-only connection.

        small: a lookup of a few rows, run on the event loop's own connection;
        handing it to a reader thread and back costs more than the lookup."""
        if self._closed:
            raise Unavailable("the database is closed")
        if small:
            return self._read_in_thread(fn)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._read_in_thread, fn)

    # --- shutdown ----------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
        self._write_lock.acquire()
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        try:
            self._writer_conn.execute("PRAGMA optimize")
            self._writer_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._writer_conn.close()
