"""The storage interface as transaction scripts over any SQL backend.

Each method is a function of one transaction (`Tx`) handed to the backend's
`Database`: read the rows a decision needs (locked where the write depends
on them), let the domain decide, write. The backend only runs statements;
the rules and algorithms live here once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from ...domain import checkpoints as checkpoint_rules
from ...domain import listing, study_lifecycle
from ...domain import metrics as m
from ...domain.clock import now_us
from ...domain.errors import AlreadyExists, NotFound
from ...domain.idempotency import RequestKey
from ...domain.listing import Page, StudyFilter, TrialFilter, WorkerFilter
from ...domain.models import Study, StudyState, Trial, TrialState, Worker
from ...domain.trial_lifecycle import WORKING
from ...domain.worker_lifecycle import LIVE
from ..interface import (
    HistoryRead,
    IngestItem,
    IngestResult,
    Paged,
    Storage,
    StudyCheck,
    Suggested,
    SuggestionPlan,
    TrialChange,
)
from . import checkpoints, metrics, profiler, records, requests, studies, tokens
from .query import Query, keyset, marks, page_of
from .statements import Database, Tx

# Where a study's metrics timeout sits in its body.
TIMEOUT_KEY = "metrics_timeout_seconds"


def _insert(tx: Tx, table: str, row: dict) -> int:
    return tx.insert(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({marks(row)})", tuple(row.values()))


def _update(tx: Tx, table: str, row_id: int, row: dict, before: dict | None = None) -> None:
    """Sets the columns of row; with before (the row as it was), only those
    that changed: each column set costs its indexes an update, changed or
    not (half the transaction of a state report)."""
    if before is not None:
        row = {c: v for c, v in row.items() if before[c] != v}
    if row:
        sets = ", ".join(f"{c} = ?" for c in row)
        tx.run(f"UPDATE {table} SET {sets} WHERE id = ?", (*row.values(), row_id))


def _append_events(tx: Tx, trial_id: int, events: list, now: int, last: int | None = None) -> None:
    """last: the trial's last event sequence when known (0 for a new trial)."""
    if not events:
        return
    if last is None:
        last = tx.value("SELECT coalesce(max(sequence), 0) FROM trial_events WHERE trial_id = ?", (trial_id,))
    # The trial's row is locked (or new), so the sequence stays gapless
    # whichever replica appends.
    tx.run_many(
        "INSERT INTO trial_events (trial_id, sequence, time, from_state, to_state, trial_run_id, message, details)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(trial_id, last + i + 1, now, ev.from_state.value, ev.to_state.value, ev.trial_run_id, ev.message,
          records.dumps(ev.details)) for i, ev in enumerate(events)],
    )


def _changed_trials(tx: Tx, study_id: int, after: tuple[int, int] | None, limit: int) -> list[Trial]:
    """The study's trials changed after an (update_time, id) key, in that order."""
    sql, args = "SELECT * FROM trials WHERE study_id = ?", [study_id]
    if after is not None:
        sql += " AND (update_time, id) > (?, ?)"
        args.extend(after)
    rows = tx.all(sql + " ORDER BY update_time, id LIMIT ?", (*args, limit))
    return [records.trial_from_row(r) for r in rows]


def _set_tags(tx: Tx, table: str, owner_col: str, owner_id: int, tags: list[str]) -> None:
    tx.run(f"DELETE FROM {table} WHERE {owner_col} = ?", (owner_id,))
    tx.run_many(f"INSERT INTO {table} ({owner_col}, tag) VALUES (?, ?)", [(owner_id, t) for t in tags])


_AGGREGATE_SQL = {
    "last": "ms.last",
    "min": "ms.vmin",
    "max": "ms.vmax",
    "mean": "(ms.total / nullif(ms.finite_count, 0))",
}


