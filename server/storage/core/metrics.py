"""Metric reports, points, series summaries and blocks: the ingest and its reads."""

from __future__ import annotations

import json
import logging
import math
from array import array
from collections import defaultdict

import numpy as np

from ...domain import metrics as m
from ...domain import retention
from ...domain.errors import DomainError, NotFound
from ...domain.idempotency import RequestKey
from ...domain.models import Study
from ..interface import DebugEvent, LogLine, MetricSeriesSummary, Observation
from . import checkpoints, requests, studies
from . import metric_chunks as chunks
from .query import row_limit
from .records import ParsedStudies, dumps, nan_to_null, null_to_nan, study_from_row
from .statements import Row, Tx

log = logging.getLogger(__name__)

REPORT_COLUMNS = ("trial_id", "trial_run_id", "group_name", "steps", "report_time", "body", "request_id", "digest")


class _Trials:
    """Trial facts an ingest needs, loaded once per transaction."""

    def __init__(self, tx: Tx, parsed: ParsedStudies | None = None):
        """parsed: a cache of parsed study bodies (records.study_from_row)."""
        self.tx = tx
        self.parsed = parsed
        self.rows: dict[int, Row | None] = {}
        self.studies: dict[int, Study | None] = {}
        self.rules: dict[int, list] = {}
        self.steps: dict[int, int | None] = {}

    def get(self, trial_id: int):
        if trial_id not in self.rows:
            # Locked: the trial's state decides what is stored, and the
            # ingest may update its validation.
            self.rows[trial_id] = self.tx.one(
                "SELECT id, study_id, state, trial_run_id, searcher_metric_value FROM trials WHERE id = ?"
                + self.tx.dialect.for_update,
                (trial_id,),
            )
        return self.rows[trial_id]

    def problem(self, trial_id: int, run: int) -> DomainError | None:
        row = self.get(trial_id)
        if row is None:
            return NotFound("trial", trial_id)
        return m.target_problem(trial_id, row["state"], row["trial_run_id"], run)

    def study(self, trial_id: int) -> Study | None:
        row = self.get(trial_id)
        if row is None or not row["study_id"]:
            return None
        sid = row["study_id"]
        if sid not in self.studies:
            srow = self.tx.one("SELECT * FROM studies WHERE id = ?", (sid,))
            self.studies[sid] = study_from_row(srow, self.parsed) if srow else None
        return self.studies[sid]

    def last_step(self, trial_id: int) -> int | None:
        """The highest step the trial reported (state reports or metrics
        other than those parsed from logs), None before the first."""
        if trial_id not in self.steps:
            steps_completed = self.tx.value("SELECT steps_completed FROM trials WHERE id = ?", (trial_id,))
            series_step = self.tx.value(
                "SELECT max(last_step) FROM metric_series WHERE trial_id = ? AND group_name != ?", (trial_id, m.LOGS)
            )
            reported = steps_completed or series_step is not None
            self.steps[trial_id] = max(steps_completed, series_step or 0) if reported else None
        return self.steps[trial_id]

    def log_rules(self, trial_id: int) -> list:
        if trial_id not in self.rules:
            row = self.get(trial_id)
            definitions = []
            study = self.study(trial_id)
            if study is not None:
                definitions.extend(study.metric_definitions)
            if row is not None:
                from ...domain.models import MetricDefinition

                body = self.tx.value("SELECT body FROM trials WHERE id = ?", (trial_id,))
                definitions.extend(MetricDefinition(**d) for d in json.loads(body).get("metric_definitions", []))
            self.rules[trial_id] = m.compile_rules(definitions)
        return self.rules[trial_id]


class _Series:
    """Get-or-create of series ids, cached per transaction."""

    def __init__(self, tx: Tx):
        self.tx = tx
        self.ids: dict[tuple, int] = {}

    def id_for(self, trial_id: int | None, group: str, name: str, trial_key: str | None = None) -> int:
        key = (trial_id, trial_key, group, name)
        if key in self.ids:
            return self.ids[key]
        series_id = self._find(trial_id, trial_key, group, name)
        if series_id is None:
            # Another process may create the same series meanwhile: the
            # unique index settles it and both use the one row.
            self.tx.run(
                "INSERT INTO metric_series (trial_id, trial_key, group_name, name) VALUES (?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (trial_id, trial_key, group, name),
            )
            series_id = self._find(trial_id, trial_key, group, name)
            assert series_id is not None
        self.ids[key] = series_id
        return series_id

    def _find(self, trial_id: int | None, trial_key: str | None, group: str, name: str) -> int | None:
        if trial_id is not None:
            return find_series(self.tx, trial_id, group, name)
        row = self.tx.one(
            "SELECT id FROM metric_series WHERE trial_key = ? AND group_name = ? AND name = ?", (trial_key, group, name)
        )
        return row[0] if row else None


