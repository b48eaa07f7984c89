"""Single metric reports acknowledged from a journal and stored in batches.

A one-point ReportMetrics is what a training loop sends most. Storing it is a
SQLite transaction of its own (about 150 us here); checking it and appending
it to a journal file costs a fraction of that. So a report that needs nothing
but storing (its trial exists and runs, it is not a retry, it does not start
a new run) is checked on the event loop, written to the journal and
acknowledged. Every 100 ms the waiting reports are stored in one transaction,
in the order they came, on the event loop itself when the writer thread is
idle (one transaction of a few hundred cheap statements there costs less
than handing the GIL to and fro for each of them), and the journal is
emptied whenever all of them are stored.

Reads wait until every report acknowledged before they began is stored, and
writes queue behind them, so a client always reads what it wrote. At start-up
whatever the journal holds is stored before the server answers; storing is
idempotent (a report is keyed by trial, group, run and step, or by its
request_id), so reports stored just before a crash are not stored twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import marshal
import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future

from ...domain import metrics as m
from ...domain.errors import Unavailable
from . import metrics
from .engine import Engine
from .journal import Journal, JournalFull

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
# How long a read or write waits for earlier reports to be stored before it
# answers UNAVAILABLE.
SETTLE_SECONDS = 5.0
# Reports wait this long, or until this many wait, to be stored together; a
# read or another write stores them at once.
STORE_DELAY_SECONDS = 0.1
STORE_BATCH = 2048
# What admission caches about trials is dropped this often: a trial another
# server process on the same database ends or restarts refuses this one's
# reports within that time. Refreshing costs two queries per series.
CACHE_SECONDS = 0.1

_TRIAL = "SELECT state, trial_run_id, metrics_run FROM trials WHERE id = ?"
_HIGHEST_STEP = "SELECT max(steps) FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ?"
_STORED_STEP = "SELECT digest FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ? AND steps = ?"
_STORED_REQUEST = "SELECT group_name, trial_run_id, steps, digest FROM metric_reports WHERE trial_id = ? AND request_id = ?"


def encode(report: m.ReportDraft) -> bytes:
    # marshal: a tenth of the cost of JSON, and NaN and infinities survive.
    # The journal is read back only by the next start of the server.
    return marshal.dumps((report.trial_id, report.trial_run_id, report.group, report.steps, report.report_time,
                          report.metrics, report.request_id))


def decode(payload: bytes) -> m.ReportDraft:
    record = marshal.loads(payload)
    if len(record) == 8:
        # Written by a server that still kept per-batch metrics (always empty).
        record = record[:6] + record[7:]
    trial_id, run, group, steps, report_time, values, request_id = record
    return m.ReportDraft(trial_id=trial_id, trial_run_id=run, group=group, steps=steps, report_time=report_time,
                         metrics=values, request_id=request_id)


def store_reports(conn: sqlite3.Connection, reports: list[m.ReportDraft], now: int) -> None:
    """Stores acknowledged reports; one that cannot be stored (its trial was
    deleted meanwhile) is logged and does not hold back the others. A
    failure of the database itself (disk full, I/O) is raised: the whole
    batch is then kept and stored again later."""
    if not reports:
        return
    conn.execute("SAVEPOINT reports")
    try:
        outcome = metrics.ingest(conn, m.IngestBatch(reports=reports, report_index=list(range(len(reports)))), now,
                                 admitted=True)
    except sqlite3.OperationalError:
        raise
    except Exception:  # noqa: BLE001 - retried one by one below
        conn.execute("ROLLBACK TO reports")
        conn.execute("RELEASE reports")
        if len(reports) == 1:
            log.exception("dropped acknowledged report that cannot be stored: %r", reports[0])
            return
        for report in reports:
            store_reports(conn, [report], now)
        return
    conn.execute("RELEASE reports")
    for _, index, err in outcome.errors:
        log.warning("dropped acknowledged report of trial %d step %d: %s", reports[index].trial_id,
                    reports[index].steps, err.message)


def replay(conn: sqlite3.Connection, journal: Journal, now: int) -> int:
    """Stores what a previous process acknowledged but had not stored; runs
    before the writer thread starts. Returns how many reports it held."""
    reports, unreadable = [], 0
    for payload in journal.records():
        try:
            reports.append(decode(payload))
        except (ValueError, TypeError, EOFError) as exc:
            unreadable += 1
            log.error("journal %s: cannot read a record: %s", journal.path, exc)
    if unreadable:
        kept = f"{journal.path}.unreadable-{now}"
        shutil.copyfile(journal.path, kept)
        log.error("journal %s: %d records could not be read; the file is kept as %s", journal.path, unreadable, kept)
    if reports:
        conn.execute("BEGIN IMMEDIATE")
        store_reports(conn, reports, now)
        conn.execute("COMMIT")
        log.info("stored %d metric reports from the journal of the previous run", len(reports))
    journal.reset()
    return len(reports)


class JournaledReports:
    def __init__(self, engine: Engine, journal: Journal | None, clock: Callable[[], int]):
        """journal None: every report takes the direct way."""
        self.engine = engine
        self.journal = journal
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0
        # Acknowledged, not yet stored: journal offset by sequence (in
        # order), natural keys and request_ids. Only the event loop touches these.
        self._unstored: dict[int, int] = {}
        # natural key -> digest; (trial, request_id) -> (group, run, step, digest)
        self._keys: dict[tuple, bytes] = {}
        self._request_ids: dict[tuple, tuple] = {}
        self._stored_event = asyncio.Event()
        # Acknowledged reports not yet taken by a store (which may run on
        # the writer thread: a deque, safe to pop from there).
        self._waiting: collections.deque[tuple[int, m.ReportDraft]] = collections.deque()
        self._store_queued = False
        self._timer: asyncio.TimerHandle | None = None
        # A store failed and is retried: new reports take the direct way.
        self.failing = False
        # What admitting a report needs to know, so the usual report costs no
        # query: trial id -> (state, trial_run_id, metrics_run), and
        # (trial, group, run) -> the highest step stored or journaled.
        self._trials: dict[int, tuple] = {}
        self._highest: dict[tuple, int] = {}
        self._cache_since = time.monotonic()
        # Reports on their way the direct way: (trial, group, step) and request_ids.
        self._direct: collections.Counter = collections.Counter()

    def admit(self, report: m.ReportDraft) -> bool | None:
        """True: journaled and acknowledged as new. False: a retry of a
        report stored or journaled before. None: this report must take the
        direct way (an error to report, a new run to roll back to, a full
        journal)."""
        if self.failing or self.journal is None:
            return None
        if time.monotonic() - self._cache_since > CACHE_SECONDS:
            self.forget()
        facts = self._trials.get(report.trial_id) or self._load_trial_facts(report.trial_id)
        if facts is None or m.target_problem(report.trial_id, facts[0], facts[1], report.trial_run_id):
            return None
        run = report.trial_run_id or facts[1]
        if run > facts[2]:
            return None
        key = (report.trial_id, report.group, run, report.steps)
        if key in self._keys or (report.request_id and (report.trial_id, report.request_id) in self._request_ids):
            # A retry of a journaled report, or a conflict the direct way refuses.
            step = (self._keys[key],) if key in self._keys else None
            return self._retry_of(report, key, step, self._request_ids.get((report.trial_id, report.request_id)))
        if self._direct and (key[:2] + key[3:] in self._direct or report.request_id in self._direct):
            # The same report is being stored the direct way: so is this
            # retry, which then finds it stored.
            return None
        series = key[:3]
        highest = self._highest.get(series)
        if highest is None:
            (highest,) = self.engine.query_one(_HIGHEST_STEP, series)
            highest = -1 if highest is None else highest
        # A step past every stored one is new unless its request_id was used.
        if report.request_id or report.steps <= highest:
            step = self.engine.query_one(_STORED_STEP, key)
            named = self.engine.query_one(_STORED_REQUEST, (report.trial_id, report.request_id)) if report.request_id else None
            if step is not None or named is not None:
                return self._retry_of(report, key, step, named)
        report.trial_run_id = run
        report.report_time = report.report_time or self.clock()
        try:
            offset = self.journal.append(encode(report))
        except JournalFull:
            # Until the waiting reports are stored and the journal emptied,
            # reports go the direct way: a store that cannot keep up slows
            # clients down instead of losing anything.
            return None
        self._highest[series] = max(highest, report.steps)
        self._seq += 1
        self._unstored[self._seq] = offset
        self._keys[key] = report.digest
        if report.request_id:
            self._request_ids[(report.trial_id, report.request_id)] = (report.group, run, report.steps, report.digest)
        self._waiting.append((self._seq, report))
        if not self._store_queued:
            if len(self._waiting) >= STORE_BATCH:
                self._queue_store()
            elif self._timer is None:
                self._loop = self._loop or asyncio.get_running_loop()
                self._timer = self._loop.call_later(STORE_DELAY_SECONDS, self.flush)
        return True

    @staticmethod
    def _retry_of(report: m.ReportDraft, key: tuple, step: tuple | None, named: tuple | None) -> bool | None:
        """False for a retry of the stored or journaled report; None (the
        direct way, which refuses it) when the step or the request_id was
        used with other values. step is (digest,) of the report at this
        step, named (group, run, step, digest) of the one with this
        request_id; None when there is none."""
        if step is None and named is None:
            return None
        if named is not None and (tuple(named[:3]) != key[1:] or not report.same_values(named[3])):
            return None
        if step is not None and not report.same_values(step[0]):
            return None
        return False

    @contextlib.contextmanager
    def stored_directly(self, report: m.ReportDraft):
        """Marks a report the direct way stores while it is being stored."""
        marks = [(report.trial_id, report.group, report.steps)] + ([report.request_id] if report.request_id else [])
        self._direct.update(marks)
        try:
            yield
        finally:
            self._direct.subtract(marks)
            self._direct += collections.Counter()

    def _load_trial_facts(self, trial_id: int) -> tuple | None:
        row = self.engine.query_one(_TRIAL, (trial_id,))
        if row is None:
            return None
        self._trials[trial_id] = facts = tuple(row)
        return facts

    def forget(self) -> None:
        """Drops what was cached about trials and their reports; called around
        every other write made here, which may change either."""
        self._trials.clear()
        self._highest.clear()
        self._cache_since = time.monotonic()

    def flush(self) -> None:
        """Hands the waiting reports to the writer now; called before any
        other write is queued, so writes keep the order they were made in."""
        if self._waiting and not self._store_queued:
            self._queue_store()

    def _queue_store(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = self._loop = self._loop or asyncio.get_running_loop()
        self._store_queued = True
        taken: list[tuple[int, m.ReportDraft]] = []
        future = self.engine.write_now(lambda conn: self._store_waiting(conn, taken))
        if future.done():
            self._stored(future, taken)
        else:
            future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._stored, f, taken))

    def _store_waiting(self, conn: sqlite3.Connection, taken: list) -> None:
        """Stores every report waiting now (on the loop or the writer thread)."""
        # Cleared before taking: a report the loop adds after this line is
        # either taken below or finds the flag down and queues another store.
        self._store_queued = False
        while self._waiting:
            taken.append(self._waiting.popleft())
        store_reports(conn, [report for _, report in taken], self.clock())

    def _stored(self, future: Future, taken: list) -> None:
        # Only reports that were journaled are stored here, on the loop that queued them.
        assert self.journal is not None and self._loop is not None
        if future.exception() is not None:
            log.error("storing journaled metric reports failed (%s); retrying", future.exception())
            # Until they are stored, reports and other writes do not overtake them.
            self.failing = True
            if taken:
                self._waiting.extendleft(reversed(taken))
            else:
                # The transaction failed before this store ran and lowered the flag.
                self._store_queued = False
            self._loop.call_later(RETRY_SECONDS, self.flush)
            return
        if not self._waiting:
            self.failing = False
        for seq, report in taken:
            del self._unstored[seq]
            self._keys.pop((report.trial_id, report.group, report.trial_run_id, report.steps), None)
            if report.request_id:
                self._request_ids.pop((report.trial_id, report.request_id), None)
        if not self._unstored:
            self.journal.clear()
        else:
            self.journal.stored_until(next(iter(self._unstored.values())))
        self._stored_event.set()
        self._stored_event = asyncio.Event()

    @property
    def pending(self) -> bool:
        return bool(self._unstored)

    async def settled(self, timeout: float = SETTLE_SECONDS) -> None:
        """Returns once every report acknowledged so far is stored;
        Unavailable if that takes longer than timeout (the database fails)."""
        last = self._seq
        self.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._unstored and next(iter(self._unstored)) <= last:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise Unavailable("metric reports acknowledged earlier cannot be stored yet; see the server log")
            try:
                await asyncio.wait_for(self._stored_event.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def close(self, timeout: float = 10.0) -> None:
        try:
            await self.settled(timeout)
        except Unavailable:
            log.error("%d acknowledged metric reports are not stored yet; the journal keeps them for the next start",
                      len(self._unstored))
        if self.journal is not None:
            self.journal.close()
