"""Profiler chunks: one row per ingested batch, series summaries kept on write."""

from __future__ import annotations

from dataclasses import dataclass

from ...domain.errors import NotFound
from ...domain.profiler import Chunk, ChunkSummary, Labels, MetricType, SummaryTable
from ..interface import IngestItem, IngestResult, SeriesInfo
from .metrics import expiring_trials
from .query import row_limit
from .records import nan_to_null
from .statements import Tx

_FIND_SERIES = (
    "SELECT id FROM profiler_series WHERE trial_id = ? AND name = ? AND agent_id = ? AND gpu_uuid = ? AND metric_type = ?"
)
_SUMMARY_COLS = "id, count, first_ts, last_ts, first_batch, last_batch, vmin, vmax, vlast"


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


def _series_id(tx: Tx, labels: Labels, cache: dict) -> int | None:
    key = labels.key()
    if key in cache:
        return cache[key]
    row = tx.one(_FIND_SERIES, key)
    if row is not None:
        cache[key] = row[0]
        return row[0]
    if tx.one("SELECT 1 FROM trials WHERE id = ?", (labels.trial_id,)) is None:
        cache[key] = None
        return None
    tx.run(
        "INSERT INTO profiler_series (trial_id, name, agent_id, gpu_uuid, metric_type) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        key,
    )
    row = tx.one(_FIND_SERIES, key)
    assert row is not None
    cache[key] = row[0]
    return row[0]


def ingest(tx: Tx, stream_id: str, items: list[IngestItem], now: int) -> IngestResult:
    """Stores the items not seen before on this stream, in the caller's transaction.

    A stream's position is the highest sequence it settled. An item at or
    below it is a resend when that very sequence was stored, and is rejected
    otherwise: it arrived after a later one was acknowledged, and storing it
    now would make that earlier acknowledgement a lie.
    """
    last = 0
    if stream_id:
        # The stream's row is locked from here to the commit: two batches of
        # one stream (on two connections) settle their sequences in turn. A
        # new stream's row is made first, so there is a row to lock.
        position_sql = "SELECT last_sequence FROM profiler_streams WHERE stream_id = ?" + tx.dialect.for_update
        row = tx.one(position_sql, (stream_id,))
        if row is None:
            tx.run(
                "INSERT INTO profiler_streams (stream_id, last_sequence, update_time) VALUES (?, 0, ?)"
                " ON CONFLICT DO NOTHING",
                (stream_id, now),
            )
            row = tx.one(position_sql, (stream_id,))
        last = row[0] if row else 0
    position = last
    result = IngestResult(acknowledged_sequence=last)
    cache: dict = {}
    deltas: dict[int, _SeriesDelta] = {}
    rows = []
    stored_sequences = []
    for item in items:
        if stream_id and item.sequence <= position:
            if item.sequence in stored_sequences or tx.one(
                "SELECT 1 FROM profiler_stream_batches WHERE stream_id = ? AND sequence = ?", (stream_id, item.sequence)
            ):
                result.duplicates += 1
            else:
                result.rejected.append((
                    item.sequence,
                    f"sequence {item.sequence} arrived after sequence {position} was settled and was never stored;"
                    " sequences must increase: send it again with a new sequence number",
                ))
            continue
        series_id = _series_id(tx, item.labels, cache)
        if series_id is None:
            result.rejected.append((item.sequence, f"trial {item.labels.trial_id} not found"))
        else:
            s = item.summary
            rows.append((
                series_id, s.first_ts, s.last_ts, s.first_batch, s.last_batch, s.count,
                nan_to_null(s.vmin), nan_to_null(s.vmax), nan_to_null(s.vlast), item.data,
            ))
            deltas.setdefault(series_id, _SeriesDelta()).add(s)
            result.stored_samples += s.count
            if stream_id:
                stored_sequences.append(item.sequence)
        position = max(position, item.sequence)
    result.acknowledged_sequence = position
    tx.insert_rows("profiler_chunks", ("series_id", "first_ts", "last_ts", "first_batch", "last_batch", "count", "vmin",
                                       "vmax", "vlast", "data"), rows)
    tx.run_many(
        "UPDATE profiler_series SET sample_count = sample_count + ?, chunk_count = chunk_count + ?,"
        f" first_ts = {tx.dialect.least('coalesce(first_ts, ?)', '?')},"
        f" last_ts = {tx.dialect.greatest('coalesce(last_ts, ?)', '?')},"
        f" first_batch = {tx.dialect.least('coalesce(first_batch, ?)', '?')},"
        f" last_batch = {tx.dialect.greatest('coalesce(last_batch, ?)', '?')} WHERE id = ?",
        [
            (d.samples, d.chunks, d.first_ts, d.first_ts, d.last_ts, d.last_ts, d.first_batch, d.first_batch,
             d.last_batch, d.last_batch, sid)
            for sid, d in deltas.items()
        ],
    )
    if stored_sequences:
        tx.run_many(
            "INSERT INTO profiler_stream_batches (stream_id, sequence) VALUES (?, ?)",
            [(stream_id, seq) for seq in stored_sequences],
        )
    if stream_id and result.acknowledged_sequence > last:
        tx.run(
            "UPDATE profiler_streams SET last_sequence = ?, update_time = ? WHERE stream_id = ?",
            (result.acknowledged_sequence, now, stream_id),
        )
    return result