def _load_summary(tx, series_id: int) -> tuple[m.SeriesSummary, int, int]:
    row = tx.one(
        "SELECT count, finite_count, total, vmin, vmax, last, last_step, last_time, recent, next_ordinal, small_chunks"
        " FROM metric_series WHERE id = ?",
        (series_id,),
    )
    recent = array("d")
    recent.frombytes(row[8])
    s = m.SeriesSummary(
        count=row[0], finite_count=row[1], total=null_to_nan(row[2]), vmin=null_to_nan(row[3]), vmax=null_to_nan(row[4]),
        last=null_to_nan(row[5]), last_step=row[6], last_time=row[7], recent=list(recent),
    )
    return s, row[9], row[10]


def _store_summary(tx, series_id: int, s: m.SeriesSummary, next_ordinal: int, small_chunks: int) -> None:
    tx.run(
        "UPDATE metric_series SET count = ?, finite_count = ?, total = ?, vmin = ?, vmax = ?, last = ?, last_step = ?,"
        " last_time = ?, recent = ?, next_ordinal = ?, small_chunks = ? WHERE id = ?",
        (s.count, s.finite_count, nan_to_null(s.total), nan_to_null(s.vmin), nan_to_null(s.vmax), nan_to_null(s.last),
         s.last_step, s.last_time, array("d", s.recent).tobytes(), next_ordinal, small_chunks, series_id),
    )


class PendingPoints:
    """Columns of points gathered for one series during an ingest."""

    __slots__ = ("steps", "runs", "times", "values", "raws")

    def __init__(self) -> None:
        self.steps: list = []
        self.runs: list = []
        self.times: list = []
        self.values: list = []
        self.raws: list = []

    def add(self, step: int, run: int, time: int, value: float, raw: str | None = None) -> None:
        self.steps.append(step)
        self.runs.append(run)
        self.times.append(time)
        self.values.append(value)
        self.raws.append(raw)

    def __len__(self) -> int:
        return len(self.steps)

    def columns(self) -> m.PointColumns:
        return m.PointColumns.build(self.steps, self.runs, self.times, self.values, self.raws)


def append_points(tx, series_id: int, points: PendingPoints, conflicts: list | None = None) -> int:
    """Appends the points not stored yet; returns how many. With conflicts,
    collects the (step, run) of those dropped for another value."""
    if not len(points):
        return 0
    return append_columns(tx, series_id, points.columns(), conflicts)


def append_columns(tx, series_id: int, cols: m.PointColumns, conflicts: list | None = None) -> int:
    """append_points() of points that are columns already."""
    summary, ordinal, small = _load_summary(tx, series_id)
    stored, small = chunks.append(tx, series_id, summary, cols, small, conflicts)
    if stored:
        _store_summary(tx, series_id, summary, ordinal + stored, small)
    return stored


def rebuild_series(tx, series_id: int) -> None:
    """Recomputes a series' summary from its live points (after a rollback)."""
    _, ordinal, small = _load_summary(tx, series_id)
    _store_summary(tx, series_id, chunks.rebuild_summary(tx, series_id), ordinal, small)


def _rollback(tx, trial_id: int, run: int, step: int) -> list[int]:
    """On the first report of a newer run, archives what older runs reported
    past its step; returns the series touched."""
    seen_run = tx.value("SELECT metrics_run FROM trials WHERE id = ?", (trial_id,))
    if run <= seen_run:
        return []
    tx.run("UPDATE trials SET metrics_run = ? WHERE id = ?", (run, trial_id))
    touched = [
        sid for (sid,) in tx.all("SELECT id FROM metric_series WHERE trial_id = ?", (trial_id,))
        if chunks.archive_after(tx, sid, run, step)
    ]
    tx.run(
        "UPDATE metric_reports SET archived = 1 WHERE trial_id = ? AND steps > ? AND trial_run_id < ?",
        (trial_id, step, run),
    )
    return touched


def _workload(report: m.ReportDraft, now: int) -> dict:
    return {
        "end_time": report.report_time or now,
        "metrics": report.metrics,
        "total_batches": report.steps,
    }


def _note_validation(tx, trials: _Trials, report: m.ReportDraft, now: int) -> None:
    row = trials.get(report.trial_id)
    workload = dumps(_workload(report, now))
    signed = m.signed_objective(trials.study(report.trial_id), report.metrics)
    best = row["searcher_metric_value"]
    if signed is not None and (best is None or signed < best):
        tx.run(
            "UPDATE trials SET latest_validation = ?, best_validation = ?, searcher_metric_value = ? WHERE id = ?",
            (workload, workload, signed, report.trial_id),
        )
        studies.after_improvement(tx, trials.study(report.trial_id), report.trial_id, signed, now)
        trials.rows.pop(report.trial_id, None)
    else:
        tx.run("UPDATE trials SET latest_validation = ? WHERE id = ?", (workload, report.trial_id))
    # Checkpoints at this step carry the newest validation of it, whether
    # they were reported before or after it.
    for checkpoint in checkpoints.at_step(tx, report.trial_id, report.steps):
        checkpoint.validation_metrics = report.metrics
        checkpoint.objective = signed
        checkpoints.save(tx, checkpoint, totals=False)


