"""Metric reports, points, series summaries and blocks in SQLite."""

from __future__ import annotations

import json
import math
import sqlite3
from array import array
from collections import defaultdict

from ...domain import metrics as m
from ...domain.errors import NotFound
from ...domain.models import Study
from .codec import dumps


def nan_to_null(x: float | None):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def null_to_nan(x) -> float:
    return math.nan if x is None else float(x)


class _Trials:
    """Trial facts an ingest needs, loaded once per transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.rows: dict[int, sqlite3.Row | None] = {}
        self.studies: dict[int, Study | None] = {}
        self.rules: dict[int, list] = {}

    def get(self, trial_id: int):
        if trial_id not in self.rows:
            self.rows[trial_id] = self.conn.execute(
                "SELECT id, study_id, state, trial_run_id, searcher_metric_value, body FROM trials WHERE id = ?",
                (trial_id,),
            ).fetchone()
        return self.rows[trial_id]

    def problem(self, trial_id: int, run: int) -> tuple[str, str] | None:
        row = self.get(trial_id)
        if row is None:
            return "NOT_FOUND", f"trial {trial_id} not found"
        return m.target_problem(trial_id, row["state"], row["trial_run_id"], run)

    def study(self, trial_id: int) -> Study | None:
        row = self.get(trial_id)
        if row is None or not row["study_id"]:
            return None
        sid = row["study_id"]
        if sid not in self.studies:
            from .codec import study_from_row

            srow = self.conn.execute("SELECT * FROM studies WHERE id = ?", (sid,)).fetchone()
            self.studies[sid] = study_from_row(srow) if srow else None
        return self.studies[sid]

    def log_rules(self, trial_id: int) -> list:
        if trial_id not in self.rules:
            row = self.get(trial_id)
            definitions = []
            study = self.study(trial_id)
            if study is not None:
                definitions.extend(study.metric_definitions)
            if row is not None:
                from ...domain.models import MetricDefinition

                definitions.extend(MetricDefinition(**d) for d in json.loads(row["body"]).get("metric_definitions", []))
            self.rules[trial_id] = m.compile_rules(definitions)
        return self.rules[trial_id]


class _Series:
    """Get-or-create of series ids, cached per transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.ids: dict[tuple, int] = {}

    def id_for(self, trial_id: int | None, group: str, name: str, trial_key: str | None = None) -> int:
        key = (trial_id, trial_key, group, name)
        if key in self.ids:
            return self.ids[key]
        if trial_id is not None:
            row = self.conn.execute(
                "SELECT id FROM metric_series WHERE trial_id = ? AND group_name = ? AND name = ?", (trial_id, group, name)
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT id FROM metric_series WHERE trial_key = ? AND group_name = ? AND name = ?", (trial_key, group, name)
            ).fetchone()
        if row is None:
            cur = self.conn.execute(
                "INSERT INTO metric_series (trial_id, trial_key, group_name, name) VALUES (?, ?, ?, ?)",
                (trial_id, trial_key, group, name),
            )
            series_id = cur.lastrowid
        else:
            series_id = row[0]
        self.ids[key] = series_id
        return series_id


def _load_summary(conn, series_id: int) -> tuple[m.SeriesSummary, int]:
    row = conn.execute(
        "SELECT count, finite_count, total, vmin, vmax, last, last_step, last_time, recent, next_ordinal"
        " FROM metric_series WHERE id = ?",
        (series_id,),
    ).fetchone()
    recent = array("d")
    recent.frombytes(row[8])
    s = m.SeriesSummary(
        count=row[0], finite_count=row[1], total=row[2], vmin=null_to_nan(row[3]), vmax=null_to_nan(row[4]),
        last=null_to_nan(row[5]), last_step=row[6], last_time=row[7], recent=list(recent),
    )
    return s, row[9]