def stream_position(tx: Tx, stream_id: str) -> int:
    row = tx.one("SELECT last_sequence FROM profiler_streams WHERE stream_id = ?", (stream_id,))
    return row[0] if row else 0


def list_series(tx: Tx, trial_id: int, after: tuple | None = None, limit: int = -1) -> list[SeriesInfo]:
    if tx.one("SELECT 1 FROM trials WHERE id = ?", (trial_id,)) is None:
        raise NotFound("trial", trial_id)
    keyset = " AND (name, agent_id, gpu_uuid, metric_type) > (?, ?, ?, ?)" if after is not None else ""
    rows = tx.all(
        f"SELECT * FROM profiler_series WHERE trial_id = ?{keyset} ORDER BY name, agent_id, gpu_uuid, metric_type LIMIT ?",
        (trial_id, *(after or ()), row_limit(limit)),
    )
    return [series_from_row(r) for r in rows]


def find_series(tx: Tx, labels: Labels) -> SeriesInfo:
    row = tx.one(
        "SELECT * FROM profiler_series WHERE trial_id = ? AND name = ? AND agent_id = ? AND gpu_uuid = ? AND metric_type = ?",
        labels.key(),
    )
    if row is None:
        raise NotFound("profiler series", f"{labels.name!r} of trial {labels.trial_id}")
    return series_from_row(row)


def summaries(tx: Tx, series_id: int, start_ts: int, end_ts: int,
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
    return SummaryTable.from_rows(tx.tuples(sql, args))


def chunk_data(tx: Tx, chunk_ids: list[int]) -> dict[int, Chunk]:
    out: dict[int, Chunk] = {}
    for i in range(0, len(chunk_ids), 500):
        part = chunk_ids[i:i + 500]
        marks = ", ".join("?" for _ in part)
        for cid, count, data in tx.all(f"SELECT id, count, data FROM profiler_chunks WHERE id IN ({marks})", part):
            out[cid] = Chunk.from_bytes(data, count)
    return out


def chunks_after(tx: Tx, series_id: int, after_id: int, after_ts: int, limit: int) -> list[tuple[int, Chunk]]:
    rows = tx.all(
        "SELECT id, count, data FROM profiler_chunks WHERE series_id = ? AND id > ? AND last_ts > ? ORDER BY id LIMIT ?",
        (series_id, after_id, after_ts, limit),
    )
    return [(cid, Chunk.from_bytes(data, count)) for cid, count, data in rows]


def delete_expired(tx: Tx, now: int, default_days: int, limit: int) -> int:
    """Deletes up to limit chunks whose newest sample is older than the
    retention of their trial, and keeps the series summaries right."""
    # Only trials with profiler series are looked at, so the sweep costs
    # next to nothing without profiler data, however many trials there are.
    rows: list[tuple] = []
    for trial_id, cutoff in expiring_trials(tx, now, default_days, "SELECT trial_id FROM profiler_series"):
        rows.extend(tx.tuples(
            "SELECT c.id, c.last_ts, c.series_id FROM profiler_series s JOIN profiler_chunks c ON c.series_id = s.id"
            " WHERE s.trial_id = ? AND c.last_ts < ? LIMIT ?",
            (trial_id, cutoff, limit - len(rows)),
        ))
        if len(rows) >= limit:
            break
    if not rows:
        return 0
    # The time is named too, so a time-partitioned table looks in one partition.
    tx.run_many("DELETE FROM profiler_chunks WHERE id = ? AND last_ts = ?", [(r[0], r[1]) for r in rows])
    refresh_series(tx, {r[2] for r in rows})
    return len(rows)


def refresh_series(tx: Tx, series_ids: set[int]) -> None:
    """Recomputes the summaries of series that lost chunks."""
    tx.run_many(
        """
        UPDATE profiler_series SET
            sample_count = (SELECT coalesce(sum(count), 0) FROM profiler_chunks WHERE series_id = ?),
            chunk_count = (SELECT count(*) FROM profiler_chunks WHERE series_id = ?),
            first_ts = (SELECT min(first_ts) FROM profiler_chunks WHERE series_id = ?),
            last_ts = (SELECT max(last_ts) FROM profiler_chunks WHERE series_id = ?),
            first_batch = (SELECT min(first_batch) FROM profiler_chunks WHERE series_id = ?),
            last_batch = (SELECT max(last_batch) FROM profiler_chunks WHERE series_id = ?)
        WHERE id = ?
        """,
        [(series_id,) * 7 for series_id in sorted(series_ids)],
    )