def _classify_reports(tx, reports: list[m.ReportDraft]) -> tuple[set[int], dict[int, DomainError]]:
    """ids of the reports not stored before, also among themselves, and the
    refusal of each that reuses a stored step with other values or a
    request_id of its trial for another report. A report matching a stored
    one in both is a retry, in neither set. One range query per (trial,
    group, run)."""
    taken: dict[tuple, dict[int, bytes | None]] = {}
    by_key: dict[tuple, list[m.ReportDraft]] = defaultdict(list)
    for r in reports:
        by_key[(r.trial_id, r.group, r.trial_run_id)].append(r)
    for (trial_id, group, run), items in by_key.items():
        steps = [r.steps for r in items]
        taken[(trial_id, group, run)] = dict(tx.all(
            "SELECT steps, digest FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ?"
            " AND steps BETWEEN ? AND ?",
            (trial_id, group, run, min(steps), max(steps)),
        ))
    # (trial, request_id) -> (group, run, step, digest) of the report it named.
    named: dict[tuple, tuple] = {}
    for r in reports:
        if r.request_id and (r.trial_id, r.request_id) not in named:
            row = tx.one(
                "SELECT group_name, trial_run_id, steps, digest FROM metric_reports WHERE trial_id = ? AND request_id = ?",
                (r.trial_id, r.request_id),
            )
            if row is not None:
                named[(r.trial_id, r.request_id)] = tuple(row)
    fresh: set[int] = set()
    refused: dict[int, DomainError] = {}
    for r in reports:
        stored = taken[(r.trial_id, r.group, r.trial_run_id)]
        earlier = named.get((r.trial_id, r.request_id)) if r.request_id else None
        if earlier is not None and (earlier[:3] != (r.group, r.trial_run_id, r.steps) or not r.same_values(earlier[3])):
            refused[id(r)] = r.request_id_reused()
        elif r.steps in stored:
            if not r.same_values(stored[r.steps]):
                refused[id(r)] = r.conflict()
        elif earlier is None:
            stored[r.steps] = r.digest
            if r.request_id:
                named[(r.trial_id, r.request_id)] = (r.group, r.trial_run_id, r.steps, r.digest)
            fresh.add(id(r))
    return fresh, refused


def _report_body(report: m.ReportDraft) -> str:
    # Values live in their series; validation reports keep them in the
    # report too: checkpoints are ranked by them.
    return dumps({"metrics": report.metrics}) if report.group == m.VALIDATION else "{}"


def _ingest_one_report(tx, report: m.ReportDraft, now: int,
                       parsed: ParsedStudies | None = None) -> m.IngestOutcome | None:
    """The common single report of a running trial, in the fewest statements:
    the report row's unique keys do the deduplication and each metric is a
    one-point append. None when the general path must handle it (an error to
    report, a restarted run to roll back, a point not newer than its series)."""
    if len(report.metrics) > 16:
        return None
    validation = report.group == m.VALIDATION
    # A validation report updates the trial's row: it is locked then.
    row = tx.one("SELECT id, study_id, state, trial_run_id, searcher_metric_value, metrics_run FROM trials WHERE id = ?"
                 + (tx.dialect.for_update if validation else ""), (report.trial_id,))
    if row is None or m.target_problem(report.trial_id, row["state"], row["trial_run_id"], report.trial_run_id):
        return None
    run = report.trial_run_id or row["trial_run_id"]
    if run > row["metrics_run"]:
        return None
    series = _Series(tx)
    loaded = []
    for name, value in report.metrics.items():
        sid = series.id_for(report.trial_id, report.group, name)
        summary, ordinal, small = _load_summary(tx, sid)
        if report.steps <= summary.last_step:
            return None
        loaded.append((sid, value, summary, ordinal, small))
    inserted = tx.run(
        "INSERT INTO metric_reports (trial_id, trial_run_id, group_name, steps, report_time, body, request_id, digest)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (report.trial_id, run, report.group, report.steps, report.report_time or now, _report_body(report),
         report.request_id or None, report.digest),
    )
    if not inserted:
        # A retry or a conflict: the general path tells which.
        return None
    if validation:
        trials = _Trials(tx, parsed)
        trials.rows[report.trial_id] = row
        _note_validation(tx, trials, report, now)
    out = m.IngestOutcome(trial_ids={report.trial_id})
    time = report.report_time or now
    for sid, value, summary, ordinal, small in loaded:
        small = chunks.append_one(tx, sid, summary, report.steps, run, time, value, small)
        _store_summary(tx, sid, summary, ordinal + 1, small)
    out.added = 1
    out.report_created.append(True)
    return out


