"""Profiler chunks in SQLite: one row per ingested batch, summaries on write."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from ...domain.errors import NotFound
from ...domain.profiler import Chunk, ChunkSummary, Labels, MetricType, SummaryTable
from ..base import IngestItem, IngestResult, SeriesInfo
from .codec import DAY_US, expired

_SUMMARY_COLS = "id, count, first_ts, last_ts, first_batch, last_batch, vmin, vmax, vlast"


def _nan_to_null(x: float) -> float | None:
    # SQLite stores NaN as NULL anyway; be explicit so reads map it back.
    return None if math.isnan(x) else x


def series_from_row(row) -> SeriesInfo:
    return SeriesInfo(
        series_id=row["id"],
        labels=Labels(row["trial_id"], row["name"], row["agent_id"], row["gpu_uuid"], MetricType(row["metric_type"])),
        sample_count=row["sample_count"],
        chunk_count=row["chunk_count"],
        first_ts=row["first_ts"],
        last_ts=row["last_ts"],
        first_batch=row["first_batch"],
        last_batch=row["last_batch"],
    )


@dataclass
class _SeriesDelta:
    samples: int = 0
    chunks: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    first_batch: int | None = None
    last_batch: int | None = None

    def add(self, s: ChunkSummary) -> None:
        self.samples += s.count
        self.chunks += 1
        self.first_ts = s.first_ts if self.first_ts is None else min(self.first_ts, s.first_ts)
        self.last_ts = s.last_ts if self.last_ts is None else max(self.last_ts, s.last_ts)
        self.first_batch = s.first_batch if self.first_batch is None else min(self.first_batch, s.first_batch)
        self.last_batch = s.last_batch if self.last_batch is None else max(self.last_batch, s.last_batch)


def _series_id(conn: sqlite3.Connection, labels: Labels, cache: dict) -> int | None:
    key = labels.key()
    if key in cache:
        return cache[key]
    row = conn.execute(
        "SELECT id FROM profiler_series WHERE trial_id = ? AND name = ? AND agent_id = ? AND gpu_uuid = ? AND metric_type = ?",
        key,
    ).fetchone()
    if row is not None:
        cache[key] = row[0]
        return row[0]
    if conn.execute("SELECT 1 FROM trials WHERE id = ?", (labels.trial_id,)).fetchone() is None:
        cache[key] = None
        return None
    cur = conn.execute(
        "INSERT INTO profiler_series (trial_id, name, agent_id, gpu_uuid, metric_type) VALUES (?, ?, ?, ?, ?)", key
    )
    cache[key] = cur.lastrowid
    return cur.lastrowid


def ingest(conn: sqlite3.Connection, stream_id: str, items: list[IngestItem], now: int) -> IngestResult:
    """Stores the items not seen before on this stream, in the caller's transaction.

    A stream's position is the highest sequence it settled. An item at or
    below it is a resend when that very sequence was stored, and is rejected
    otherwise: it arrived after a later one was acknowledged, and storing it
    now would make that earlier acknowledgement a lie.
    """
    last = 0
    if stream_id:
        row = conn.execute("SELECT last_sequence FROM profiler_streams WHERE stream_id = ?", (stream_id,)).fetchone()
        last = row[0] if row else 0
    position = last
    result = IngestResult(acknowledged_sequence=last)
    cache: dict = {}
    deltas: dict[int, _SeriesDelta] = {}
    rows = []
    stored_sequences = []
    for item in items:
        if stream_id and item.sequence <= position:
            if item.sequence in stored_sequences or conn.execute(
                "SELECT 1 FROM profiler_stream_batches WHERE stream_id = ? AND sequence = ?", (stream_id, item.sequence)
            ).fetchone():
                result.duplicates += 1
            else:
                result.rejected.append((
                    item.sequence,
                    f"sequence {item.sequence} arrived after sequence {position} was settled and was never stored;"
                    " sequences must increase: send it again with a new sequence number",
                ))
            continue
        series_id = _series_id(conn, item.labels, cache)
        if series_id is None:
            result.rejected.append((item.sequence, f"trial {item.labels.trial_id} not found"))
        else:
            s = item.summary
            rows.append((
                series_id, s.first_ts, s.last_ts, s.first_batch, s.last_batch, s.count,
                _nan_to_null(s.vmin), _nan_to_null(s.vmax), _nan_to_null(s.vlast), item.data,
            ))
            deltas.setdefault(series_id, _SeriesDelta()).add(s)
            result.stored_samples += s.count
            if stream_id:
                stored_sequences.append(item.sequence)
        position = max(position, item.sequence)
    result.acknowledged_sequence = position
    conn.executemany(
        "INSERT INTO profiler_chunks (series_id, first_ts, last_ts, first_batch, last_batch, count, vmin, vmax, vlast, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "UPDATE profiler_series SET sample_count = sample_count + ?, chunk_count = chunk_count + ?,"
        " first_ts = min(coalesce(first_ts, ?), ?), last_ts = max(coalesce(last_ts, ?), ?),"
        " first_batch = min(coalesce(first_batch, ?), ?), last_batch = max(coalesce(last_batch, ?), ?) WHERE id = ?",
        [
            (d.samples, d.chunks, d.first_ts, d.first_ts, d.last_ts, d.last_ts, d.first_batch, d.first_batch,
             d.last_batch, d.last_batch, sid)
            for sid, d in deltas.items()
        ],
    )
    if stored_sequences:
        conn.executemany(
            "INSERT INTO profiler_stream_batches (stream_id, sequence) VALUES (?, ?)",
            [(stream_id, seq) for seq in stored_sequences],
        )
    if stream_id and result.acknowledged_sequence > last:
        conn.execute(
            "INSERT INTO profiler_streams (stream_id, last_sequence, update_time) VALUES (?, ?, ?)"
            " ON CONFLICT (stream_id) DO UPDATE SET last_sequence = excluded.last_sequence, update_time = excluded.update_time",
            (stream_id, result.acknowledged_sequence, now),
        )
    return result


def stream_position(conn: sqlite3.Connection, stream_id: str) -> int:
    row = conn.execute("SELECT last_sequence FROM profiler_streams WHERE stream_id = ?", (stream_id,)).fetchone()
    return row[0] if row else 0


def list_series(conn: sqlite3.Connection, trial_id: int, after: tuple | None = None, limit: int = -1) -> list[SeriesInfo]:
    if conn.execute("SELECT 1 FROM trials WHERE id = ?", (trial_id,)).fetchone() is None:
        raise NotFound("trial", trial_id)
    keyset = " AND (name, agent_id, gpu_uuid, metric_type) > (?, ?, ?, ?)" if after is not None else ""
    rows = conn.execute(
        f"SELECT * FROM profiler_series WHERE trial_id = ?{keyset} ORDER BY name, agent_id, gpu_uuid, metric_type LIMIT ?",
        (trial_id, *(after or ()), limit),
    ).fetchall()
    return [series_from_row(r) for r in rows]


def find_series(conn: sqlite3.Connection, labels: Labels) -> SeriesInfo:
    row = conn.execute(
        "SELECT * FROM profiler_series WHERE trial_id = ? AND name = ? AND agent_id = ? AND gpu_uuid = ? AND metric_type = ?",
        labels.key(),
    ).fetchone()
    if row is None:
        raise NotFound("profiler series", f"{labels.name!r} of trial {labels.trial_id}")
    return series_from_row(row)


def summaries(conn: sqlite3.Connection, series_id: int, start_ts: int, end_ts: int,
              start_batch: int, end_batch: int, after: tuple | None = None) -> SummaryTable:
    """Summaries of the chunks that overlap the time and batch ranges, by (first_ts, id)."""
    sql = (
        f"SELECT {_SUMMARY_COLS} FROM profiler_chunks WHERE series_id = ? AND first_ts <= ? AND last_ts >= ?"
        " AND first_batch <= ? AND last_batch >= ?"
    )
    args: list = [series_id, end_ts, start_ts, end_batch, start_batch]
    if after is not None:
        sql += " AND (first_ts, id) > (?, ?)"
        args.extend(after)
    sql += " ORDER BY first_ts, id"
    cursor = conn.cursor()
    cursor.row_factory = None  # plain tuples: thousands of rows, read once
    return SummaryTable.from_rows(cursor.execute(sql, args).fetchall())


def chunk_data(conn: sqlite3.Connection, chunk_ids: list[int]) -> dict[int, Chunk]:
    out: dict[int, Chunk] = {}
    for i in range(0, len(chunk_ids), 500):
        part = chunk_ids[i:i + 500]
        marks = ", ".join("?" for _ in part)
        for cid, count, data in conn.execute(f"SELECT id, count, data FROM profiler_chunks WHERE id IN ({marks})", part):
            out[cid] = Chunk.from_bytes(data, count)
    return out


def chunks_after(conn: sqlite3.Connection, series_id: int, after_id: int, after_ts: int, limit: int) -> list[tuple[int, Chunk]]:
    rows = conn.execute(
        "SELECT id, count, data FROM profiler_chunks WHERE series_id = ? AND id > ? AND last_ts > ? ORDER BY id LIMIT ?",
        (series_id, after_id, after_ts, limit),
    ).fetchall()
    return [(cid, Chunk.from_bytes(data, count)) for cid, count, data in rows]


def delete_expired(conn: sqlite3.Connection, now: int, default_days: int, limit: int) -> int:
    """Deletes up to limit chunks whose newest sample is older than the
    retention of their trial, and keeps the series summaries right."""
    # CROSS JOIN keeps SQLite on this order: series first, so the sweep costs
    # nothing without profiler data, however many trials there are.
    rows = conn.execute(
        "SELECT c.id, c.series_id, c.count FROM profiler_series s"
        " CROSS JOIN trials t ON t.id = s.trial_id"
        f" CROSS JOIN profiler_chunks c ON c.series_id = s.id WHERE {expired('c.last_ts')} LIMIT :limit",
        {"default_days": default_days, "now": now, "day_us": DAY_US, "limit": limit},
    ).fetchall()
    if not rows:
        return 0
    conn.executemany("DELETE FROM profiler_chunks WHERE id = ?", [(r[0],) for r in rows])
    for series_id in {r[1] for r in rows}:
        conn.execute(
            """
            UPDATE profiler_series SET
                sample_count = (SELECT coalesce(sum(count), 0) FROM profiler_chunks WHERE series_id = ?1),
                chunk_count = (SELECT count(*) FROM profiler_chunks WHERE series_id = ?1),
                first_ts = (SELECT min(first_ts) FROM profiler_chunks WHERE series_id = ?1),
                last_ts = (SELECT max(last_ts) FROM profiler_chunks WHERE series_id = ?1),
                first_batch = (SELECT min(first_batch) FROM profiler_chunks WHERE series_id = ?1),
                last_batch = (SELECT max(last_batch) FROM profiler_chunks WHERE series_id = ?1)
            WHERE id = ?1
            """,
            (series_id,),
        )
    return len(rows)
