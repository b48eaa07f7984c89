"""Profiler series: labels, columnar chunks with summaries, downsampling.

A chunk is one ingested batch of one series, stored whole with its summary
(count, min, max, last value, time and batch extent). Queries that cover many
chunks read only the summaries; samples are decoded only for the chunks a query
cuts through.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .errors import FieldViolation

# Timestamps are microseconds since the Unix epoch; anything outside
# [1970, 2400) is a unit mistake or garbage.
MAX_TIMESTAMP_US = 13_569_465_600_000_000
MAX_SAMPLES_PER_BATCH = 1_000_000
MAX_NAME = 256


class MetricType(str, enum.Enum):
    SYSTEM = "SYSTEM"
    TIMING = "TIMING"
    MISC = "MISC"


@dataclass(frozen=True)
class Labels:
    trial_id: int
    name: str
    agent_id: str = ""
    gpu_uuid: str = ""
    metric_type: MetricType = MetricType.MISC

    def key(self) -> tuple:
        return (self.trial_id, self.name, self.agent_id, self.gpu_uuid, self.metric_type.value)


@dataclass
class Chunk:
    values: np.ndarray  # float64
    batches: np.ndarray  # int64
    timestamps: np.ndarray  # int64

    @property
    def count(self) -> int:
        return int(self.values.size)

    def summary(self) -> ChunkSummary:
        v, t, b = self.values, self.timestamps, self.batches
        newest = int(np.argmax(t))
        return ChunkSummary(
            chunk_id=0,
            count=self.count,
            first_ts=int(t.min()),
            last_ts=int(t[newest]),
            first_batch=int(b.min()),
            last_batch=int(b.max()),
            vmin=float(np.fmin.reduce(v)),
            vmax=float(np.fmax.reduce(v)),
            vlast=float(v[newest]),
        )

    def to_bytes(self) -> bytes:
        return (
            self.values.astype("<f8", copy=False).tobytes()
            + self.batches.astype("<i8", copy=False).tobytes()
            + self.timestamps.astype("<i8", copy=False).tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes, count: int) -> Chunk:
        raw = np.frombuffer(data, dtype=np.uint8)
        width = count * 8
        return cls(
            raw[:width].view("<f8"),
            raw[width:2 * width].view("<i8"),
            raw[2 * width:3 * width].view("<i8"),
        )

    def select(self, mask: np.ndarray | slice) -> Chunk:
        return Chunk(self.values[mask], self.batches[mask], self.timestamps[mask])


@dataclass
class ChunkSummary:
    chunk_id: int
    count: int
    first_ts: int
    last_ts: int
    first_batch: int
    last_batch: int
    vmin: float
    vmax: float
    vlast: float


def check_batch(labels: Labels | None, chunk: Chunk) -> FieldViolation | None:
    """Why a batch cannot be stored, as a violation of a field of the batch
    (a path relative to it), or None when it can."""
    if labels is None:
        return FieldViolation("labels", "must be set")
    if labels.trial_id <= 0:
        return FieldViolation("labels.trial_id", "must name a trial")
    if not labels.name:
        return FieldViolation("labels.name", "must not be empty")
    if len(labels.name) > MAX_NAME or len(labels.agent_id) > MAX_NAME or len(labels.gpu_uuid) > MAX_NAME:
        return FieldViolation("labels", f"name, agent_id and gpu_uuid must be at most {MAX_NAME} characters each")
    n = chunk.values.size
    if n == 0:
        return FieldViolation("values", "a batch needs at least one sample")
    if chunk.batches.size != n or chunk.timestamps.size != n:
        return FieldViolation(
            "values",
            f"values, batches and timestamps must have equal lengths (got {n}, {chunk.batches.size}, {chunk.timestamps.size})",
        )
    if n > MAX_SAMPLES_PER_BATCH:
        return FieldViolation("values", f"at most {MAX_SAMPLES_PER_BATCH} samples per batch (got {n})")
    if chunk.timestamps.min() < 0 or chunk.timestamps.max() >= MAX_TIMESTAMP_US:
        return FieldViolation("timestamps", "must be microseconds since the Unix epoch, between 1970 and 2400")
    return None


@dataclass
class Bucket:
    start_ts: int
    end_ts: int
    vmin: float
    vmax: float
    vlast: float
    count: int
    last_ts: int = field(default=0, repr=False)


def downsample_samples(chunk: Chunk, start: int, end: int, n: int) -> list[Bucket]:
    """Exact buckets of equal time width over [start, end] from samples."""
    if chunk.values.size == 0:
        return []
    order = np.argsort(chunk.timestamps, kind="stable")
    t = chunk.timestamps[order]
    v = chunk.values[order]
    width = max(1, -(-(end - start + 1) // n))
    index = (t - start) // width
    cuts = np.flatnonzero(np.diff(index)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [t.size])) - 1
    mins = np.fmin.reduceat(v, starts)
    maxs = np.fmax.reduceat(v, starts)
    return [
        Bucket(int(t[a]), int(t[b]), float(lo), float(hi), float(v[b]), int(b - a + 1), int(t[b]))
        for a, b, lo, hi in zip(starts, ends, mins, maxs)
    ]


@dataclass
class SummaryTable:
    """Chunk summaries as columns, so that thousands of chunks bucket in a few
    vectorized steps."""

    chunk_id: np.ndarray
    count: np.ndarray
    first_ts: np.ndarray
    last_ts: np.ndarray
    first_batch: np.ndarray
    last_batch: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    vlast: np.ndarray

    INT_FIELDS = ("chunk_id", "count", "first_ts", "last_ts", "first_batch", "last_batch")

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> SummaryTable:
        """From (id, count, first_ts, last_ts, first_batch, last_batch, vmin, vmax, vlast) rows."""
        if not rows:
            z = np.zeros(0, dtype=np.int64)
            f = np.zeros(0)
            return cls(z, z, z, z, z, z, f, f, f)
        cols = list(zip(*rows))
        ints = [np.array(c, dtype=np.int64) for c in cols[:6]]
        floats = [np.array([np.nan if x is None else x for x in c], dtype=np.float64) for c in cols[6:]]
        return cls(*ints, *floats)

    @classmethod
    def from_summaries(cls, summaries: list[ChunkSummary]) -> SummaryTable:
        return cls.from_rows([
            (s.chunk_id, s.count, s.first_ts, s.last_ts, s.first_batch, s.last_batch, s.vmin, s.vmax, s.vlast)
            for s in summaries
        ])

    def __len__(self) -> int:
        return int(self.chunk_id.size)

    def row(self, i: int) -> ChunkSummary:
        return ChunkSummary(
            int(self.chunk_id[i]), int(self.count[i]), int(self.first_ts[i]), int(self.last_ts[i]),
            int(self.first_batch[i]), int(self.last_batch[i]), float(self.vmin[i]), float(self.vmax[i]),
            float(self.vlast[i]),
        )

    def select(self, index) -> SummaryTable:
        return SummaryTable(*(getattr(self, f)[index] for f in (*self.INT_FIELDS, "vmin", "vmax", "vlast")))

    @staticmethod
    def concat(parts: list[SummaryTable]) -> SummaryTable:
        fields = (*SummaryTable.INT_FIELDS, "vmin", "vmax", "vlast")
        return SummaryTable(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def downsample_table(table: SummaryTable, n: int) -> list[Bucket]:
    """Groups whole chunks into at most n time buckets by their first sample;
    min, max, last and count stay exact and each bucket reports the span it
    covers."""
    if not len(table):
        return []
    lo, hi = int(table.first_ts.min()), int(table.last_ts.max())
    width = max(1, -(-(hi - lo + 1) // n))
    index = (table.first_ts - lo) // width
    order = np.lexsort((table.last_ts, index))
    index = index[order]
    t = table.select(order)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(index)) + 1))
    ends = np.concatenate((starts[1:], [len(t)])) - 1
    firsts = np.minimum.reduceat(t.first_ts, starts)
    lasts = np.maximum.reduceat(t.last_ts, starts)
    mins = np.fmin.reduceat(t.vmin, starts)
    maxs = np.fmax.reduceat(t.vmax, starts)
    counts = np.add.reduceat(t.count, starts)
    # Within a bucket rows are ordered by last_ts, so the last row holds the newest sample.
    return [
        Bucket(int(a), int(b), float(lo_), float(hi_), float(t.vlast[e]), int(c), int(b))
        for a, b, lo_, hi_, e, c in zip(firsts, lasts, mins, maxs, ends, counts)
    ]