def _refuse_as_a_whole(trials: _Trials, batch: m.IngestBatch) -> None:
    """Raises the refusal of the first item that cannot be stored, before
    anything is written (an all-or-nothing batch)."""
    for report in batch.reports:
        problem = trials.problem(report.trial_id, report.trial_run_id)
        if problem:
            raise problem
    for items in (batch.points, batch.debug_events, batch.logs):
        for item in items:
            if trials.get(item.trial_id) is None:
                raise NotFound("trial", item.trial_id)


def ingest(tx: Tx, batch: m.IngestBatch, now: int, admitted: bool = False,
           parsed_studies: ParsedStudies | None = None) -> m.IngestOutcome:
    """Stores a batch; items that cannot be stored are listed in the
    outcome's errors. admitted: the reports were checked and acknowledged
    already, so only a trial deleted since then refuses them.
    parsed_studies: a cache of parsed study bodies."""
    trials = _Trials(tx, parsed_studies)
    if batch.all_or_nothing:
        _refuse_as_a_whole(trials, batch)
    if len(batch.reports) == 1 and not (batch.points or batch.debug_events or batch.logs):
        fast = _ingest_one_report(tx, batch.reports[0], now, parsed_studies)
        if fast is not None:
            return fast
    out = m.IngestOutcome()
    series = _Series(tx)
    by_series: dict[int, PendingPoints] = defaultdict(PendingPoints)
    rebuild: set[int] = set()

    accepted = []
    problem: DomainError | None
    # One flag per report, in the order of batch.reports.
    out.report_created = [False] * len(batch.reports)
    for position, (report, index) in enumerate(zip(batch.reports, batch.report_index)):
        if admitted:
            problem = None if trials.get(report.trial_id) else NotFound("trial", report.trial_id)
        else:
            problem = trials.problem(report.trial_id, report.trial_run_id)
        if problem:
            out.errors.append(("reports", index, problem))
            continue
        report.trial_run_id = report.trial_run_id or trials.get(report.trial_id)["trial_run_id"]
        accepted.append((report, index, position))
    fresh, refusals = _classify_reports(tx, [report for report, _, _ in accepted])
    rows = []
    # Reports of one trial, group and run with the same metric names (the
    # usual batch) become columns with one comprehension per metric.
    runs_of: dict[tuple, list[m.ReportDraft]] = defaultdict(list)
    rolled_back: dict[int, int] = {}
    for report, index, position in accepted:
        if id(report) in refusals:
            out.errors.append(("reports", index, refusals[id(report)]))
            continue
        if id(report) not in fresh:
            out.duplicates += 1
            continue
        run = report.trial_run_id
        # Only the first report of a newer run rolls back the older runs.
        if run > rolled_back.get(report.trial_id, 1):
            rebuild.update(_rollback(tx, report.trial_id, run, report.steps))
            rolled_back[report.trial_id] = run
        rows.append((report.trial_id, run, report.group, report.steps, report.report_time or now, _report_body(report),
                     report.request_id or None, report.digest))
        if report.group == m.VALIDATION:
            _note_validation(tx, trials, report, now)
        runs_of[(report.trial_id, report.group, run, tuple(report.metrics))].append(report)
        out.report_created[position] = True
        out.added += 1
        out.trial_ids.add(report.trial_id)
    for (trial_id, group, run, names), reports in runs_of.items():
        steps = [r.steps for r in reports]
        times = [r.report_time or now for r in reports]
        runs = [run] * len(reports)
        for name in names:
            pending = by_series[series.id_for(trial_id, group, name)]
            pending.steps.extend(steps)
            pending.runs.extend(runs)
            pending.times.extend(times)
            pending.values.extend([r.metrics[name] for r in reports])
            pending.raws.extend([None] * len(reports))
    # New by _classify_reports, under the trial's lock: no key is taken.
    tx.insert_rows("metric_reports", REPORT_COLUMNS, rows)

    # Points from reports are new (their report was); event points may be
    # retries, so they are counted by what append_points actually stored.
    event_points: dict[int, PendingPoints] = defaultdict(PendingPoints)
    # (series, step, run, value) -> where the point came from, to name a conflict.
    event_origin: dict[tuple, tuple[str, int, m.PointDraft]] = {}
    for point, (list_name, index) in zip(batch.points, batch.point_index):
        problem = trials.problem(point.trial_id, point.trial_run_id)
        if problem:
            out.errors.append((list_name, index, problem))
            continue
        run = point.trial_run_id or trials.get(point.trial_id)["trial_run_id"]
        sid = series.id_for(point.trial_id, point.group, point.name)
        event_points[sid].add(point.step, run, point.time or now, point.value, point.raw)
        event_origin.setdefault((sid, point.step, run, float(point.value).hex()), (list_name, index, point))
        out.trial_ids.add(point.trial_id)

    for event, index in zip(batch.debug_events, batch.event_index):
        problem = trials.problem(event.trial_id, 0)
        if problem:
            out.errors.append(("events", index, problem))
            continue
        tx.run(
            "INSERT INTO debug_events (trial_id, kind, metric, variant, iteration, time, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.trial_id, event.kind, event.metric, event.variant, event.iteration, event.time or now, dumps(event.payload)),
        )
        out.added += 1
        out.trial_ids.add(event.trial_id)

    log_rows = []
    log_points: dict[int, list] = defaultdict(list)
    for line, index in zip(batch.logs, batch.log_index):
        if trials.get(line.trial_id) is None:
            out.errors.append(("logs", index, NotFound("trial", line.trial_id)))
            continue
        time = line.time or now
        log_rows.append((line.trial_id, time, line.level, line.worker, line.stream, line.rank, line.message))
        out.added += 1
        out.trial_ids.add(line.trial_id)
        parsed = m.extract_log_metrics(trials.log_rules(line.trial_id), line.message)
        if not parsed:
            continue
        run = trials.get(line.trial_id)["trial_run_id"]
        line_step = next((step for _, _, step in parsed if step is not None), None)
        if line_step is None:
            line_step = trials.last_step(line.trial_id)
        for name, value, step in parsed:
            sid = series.id_for(line.trial_id, m.LOGS, name)
            log_points[sid].append((line_step if step is None else step, run, time, value))
        validation = m.log_validation(trials.study(line.trial_id), line.trial_id, run, line_step or 0, time,
                                      {name: value for name, value, _ in parsed})
        if validation is not None:
            _note_validation(tx, trials, validation, now)
    tx.insert_rows("task_logs", ("trial_id", "time", "level", "worker", "stream", "rank", "message"), log_rows)
    for sid, found in log_points.items():
        if any(step is None for step, *_ in found):
            # A trial that reported no step yet: points count up per series.
            next_ordinal = tx.value("SELECT next_ordinal FROM metric_series WHERE id = ?", (sid,))
            found = [(next_ordinal + i if step is None else step, run, t, v) for i, (step, run, t, v) in enumerate(found)]
        for step, run, t, v in found:
            by_series[sid].add(step, run, t, v)
        out.log_points += len(found)

    for sid, points in by_series.items():
        append_points(tx, sid, points)
    for sid, points in event_points.items():
        conflicts: list = []
        stored = append_points(tx, sid, points, conflicts)
        out.added += stored
        out.duplicates += len(points) - stored - len(conflicts)
        for step, run, value in conflicts:
            list_name, index, point = event_origin[(sid, step, run, value.hex())]
            out.errors.append((list_name, index, point.conflict()))
    for sid in rebuild:
        rebuild_series(tx, sid)
    return out