def _common_filters(q: Query, table: str, tags_table: str, owner_col: str, flt) -> None:
    q.one_of(f"{table}.state", flt.states)
    for tag in flt.tags:
        q.add(f"EXISTS (SELECT 1 FROM {tags_table} x WHERE x.{owner_col} = {table}.id AND x.tag = ?)", tag)
    if flt.created_after is not None:
        q.add(f"{table}.create_time > ?", flt.created_after)
    if flt.created_before is not None:
        q.add(f"{table}.create_time < ?", flt.created_before)
    if flt.name_pattern:
        q.add(f"{table}.name_folded LIKE ? ESCAPE '\\'", flt.name_pattern)


class SqlStorage(Storage):
    """A backend opens its database, then hands it to open_database()."""

    db: Database

    def __init__(self, clock: Callable[[], int] = now_us):
        self.clock = clock
        # Unfinished trials SuggestTrials decides on, kept parsed between its
        # writes (studies.unfinished).
        self._parsed_unfinished: studies.ParsedTrials = {}
        # Study bodies SuggestTrials reads, kept parsed while they are unchanged.
        self._parsed_studies: records.ParsedStudies = {}
        # Trial bodies the state changes read, kept parsed while they are unchanged.
        self._parsed_bodies: records.ParsedTrialBodies = {}

    async def _write(self, fn, small: bool = False):
        return await self.db.write(fn, small)

    async def _read(self, fn, small: bool = False):
        return await self.db.read(fn, small)

    # --- journaled reports: what a write-behind journal needs ---------------

    def report_facts(self, trial_id: int) -> tuple[str, int, int] | None:
        """(state, trial_run_id, metrics_run) of a trial, read at once."""
        row = self.db.query_one("SELECT state, trial_run_id, metrics_run FROM trials WHERE id = ?", (trial_id,))
        return None if row is None else (row[0], row[1], row[2])

    def highest_step(self, trial_id: int, group: str, run: int) -> int | None:
        row = self.db.query_one(
            "SELECT max(steps) FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ?",
            (trial_id, group, run),
        )
        return None if row is None else row[0]

    def stored_report(self, trial_id: int, group: str, run: int, step: int) -> tuple[bytes | None] | None:
        """(digest,) of the report stored at this step, None when there is none."""
        row = self.db.query_one(
            "SELECT digest FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ? AND steps = ?",
            (trial_id, group, run, step),
        )
        return None if row is None else (row[0],)

    def named_report(self, trial_id: int, request_id: str) -> tuple[str, int, int, bytes | None] | None:
        """(group, run, step, digest) of the trial's report with this request_id."""
        row = self.db.query_one(
            "SELECT group_name, trial_run_id, steps, digest FROM metric_reports WHERE trial_id = ? AND request_id = ?",
            (trial_id, request_id),
        )
        return None if row is None else (row[0], row[1], row[2], row[3])

    def store_admitted(self, take: Callable[[], list[m.ReportDraft]]):
        """Starts a transaction that stores the reports take() returns when
        it runs (reports checked and acknowledged before); a future."""
        return self.db.write_now(lambda tx: metrics.store_admitted(tx, take(), self.clock(), self._parsed_studies))

    # --- studies -----------------------------------------------------------

    @staticmethod
    def _study(tx: Tx, study_id: int, lock: bool = False, parsed: records.ParsedStudies | None = None) -> Study:
        """lock: keep the row locked until the write commits. parsed: a
        cache of parsed bodies (the study returned is then a shallow copy
        of a cached one: replace its lists, do not change them)."""
        row = tx.one("SELECT * FROM studies WHERE id = ?" + (tx.dialect.for_update if lock else ""), (study_id,))
        if row is None:
            raise NotFound("study", study_id)
        return records.study_from_row(row, parsed)

    async def create_study(self, study: Study, key: RequestKey | None = None) -> Study:
        def write(tx):
            earlier = requests.recall(tx, key)
            if earlier is not None:
                return self._study(tx, int(earlier))
            if tx.one("SELECT 1 FROM studies WHERE name = ?", (study.name,)):
                raise AlreadyExists("study", study.name)
            now = self.clock()
            study.create_time = study.update_time = now
            study.version = 1
            new_id = _insert(tx, "studies", records.study_row(study))
            _set_tags(tx, "study_tags", "study_id", new_id, study.tags)
            requests.remember(tx, key, str(new_id), now)
            return self._study(tx, new_id)

        return await self._write(write)

    async def get_study(self, study_id: int) -> Study:
        return await self._read(lambda tx: self._study(tx, study_id), small=True)

    async def get_study_by_name(self, name: str) -> Study:
        def read(tx):
            row = tx.one("SELECT * FROM studies WHERE name = ?", (name,))
            if row is None:
                raise NotFound("study", name)
            return records.study_from_row(row)

        return await self._read(read)

    async def list_studies(self, flt: StudyFilter, page: Page):
        def read(tx):
            q = Query()
            _common_filters(q, "studies", "study_tags", "study_id", flt)
            if flt.owner:
                q.add("studies.owner = ?", flt.owner)
            order = keyset(q, page, "studies")
            rows = tx.all(
                f"SELECT *, studies.{page.order.field} AS sort_value FROM studies {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            )
            return Paged(*page_of(rows, page, records.study_from_row))

        return await self._read(read)

    async def update_study(self, study_id: int, apply: Callable[[Study], Study]) -> Study:
        def write(tx):
            current = self._study(tx, study_id, lock=True)
            updated = apply(current)
            updated.update_time = self.clock()
            updated.version = current.version + 1
            _update(tx, "studies", study_id, records.study_row(updated))
            _set_tags(tx, "study_tags", "study_id", study_id, updated.tags)
            return self._study(tx, study_id)

        return await self._write(write)

    async def delete_study(self, study_id: int, check: StudyCheck) -> Study:
        def write(tx):
            study = self._study(tx, study_id, lock=True)
            check(study)
            tx.run("DELETE FROM studies WHERE id = ?", (study_id,))
            return study

        return await self._write(write)

    # --- trials ------------------------------------------------------------

    @staticmethod
    def _attach_summaries(tx: Tx, trials: list[Trial]) -> None:
        ids = [t.id for t in trials]
        by_trial = metrics.summaries_by_trial(tx, ids)
        best = checkpoints.best_of_trials(tx, ids)
        for t in trials:
            summary: dict = {}
            for s in by_trial.get(t.id, []):
                summary.setdefault(s.group, {})[s.name] = s.summary
            t.summary_metrics = summary
            t.best_checkpoint = best.get(t.id)

    @classmethod
    def _trial(cls, tx: Tx, trial_id: int, lock: bool = False, summaries: bool = True) -> Trial:
        """summaries: attach the metric summaries and the best checkpoint,
        which answers need and decisions do not."""
        row = tx.one("SELECT * FROM trials WHERE id = ?" + (tx.dialect.for_update if lock else ""), (trial_id,))
        if row is None:
            raise NotFound("trial", trial_id)
        trial = records.trial_from_row(row)
        if summaries:
            cls._attach_summaries(tx, [trial])
        return trial

    async def create_trial(self, trial: Trial, key: RequestKey | None, admit: Callable[[Study | None], None]) -> Trial:
        def write(tx):
            earlier = requests.recall(tx, key)
            if earlier is not None:
                return self._trial(tx, int(earlier))
            study = self._study(tx, trial.study_id, lock=True) if trial.study_id else None
            admit(study)
            now = self.clock()
            trial.create_time = trial.update_time = now
            trial.version = 1
            new_id = _insert(tx, "trials", records.trial_row(trial))
            requests.remember(tx, key, str(new_id), now)
            if not trial.name:
                tx.run("UPDATE trials SET name = ?, name_folded = ? WHERE id = ?", (f"trial-{new_id}", f"trial-{new_id}", new_id))
            _set_tags(tx, "trial_tags", "trial_id", new_id, trial.tags)
            if study is not None:
                tx.run("UPDATE studies SET trial_count = trial_count + 1 WHERE id = ?", (study.id,))
            # A new trial has no metrics or checkpoints to attach yet.
            return records.trial_from_row(tx.one("SELECT * FROM trials WHERE id = ?", (new_id,)))

        return await self._write(write, small=True)

    async def suggest_trials(self, study_id: int, client_id: str, count: int, plan: SuggestionPlan,
                             start: TrialChange | None = None, history: HistoryRead | None = None) -> Suggested:
        def write(tx):
            study = self._study(tx, study_id, lock=True, parsed=self._parsed_studies)
            if history is not None:
                history.learn(_changed_trials(tx, study_id, history.after, history.limit))
            unfinished = studies.unfinished(tx, study_id, self._parsed_unfinished)
            # What is answered is read afresh (summaries included); the shared
            # parsed trials only decide.
            mine = [self._trial(tx, t.id, summaries=False) for t in unfinished
                    if client_id and t.client_id == client_id][:count]
            room = study_lifecycle.suggestion_room(study, len(unfinished), count - len(mine))
            made: list[Trial] = []
            bodies: list[str] = []
            if room:
                points = plan(study, unfinished, room)
                now = self.clock()
                for params in points:
                    number = study.suggestion_count + len(made) + 1
                    trial = Trial(study_id=study_id, name=f"{study.name}-{number}", hyperparameters=params,
                                  client_id=client_id, create_time=now, update_time=now, version=1)
                    events = []
                    if start is not None:
                        started = start(trial, now)
                        trial, events = started.trial, started.events
                    row = records.trial_row(trial)
                    trial.id = _insert(tx, "trials", row)
                    _append_events(tx, trial.id, events, now, last=0)
                    made.append(trial)
                    bodies.append(row["body"])
                study.suggestion_count += len(made)
                study.trial_count += len(made)
                if len(points) < room:
                    study_lifecycle.leave(study, StudyState.COMPLETED, study_lifecycle.EXHAUSTED)
                    studies.save(tx, study, now)
                else:
                    studies.save_counts(tx, study, now)
                study.version += 1
                study.update_time = now
            self._attach_summaries(tx, mine)
            return Suggested(mine + made, study), list(zip(made, bodies))

        suggested, new = await self._write(write, small=count <= 4)
        # Committed, so as a read of their rows would parse them: the next
        # suggestion decides on them, and their first change starts from
        # them, without parsing them again.
        studies.keep_parsed(self._parsed_unfinished, suggested.trials)
        for trial, body in new:
            records.keep_parsed_body(self._parsed_bodies, body, trial)
        return suggested

    async def metrics_overdue(self, now: int, limit: int = 500) -> list[tuple[int, float]]:
        def read(tx):
            timeout = tx.dialect.json_number("s.body", "?")
            heard = tx.dialect.greatest(
                "coalesce((SELECT max(ms.last_time) FROM metric_series ms WHERE ms.trial_id = t.id), 0)",
                "coalesce(t.start_time, 0)")
            rows = tx.tuples(
                f"""
                SELECT t.id, {timeout} FROM trials t JOIN studies s ON s.id = t.study_id
                WHERE t.state = ? AND {timeout} > 0 AND {heard} < ? - {timeout} * 1000000
                ORDER BY t.id LIMIT ?
                """,
                (TIMEOUT_KEY, TrialState.RUNNING.value, TIMEOUT_KEY, now, TIMEOUT_KEY, limit),
            )
            return [(trial_id, float(seconds)) for trial_id, seconds in rows]

        return await self._read(read)

    async def search_history(self, study_id: int, after: tuple[int, int] | None, limit: int = 1000) -> list[Trial]:
        return await self._read(lambda tx: _changed_trials(tx, study_id, after, limit))

    async def get_trial(self, trial_id: int) -> Trial:
        return await self._read(lambda tx: self._trial(tx, trial_id), small=True)

    async def list_trials(self, flt: TrialFilter, page: Page):
        def read(tx):
            q = Query()
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
            order = keyset(q, page, "trials", col)
            rows = tx.all(
                f"SELECT trials.*, {col} AS sort_value FROM trials {join} {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            )
            found = Paged(*page_of(rows, page, records.trial_from_row))
            self._attach_summaries(tx, found.items)
            return found

        return await self._read(read)

    async def change_trial(self, trial_id: int, change: TrialChange, key: RequestKey | None = None) -> Trial:
        return await self.complete_trial(trial_id, None, change, key)

    async def complete_trial(self, trial_id: int, report: m.ReportDraft | None, change: TrialChange,
                             key: RequestKey | None = None) -> Trial:
        # change_trial is this without a report.
        def write(tx):
            row = tx.one("SELECT * FROM trials WHERE id = ?" + tx.dialect.for_update, (trial_id,))
            if row is None:
                raise NotFound("trial", trial_id)
            current = records.trial_from_row(row, self._parsed_bodies)
            if requests.recall(tx, key) is not None:
                return self._trial(tx, trial_id), None
            now = self.clock()
            requests.remember(tx, key, str(trial_id), now)
            stored = dict(zip(row.keys(), row))
            if report is not None:
                report.steps = report.steps or current.steps_completed
                outcome = metrics.ingest(tx, m.IngestBatch(reports=[report], report_index=[0]), now,
                                         parsed_studies=self._parsed_studies)
                if outcome.errors:
                    raise outcome.errors[0][2]
                # The report updated the trial's best and latest validation.
                validation = tx.one(
                    "SELECT latest_validation, best_validation, searcher_metric_value FROM trials WHERE id = ?",
                    (trial_id,))
                records.with_validation(current, validation)
                stored.update(zip(("latest_validation", "best_validation", "searcher_metric_value"), validation))
            return self._apply(tx, current, change(current, now), now, stored), stored["body"]

        trial, body = await self._write(write, small=True)
        # Committed: the next change of the trial finds its body parsed.
        if body is not None:
            records.keep_parsed_body(self._parsed_bodies, body, trial)
        if trial.study_id:
            studies.keep_parsed(self._parsed_unfinished, [trial])
        return trial

    def _apply(self, tx: Tx, current: Trial, result, now: int, stored: dict) -> Trial:
        """Stores a change of a locked trial whose row is stored (and leaves
        stored as the row is now); appends its events; the trial as stored,
        with its summaries."""
        updated = result.trial
        updated.update_time = now
        updated.version = current.version + 1
        columns = records.trial_row(updated)
        _update(tx, "trials", current.id, columns, stored)
        stored.update(columns)
        if updated.tags != current.tags:
            _set_tags(tx, "trial_tags", "trial_id", current.id, updated.tags)
        studies.after_trial_change(tx, current, updated, now, self._parsed_studies)
        _append_events(tx, current.id, result.events, now)
        self._attach_summaries(tx, [updated])
        return updated

    async def delete_trial(self, trial_id: int, check: Callable[[Trial], None]) -> Trial:
        def write(tx):
            trial = self._trial(tx, trial_id, lock=True)
            check(trial)
            tx.run("DELETE FROM trials WHERE id = ?", (trial_id,))
            if trial.study_id:
                tx.run("UPDATE studies SET trial_count = trial_count - 1 WHERE id = ?", (trial.study_id,))
            return trial

        return await self._write(write)

    async def list_trial_events(self, trial_id, after_sequence, limit, descending=False, before_sequence=0):
        def read(tx):
            self._trial(tx, trial_id)
            q = Query()
            q.add("trial_id = ?", trial_id)
            if after_sequence:
                q.add("sequence > ?", after_sequence)
            if before_sequence:
                q.add("sequence < ?", before_sequence)
            direction = "DESC" if descending else "ASC"
            rows = tx.all(
                f"SELECT * FROM trial_events {q.where()} ORDER BY sequence {direction} LIMIT ?", (*q.args, limit)
            )
            return [records.event_from_row(r) for r in rows]

        return await self._read(read)

    async def trials_due(self, now: int, limit: int = 500) -> list[int]:
        def read(tx):
            rows = tx.all(
                "SELECT id FROM trials WHERE stop_deadline <= ? UNION "
                "SELECT id FROM trials WHERE runtime_deadline <= ? LIMIT ?",
                (now, now, limit),
            )
            return [r[0] for r in rows]

        return await self._read(read)

    async def silent_trials(self, heard_after: int, limit: int = 500) -> list[int]:
        def read(tx):
            rows = tx.all(
                f"""
                SELECT t.id FROM trials t
                WHERE t.state IN ({marks(WORKING)})
                  AND EXISTS (SELECT 1 FROM workers w WHERE w.trial_id = t.id AND w.trial_run_id = t.trial_run_id)
                  AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.trial_id = t.id AND w.trial_run_id = t.trial_run_id
                                  AND w.last_heartbeat > ?)
                LIMIT ?
                """,
                (*[s.value for s in WORKING], heard_after, limit),
            )
            return [r[0] for r in rows]

        return await self._read(read)

    # --- workers -----------------------------------------------------------

    @staticmethod
    def _worker(tx: Tx, worker_id: int, lock: bool = False) -> Worker:
        row = tx.one("SELECT * FROM workers WHERE id = ?" + (tx.dialect.for_update if lock else ""), (worker_id,))
        if row is None:
            raise NotFound("worker", worker_id)
        return records.worker_from_row(row)

    async def register_worker(self, worker: Worker, key: RequestKey | None, admit: Callable[[Trial], None]) -> Worker:
        def write(tx):
            earlier = requests.recall(tx, key)
            if earlier is not None:
                return self._worker(tx, int(earlier))
            trial = self._trial(tx, worker.trial_id, lock=True)
            admit(trial)
            worker.trial_run_id = trial.trial_run_id
            # A rank is taken while a live worker holds it; a dead worker's
            # rank can be taken over by its replacement.
            taken = tx.one(
                "SELECT 1 FROM workers WHERE trial_id = ? AND trial_run_id = ? AND rank = ?"
                f" AND state IN ({marks(LIVE)})",
                (worker.trial_id, worker.trial_run_id, worker.rank, *[s.value for s in LIVE]),
            )
            if taken:
                raise AlreadyExists("worker rank", f"{worker.rank} in run {worker.trial_run_id} of trial {worker.trial_id}")
            now = self.clock()
            worker.create_time = worker.update_time = now
            worker.last_heartbeat = now
            new_id = _insert(tx, "workers", records.worker_row(worker))
            requests.remember(tx, key, str(new_id), now)
            return self._worker(tx, new_id)

        return await self._write(write)

    async def get_worker(self, worker_id: int) -> Worker:
        return await self._read(lambda tx: self._worker(tx, worker_id), small=True)

    async def list_workers(self, flt: WorkerFilter, page: Page):
        def read(tx):
            q = Query()
            if flt.trial_id:
                self._trial(tx, flt.trial_id)
                q.add("workers.trial_id = ?", flt.trial_id)
            if flt.trial_run_id:
                q.add("workers.trial_run_id = ?", flt.trial_run_id)
            if flt.states:
                q.add(f"workers.state IN ({', '.join('?' for _ in flt.states)})", *flt.states)
            order = keyset(q, page, "workers")
            rows = tx.all(
                f"SELECT *, workers.{page.order.field} AS sort_value FROM workers {q.where()} {order} LIMIT ?",
                (*q.args, page.size + 1),
            )
            return Paged(*page_of(rows, page, records.worker_from_row))

        return await self._read(read)

    async def run_workers(self, trial_id: int, trial_run_id: int) -> list[Worker]:
        def read(tx):
            self._trial(tx, trial_id)
            rows = tx.all(
                "SELECT * FROM workers WHERE trial_id = ? AND trial_run_id = ? ORDER BY id", (trial_id, trial_run_id)
            )
            return [records.worker_from_row(r) for r in rows]

        return await self._read(read)

    async def change_worker(self, worker_id: int, apply) -> Worker:
        def write(tx):
            current = self._worker(tx, worker_id, lock=True)
            before = copy.deepcopy(current)
            now = self.clock()
            updated = apply(current, now)
            if updated == before:
                return before
            updated.update_time = now
            _update(tx, "workers", worker_id, records.worker_row(updated), records.worker_row(before))
            return self._worker(tx, worker_id)

        return await self._write(write, small=True)

    async def delete_worker(self, worker_id: int) -> Worker:
        def write(tx):
            worker = self._worker(tx, worker_id, lock=True)
            tx.run("DELETE FROM workers WHERE id = ?", (worker_id,))
            return worker

        return await self._write(write)



    # --- profiler ----------------------------------------------------------

    async def ingest_profiler(self, stream_id: str, items: list[IngestItem], key: RequestKey | None = None) -> IngestResult:
        def write(tx):
            now = self.clock()
            return requests.once(tx, key, now, lambda: profiler.ingest(tx, stream_id, items, now),
                                 IngestResult.from_record)

        return await self._write(write)

    async def profiler_stream_position(self, stream_id: str) -> int:
        return await self._read(lambda tx: profiler.stream_position(tx, stream_id), small=True)

    async def list_profiler_series(self, trial_id: int, after=None, limit=-1):
        return await self._read(lambda tx: profiler.list_series(tx, trial_id, after, limit))

    async def find_profiler_series(self, labels):
        return await self._read(lambda tx: profiler.find_series(tx, labels))

    async def profiler_summaries(self, series_id, start_ts, end_ts, start_batch, end_batch, after=None):
        return await self._read(
            lambda tx: profiler.summaries(tx, series_id, start_ts, end_ts, start_batch, end_batch, after)
        )

    async def profiler_chunks(self, chunk_ids):
        return await self._read(lambda tx: profiler.chunk_data(tx, chunk_ids))

    async def profiler_chunks_after(self, series_id, after_chunk_id, after_ts, limit):
        return await self._read(lambda tx: profiler.chunks_after(tx, series_id, after_chunk_id, after_ts, limit))

    async def delete_expired_profiler(self, now: int, default_days: int, limit: int) -> int:
        return await self._write(lambda tx: profiler.delete_expired(tx, now, default_days, limit))

    async def delete_expired_logs(self, now: int, default_days: int, limit: int) -> int:
        return await self._write(lambda tx: metrics.delete_expired_logs(tx, now, default_days, limit))

    # --- metrics, logs, Katib observation logs -------------------------------

    async def ingest_metrics(self, batch, key=None):
        small = len(batch.reports) + len(batch.points) + len(batch.debug_events) + len(batch.logs) <= 4

        def write(tx):
            now = self.clock()
            return requests.once(tx, key, now, lambda: metrics.ingest(tx, batch, now, parsed_studies=self._parsed_studies),
                                 m.IngestOutcome.from_record)

        return await self._write(write, small)

    async def report_metric_columns(self, batch, key=None):
        small = sum(len(block) for block in batch.blocks) <= 4
        return await self._write(lambda tx: metrics.ingest_columns(tx, batch, self.clock(), key, self._parsed_studies),
                                 small)

    async def metric_summaries(self, trial_ids, group="", names=None, after=None, limit=-1):
        return await self._read(lambda tx: metrics.series_summaries(tx, trial_ids, group, names, after, limit))

    async def metric_series_id(self, trial_id, group, name):
        return await self._read(lambda tx: metrics.find_series(tx, trial_id, group, name), small=True)

    async def metric_points(self, series_id, start_step, end_step, include_archived, after, limit):
        return await self._read(
            lambda tx: metrics.raw_points(tx, series_id, start_step, end_step, include_archived, after, limit)
        )

    async def metric_buckets(self, series_id, start_step, end_step, n, by_time, include_archived):
        return await self._read(
            lambda tx: metrics.downsample(tx, series_id, start_step, end_step, n, by_time, include_archived)
        )

    async def debug_events(self, trial_id, kinds, metric, after_id, limit):
        return await self._read(lambda tx: metrics.debug_events(tx, trial_id, kinds, metric, after_id, limit))

    async def list_logs(self, trial_id, from_tail, levels, worker, after_id, limit):
        return await self._read(lambda tx: metrics.list_logs(tx, trial_id, from_tail, levels, worker, after_id, limit))

    async def report_observations(self, trial_name, observations):
        return await self._write(lambda tx: metrics.report_observations(tx, trial_name, observations))

    async def get_observations(self, trial_name, metric_name, start, end):
        return await self._read(lambda tx: metrics.get_observations(tx, trial_name, metric_name, start, end))

    async def delete_observations(self, trial_name):
        return await self._write(lambda tx: metrics.delete_observations(tx, trial_name))

    async def mark_early_stopped(self, trial_name, time):
        return await self._write(lambda tx: metrics.mark_early_stopped(tx, trial_name, time), small=True)

    async def early_stopped(self, trial_names):
        return await self._read(lambda tx: metrics.early_stopped(tx, trial_names))

    # --- checkpoints ---------------------------------------------------------

    async def report_checkpoint(self, report):
        def write(tx):
            trial = self._trial(tx, report.trial_id, lock=True)
            current = checkpoints.get(tx, report.uuid)
            updated = checkpoint_rules.apply_report(current, report, trial, self.clock())
            updated.validation_metrics = checkpoints.validation_at(tx, updated.trial_id, updated.steps_completed)
            study = self._study(tx, trial.study_id) if trial.study_id else None
            updated.objective = checkpoints.signed(study, updated.validation_metrics)
            checkpoints.save(tx, updated)
            return updated

        return await self._write(write)

    async def get_checkpoint(self, uuid):
        return await self._read(lambda tx: checkpoints.require(tx, uuid), small=True)

    async def list_checkpoints(self, flt, page):
        return await self._read(lambda tx: checkpoints.list_page(tx, flt, page))

    async def update_checkpoint_metadata(self, uuid, metadata):
        def write(tx):
            c = checkpoints.require(tx, uuid)
            c.metadata = metadata
            c.update_time = self.clock()
            checkpoints.save(tx, c)
            return c

        return await self._write(write)

    async def delete_checkpoints(self, uuids, confirm):
        def write(tx):
            found = [checkpoints.require(tx, u) for u in uuids]
            now = self.clock()
            step = checkpoint_rules.confirm_deleted if confirm else checkpoint_rules.mark_for_deletion
            done = [step(c, now) for c in found]
            for c in done:
                checkpoints.save(tx, c)
            return done

        return await self._write(write)

    async def apply_checkpoint_retention(self, study_id, keep_best, keep_latest, dry_run):
        def write(tx):
            self._study(tx, study_id, lock=True)
            victims = checkpoint_rules.retention_victims(checkpoints.of_study(tx, study_id), keep_best, keep_latest)
            if dry_run:
                return victims
            now = self.clock()
            marked = [checkpoint_rules.mark_for_deletion(c, now) for c in victims]
            for c in marked:
                checkpoints.save(tx, c)
            return marked

        return await self._write(write)

    # --- tokens --------------------------------------------------------------

    async def create_token(self, token, only_if_none=False):
        def write(tx):
            if only_if_none and tokens.any_token(tx, lock=True):
                return None
            return tokens.insert(tx, token)

        return await self._write(write, small=True)

    async def any_token(self):
        return await self._read(tokens.any_token, small=True)

    async def token_by_hash(self, secret_hash):
        return await self._read(lambda tx: tokens.by_hash(tx, secret_hash), small=True)

    async def get_token(self, token_id):
        return await self._read(lambda tx: tokens.require(tx, token_id), small=True)

    async def list_tokens(self, page, include_inactive, include_trial_run, now):
        return await self._read(lambda tx: tokens.list_page(tx, page, include_inactive, include_trial_run, now))

    async def revoke_token(self, token_id, now):
        return await self._write(lambda tx: tokens.revoke(tx, token_id, now), small=True)
