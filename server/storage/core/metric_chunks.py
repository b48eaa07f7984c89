"""Metric points stored per series in chunks of up to 512 points.

One row holds a chunk's columns (steps, runs, times, values, archived flags)
and the aggregates of its live points. A batch of thousands of points costs a
handful of rows; points trickling in one at a time go into small chunks that
are compacted into full ones every few dozen appends, so a series ends up in
full chunks either way. Reads decode chunks with numpy; long-range downsampling reads only the
aggregates.
"""

from __future__ import annotations

import json
import math
import struct

import numpy as np

from ...domain import metrics as m
from .query import marks
from .records import nan_to_null

_STATS = "live_count, first_step, last_step, first_time, last_time, first, last, vmin, vmax, total, finite_count"
# A chunk's live points as a Block, in BlockColumns.of_rows order.
_BLOCK = "live_count, first_step, last_step, first_time, last_time, first, last, vmin, vmax"


def _stats_values(s: m.ChunkStats) -> tuple:
    return (s.count, s.first_step, s.last_step, s.first_time, s.last_time, nan_to_null(s.first), nan_to_null(s.last),
            nan_to_null(s.vmin), nan_to_null(s.vmax), nan_to_null(s.total), s.finite_count)


def _decode(count: int, data: bytes, raws: str | None) -> m.PointColumns:
    return m.PointColumns.from_bytes(data, count, json.loads(raws) if raws else None)


_CHUNK_COLUMNS = ("series_id", "min_step", "max_step", "count", *_STATS.split(", "), "data", "raws")


def _chunk_row(series_id: int, cols: m.PointColumns) -> tuple:
    """A new chunk's row, in _CHUNK_COLUMNS order."""
    stats = m.ChunkStats.of(cols)
    span = (int(cols.steps.min()), int(cols.steps.max())) if len(cols) else (0, 0)
    return (series_id, span[0], span[1], len(cols), *_stats_values(stats), cols.to_bytes(),
            json.dumps(cols.raws) if cols.raws is not None else None)


def _write_chunks(tx, series_id: int, cols: m.PointColumns) -> None:
    """Stores sorted points as new full chunks, in one statement."""
    tx.insert_rows("metric_chunks", _CHUNK_COLUMNS, [
        _chunk_row(series_id, cols.select(slice(lo, lo + m.CHUNK_POINTS))) for lo in range(0, len(cols), m.CHUNK_POINTS)
    ])


def _write_chunk(tx, series_id: int, cols: m.PointColumns, chunk_id: int | None = None) -> None:
    values = _chunk_row(series_id, cols)
    if chunk_id is None:
        tx.run(
            f"INSERT INTO metric_chunks (series_id, min_step, max_step, count, {_STATS}, data, raws)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
    else:
        tx.run(
            f"UPDATE metric_chunks SET series_id = ?, min_step = ?, max_step = ?, count = ?,"
            f" {', '.join(c + ' = ?' for c in _STATS.split(', '))}, data = ?, raws = ? WHERE id = ?",
            (*values, chunk_id),
        )


_ONE_POINT = struct.Struct("<qqqd?")


def append_one(tx, series_id: int, summary: m.SeriesSummary, step: int, run: int, time: int, value: float,
               small_chunks: int) -> int:
    """Appends a single point newer than everything in the series (the
    caller checked step > summary.last_step) as a small chunk, without
    numpy; returns the series' count of small chunks afterwards."""
    summary.add(step, time, value)
    finite = not math.isnan(value)
    stats = m.ChunkStats(1, step, step, time, time, value, value, value, value, value if finite else 0.0, int(finite))
    tx.run(
        f"INSERT INTO metric_chunks (series_id, min_step, max_step, count, {_STATS}, data, raws)"
        " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        (series_id, step, step, *_stats_values(stats), _ONE_POINT.pack(step, run, time, value, False)),
    )
    small_chunks += 1
    if small_chunks >= m.COMPACT_AFTER:
        compact(tx, series_id)
        small_chunks = 0
    return small_chunks


def overlapping(tx, series_id: int, start: int, end: int) -> list[tuple[int, m.PointColumns]]:
    rows = tx.all(
        "SELECT id, count, data, raws FROM metric_chunks WHERE series_id = ? AND min_step <= ? AND max_step >= ?"
        " ORDER BY min_step, id",
        (series_id, end, start),
    )
    return [(r[0], _decode(r[1], r[2], r[3])) for r in rows]


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)


