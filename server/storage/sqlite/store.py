"""The SQLite implementation of the storage interface."""

from __future__ import annotations

import copy
import logging
import os
import sqlite3
import time
from collections.abc import Callable

from ...domain import checkpoints as checkpoint_rules
from ...domain import listing
from ...domain import metrics as m
from ...domain.errors import AlreadyExists, NotFound, TrialFinished
from ...domain.idempotency import RequestKey
from ...domain.listing import Page, StudyFilter, TrialFilter, WorkerFilter
from ...domain.models import Study, Trial, Worker
from ...domain.trial_lifecycle import TERMINAL, WORKING
from ...domain.worker_lifecycle import LIVE
from ..base import IngestItem, IngestResult, Storage, StudyCheck, TrialChange
from . import checkpoints, codec, journaled_reports, metrics, profiler, requests
from .engine import Engine, inserted_id
from .journal import Journal, JournalBusy
from .journaled_reports import JournaledReports
from .migrations import migrate

log = logging.getLogger(__name__)


def now_us() -> int:
    return time.time_ns() // 1000


def _insert(conn: sqlite3.Connection, table: str, row: dict) -> int:
    cols = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cur = conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", tuple(row.values()))
    return inserted_id(cur)


def _update(conn: sqlite3.Connection, table: str, row_id: int, row: dict) -> None:
    sets = ", ".join(f"{c} = ?" for c in row)
    conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*row.values(), row_id))


def _set_tags(conn: sqlite3.Connection, table: str, owner_col: str, owner_id: int, tags: list[str]) -> None:
    conn.execute(f"DELETE FROM {table} WHERE {owner_col} = ?", (owner_id,))
    conn.executemany(f"INSERT INTO {table} ({owner_col}, tag) VALUES (?, ?)", [(owner_id, t) for t in tags])