def _store_summary(conn, series_id: int, s: m.SeriesSummary, next_ordinal: int) -> None:
    conn.execute(
        "UPDATE metric_series SET count = ?, finite_count = ?, total = ?, vmin = ?, vmax = ?, last = ?, last_step = ?,"
        " last_time = ?, recent = ?, next_ordinal = ? WHERE id = ?",
        (s.count, s.finite_count, s.total, nan_to_null(s.vmin), nan_to_null(s.vmax), nan_to_null(s.last),
         s.last_step, s.last_time, array("d", s.recent).tobytes(), next_ordinal, series_id),
    )


def _load_block(conn, series_id: int, block: int) -> m.Block:
    row = conn.execute(
        "SELECT count, first_step, last_step, first_time, last_time, first, last, vmin, vmax"
        " FROM metric_blocks WHERE series_id = ? AND block = ?",
        (series_id, block),
    ).fetchone()
    if row is None:
        return m.Block()
    return m.Block(row[0], row[1], row[2], row[3], row[4], null_to_nan(row[5]), null_to_nan(row[6]),
                   null_to_nan(row[7]), null_to_nan(row[8]))


def _block_row(series_id: int, block: int, b: m.Block) -> tuple:
    return (series_id, block, b.count, b.first_step, b.last_step, b.first_time, b.last_time,
            nan_to_null(b.first), nan_to_null(b.last), nan_to_null(b.vmin), nan_to_null(b.vmax))