def _fresh_rows(tx: Tx, batch: m.ColumnBatch, run: int, digests: list[list[bytes]],
                out: m.ColumnOutcome) -> list[np.ndarray]:
    """Per block, which rows are new reports. A row at a step its group
    already has, stored or earlier in the batch, is a retry with the same
    values (counted) and rejected with others. One range query per group."""
    fresh = [np.zeros(len(b), dtype=bool) for b in batch.blocks]
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, block in enumerate(batch.blocks):
        if len(block):
            by_group[block.group].append(i)
    for group, indexes in by_group.items():
        steps = np.concatenate([batch.blocks[i].steps for i in indexes])
        taken: dict[int, bytes | None] = dict(tx.tuples(
            "SELECT steps, digest FROM metric_reports WHERE trial_id = ? AND group_name = ? AND trial_run_id = ?"
            " AND steps BETWEEN ? AND ?",
            (batch.trial_id, group, run, int(steps.min()), int(steps.max())),
        ))
        if not taken and np.unique(steps).size == steps.size:
            for i in indexes:
                fresh[i][:] = True
            continue
        for i in indexes:
            for row, (step, digest) in enumerate(zip(batch.blocks[i].steps.tolist(), digests[i])):
                if step not in taken:
                    taken[step] = digest
                    fresh[i][row] = True
                    continue
                earlier = taken[step]
                # Reports stored before digests were kept match any values.
                if earlier is None or bytes(earlier) == digest:
                    out.rows_repeated += 1
                else:
                    out.reject(i, row, step, m.report_conflict(batch.trial_id, group, step))
    return fresh