def append(tx, series_id: int, summary: m.SeriesSummary, cols: m.PointColumns, small_chunks: int,
           conflicts: list | None = None) -> tuple[int, int]:
    """Stores the points of cols not stored yet. Returns how many were new
    and the series' count of small chunks afterwards. With conflicts, the
    (step, run) of every point dropped for a stored or earlier point at the
    same (step, run) with another value is appended to it, as (step, run, value)."""
    cols = cols.sorted()
    if len(cols) > 1:
        # Duplicates inside the batch sit side by side once sorted (the sort
        # is stable): keep the first of each (step, run).
        repeated = (cols.steps[1:] == cols.steps[:-1]) & (cols.runs[1:] == cols.runs[:-1])
        if repeated.any():
            if conflicts is not None:
                for i in np.flatnonzero(repeated):
                    if not _same(float(cols.values[i]), float(cols.values[i + 1])):
                        conflicts.append((int(cols.steps[i + 1]), int(cols.runs[i + 1]), float(cols.values[i + 1])))
            cols = cols.select(np.concatenate(([True], ~repeated)))
    lo, hi = int(cols.steps[0]), int(cols.steps[-1])
    if lo <= summary.last_step or summary.count == 0:
        existing = overlapping(tx, series_id, lo, hi)
        if existing:
            known = {(int(s), int(r)): float(v) for _, c in existing for s, r, v in zip(c.steps, c.runs, c.values)}
            keys = [(int(s), int(r)) for s, r in zip(cols.steps, cols.runs)]
            keep = np.fromiter((k not in known for k in keys), bool, len(cols))
            if conflicts is not None:
                conflicts.extend((*k, v) for k, v in zip(keys, cols.values.tolist()) if k in known and not _same(known[k], v))
            cols = cols.select(keep)
    if not len(cols):
        return 0, small_chunks
    m.add_to_summary(summary, cols.live())
    if len(cols) >= m.SMALL_APPEND:
        _write_chunks(tx, series_id, cols)
        return len(cols), small_chunks
    _write_chunk(tx, series_id, cols)
    small_chunks += 1
    if small_chunks >= m.COMPACT_AFTER:
        compact(tx, series_id)
        small_chunks = 0
    return len(cols), small_chunks


def compact(tx, series_id: int) -> None:
    """Merges a series' small chunks into full ones."""
    rows = tx.all(
        "SELECT id, count, data, raws FROM metric_chunks WHERE series_id = ? AND count < ? ORDER BY id",
        (series_id, m.SMALL_APPEND),
    )
    if len(rows) < 2:
        return
    merged = m.PointColumns.concat([_decode(r[1], r[2], r[3]) for r in rows]).sorted()
    tx.run_many("DELETE FROM metric_chunks WHERE id = ?", [(r[0],) for r in rows])
    _write_chunks(tx, series_id, merged)


def archive_after(tx, series_id: int, run: int, step: int) -> bool:
    """Marks points of runs before `run` past `step` archived; True if any were."""
    changed = False
    rows = tx.all(
        "SELECT id, count, data, raws FROM metric_chunks WHERE series_id = ? AND max_step > ?", (series_id, step)
    )
    for chunk_id, count, data, raws in rows:
        cols = _decode(count, data, raws)
        hit = (cols.steps > step) & (cols.runs < run) & ~cols.archived
        if hit.any():
            cols = m.PointColumns(cols.steps, cols.runs, cols.times, cols.values, cols.archived | hit, cols.raws)
            _write_chunk(tx, series_id, cols, chunk_id)
            changed = True
    return changed