_UPSERT_BLOCK = (
    "INSERT OR REPLACE INTO metric_blocks (series_id, block, count, first_step, last_step, first_time, last_time,"
    " first, last, vmin, vmax) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def append_points(conn, series_id: int, points: list[tuple[int, int, int, float, str | None]]) -> int:
    """Appends (step, run, time, value, raw) points not stored yet; returns how many."""
    if not points:
        return 0
    steps = [p[0] for p in points]
    existing = {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT step, trial_run_id FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?",
            (series_id, min(steps), max(steps)),
        )
    }
    fresh = []
    for p in points:
        key = (p[0], p[1])
        if key not in existing:
            existing.add(key)
            fresh.append(p)
    if not fresh:
        return 0
    summary, ordinal = _load_summary(conn, series_id)
    blocks: dict[int, m.Block] = {}
    rows = []
    for step, run, time, value, raw in fresh:
        block = ordinal // m.BLOCK_SIZE
        if block not in blocks:
            blocks[block] = _load_block(conn, series_id, block)
        blocks[block].add(step, time, value)
        summary.add(step, time, value)
        rows.append((series_id, step, run, time, nan_to_null(value), ordinal, raw))
        ordinal += 1
    conn.executemany(
        "INSERT INTO metric_points (series_id, step, trial_run_id, time, value, ordinal, raw) VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(_UPSERT_BLOCK, [_block_row(series_id, k, b) for k, b in blocks.items()])
    _store_summary(conn, series_id, summary, ordinal)
    return len(fresh)


def rebuild_series(conn, series_id: int) -> None:
    """Recomputes a series' summary and blocks from its live points (after a rollback)."""
    conn.execute("DELETE FROM metric_blocks WHERE series_id = ?", (series_id,))
    summary = m.SeriesSummary()
    blocks: dict[int, m.Block] = defaultdict(m.Block)
    ordinal = 0
    updates = []
    for step, time, value, old in conn.execute(
        "SELECT step, time, value, ordinal FROM metric_points WHERE series_id = ? AND archived = 0 ORDER BY ordinal",
        (series_id,),
    ).fetchall():
        v = null_to_nan(value)
        blocks[ordinal // m.BLOCK_SIZE].add(step, time, v)
        summary.add(step, time, v)
        updates.append((ordinal, series_id, old))
        ordinal += 1
    # Archived points get ordinals after the live ones so blocks cover live points only.
    conn.execute("UPDATE metric_points SET ordinal = -1 - ordinal WHERE series_id = ?", (series_id,))
    conn.executemany("UPDATE metric_points SET ordinal = ? WHERE series_id = ? AND ordinal = -1 - ?", updates)
    archived = conn.execute(
        "SELECT step, trial_run_id FROM metric_points WHERE series_id = ? AND ordinal < 0 ORDER BY step", (series_id,)
    ).fetchall()
    conn.executemany(
        "UPDATE metric_points SET ordinal = ? WHERE series_id = ? AND step = ? AND trial_run_id = ?",
        [(ordinal + i, series_id, step, run) for i, (step, run) in enumerate(archived)],
    )
    conn.executemany(_UPSERT_BLOCK, [_block_row(series_id, k, b) for k, b in blocks.items()])
    _store_summary(conn, series_id, summary, ordinal + len(archived))


def _rollback(conn, trial_id: int, run: int, step: int) -> list[int]:
    """Archives what older runs of the trial reported past step; returns the series touched."""
    touched = [
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT p.series_id FROM metric_series s JOIN metric_points p ON p.series_id = s.id"
            " WHERE s.trial_id = ? AND p.step > ? AND p.trial_run_id < ? AND p.archived = 0",
            (trial_id, step, run),
        )
    ]
    if touched:
        conn.execute(
            "UPDATE metric_points SET archived = 1 WHERE series_id IN (SELECT id FROM metric_series WHERE trial_id = ?)"
            " AND step > ? AND trial_run_id < ? AND archived = 0",
            (trial_id, step, run),
        )
        conn.execute(
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


def _note_validation(conn, trials: _Trials, report: m.ReportDraft, now: int) -> None:
    row = trials.get(report.trial_id)
    workload = dumps(_workload(report, now))
    signed = m.signed_objective(trials.study(report.trial_id), report.metrics)
    best = row["searcher_metric_value"]
    if signed is not None and (best is None or signed < best):
        conn.execute(
            "UPDATE trials SET latest_validation = ?, best_validation = ?, searcher_metric_value = ? WHERE id = ?",
            (workload, workload, signed, report.trial_id),
        )
        trials.rows.pop(report.trial_id, None)
    else:
        conn.execute("UPDATE trials SET latest_validation = ? WHERE id = ?", (workload, report.trial_id))
    if signed is not None:
        conn.execute(
            "UPDATE checkpoints SET objective = ? WHERE trial_id = ? AND steps_completed = ?",
            (signed, report.trial_id, report.steps),
        )
        conn.execute(
            "UPDATE checkpoints SET body = json_set(body, '$.validation_metrics', json(?))"
            " WHERE trial_id = ? AND steps_completed = ?",
            (dumps(report.metrics), report.trial_id, report.steps),
        )


def ingest(conn: sqlite3.Connection, batch: m.IngestBatch, now: int) -> m.IngestOutcome:
    out = m.IngestOutcome()
    trials = _Trials(conn)
    series = _Series(conn)
    by_series: dict[int, list] = defaultdict(list)
    rebuild: set[int] = set()

    for report, index in zip(batch.reports, batch.report_index):
        problem = trials.problem(report.trial_id, report.trial_run_id)
        if problem:
            out.errors.append(("reports", index, *problem))
            out.report_created.append(False)
            continue
        run = report.trial_run_id or trials.get(report.trial_id)["trial_run_id"]
        report.trial_run_id = run
        seen = None
        if report.request_id:
            seen = conn.execute("SELECT 1 FROM metric_reports WHERE request_id = ?", (report.request_id,)).fetchone()
        if seen is None:
            seen = conn.execute(
                "SELECT 1 FROM metric_reports WHERE trial_id = ? AND group_name = ? AND steps = ? AND trial_run_id = ?",
                (report.trial_id, report.group, report.steps, run),
            ).fetchone()
        if seen is not None:
            out.duplicates += 1
            out.report_created.append(False)
            continue
        if run > 1:
            rebuild.update(_rollback(conn, report.trial_id, run, report.steps))
        conn.execute(
            "INSERT INTO metric_reports (trial_id, trial_run_id, group_name, steps, report_time, body, request_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (report.trial_id, run, report.group, report.steps, report.report_time or now,
             dumps({"metrics": report.metrics, "batch_metrics": report.batch_metrics}), report.request_id or None),
        )
        if report.group == "validation":
            _note_validation(conn, trials, report, now)
        for p in report.points(now):
            by_series[series.id_for(p.trial_id, p.group, p.name)].append((p.step, run, p.time, p.value, None))
        out.report_created.append(True)
        out.added += 1
        out.trial_ids.add(report.trial_id)

    # Points from reports are new (their report was); event points may be
    # retries, so they are counted by what append_points actually stored.
    event_points: dict[int, list] = defaultdict(list)
    for point, (list_name, index) in zip(batch.points, batch.point_index):
        problem = trials.problem(point.trial_id, point.trial_run_id)
        if problem:
            out.errors.append((list_name, index, *problem))
            continue
        run = point.trial_run_id or trials.get(point.trial_id)["trial_run_id"]
        event_points[series.id_for(point.trial_id, point.group, point.name)].append(
            (point.step, run, point.time or now, point.value, point.raw)
        )
        out.trial_ids.add(point.trial_id)

    for event, index in zip(batch.debug_events, batch.event_index):
        problem = trials.problem(event.trial_id, 0)
        if problem:
            out.errors.append(("events", index, *problem))
            continue
        conn.execute(
            "INSERT INTO debug_events (trial_id, kind, metric, variant, iteration, time, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.trial_id, event.kind, event.metric, event.variant, event.iteration, event.time or now, dumps(event.payload)),
        )
        out.added += 1
        out.trial_ids.add(event.trial_id)

    log_rows = []
    log_points: dict[int, list] = defaultdict(list)
    for line, index in zip(batch.logs, batch.log_index):
        if trials.get(line.trial_id) is None:
            out.errors.append(("logs", index, "NOT_FOUND", f"trial {line.trial_id} not found"))
            continue
        time = line.time or now
        log_rows.append((line.trial_id, time, line.level, line.worker, line.stream, line.rank, line.message))
        out.added += 1
        out.trial_ids.add(line.trial_id)
        for name, value, step in m.extract_log_metrics(trials.log_rules(line.trial_id), line.message):
            sid = series.id_for(line.trial_id, "logs", name)
            log_points[sid].append((step, trials.get(line.trial_id)["trial_run_id"], time, value))
    conn.executemany(
        "INSERT INTO task_logs (trial_id, time, level, worker, stream, rank, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
        log_rows,
    )
    for sid, found in log_points.items():
        if any(step is None for step, *_ in found):
            (next_ordinal,) = conn.execute("SELECT next_ordinal FROM metric_series WHERE id = ?", (sid,)).fetchone()
            found = [(next_ordinal + i if step is None else step, run, t, v) for i, (step, run, t, v) in enumerate(found)]
        by_series[sid].extend((step, run, t, v, None) for step, run, t, v in found)
        out.log_points += len(found)

    for sid, points in by_series.items():
        append_points(conn, sid, points)
    for sid, points in event_points.items():
        stored = append_points(conn, sid, points)
        out.added += stored
        out.duplicates += len(points) - stored
    for sid in rebuild:
        rebuild_series(conn, sid)
    return out


# --- reads -------------------------------------------------------------------

SUMMARY_COLUMNS = (
    "id, trial_id, trial_key, group_name, name, count, finite_count, total, vmin, vmax, last, last_step, last_time, recent"
)


def summary_from_row(row) -> dict:
    recent = array("d")
    recent.frombytes(row["recent"])
    s = m.SeriesSummary(
        count=row["count"], finite_count=row["finite_count"], total=row["total"], vmin=null_to_nan(row["vmin"]),
        vmax=null_to_nan(row["vmax"]), last=null_to_nan(row["last"]), last_step=row["last_step"],
        last_time=row["last_time"], recent=list(recent),
    )
    return {"series_id": row["id"], "trial_id": row["trial_id"] or 0, "group": row["group_name"], "name": row["name"], "summary": s}


def series_summaries(conn, trial_ids: list[int], group: str = "", names: list[str] | None = None) -> list[dict]:
    for trial_id in trial_ids:
        if conn.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone() is None:
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
    sql += " ORDER BY trial_id, group_name, name"
    return [summary_from_row(r) for r in conn.execute(sql, args)]


def summaries_by_trial(conn, trial_ids: list[int]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = defaultdict(list)
    for i in range(0, len(trial_ids), 500):
        part = trial_ids[i:i + 500]
        marks = ", ".join("?" for _ in part)
        for row in conn.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM metric_series WHERE trial_id IN ({marks}) ORDER BY group_name, name", part
        ):
            out[row["trial_id"]].append(summary_from_row(row))
    return out


def raw_points(conn, series_id: int, start_step: int, end_step: int, include_archived: bool,
               after: tuple[int, int] | None, limit: int) -> list[tuple]:
    """(step, run, time, value, archived) rows ordered by (step, run)."""
    sql = "SELECT step, trial_run_id, time, value, archived FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?"
    args: list = [series_id, start_step, end_step]
    if not include_archived:
        sql += " AND archived = 0"
    if after is not None:
        sql += " AND (step, trial_run_id) > (?, ?)"
        args.extend(after)
    sql += " ORDER BY step, trial_run_id LIMIT ?"
    args.append(limit)
    return conn.execute(sql, args).fetchall()


def blocks(conn, series_id: int) -> list[tuple[int, m.Block]]:
    rows = conn.execute(
        "SELECT block, count, first_step, last_step, first_time, last_time, first, last, vmin, vmax"
        " FROM metric_blocks WHERE series_id = ? ORDER BY block",
        (series_id,),
    ).fetchall()
    return [
        (r[0], m.Block(r[1], r[2], r[3], r[4], r[5], null_to_nan(r[6]), null_to_nan(r[7]), null_to_nan(r[8]), null_to_nan(r[9])))
        for r in rows
    ]


def block_points(conn, series_id: int, block: int, b: m.Block, start_step: int, end_step: int) -> list[tuple]:
    lo = block * m.BLOCK_SIZE
    return conn.execute(
        "SELECT step, time, value FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?"
        " AND ordinal BETWEEN ? AND ? AND archived = 0",
        (series_id, max(b.first_step, start_step), min(b.last_step, end_step), lo, lo + m.BLOCK_SIZE - 1),
    ).fetchall()


def find_series(conn, trial_id: int, group: str, name: str) -> int | None:
    row = conn.execute(
        "SELECT id FROM metric_series WHERE trial_id = ? AND group_name = ? AND name = ?", (trial_id, group, name)
    ).fetchone()
    return row[0] if row else None


def debug_events(conn, trial_id: int, kinds: list[str], metric: str, after_id: int, limit: int) -> list[dict]:
    if conn.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone() is None:
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
    return [
        {"id": r[0], "kind": r[1], "metric": r[2], "variant": r[3], "iteration": r[4], "time": r[5], "payload": json.loads(r[6])}
        for r in conn.execute(sql, args)
    ]


def downsample(conn, series_id: int, start_step: int, end_step: int, n: int, by_time: bool,
               include_archived: bool) -> list[m.Block]:
    """At most n exact buckets. With at least n blocks in range, whole blocks
    are grouped (only blocks cut by the range are read point by point);
    otherwise the points themselves are bucketed."""
    import numpy as np

    def from_points(rows) -> list[m.Block]:
        if not rows:
            return []
        steps, times, values = (np.array(c) for c in zip(*rows))
        values = np.array([null_to_nan(v) for v in values], dtype=np.float64)
        return m.bucket_points(steps.astype(np.int64), times.astype(np.int64), values, times if by_time else steps, n)

    all_blocks = [] if include_archived else blocks(conn, series_id)
    in_range = [(k, b) for k, b in all_blocks if b.first_step <= end_step and b.last_step >= start_step]
    if include_archived or len(in_range) < n:
        rows = conn.execute(
            "SELECT step, time, value FROM metric_points WHERE series_id = ? AND step BETWEEN ? AND ?"
            + ("" if include_archived else " AND archived = 0"),
            (series_id, start_step, end_step),
        ).fetchall()
        return from_points(rows)
    parts: list[m.Block] = []
    for k, b in in_range:
        if b.first_step >= start_step and b.last_step <= end_step:
            parts.append(b)
            continue
        exact = m.Block()
        for step, time, value in block_points(conn, series_id, k, b, start_step, end_step):
            exact.add(step, time, null_to_nan(value))
        if exact.count:
            parts.append(exact)
    key = (lambda b: b.first_time) if by_time else (lambda b: b.first_step)
    return m.bucket_blocks(parts, key, n)


def list_logs(conn, trial_id: int, from_tail: bool, levels: list[str], worker: str, after_id: int | None, limit: int):
    if conn.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone() is None:
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
    return [
        {"id": r[0], "time": r[1], "level": r[2], "worker": r[3], "stream": r[4], "rank": r[5], "message": r[6]}
        for r in conn.execute(sql, args)
    ]


KATIB_GROUP = "katib"


def report_observations(conn, trial_name: str, observations: list[tuple[str, int, float | None, str]]) -> None:
    """Katib observation logs become points of group "katib". A trial with
    that name links them to it; an unknown name keeps them under the name."""
    row = conn.execute("SELECT id FROM trials WHERE name = ? ORDER BY id DESC LIMIT 1", (trial_name,)).fetchone()
    trial_id = row[0] if row else None
    series = _Series(conn)
    grouped: dict[int, list] = defaultdict(list)
    for name, time, value, raw in observations:
        sid = series.id_for(trial_id, KATIB_GROUP, name, None if trial_id else trial_name)
        grouped[sid].append((time, value, raw))
    for sid, found in grouped.items():
        (next_ordinal,) = conn.execute("SELECT next_ordinal FROM metric_series WHERE id = ?", (sid,)).fetchone()
        append_points(conn, sid, [
            (next_ordinal + i, 0, time, math.nan if value is None else value, raw)
            for i, (time, value, raw) in enumerate(found)
        ])


def _katib_series(conn, trial_name: str, metric_name: str) -> list[tuple[int, str]]:
    sql = (
        "SELECT s.id, s.name FROM metric_series s LEFT JOIN trials t ON t.id = s.trial_id"
        " WHERE s.group_name = ? AND (s.trial_key = ? OR t.name = ?)"
    )
    args: list = [KATIB_GROUP, trial_name, trial_name]
    if metric_name:
        sql += " AND s.name = ?"
        args.append(metric_name)
    return conn.execute(sql + " ORDER BY s.id", args).fetchall()


def get_observations(conn, trial_name: str, metric_name: str, start: int | None, end: int | None) -> list[tuple]:
    """(name, time, raw value) ordered by time."""
    out = []
    for sid, name in _katib_series(conn, trial_name, metric_name):
        sql = "SELECT time, value, raw FROM metric_points WHERE series_id = ?"
        args: list = [sid]
        if start is not None:
            sql += " AND time >= ?"
            args.append(start)
        if end is not None:
            sql += " AND time <= ?"
            args.append(end)
        for time, value, raw in conn.execute(sql, args):
            out.append((name, time, raw if raw is not None else repr(null_to_nan(value))))
    out.sort(key=lambda o: o[1])
    return out


def delete_observations(conn, trial_name: str) -> int:
    ids = [sid for sid, _ in _katib_series(conn, trial_name, "")]
    conn.executemany("DELETE FROM metric_series WHERE id = ?", [(i,) for i in ids])
    return len(ids)