def ingest_columns(tx: Tx, batch: m.ColumnBatch, now: int, key: RequestKey | None,
                   parsed: ParsedStudies | None = None) -> m.ColumnOutcome:
    """Stores a columnar batch of one trial's reports: every row is the
    report ingest() would store, with the same checks, validation updates
    and rollback, but with a query per group and a write per series rather
    than statements per row. A trial that refuses reports refuses the whole
    batch; so does a request key used for another batch, while one seen
    before returns its first outcome and stores nothing."""
    trials = _Trials(tx, parsed)
    trial = trials.get(batch.trial_id)
    if trial is None:
        raise NotFound("trial", batch.trial_id)
    # Read under the trial's lock: a replica running the same request at
    # the same time waits for it and then finds the record.
    earlier = requests.recall(tx, key)
    if earlier is not None:
        return m.ColumnOutcome.from_record(earlier)
    problem = m.target_problem(batch.trial_id, trial["state"], trial["trial_run_id"], batch.trial_run_id)
    if problem:
        raise problem
    run = batch.trial_run_id or trial["trial_run_id"]
    out = m.ColumnOutcome()
    digests = [block.digests() for block in batch.blocks]
    fresh = _fresh_rows(tx, batch, run, digests, out)

    rebuild: list[int] = []
    first = next(((b, int(np.argmax(f))) for b, f in enumerate(fresh) if f.any()), None)
    if first is not None and run > 1:
        # As in ingest(): the first new report of a newer run rolls back the older runs.
        rebuild = _rollback(tx, batch.trial_id, run, int(batch.blocks[first[0]].steps[first[1]]))

    series = _Series(tx)
    rows: list[tuple] = []
    parts: dict[int, list[m.PointColumns]] = defaultdict(list)
    for i, (block, keep) in enumerate(zip(batch.blocks, fresh)):
        picked = np.flatnonzero(keep)
        if not picked.size:
            continue
        steps = block.steps[picked]
        times = block.times[picked]
        times = np.where(times == 0, now, times)
        step_list, time_list = steps.tolist(), times.tolist()
        row_digests = digests[i]
        if block.group == m.VALIDATION:
            for row, step, time in zip(picked.tolist(), step_list, time_list):
                metrics = block.row_metrics(row)
                rows.append((batch.trial_id, run, block.group, step, time, dumps({"metrics": metrics}), None,
                             row_digests[row]))
                _note_validation(tx, trials, m.ReportDraft(batch.trial_id, run, block.group, step, time, metrics), now)
        else:
            rows.extend((batch.trial_id, run, block.group, step, time, "{}", None, row_digests[row])
                        for row, step, time in zip(picked.tolist(), step_list, time_list))
        runs = np.full(picked.size, run, dtype=np.int64)
        values = block.values[picked]
        present = block.present[picked] if block.present is not None else None
        for j, name in enumerate(block.names):
            column = np.ascontiguousarray(values[:, j])
            if present is None:
                cols = m.PointColumns(steps, runs, times, column, np.zeros(picked.size, dtype=bool))
            else:
                has = present[:, j]
                if not has.any():
                    continue
                cols = m.PointColumns(steps[has], runs[has], times[has], column[has], np.zeros(int(has.sum()), dtype=bool))
            parts[series.id_for(batch.trial_id, block.group, name)].append(cols)
    out.rows_stored = len(rows)
    # New by _fresh_rows, under the trial's lock: no key is taken.
    tx.insert_rows("metric_reports", REPORT_COLUMNS, rows)
    for sid, found in parts.items():
        out.points_stored += append_columns(tx, sid, m.PointColumns.concat(found))
    for sid in rebuild:
        rebuild_series(tx, sid)
    requests.remember(tx, key, out.to_record(), now)
    return out


# --- reads -------------------------------------------------------------------

SUMMARY_COLUMNS = (
    "id, trial_id, trial_key, group_name, name, count, finite_count, total, vmin, vmax, last, last_step, last_time, recent"
)


def summary_from_row(row) -> MetricSeriesSummary:
    recent = array("d")
    recent.frombytes(row["recent"])
    s = m.SeriesSummary(
        count=row["count"], finite_count=row["finite_count"], total=null_to_nan(row["total"]), vmin=null_to_nan(row["vmin"]),
        vmax=null_to_nan(row["vmax"]), last=null_to_nan(row["last"]), last_step=row["last_step"],
        last_time=row["last_time"], recent=list(recent),
    )
    return MetricSeriesSummary(row["id"], row["trial_id"] or 0, row["group_name"], row["name"], s)