def rebuild_summary(tx, series_id: int) -> m.SeriesSummary:
    """The summary of a series recomputed from its live points."""
    parts = [c.live() for _, c in overlapping(tx, series_id, -(2**62), 2**62)]
    live = m.PointColumns.concat(parts).sorted()
    summary = m.SeriesSummary()
    m.add_to_summary(summary, live)
    summary.recent = live.values[-m.RECENT:].tolist() if len(live) else []
    return summary


def read(tx, series_id: int, start: int, end: int, include_archived: bool, after: tuple | None,
         limit: int) -> m.PointColumns:
    """Points with start <= step <= end (after the (step, run) cursor), sorted, at most limit."""
    if after is not None:
        start = max(start, after[0])
    out: list[m.PointColumns] = []
    total = 0
    rows = tx.tuples(
        "SELECT id, count, data, raws, min_step FROM metric_chunks WHERE series_id = ? AND min_step <= ? AND max_step >= ?"
        " ORDER BY min_step, id",
        (series_id, end, start),
    )
    horizon = None
    for _, count, data, raws, min_step in rows:
        # Chunks are ordered by their first step: once enough points are
        # collected and a chunk starts past the last of them, stop.
        if horizon is not None and min_step > horizon:
            break
        cols = _decode(count, data, raws)
        mask = (cols.steps >= start) & (cols.steps <= end)
        if not include_archived:
            mask &= ~cols.archived
        if after is not None:
            mask &= (cols.steps > after[0]) | ((cols.steps == after[0]) & (cols.runs > after[1]))
        if mask.any():
            part = cols.select(mask)
            out.append(part)
            total += len(part)
            if total >= limit and horizon is None:
                horizon = int(np.sort(np.concatenate([p.steps for p in out]))[limit - 1])
    merged = m.PointColumns.concat(out).sorted()
    return merged.select(slice(0, limit)) if len(merged) > limit else merged


def live_points(tx, chunk_ids: list[int]) -> m.StepsTimesValues:
    """The steps, times and values of the chunks' live points, in no particular order."""
    rows: list[tuple] = []
    for i in range(0, len(chunk_ids), 500):
        part = chunk_ids[i:i + 500]
        rows.extend(tx.tuples(f"SELECT count, data FROM metric_chunks WHERE id IN ({marks(part)})", part))
    return m.PointColumns.live_steps_times_values(rows)


def downsample(tx, series_id: int, start: int, end: int, n: int, by_time: bool, include_archived: bool) -> list[m.Block]:
    """At most n exact buckets of equal width. By step with at least n
    chunks in range, chunks inside one bucket count by their aggregates and
    only the others are decoded; otherwise the points themselves are
    bucketed."""
    rows = tx.tuples(
        f"SELECT id, min_step, max_step, {_BLOCK} FROM metric_chunks WHERE series_id = ? AND min_step <= ? AND max_step >= ?"
        " ORDER BY min_step, id",
        (series_id, end, start),
    )
    if include_archived or by_time or len(rows) < n:
        cols = read(tx, series_id, start, end, include_archived, None, 2**62)
        return m.bucket_points(cols.steps, cols.times, cols.values, cols.times if by_time else cols.steps, n)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    spans = np.array([r[1:3] for r in rows], dtype=np.int64)
    whole = (spans[:, 0] >= start) & (spans[:, 1] <= end)
    loose = live_points(tx, ids[~whole].tolist())
    inside = (loose.steps >= start) & (loose.steps <= end)
    loose = m.StepsTimesValues(loose.steps[inside], loose.times[inside], loose.values[inside])
    chunks = m.BlockColumns.of_rows([r[3:] for r in rows]).select(whole)
    return m.bucket_chunks(chunks, ids[whole], loose, lambda chunk_ids: live_points(tx, chunk_ids), n)
