"""A write-behind journal for single metric reports, wrapped around a storage.

A one-point ReportMetrics is what a training loop sends most. Storing it is a
transaction of its own (about 150 us on SQLite here); checking it and
appending it to a journal file costs a fraction of that. So a report that needs nothing
but storing (its trial exists and runs, it is not a retry, it does not start
a new run) is checked on the event loop, written to the journal and
acknowledged. Every 100 ms the waiting reports are stored in one transaction,
in the order they came, and the journal is emptied whenever all of them are
stored.

Reads wait until every report acknowledged before they began is stored, and
writes queue behind them, so a client always reads what it wrote. At start-up
whatever the journal holds is stored before the server answers; storing is
idempotent (a report is keyed by trial, group, run and step, or by its
request_id), so reports stored just before a crash are not stored twice.

The journal is a file on the server's disk, so it is only safe where one
server process owns the database: the embedded SQLite default. A second
process on the same file cannot lock the journal and stores every report
before answering.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import marshal
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from ..domain import metrics as m
from ..domain.errors import Unavailable
from .interface import Storage
from .journal import Journal, JournalBusy, JournalFull

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



class ReportSink(Protocol):
    """What the wrapped storage offers the journal: lookups answered at once
    on the event loop, and a store of admitted reports."""

    clock: Callable[[], int]

    def report_facts(self, trial_id: int) -> tuple[str, int, int] | None: ...

    def highest_step(self, trial_id: int, group: str, run: int) -> int | None: ...

    def stored_report(self, trial_id: int, group: str, run: int, step: int) -> tuple[bytes | None] | None: ...

    def named_report(self, trial_id: int, request_id: str) -> tuple[str, int, int, bytes | None] | None: ...

    def store_admitted(self, take: Callable[[], list[m.ReportDraft]]) -> Future: ...


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


def read_journal(journal: Journal, now: int) -> list[m.ReportDraft]:
    """The reports a previous process acknowledged and had not stored; a
    journal with unreadable records is kept beside it for inspection."""
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
    return reports


class JournaledReports:
    def __init__(self, sink: ReportSink, journal: Journal | None, clock: Callable[[], int]):
        """journal None: every report takes the direct way."""
        self.sink = sink
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
        # Other writes under way. What they store is not visible to the
        # lookups admit makes until they commit, so meanwhile a report could
        # be journaled for a step a batch is storing with other values, and
        # then be refused after its acknowledgement: reports take the direct
        # way, behind those writes, instead.
        self.writes_in_flight = 0

    def admit(self, report: m.ReportDraft) -> bool | None:
        """True: journaled and acknowledged as new. False: a retry of a
        report stored or journaled before. None: this report must take the
        direct way (an error to report, a new run to roll back to, a full
        journal)."""
        if self.failing or self.journal is None or self.writes_in_flight:
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
            step: tuple[bytes | None] | None = (self._keys[key],) if key in self._keys else None
            return self._retry_of(report, key, step, self._request_ids.get((report.trial_id, report.request_id)))
        if self._direct and (key[:2] + key[3:] in self._direct or report.request_id in self._direct):
            # The same report is being stored the direct way: so is this
            # retry, which then finds it stored.
            return None
        series = key[:3]
        highest = self._highest.get(series)
        if highest is None:
            highest = self.sink.highest_step(*series)
            highest = -1 if highest is None else highest
        # A step past every stored one is new unless its request_id was used.
        if report.request_id or report.steps <= highest:
            step = self.sink.stored_report(*key)
            named = self.sink.named_report(report.trial_id, report.request_id) if report.request_id else None
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
        facts = self.sink.report_facts(trial_id)
        if facts is not None:
            self._trials[trial_id] = facts
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
        future = self.sink.store_admitted(lambda: self._take_waiting(taken))
        if future.done():
            self._stored(future, taken)
        else:
            future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._stored, f, taken))

    def _take_waiting(self, taken: list) -> list[m.ReportDraft]:
        """Every report waiting now, for the store that runs now (on the loop
        or the backend's writer thread)."""
        # Cleared before taking: a report the loop adds after this line is
        # either taken below or finds the flag down and queues another store.
        self._store_queued = False
        while self._waiting:
            taken.append(self._waiting.popleft())
        return [report for _, report in taken]

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
    def unstored(self) -> int:
        """Reports acknowledged from the journal and not stored yet."""
        return len(self._unstored)

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


class JournaledStorage(Storage):
    """A storage whose single metric reports are acknowledged from a journal.

    Every other write first hands the waiting reports to the store and waits
    for them while that store fails, and reads wait until the reports
    acknowledged before them are stored: a client reads what it wrote, and
    writes keep the order they were made in."""

    reports: JournaledReports

    def __init__(self, inner: Any, journal_path: str):
        """inner: a Storage that is also a ReportSink."""
        self.inner: Storage = inner
        self.sink: ReportSink = inner
        self.clock = self.sink.clock
        self.journal_path = journal_path
        self._opened = False

    async def open(self) -> None:
        await self.inner.open()
        try:
            journal = await self._open_journal()
        except BaseException:
            await self.inner.close()
            raise
        self.reports = JournaledReports(self.sink, journal, self.sink.clock)
        self._opened = True

    async def _open_journal(self) -> Journal | None:
        """The journal, after storing what it still holds; None when another
        process has it."""
        try:
            journal = Journal(self.journal_path)
        except JournalBusy as exc:
            log.warning("%s: this server stores every metric report before answering", exc)
            return None
        try:
            reports = read_journal(journal, self.sink.clock())
            if reports:
                await asyncio.wrap_future(self.sink.store_admitted(lambda: reports))
                log.info("stored %d metric reports from the journal of the previous run", len(reports))
            journal.reset()
        except BaseException:
            journal.close()
            raise
        return journal

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self.reports.close()
        await self.inner.close()

    async def _write(self, call):
        # Journaled reports are stored first, and what the journal cached
        # about trials is dropped before and after: the write may change it.
        try:
            self.reports.flush()
            if self.reports.failing:
                await self.reports.settled()
        except BaseException:
            call.close()
            raise
        self.reports.forget()
        self.reports.writes_in_flight += 1
        try:
            return await call
        finally:
            self.reports.writes_in_flight -= 1
            self.reports.forget()

    async def _read(self, call):
        if self.reports.pending:
            try:
                await self.reports.settled()
            except BaseException:
                call.close()
                raise
        return await call

    def change_relay(self):
        return self.inner.change_relay()

    def job_lease(self, job):
        return self.inner.job_lease(job)

    async def report_metrics(self, report):
        created = self.reports.admit(report)
        if created is not None:
            return created
        with self.reports.stored_directly(report):
            return await self._write(self.inner.report_metrics(report))

    # Everything else passes through: writes behind the waiting reports,
    # reads after them.

    async def create_study(self, *args, **kwargs):
        return await self._write(self.inner.create_study(*args, **kwargs))

    async def get_study(self, *args, **kwargs):
        return await self._read(self.inner.get_study(*args, **kwargs))

    async def get_study_by_name(self, *args, **kwargs):
        return await self._read(self.inner.get_study_by_name(*args, **kwargs))

    async def list_studies(self, *args, **kwargs):
        return await self._read(self.inner.list_studies(*args, **kwargs))

    async def update_study(self, *args, **kwargs):
        return await self._write(self.inner.update_study(*args, **kwargs))

    async def delete_study(self, *args, **kwargs):
        return await self._write(self.inner.delete_study(*args, **kwargs))

    async def suggest_trials(self, *args, **kwargs):
        return await self._write(self.inner.suggest_trials(*args, **kwargs))

    async def metrics_overdue(self, *args, **kwargs):
        return await self._read(self.inner.metrics_overdue(*args, **kwargs))

    async def search_history(self, *args, **kwargs):
        return await self._read(self.inner.search_history(*args, **kwargs))

    async def create_trial(self, *args, **kwargs):
        return await self._write(self.inner.create_trial(*args, **kwargs))

    async def get_trial(self, *args, **kwargs):
        return await self._read(self.inner.get_trial(*args, **kwargs))

    async def list_trials(self, *args, **kwargs):
        return await self._read(self.inner.list_trials(*args, **kwargs))

    async def change_trial(self, *args, **kwargs):
        return await self._write(self.inner.change_trial(*args, **kwargs))

    async def complete_trial(self, *args, **kwargs):
        return await self._write(self.inner.complete_trial(*args, **kwargs))

    async def delete_trial(self, *args, **kwargs):
        return await self._write(self.inner.delete_trial(*args, **kwargs))

    async def list_trial_events(self, *args, **kwargs):
        return await self._read(self.inner.list_trial_events(*args, **kwargs))

    async def trials_due(self, *args, **kwargs):
        return await self._read(self.inner.trials_due(*args, **kwargs))

    async def silent_trials(self, *args, **kwargs):
        return await self._read(self.inner.silent_trials(*args, **kwargs))

    async def register_worker(self, *args, **kwargs):
        return await self._write(self.inner.register_worker(*args, **kwargs))

    async def get_worker(self, *args, **kwargs):
        return await self._read(self.inner.get_worker(*args, **kwargs))

    async def list_workers(self, *args, **kwargs):
        return await self._read(self.inner.list_workers(*args, **kwargs))

    async def run_workers(self, *args, **kwargs):
        return await self._read(self.inner.run_workers(*args, **kwargs))

    async def change_worker(self, *args, **kwargs):
        return await self._write(self.inner.change_worker(*args, **kwargs))

    async def delete_worker(self, *args, **kwargs):
        return await self._write(self.inner.delete_worker(*args, **kwargs))

    async def ingest_profiler(self, *args, **kwargs):
        return await self._write(self.inner.ingest_profiler(*args, **kwargs))

    async def profiler_stream_position(self, *args, **kwargs):
        return await self._read(self.inner.profiler_stream_position(*args, **kwargs))

    async def list_profiler_series(self, *args, **kwargs):
        return await self._read(self.inner.list_profiler_series(*args, **kwargs))

    async def find_profiler_series(self, *args, **kwargs):
        return await self._read(self.inner.find_profiler_series(*args, **kwargs))

    async def profiler_summaries(self, *args, **kwargs):
        return await self._read(self.inner.profiler_summaries(*args, **kwargs))

    async def profiler_chunks(self, *args, **kwargs):
        return await self._read(self.inner.profiler_chunks(*args, **kwargs))

    async def profiler_chunks_after(self, *args, **kwargs):
        return await self._read(self.inner.profiler_chunks_after(*args, **kwargs))

    async def delete_expired_profiler(self, *args, **kwargs):
        return await self._write(self.inner.delete_expired_profiler(*args, **kwargs))

    async def delete_expired_logs(self, *args, **kwargs):
        return await self._write(self.inner.delete_expired_logs(*args, **kwargs))

    async def ingest_metrics(self, *args, **kwargs):
        return await self._write(self.inner.ingest_metrics(*args, **kwargs))

    async def report_metric_columns(self, *args, **kwargs):
        return await self._write(self.inner.report_metric_columns(*args, **kwargs))

    async def metric_summaries(self, *args, **kwargs):
        return await self._read(self.inner.metric_summaries(*args, **kwargs))

    async def metric_series_id(self, *args, **kwargs):
        return await self._read(self.inner.metric_series_id(*args, **kwargs))

    async def metric_points(self, *args, **kwargs):
        return await self._read(self.inner.metric_points(*args, **kwargs))

    async def metric_buckets(self, *args, **kwargs):
        return await self._read(self.inner.metric_buckets(*args, **kwargs))

    async def debug_events(self, *args, **kwargs):
        return await self._read(self.inner.debug_events(*args, **kwargs))

    async def list_logs(self, *args, **kwargs):
        return await self._read(self.inner.list_logs(*args, **kwargs))

    async def report_observations(self, *args, **kwargs):
        return await self._write(self.inner.report_observations(*args, **kwargs))

    async def get_observations(self, *args, **kwargs):
        return await self._read(self.inner.get_observations(*args, **kwargs))

    async def delete_observations(self, *args, **kwargs):
        return await self._write(self.inner.delete_observations(*args, **kwargs))

    async def mark_early_stopped(self, *args, **kwargs):
        return await self._write(self.inner.mark_early_stopped(*args, **kwargs))

    async def early_stopped(self, *args, **kwargs):
        return await self._read(self.inner.early_stopped(*args, **kwargs))

    async def report_checkpoint(self, *args, **kwargs):
        return await self._write(self.inner.report_checkpoint(*args, **kwargs))

    async def get_checkpoint(self, *args, **kwargs):
        return await self._read(self.inner.get_checkpoint(*args, **kwargs))

    async def list_checkpoints(self, *args, **kwargs):
        return await self._read(self.inner.list_checkpoints(*args, **kwargs))

    async def update_checkpoint_metadata(self, *args, **kwargs):
        return await self._write(self.inner.update_checkpoint_metadata(*args, **kwargs))

    async def delete_checkpoints(self, *args, **kwargs):
        return await self._write(self.inner.delete_checkpoints(*args, **kwargs))

    async def apply_checkpoint_retention(self, *args, **kwargs):
        return await self._write(self.inner.apply_checkpoint_retention(*args, **kwargs))

    async def create_token(self, *args, **kwargs):
        return await self._write(self.inner.create_token(*args, **kwargs))

    async def any_token(self, *args, **kwargs):
        return await self._read(self.inner.any_token(*args, **kwargs))

    async def token_by_hash(self, *args, **kwargs):
        return await self._read(self.inner.token_by_hash(*args, **kwargs))

    async def get_token(self, *args, **kwargs):
        return await self._read(self.inner.get_token(*args, **kwargs))

    async def list_tokens(self, *args, **kwargs):
        return await self._read(self.inner.list_tokens(*args, **kwargs))

    async def revoke_token(self, *args, **kwargs):
        return await self._write(self.inner.revoke_token(*args, **kwargs))