def series_summaries(tx, trial_ids: list[int], group: str = "", names: list[str] | None = None,
                     after: tuple | None = None, limit: int = -1) -> list[MetricSeriesSummary]:
    for trial_id in trial_ids:
        if tx.one("SELECT 1 FROM trials WHERE id = ?", (trial_id,)) is None:
            raise NotFound("trial", trial_id)
    marks = ", ".join("?" for _ in trial_ids)
    sql = f"SELECT {SUMMARY_COLUMNS} FROM metric_series WHERE trial_id IN ({marks})"
    args: list = list(trial_ids)
    if group:
        sql += " AND group_name = ?"
        args.append(group)
    if names:
        sql += f" AND name IN ({', '.join('?' for _ in names)})"
        args.extend(names)
    if after is not None:
        sql += " AND (trial_id, group_name, name) > (?, ?, ?)"
        args.extend(after)
    sql += " ORDER BY trial_id, group_name, name LIMIT ?"
    args.append(row_limit(limit))
    return [summary_from_row(r) for r in tx.all(sql, args)]


def summaries_by_trial(tx, trial_ids: list[int]) -> dict[int, list[MetricSeriesSummary]]:
    out: dict[int, list[MetricSeriesSummary]] = defaultdict(list)
    for i in range(0, len(trial_ids), 500):
        part = trial_ids[i:i + 500]
        marks = ", ".join("?" for _ in part)
        for row in tx.all(
            f"SELECT {SUMMARY_COLUMNS} FROM metric_series WHERE trial_id IN ({marks}) ORDER BY group_name, name", part
        ):
            out[row["trial_id"]].append(summary_from_row(row))
    return out


def raw_points(tx, series_id: int, start_step: int, end_step: int, include_archived: bool,
               after: tuple[int, int] | None, limit: int) -> m.PointColumns:
    return chunks.read(tx, series_id, start_step, end_step, include_archived, after, limit)


def find_series(tx, trial_id: int, group: str, name: str) -> int | None:
    row = tx.one(
        "SELECT id FROM metric_series WHERE trial_id = ? AND group_name = ? AND name = ?", (trial_id, group, name)
    )
    return row[0] if row else None


