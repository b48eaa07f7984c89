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

    def summary(self) -> "ChunkSummary":
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
    def from_bytes(cls, data: bytes, count: int) -> "Chunk":
        raw = np.frombuffer(data, dtype=np.uint8)
        width = count * 8
        return cls(
            raw[:width].view("<f8"),
            raw[width:2 * width].view("<i8"),
            raw[2 * width:3 * width].view("<i8"),
        )

    def select(self, mask: np.ndarray) -> "Chunk":
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


def check_batch(labels: Labels | None, chunk: Chunk) -> str | None:
    """Why a batch cannot be stored, or None when it can."""
    if labels is None:
        return "labels are required"
    if labels.trial_id <= 0:
        return "labels.trial_id must name a trial"
    if not labels.name:
        return "labels.name must not be empty"
    if len(labels.name) > MAX_NAME or len(labels.agent_id) > MAX_NAME or len(labels.gpu_uuid) > MAX_NAME:
        return f"labels must be at most {MAX_NAME} characters each"
    n = chunk.values.size
    if n == 0:
        return "a batch needs at least one sample"
    if chunk.batches.size != n or chunk.timestamps.size != n:
        return (
            f"values, batches and timestamps must have equal lengths "
            f"(got {n}, {chunk.batches.size}, {chunk.timestamps.size})"
        )
    if n > MAX_SAMPLES_PER_BATCH:
        return f"at most {MAX_SAMPLES_PER_BATCH} samples per batch (got {n})"
    if chunk.timestamps.min() < 0 or chunk.timestamps.max() >= MAX_TIMESTAMP_US:
        return "timestamps must be microseconds since the Unix epoch, between 1970 and 2400"
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


def _merge(bucket: Bucket | None, s: ChunkSummary) -> Bucket:
    if bucket is None:
        return Bucket(s.first_ts, s.last_ts, s.vmin, s.vmax, s.vlast, s.count, s.last_ts)
    bucket.start_ts = min(bucket.start_ts, s.first_ts)
    bucket.end_ts = max(bucket.end_ts, s.last_ts)
    bucket.vmin = float(np.fmin(bucket.vmin, s.vmin))
    bucket.vmax = float(np.fmax(bucket.vmax, s.vmax))
    if s.last_ts >= bucket.last_ts:
        bucket.vlast, bucket.last_ts = s.vlast, s.last_ts
    bucket.count += s.count
    return bucket


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


def downsample_summaries(summaries: list[ChunkSummary], start: int, end: int, n: int) -> list[Bucket]:
    """Buckets built from whole chunks: each chunk joins the time bucket its
    first sample falls in, so min, max, last and count stay exact and each
    bucket reports the time span it actually covers."""
    width = max(1, -(-(end - start + 1) // n))
    buckets: dict[int, Bucket] = {}
    for s in summaries:
        key = (s.first_ts - start) // width
        buckets[key] = _merge(buckets.get(key), s)
    return [buckets[k] for k in sorted(buckets)]