class _Query:
    """A WHERE clause under construction."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list = []

    def add(self, clause: str, *args) -> None:
        self.clauses.append(clause)
        self.args.extend(args)

    def where(self) -> str:
        return ("WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def _keyset(q: _Query, page: Page, table: str, col: str | None = None) -> str:
    """Adds the keyset condition for page and returns the ORDER BY clause.
    Queries select the sort column as sort_value."""
    col = col or f"{table}.{page.order.field}"
    direction = "DESC" if page.order.descending else "ASC"
    if page.after is not None:
        op = "<" if page.order.descending else ">"
        q.add(f"({col}, {table}.id) {op} (?, ?)", *page.after)
    return f"ORDER BY {col} {direction}, {table}.id {direction}"


def _page_result(rows: list, page: Page, decode) -> tuple[list, tuple | None]:
    items = [decode(r) for r in rows[: page.size]]
    if len(rows) <= page.size:
        return items, None
    last = rows[page.size - 1]
    return items, (last["sort_value"], last["id"])


_AGGREGATE_SQL = {
    "last": "ms.last",
    "min": "ms.vmin",
    "max": "ms.vmax",
    "mean": "(ms.total / nullif(ms.finite_count, 0))",
}


def _common_filters(q: _Query, table: str, tags_table: str, owner_col: str, flt) -> None:
    if flt.states:
        q.add(f"{table}.state IN ({', '.join('?' for _ in flt.states)})", *flt.states)
    for tag in flt.tags:
        q.add(f"EXISTS (SELECT 1 FROM {tags_table} x WHERE x.{owner_col} = {table}.id AND x.tag = ?)", tag)
    if flt.created_after is not None:
        q.add(f"{table}.create_time > ?", flt.created_after)
    if flt.created_before is not None:
        q.add(f"{table}.create_time < ?", flt.created_before)
    if flt.name_pattern:
        q.add(f"{table}.name_folded LIKE ? ESCAPE '\\'", flt.name_pattern)


class SqliteStorage(Storage):
    # Both exist from open() on.
    engine: Engine
    reports: JournaledReports

    def __init__(self, path: str, clock: Callable[[], int] = now_us, readers: int = 4):
        self.path = os.path.abspath(path)
        self.clock = clock
        self._readers = readers
        self._opened = False

    async def open(self) -> None:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self.engine = Engine(self.path, readers=self._readers)
        try:
            migrate(self.engine.writer_connection)
            self.reports = JournaledReports(self.engine, self._open_journal(), self.clock)
        except BaseException:
            self.engine.close()
            raise
        self.engine.start()
        self._opened = True

    def _open_journal(self) -> Journal | None:
        """The report journal, after storing what it still holds; None when
        another process has it."""
        try:
            journal = Journal(f"{self.path}-reports")
        except JournalBusy as exc:
            log.warning("%s: this server stores every metric report before answering", exc)
            return None
        journaled_reports.replay(self.engine.writer_connection, journal, self.clock())
        return journal

    async def close(self) -> None:
        if self._opened:
            await self.reports.close()
            self.engine.close()

    async def _write(self, fn, small: bool = False):
        # Journaled reports are stored first, and what the journal cached
        # about trials is dropped before and after: the write may change it.
        self.reports.flush()
        if self.reports.failing:
            await self.reports.settled()
        self.reports.forget()
        try:
            return await self.engine.write(fn, small)
        finally:
            self.reports.forget()

    async def _read(self, fn, small: bool = False):
        # Read-your-writes: reports acknowledged from the journal are stored first.
        if self.reports.pending:
            await self.reports.settled()
        return await self.engine.read(fn, small)

    # --- studies -----------------------------------------------------------

    @staticmethod
    def _study(conn: sqlite3.Connection, study_id: int) -> Study:
        row = conn.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
        if row is None:
            raise NotFound("study", study_id)
        return codec.study_from_row(row)

    async def create_study(self, study: Study, key: RequestKey | None = None) -> Study:
        def write(conn):
            earlier = requests.recall(conn, key)
            if earlier is not None:
                return self._study(conn, int(earlier))
            if conn.execute("SELECT 1 FROM studies WHERE name = ?", (study.name,)).fetchone():
                raise AlreadyExists("study", study.name)
            now = self.clock()
            study.create_time = study.update_time = now
            study.version = 1
            new_id = _insert(conn, "studies", codec.study_row(study))
            _set_tags(conn, "study_tags", "study_id", new_id, study.tags)
            requests.remember(conn, key, str(new_id), now)
            return self._study(conn, new_id)

        return await self._write(write)

    async def get_study(self, study_id: int) -> Study:
        return await self._read(lambda conn: self._study(conn, study_id), small=True)

    async def get_study_by_name(self, name: str) -> Study:
        def read(conn):
            row = conn.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound("study", name)
            return codec.study_from_row(row)

        return await self._read(read)

    async def list_studies(self, flt: StudyFilter, page: Page):
        def read(conn):
            q = _Query()
            _common_filters(q, "studies", "study_tags", "study_id", flt)
            if flt.owner:
                q.add("studies.owner = ?", flt.owner)
            order = _keyset(q, page, "studies")
            rows = conn.execute(
                f"SELECT *, studies.{page.order.field} AS sort_value FROM studies {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            ).fetchall()
            return _page_result(rows, page, codec.study_from_row)

        return await self._read(read)

    async def update_study(self, study_id: int, apply: Callable[[Study], Study]) -> Study:
        def write(conn):
            current = self._study(conn, study_id)
            updated = apply(current)
            updated.update_time = self.clock()
            updated.version = current.version + 1
            _update(conn, "studies", study_id, codec.study_row(updated))
            _set_tags(conn, "study_tags", "study_id", study_id, updated.tags)
            return self._study(conn, study_id)

        return await self._write(write)

    async def delete_study(self, study_id: int, check: StudyCheck) -> Study:
        def write(conn):
            study = self._study(conn, study_id)
            check(study)
            conn.execute("DELETE FROM studies WHERE id = ?", (study_id,))
            return study

        return await self._write(write)

    # --- trials ------------------------------------------------------------

    @staticmethod
    def _attach_summaries(conn: sqlite3.Connection, trials: list[Trial]) -> None:
        ids = [t.id for t in trials]
        by_trial = metrics.summaries_by_trial(conn, ids)
        best = checkpoints.best_of_trials(conn, ids)
        for t in trials:
            summary: dict = {}
            for s in by_trial.get(t.id, []):
                summary.setdefault(s["group"], {})[s["name"]] = s["summary"]
            t.summary_metrics = summary
            t.best_checkpoint = best.get(t.id)

    @classmethod
    def _trial(cls, conn: sqlite3.Connection, trial_id: int) -> Trial:
        row = conn.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise NotFound("trial", trial_id)
        trial = codec.trial_from_row(row)
        cls._attach_summaries(conn, [trial])
        return trial

    async def create_trial(self, trial: Trial, key: RequestKey | None, admit: Callable[[Study | None], None]) -> Trial:
        def write(conn):
            earlier = requests.recall(conn, key)
            if earlier is not None:
                return self._trial(conn, int(earlier))
            study = self._study(conn, trial.study_id) if trial.study_id else None
            admit(study)
            now = self.clock()
            trial.create_time = trial.update_time = now
            trial.version = 1
            new_id = _insert(conn, "trials", codec.trial_row(trial))
            requests.remember(conn, key, str(new_id), now)
            if not trial.name:
                conn.execute("UPDATE trials SET name = ?, name_folded = ? WHERE id = ?", (f"trial-{new_id}", f"trial-{new_id}", new_id))
            _set_tags(conn, "trial_tags", "trial_id", new_id, trial.tags)
            if study is not None:
                conn.execute("UPDATE studies SET trial_count = trial_count + 1 WHERE id = ?", (study.id,))
            # A new trial has no metrics or checkpoints to attach yet.
            return codec.trial_from_row(conn.execute("SELECT * FROM trials WHERE id = ?", (new_id,)).fetchone())

        return await self._write(write, small=True)

    async def get_trial(self, trial_id: int) -> Trial:
        return await self._read(lambda conn: self._trial(conn, trial_id), small=True)

    async def list_trials(self, flt: TrialFilter, page: Page):
        def read(conn):
            q = _Query()
            if flt.study_id:
                q.add("trials.study_id = ?", flt.study_id)
            _common_filters(q, "trials", "trial_tags", "trial_id", flt)
            join = ""
            metric = listing.metric_order(page.order.field)
            if metric is not None:
                col = _AGGREGATE_SQL[metric.aggregate]
                join = "JOIN metric_series ms ON ms.trial_id = trials.id AND ms.group_name = ? AND ms.name = ?"
                q.args[:0] = [metric.group, metric.name]
            else:
                col = f"trials.{page.order.field}"
            q.add(f"{col} IS NOT NULL")
            order = _keyset(q, page, "trials", col)
            rows = conn.execute(
                f"SELECT trials.*, {col} AS sort_value FROM trials {join} {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            ).fetchall()
            trials, last = _page_result(rows, page, codec.trial_from_row)
            self._attach_summaries(conn, trials)
            return trials, last

        return await self._read(read)

    async def change_trial(self, trial_id: int, change: TrialChange, key: RequestKey | None = None) -> Trial:
        def write(conn):
            current = self._trial(conn, trial_id)
            if requests.recall(conn, key) is not None:
                return current
            now = self.clock()
            result = change(current, now)
            requests.remember(conn, key, str(trial_id), now)
            updated = result.trial
            updated.update_time = now
            updated.version = current.version + 1
            _update(conn, "trials", trial_id, codec.trial_row(updated))
            if updated.tags != current.tags:
                _set_tags(conn, "trial_tags", "trial_id", trial_id, updated.tags)
            if result.events:
                (last,) = conn.execute(
                    "SELECT coalesce(max(sequence), 0) FROM trial_events WHERE trial_id = ?", (trial_id,)
                ).fetchone()
                for i, ev in enumerate(result.events):
                    _insert(conn, "trial_events", {
                        "trial_id": trial_id,
                        "sequence": last + i + 1,
                        "time": now,
                        "from_state": ev.from_state.value,
                        "to_state": ev.to_state.value,
                        "trial_run_id": ev.trial_run_id,
                        "message": ev.message,
                        "details": codec.dumps(ev.details),
                    })
            return self._trial(conn, trial_id)

        return await self._write(write, small=True)

    async def delete_trial(self, trial_id: int, check: Callable[[Trial], None]) -> Trial:
        def write(conn):
            trial = self._trial(conn, trial_id)
            check(trial)
            conn.execute("DELETE FROM trials WHERE id = ?", (trial_id,))
            if trial.study_id:
                conn.execute("UPDATE studies SET trial_count = trial_count - 1 WHERE id = ?", (trial.study_id,))
            return trial

        return await self._write(write)

    async def list_trial_events(self, trial_id, after_sequence, limit, descending=False, before_sequence=0):
        def read(conn):
            self._trial(conn, trial_id)
            q = _Query()
            q.add("trial_id = ?", trial_id)
            if after_sequence:
                q.add("sequence > ?", after_sequence)
            if before_sequence:
                q.add("sequence < ?", before_sequence)
            direction = "DESC" if descending else "ASC"
            rows = conn.execute(
                f"SELECT * FROM trial_events {q.where()} ORDER BY sequence {direction} LIMIT ?", (*q.args, limit)
            ).fetchall()
            return [codec.event_from_row(r) for r in rows]

        return await self._read(read)

    async def trials_due(self, now: int, limit: int = 500) -> list[int]:
        def read(conn):
            rows = conn.execute(
                "SELECT id FROM trials WHERE stop_deadline <= ? UNION "
                "SELECT id FROM trials WHERE runtime_deadline <= ? LIMIT ?",
                (now, now, limit),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    async def silent_trials(self, heard_after: int, limit: int = 500) -> list[int]:
        def read(conn):
            rows = conn.execute(
                """
                SELECT t.id FROM trials t
                WHERE t.state IN (SELECT value FROM json_each(?))
                  AND EXISTS (SELECT 1 FROM workers w WHERE w.trial_id = t.id AND w.trial_run_id = t.trial_run_id)
                  AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.trial_id = t.id AND w.trial_run_id = t.trial_run_id
                                  AND w.last_heartbeat > ?)
                LIMIT ?
                """,
                (codec.dumps([s.value for s in WORKING]), heard_after, limit),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._read(read)

    # --- workers -----------------------------------------------------------

    @staticmethod
    def _worker(conn: sqlite3.Connection, worker_id: int) -> Worker:
        row = conn.execute("SELECT * FROM workers WHERE id = ?", (worker_id,)).fetchone()
        if row is None:
            raise NotFound("worker", worker_id)
        return codec.worker_from_row(row)

    async def register_worker(self, worker: Worker, key: RequestKey | None, admit: Callable[[Trial], None]) -> Worker:
        def write(conn):
            earlier = requests.recall(conn, key)
            if earlier is not None:
                return self._worker(conn, int(earlier))
            trial = self._trial(conn, worker.trial_id)
            admit(trial)
            worker.trial_run_id = trial.trial_run_id
            # A rank is taken while a live worker holds it; a dead worker's
            # rank can be taken over by its replacement.
            taken = conn.execute(
                "SELECT 1 FROM workers WHERE trial_id = ? AND trial_run_id = ? AND rank = ?"
                " AND state IN (SELECT value FROM json_each(?))",
                (worker.trial_id, worker.trial_run_id, worker.rank, codec.dumps([s.value for s in LIVE])),
            ).fetchone()
            if taken:
                raise AlreadyExists("worker rank", f"{worker.rank} in run {worker.trial_run_id} of trial {worker.trial_id}")
            now = self.clock()
            worker.create_time = worker.update_time = now
            worker.last_heartbeat = now
            new_id = _insert(conn, "workers", codec.worker_row(worker))
            requests.remember(conn, key, str(new_id), now)
            return self._worker(conn, new_id)

        return await self._write(write)

    async def get_worker(self, worker_id: int) -> Worker:
        return await self._read(lambda conn: self._worker(conn, worker_id), small=True)

    async def list_workers(self, flt: WorkerFilter, page: Page):
        def read(conn):
            q = _Query()
            if flt.trial_id:
                self._trial(conn, flt.trial_id)
                q.add("workers.trial_id = ?", flt.trial_id)
            if flt.trial_run_id:
                q.add("workers.trial_run_id = ?", flt.trial_run_id)
            if flt.states:
                q.add(f"workers.state IN ({', '.join('?' for _ in flt.states)})", *flt.states)
            order = _keyset(q, page, "workers")
            rows = conn.execute(
                f"SELECT *, workers.{page.order.field} AS sort_value FROM workers {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            ).fetchall()
            return _page_result(rows, page, codec.worker_from_row)

        return await self._read(read)

    async def run_workers(self, trial_id: int, trial_run_id: int) -> list[Worker]:
        def read(conn):
            self._trial(conn, trial_id)
            rows = conn.execute(
                "SELECT * FROM workers WHERE trial_id = ? AND trial_run_id = ? ORDER BY id", (trial_id, trial_run_id)
            ).fetchall()
            return [codec.worker_from_row(r) for r in rows]

        return await self._read(read)

    async def change_worker(self, worker_id: int, apply) -> Worker:
        def write(conn):
            current = self._worker(conn, worker_id)
            before = copy.deepcopy(current)
            now = self.clock()
            updated = apply(current, now)
            if updated == before:
                return before
            updated.update_time = now
            _update(conn, "workers", worker_id, codec.worker_row(updated))
            return self._worker(conn, worker_id)

        return await self._write(write, small=True)

    async def delete_worker(self, worker_id: int) -> Worker:
        def write(conn):
            worker = self._worker(conn, worker_id)
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
            return worker

        return await self._write(write)



    # --- profiler ----------------------------------------------------------

    async def ingest_profiler(self, stream_id: str, items: list[IngestItem], key: RequestKey | None = None) -> IngestResult:
        def write(conn):
            now = self.clock()
            return requests.once(conn, key, now, lambda: profiler.ingest(conn, stream_id, items, now),
                                 IngestResult.from_record)

        return await self._write(write)

    async def profiler_stream_position(self, stream_id: str) -> int:
        return await self._read(lambda conn: profiler.stream_position(conn, stream_id), small=True)

    async def list_profiler_series(self, trial_id: int, after=None, limit=-1):
        return await self._read(lambda conn: profiler.list_series(conn, trial_id, after, limit))

    async def find_profiler_series(self, labels):
        return await self._read(lambda conn: profiler.find_series(conn, labels))

    async def profiler_summaries(self, series_id, start_ts, end_ts, start_batch, end_batch, after=None):
        return await self._read(
            lambda conn: profiler.summaries(conn, series_id, start_ts, end_ts, start_batch, end_batch, after)
        )

    async def profiler_chunks(self, chunk_ids):
        return await self._read(lambda conn: profiler.chunk_data(conn, chunk_ids))

    async def profiler_chunks_after(self, series_id, after_chunk_id, after_ts, limit):
        return await self._read(lambda conn: profiler.chunks_after(conn, series_id, after_chunk_id, after_ts, limit))

    async def delete_expired_profiler(self, now: int, default_days: int, limit: int) -> int:
        return await self._write(lambda conn: profiler.delete_expired(conn, now, default_days, limit))

    async def delete_expired_logs(self, now: int, default_days: int, limit: int) -> int:
        return await self._write(lambda conn: metrics.delete_expired_logs(conn, now, default_days, limit))

    # --- metrics, logs, Katib observation logs -------------------------------

    async def report_metrics(self, report):
        created = self.reports.admit(report)
        if created is not None:
            return created
        with self.reports.stored_directly(report):
            return await super().report_metrics(report)

    async def ingest_metrics(self, batch, key=None):
        small = len(batch.reports) + len(batch.points) + len(batch.debug_events) + len(batch.logs) <= 4

        def write(conn):
            now = self.clock()
            return requests.once(conn, key, now, lambda: metrics.ingest(conn, batch, now), m.IngestOutcome.from_record)

        return await self._write(write, small)

    async def metric_summaries(self, trial_ids, group="", names=None, after=None, limit=-1):
        return await self._read(lambda conn: metrics.series_summaries(conn, trial_ids, group, names, after, limit))

    async def metric_series_id(self, trial_id, group, name):
        return await self._read(lambda conn: metrics.find_series(conn, trial_id, group, name), small=True)

    async def metric_points(self, series_id, start_step, end_step, include_archived, after, limit):
        return await self._read(
            lambda conn: metrics.raw_points(conn, series_id, start_step, end_step, include_archived, after, limit)
        )

    async def metric_buckets(self, series_id, start_step, end_step, n, by_time, include_archived):
        return await self._read(
            lambda conn: metrics.downsample(conn, series_id, start_step, end_step, n, by_time, include_archived)
        )

    async def debug_events(self, trial_id, kinds, metric, after_id, limit):
        return await self._read(lambda conn: metrics.debug_events(conn, trial_id, kinds, metric, after_id, limit))

    async def list_logs(self, trial_id, from_tail, levels, worker, after_id, limit):
        return await self._read(lambda conn: metrics.list_logs(conn, trial_id, from_tail, levels, worker, after_id, limit))

    async def report_observations(self, trial_name, observations):
        return await self._write(lambda conn: metrics.report_observations(conn, trial_name, observations))

    async def get_observations(self, trial_name, metric_name, start, end):
        return await self._read(lambda conn: metrics.get_observations(conn, trial_name, metric_name, start, end))

    async def delete_observations(self, trial_name):
        return await self._write(lambda conn: metrics.delete_observations(conn, trial_name))

    # --- checkpoints ---------------------------------------------------------

    async def report_checkpoint(self, report):
        def write(conn):
            current = checkpoints.get(conn, report.uuid)
            trial = self._trial(conn, report.trial_id)
            if current is None:
                if trial.state in TERMINAL:
                    raise TrialFinished(trial.id, trial.state, "no new checkpoints")
                report.trial_run_id = report.trial_run_id or trial.trial_run_id
            updated = checkpoint_rules.apply_report(current, report, self.clock())
            updated.validation_metrics = checkpoints.validation_at(conn, updated.trial_id, updated.steps_completed)
            study = self._study(conn, trial.study_id) if trial.study_id else None
            updated.objective = checkpoints.signed(study, updated.validation_metrics)
            checkpoints.save(conn, updated)
            return updated

        return await self._write(write)

    async def get_checkpoint(self, uuid):
        return await self._read(lambda conn: checkpoints.require(conn, uuid), small=True)

    async def list_checkpoints(self, flt, order_field, descending, after, limit):
        return await self._read(lambda conn: checkpoints.list_page(conn, flt, order_field, descending, after, limit))

    async def update_checkpoint_metadata(self, uuid, metadata):
        def write(conn):
            c = checkpoints.require(conn, uuid)
            c.metadata = metadata
            c.update_time = self.clock()
            checkpoints.save(conn, c)
            return c

        return await self._write(write)

    async def delete_checkpoints(self, uuids, confirm):
        def write(conn):
            found = [checkpoints.require(conn, u) for u in uuids]
            now = self.clock()
            step = checkpoint_rules.confirm_deleted if confirm else checkpoint_rules.mark_for_deletion
            done = [step(c, now) for c in found]
            for c in done:
                checkpoints.save(conn, c)
            return done

        return await self._write(write)

    async def apply_checkpoint_retention(self, study_id, keep_best, keep_latest, dry_run):
        def write(conn):
            self._study(conn, study_id)
            victims = checkpoint_rules.retention_victims(checkpoints.of_study(conn, study_id), keep_best, keep_latest)
            if dry_run:
                return victims
            now = self.clock()
            marked = [checkpoint_rules.mark_for_deletion(c, now) for c in victims]
            for c in marked:
                checkpoints.save(conn, c)
            return marked

        return await self._write(write)