def debug_events(tx, trial_id: int, kinds: list[str], metric: str, after_id: int, limit: int) -> list[DebugEvent]:
    if tx.one("SELECT 1 FROM trials WHERE id = ?", (trial_id,)) is None:
        raise NotFound("trial", trial_id)
    sql = "SELECT id, kind, metric, variant, iteration, time, payload FROM debug_events WHERE trial_id = ? AND id > ?"
    args: list = [trial_id, after_id]
    if kinds:
        sql += f" AND kind IN ({', '.join('?' for _ in kinds)})"
        args.extend(kinds)
    if metric:
        sql += " AND metric = ?"
        args.append(metric)
    sql += " ORDER BY id LIMIT ?"
    args.append(limit)
    return [DebugEvent(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in tx.tuples(sql, args)]


def downsample(tx, series_id: int, start_step: int, end_step: int, n: int, by_time: bool,
               include_archived: bool) -> list[m.Block]:
    return chunks.downsample(tx, series_id, start_step, end_step, n, by_time, include_archived)


def list_logs(tx, trial_id: int, from_tail: bool, levels: list[str], worker: str, after_id: int | None,
              limit: int) -> list[LogLine]:
    if tx.one("SELECT 1 FROM trials WHERE id = ?", (trial_id,)) is None:
        raise NotFound("trial", trial_id)
    sql = "SELECT id, time, level, worker, stream, rank, message FROM task_logs WHERE trial_id = ?"
    args: list = [trial_id]
    if levels:
        sql += f" AND level IN ({', '.join('?' for _ in levels)})"
        args.extend(levels)
    if worker:
        sql += " AND worker = ?"
        args.append(worker)
    if after_id is not None:
        sql += " AND id < ?" if from_tail else " AND id > ?"
        args.append(after_id)
    sql += f" ORDER BY id {'DESC' if from_tail else 'ASC'} LIMIT ?"
    args.append(limit)
    return [LogLine(*r) for r in tx.tuples(sql, args)]


def delete_expired_logs(tx: Tx, now: int, default_days: int, limit: int) -> int:
    """Deletes up to limit task log lines older than the retention of their
    trial; one seek of the (trial_id, time) index per trial."""
    ids: list[tuple] = []
    for trial_id, cutoff in expiring_trials(tx, now, default_days):
        ids.extend(tx.tuples(
            "SELECT id, time FROM task_logs WHERE trial_id = ? AND time < ? LIMIT ?", (trial_id, cutoff, limit - len(ids))
        ))
        if len(ids) >= limit:
            break
    tx.run_many("DELETE FROM task_logs WHERE id = ? AND time = ?", ids)
    return len(ids)


def expiring_trials(tx: Tx, now: int, default_days: int, candidates: str = "") -> list[tuple[int, int]]:
    """(trial id, cutoff time) of every trial whose lines and samples expire
    at all; candidates: a query of the trial ids to consider, else all."""
    where = f" WHERE id IN ({candidates})" if candidates else ""
    rows = tx.tuples(f"SELECT id, log_retention_days FROM trials{where}")
    found = [(trial_id, retention.cutoff(days, default_days, now)) for trial_id, days in rows]
    return [(trial_id, cutoff) for trial_id, cutoff in found if cutoff is not None]


KATIB_GROUP = "katib"


def report_observations(tx, trial_name: str, observations: list[tuple[str, int, float | None, str]]) -> None:
    """Katib observation logs become points of group "katib". A trial with
    that name links them to it; an unknown name keeps them under the name."""
    row = tx.one("SELECT id FROM trials WHERE name = ? ORDER BY id DESC LIMIT 1", (trial_name,))
    trial_id = row[0] if row else None
    series = _Series(tx)
    grouped: dict[int, list] = defaultdict(list)
    for name, time, value, raw in observations:
        sid = series.id_for(trial_id, KATIB_GROUP, name, None if trial_id else trial_name)
        grouped[sid].append((time, value, raw))
    for sid, found in grouped.items():
        next_ordinal = tx.value("SELECT next_ordinal FROM metric_series WHERE id = ?", (sid,))
        points = PendingPoints()
        for i, (time, value, raw) in enumerate(found):
            points.add(next_ordinal + i, 0, time, math.nan if value is None else value, raw)
        append_points(tx, sid, points)


def _katib_series(tx, trial_name: str, metric_name: str) -> list[tuple[int, str]]:
    sql = (
        "SELECT s.id, s.name FROM metric_series s LEFT JOIN trials t ON t.id = s.trial_id"
        " WHERE s.group_name = ? AND (s.trial_key = ? OR t.name = ?)"
    )
    args: list = [KATIB_GROUP, trial_name, trial_name]
    if metric_name:
        sql += " AND s.name = ?"
        args.append(metric_name)
    return tx.all(sql + " ORDER BY s.id", args)


def get_observations(tx, trial_name: str, metric_name: str, start: int | None, end: int | None) -> list[Observation]:
    """Ordered by time."""
    out = []
    lo = -(2**62) if start is None else start
    hi = 2**62 if end is None else end
    for sid, name in _katib_series(tx, trial_name, metric_name):
        cols = chunks.read(tx, sid, -(2**62), 2**62, True, None, 2**62)
        raws = cols.raws or [None] * len(cols)
        for time, value, raw in zip(cols.times.tolist(), cols.values.tolist(), raws):
            if lo <= time <= hi:
                out.append(Observation(name, time, raw if raw is not None else repr(value)))
    out.sort(key=lambda o: o.time)
    return out


def delete_observations(tx, trial_name: str) -> int:
    ids = [sid for sid, _ in _katib_series(tx, trial_name, "")]
    tx.run_many("DELETE FROM metric_series WHERE id = ?", [(i,) for i in ids])
    tx.run("DELETE FROM katib_early_stopped WHERE trial_name = ?", (trial_name,))
    return len(ids)


def mark_early_stopped(tx, trial_name: str, time: int) -> int | None:
    tx.run("INSERT INTO katib_early_stopped (trial_name, stop_time) VALUES (?, ?) ON CONFLICT DO NOTHING",
           (trial_name, time))
    row = tx.one("SELECT id FROM trials WHERE name = ? ORDER BY id DESC LIMIT 1", (trial_name,))
    return row[0] if row else None


# Names per IN list, well below every engine's limit on placeholders.
_NAMES_PER_QUERY = 500


def early_stopped(tx, trial_names: list[str]) -> set[str]:
    names = sorted(set(trial_names))
    found: set[str] = set()
    for i in range(0, len(names), _NAMES_PER_QUERY):
        part = names[i : i + _NAMES_PER_QUERY]
        found.update(r[0] for r in tx.tuples(
            f"SELECT trial_name FROM katib_early_stopped WHERE trial_name IN ({', '.join('?' for _ in part)})", part))
    return found


def store_admitted(tx: Tx, reports: list[m.ReportDraft], now: int, parsed: ParsedStudies | None = None) -> None:
    """Stores reports that were checked and acknowledged already (from a
    journal). One that cannot be stored (its trial was deleted meanwhile) is
    logged and does not hold back the others. A failure of the database
    itself (disk full, I/O) is raised: the whole batch is then kept and
    stored again later."""
    if not reports:
        return
    try:
        with tx.savepoint():
            outcome = ingest(tx, m.IngestBatch(reports=reports, report_index=list(range(len(reports)))), now,
                             admitted=True, parsed_studies=parsed)
    except tx.failures:
        raise
    except Exception:  # noqa: BLE001 - retried one by one below
        if len(reports) == 1:
            log.exception("dropped acknowledged report that cannot be stored: %r", reports[0])
            return
        for report in reports:
            store_admitted(tx, [report], now, parsed)
        return
    for _, index, err in outcome.errors:
        log.warning("dropped acknowledged report of trial %d step %d: %s", reports[index].trial_id,
                    reports[index].steps, err.message)
