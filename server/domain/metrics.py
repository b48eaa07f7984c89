"""Metrics: reports, points, summaries kept on write, downsampling, rollback.

A series is one metric of one trial: (group, name). Its points are keyed by
(step, trial_run_id). Summaries (count, min, max, mean, last, the mean of the
last 100 values) and per-block aggregates of 256 points are maintained as
points are written, so listings and long-range downsampling never scan
histories. NaN values are kept; min, max and means skip them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import marshal
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .errors import (
    DomainError,
    MetricConflict,
    StaleTrialRun,
    TrialFinished,
    ViolationCollector,
)
from .idempotency import RequestIdReused
from .models import ObjectiveType, Study, TrialState
from .trial_lifecycle import TERMINAL

BLOCK_SIZE = 256
RECENT = 100
MAX_GROUP = 128
MAX_METRIC_NAME = 256
MAX_BATCH_ITEMS = 10_000
# A columnar batch (ReportMetricColumns): values over all blocks, missing
# cells included (8 bytes each on the wire, so the largest batch fits the
# default 64 MiB message with room for steps and times), and names over all
# blocks: each is a series written with statements of its own, a few
# milliseconds apiece on PostgreSQL while the trial stays locked.
MAX_COLUMN_VALUES = 1_000_000
MAX_COLUMN_NAMES = 1_000
MAX_REJECTED_ROWS = 1_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The numeric entries of a metrics dict (bools and other types excluded)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def check_name(v: ViolationCollector, path: str, name: str, limit: int) -> None:
    if not name:
        v.add(path, "must not be empty")
    elif len(name) > limit or _CONTROL.search(name):
        v.add(path, f"must be 1-{limit} printable characters")


# Names seen to be acceptable: a training job sends the same few names in
# every report, so most checks are a set lookup.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_LIMIT = 100_000


def names_ok(names) -> bool:
    """A fast check that every name is acceptable (the usual case)."""
    if all(n in _GOOD_NAMES for n in names):
        return True
    if not all(0 < len(n) <= MAX_METRIC_NAME for n in names) or _CONTROL.search("".join(names)):
        return False
    if len(_GOOD_NAMES) < _GOOD_NAMES_LIMIT:
        _GOOD_NAMES.update(names)
    return True


@dataclass
class PointDraft:
    """A point to store. `series` is (trial_id, group, name)."""

    trial_id: int
    group: str
    name: str
    step: int
    trial_run_id: int
    time: int
    value: float
    raw: str | None = None

    def conflict(self) -> MetricConflict:
        return MetricConflict(
            f"step {self.step} of {self.group}/{self.name} of trial {self.trial_id} was stored with another value;"
            " a point is reported once",
            {"trial_id": self.trial_id, "group": self.group, "step": self.step},
        )


# The group whose reports are validations: they carry the searcher metric
# and rank checkpoints.
VALIDATION = "validation"
# The group of the points that metric definitions parse from log lines.
LOGS = "logs"


@dataclass
class ReportDraft:
    """One report of one step: every value a float (NaN and infinities allowed).

    A step of a (trial, run, group) is reported once. A report of a stored
    step with the same values is a retry; with other values (other names
    included) it is a conflict, refused rather than merged or dropped."""

    trial_id: int
    trial_run_id: int
    group: str
    steps: int
    report_time: int
    metrics: dict[str, float]
    request_id: str = ""

    @functools.cached_property
    def digest(self) -> bytes:
        """Identifies the values, to tell a retry from a conflicting report
        (names sorted: clients may send a map in any order)."""
        # marshal flags objects that are referenced elsewhere, so the list
        # must stay a temporary: MetricColumns.digests() builds the same
        # bytes for a row and relies on it.
        return hashlib.blake2b(marshal.dumps(sorted(self.metrics.items())), digest_size=8).digest()

    def same_values(self, stored_digest: bytes | None) -> bool:
        # Reports stored before digests were kept match any values.
        return stored_digest is None or bytes(stored_digest) == self.digest

    def conflict(self) -> MetricConflict:
        return report_conflict(self.trial_id, self.group, self.steps)

    def request_id_reused(self) -> RequestIdReused:
        return RequestIdReused(self.request_id, "ReportMetrics", f"trial {self.trial_id}")


def report_conflict(trial_id: int, group: str, step: int) -> MetricConflict:
    return MetricConflict(
        f"step {step} of group {group!r} of trial {trial_id} was reported with other values;"
        " a step is reported once",
        {"trial_id": trial_id, "group": group, "step": step},
    )


@dataclass
class MetricColumns:
    """Reports of one group as a table: row i reports step steps[i] with
    values[i, j] for names[j] where present[i, j] (every cell when present
    is None). Each row means what one ReportDraft of it means."""

    group: str
    names: list[str]
    steps: np.ndarray  # int64, one per row
    times: np.ndarray  # int64 microseconds per row; 0: when it is stored
    values: np.ndarray  # float64, (rows, len(names))
    present: np.ndarray | None = None  # bool, like values

    def __len__(self) -> int:
        return int(self.steps.size)

    def row_metrics(self, row: int) -> dict[str, float]:
        values = self.values[row].tolist()
        if self.present is None:
            return dict(zip(self.names, values))
        return {n: v for n, v, p in zip(self.names, values, self.present[row].tolist()) if p}

    def digests(self) -> list[bytes]:
        """ReportDraft.digest of every row, computed without a draft or a
        dict per row."""
        order = sorted(range(len(self.names)), key=self.names.__getitem__)
        names = [self.names[j] for j in order]
        rows = self.values[:, order].tolist()
        blake2b, dumps = hashlib.blake2b, marshal.dumps
        # The lists handed to dumps are temporaries whose names and values
        # are held elsewhere as well, as in ReportDraft.digest: marshal
        # writes the same bytes only then.
        if self.present is None:
            return [blake2b(dumps(list(zip(names, row))), digest_size=8).digest() for row in rows]
        present = self.present[:, order].tolist()
        return [blake2b(dumps([(n, v) for n, v, p in zip(names, row, has) if p]), digest_size=8).digest()
                for row, has in zip(rows, present)]


@dataclass
class ColumnBatch:
    """Rows of reports of one trial and run (0: its current run), block by block."""

    trial_id: int
    trial_run_id: int
    blocks: list[MetricColumns]


@dataclass
class RejectedRow:
    block: int
    row: int
    step: int
    error: DomainError


@dataclass
class ColumnOutcome:
    """What a columnar batch stored; also what a retry of it answers."""

    rows_stored: int = 0
    points_stored: int = 0
    rows_repeated: int = 0
    rows_rejected: int = 0
    # The first MAX_REJECTED_ROWS rejected rows, in request order.
    rejected: list[RejectedRow] = field(default_factory=list)

    def reject(self, block: int, row: int, step: int, error: DomainError) -> None:
        self.rows_rejected += 1
        if len(self.rejected) < MAX_REJECTED_ROWS:
            self.rejected.append(RejectedRow(block, row, step, error))

    def to_record(self) -> str:
        return json.dumps({
            "stored": self.rows_stored, "points": self.points_stored, "repeated": self.rows_repeated,
            "rejected": self.rows_rejected,
            "rows": [(r.block, r.row, r.step, r.error.reason, r.error.message) for r in self.rejected],
        })

    @classmethod
    def from_record(cls, record: str) -> ColumnOutcome:
        r = json.loads(record)
        rows = [RejectedRow(block, row, step, DomainError(message, reason=reason))
                for block, row, step, reason, message in r["rows"]]
        return cls(r["stored"], r["points"], r["repeated"], r["rejected"], rows)


@dataclass
class SeriesSummary:
    count: int = 0
    total: float = 0.0
    finite_count: int = 0
    vmin: float = math.nan
    vmax: float = math.nan
    last: float = math.nan
    last_step: int = -1
    last_time: int = 0
    recent: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return self.total / self.finite_count if self.finite_count else math.nan

    @property
    def recent_mean(self) -> float:
        values = [x for x in self.recent if not math.isnan(x)]
        return sum(values) / len(values) if values else math.nan

    def add(self, step: int, time: int, value: float) -> None:
        self.count += 1
        if not math.isnan(value):
            self.finite_count += 1
            self.total += value
            self.vmin = value if math.isnan(self.vmin) else min(self.vmin, value)
            self.vmax = value if math.isnan(self.vmax) else max(self.vmax, value)
        if step >= self.last_step:
            self.last, self.last_step, self.last_time = value, step, time
            self.recent.append(value)
            if len(self.recent) > RECENT:
                del self.recent[: len(self.recent) - RECENT]


@dataclass
class Block:
    count: int = 0
    first_step: int = 0
    last_step: int = 0
    first_time: int = 0
    last_time: int = 0
    first: float = math.nan
    last: float = math.nan
    vmin: float = math.nan
    vmax: float = math.nan

    def merge(self, other: Block) -> None:
        if other.count == 0:
            return
        if self.count == 0 or other.first_step < self.first_step:
            self.first_step, self.first_time, self.first = other.first_step, other.first_time, other.first
        if self.count == 0 or other.last_step >= self.last_step:
            self.last_step, self.last_time, self.last = other.last_step, other.last_time, other.last
        self.vmin = float(np.fmin(self.vmin, other.vmin))
        self.vmax = float(np.fmax(self.vmax, other.vmax))
        self.count += other.count


def bucket_points(steps: np.ndarray, times: np.ndarray, values: np.ndarray, xs: np.ndarray, n: int) -> list[Block]:
    """Exact buckets of equal width over the x values (steps or times)."""
    if xs.size == 0:
        return []
    lo, hi = int(xs.min()), int(xs.max())
    table = _point_buckets(steps, times, values, xs, lo, _width(lo, hi, n))
    return table.blocks()


def _width(lo: int, hi: int, n: int) -> int:
    return max(1, -(-(hi - lo + 1) // n))


class StepsTimesValues(NamedTuple):
    """Points as bucketing reads them."""

    steps: np.ndarray
    times: np.ndarray
    values: np.ndarray


@dataclass
class BlockColumns:
    """Many blocks as columns; key: the bucket of each (unique when they are buckets)."""

    count: np.ndarray
    first_step: np.ndarray
    last_step: np.ndarray
    first_time: np.ndarray
    last_time: np.ndarray
    first: np.ndarray
    last: np.ndarray
    vmin: np.ndarray
    vmax: np.ndarray
    key: np.ndarray | None = None

    @classmethod
    def of_rows(cls, rows: list[tuple]) -> BlockColumns:
        """From (count, first_step, last_step, first_time, last_time, first, last, vmin, vmax) rows;
        NULL values read as NaN."""
        if not rows:
            z = np.zeros(0, dtype=np.int64)
            f = np.zeros(0)
            return cls(z, z, z, z, z, f, f, f, f)
        ints = np.array([r[:5] for r in rows], dtype=np.int64)
        floats = np.array([r[5:9] for r in rows], dtype=float)
        return cls(ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4],
                   floats[:, 0], floats[:, 1], floats[:, 2], floats[:, 3])

    def select(self, index) -> BlockColumns:
        return BlockColumns(self.count[index], self.first_step[index], self.last_step[index], self.first_time[index],
                            self.last_time[index], self.first[index], self.last[index], self.vmin[index],
                            self.vmax[index], None if self.key is None else self.key[index])

    def blocks(self) -> list[Block]:
        return [
            Block(int(c), int(fs), int(ls), int(ft), int(lt), float(f), float(la), float(lo), float(hi))
            for c, fs, ls, ft, lt, f, la, lo, hi in zip(
                self.count.tolist(), self.first_step.tolist(), self.last_step.tolist(), self.first_time.tolist(),
                self.last_time.tolist(), self.first.tolist(), self.last.tolist(), self.vmin.tolist(),
                self.vmax.tolist())
        ]


def _point_buckets(steps: np.ndarray, times: np.ndarray, values: np.ndarray, xs: np.ndarray, lo: int,
                   width: int) -> BlockColumns:
    """The points' buckets [lo + k * width, lo + (k + 1) * width), keyed by k."""
    if xs.size > 1 and not bool(np.all(xs[1:] >= xs[:-1])):
        order = np.argsort(xs, kind="stable") if xs is steps else np.lexsort((steps, xs))
        xs, steps, times, values = xs[order], steps[order], times[order], values[order]
    index = (xs - lo) // width
    starts = np.concatenate(([0], np.flatnonzero(np.diff(index)) + 1))
    ends = np.concatenate((starts[1:], [xs.size])) - 1
    return BlockColumns(ends - starts + 1, steps[starts], steps[ends], times[starts], times[ends], values[starts],
                        values[ends], np.fmin.reduceat(values, starts), np.fmax.reduceat(values, starts),
                        index[starts])


def _grouped_blocks(blocks: BlockColumns, key: np.ndarray) -> BlockColumns:
    """Blocks merged per key, as Block.merge would merge them."""
    by_first = np.lexsort((blocks.first_step, key))
    by_last = np.lexsort((blocks.last_step, key))
    keys = key[by_first]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1))
    ends = np.concatenate((starts[1:], [keys.size])) - 1
    a, z = by_first[starts], by_last[ends]
    ordered = blocks.select(by_first)
    return BlockColumns(np.add.reduceat(ordered.count, starts), blocks.first_step[a], blocks.last_step[z],
                        blocks.first_time[a], blocks.last_time[z], blocks.first[a], blocks.last[z],
                        np.fmin.reduceat(ordered.vmin, starts), np.fmax.reduceat(ordered.vmax, starts), keys[starts])


def _combined(tables: list[BlockColumns], size: int) -> list[Block]:
    """One bucket per key of any table, each the merge of that key's blocks."""
    out = BlockColumns(np.zeros(size, dtype=np.int64), *(np.zeros(size, dtype=np.int64) for _ in range(4)),
                       *(np.full(size, math.nan) for _ in range(4)))
    for t in tables:
        k = t.key
        empty = out.count[k] == 0
        first = empty | (t.first_step < out.first_step[k])
        last = empty | (t.last_step >= out.last_step[k])
        for name, take in (("first_step", first), ("first_time", first), ("first", first),
                           ("last_step", last), ("last_time", last), ("last", last)):
            column = getattr(out, name)
            column[k] = np.where(take, getattr(t, name), column[k])
        out.vmin[k] = np.fmin(out.vmin[k], t.vmin)
        out.vmax[k] = np.fmax(out.vmax[k], t.vmax)
        out.count[k] += t.count
    return out.select(out.count > 0).blocks()


# Reading the points of chunks that cross bucket edges costs about as much
# per point as a raw read; past this many, chunks stay whole.
EXACT_EDGE_POINTS = 65_536


def bucket_chunks(chunks: BlockColumns, chunk_ids: np.ndarray, loose: StepsTimesValues,
                  load: Callable[[list[int]], StepsTimesValues], n: int) -> list[Block]:
    """At most n buckets over the step range, each exact over the points it
    holds, from the aggregates of chunks' live points and from loose live
    points. A chunk inside one bucket counts by its aggregates. Chunks
    across a bucket edge are read (load(chunk ids)) and split at the edge,
    which makes the buckets equal in width, unless they hold more than
    EXACT_EDGE_POINTS points: then each stays whole in the bucket where it
    starts, and edges move by up to one chunk."""
    live = chunks.count > 0
    firsts = [int(chunks.first_step[live].min())] if live.any() else []
    lasts = [int(chunks.last_step[live].max())] if live.any() else []
    if loose.steps.size:
        firsts.append(int(loose.steps.min()))
        lasts.append(int(loose.steps.max()))
    if not firsts:
        return []
    lo, hi = min(firsts), max(lasts)
    width = _width(lo, hi, n)
    k_first = (chunks.first_step - lo) // width
    inside = live & (k_first == (chunks.last_step - lo) // width)
    crossing = live & ~inside
    points = loose
    if int(chunks.count[crossing].sum()) > EXACT_EDGE_POINTS:
        inside = live
    elif crossing.any():
        more = load(chunk_ids[crossing].tolist())
        points = StepsTimesValues(*(np.concatenate(pair) for pair in zip(loose, more)))
    tables = []
    if inside.any():
        tables.append(_grouped_blocks(chunks.select(inside), k_first[inside]))
    if points.steps.size:
        tables.append(_point_buckets(points.steps, points.times, points.values, points.steps, lo, width))
    return _combined(tables, (hi - lo) // width + 1)


def signed_objective(study: Study | None, metrics: dict) -> float | None:
    """The searcher metric of a validation report, signed so smaller is better."""
    if study is None or not study.objective.metric_name:
        return None
    value = scalar_metrics(metrics).get(study.objective.metric_name)
    if value is None or math.isnan(value):
        return None
    return -value if study.objective.type == ObjectiveType.MAXIMIZE else value


def log_validation(study: Study | None, trial_id: int, run: int, step: int, time: int,
                   parsed: dict[str, float]) -> ReportDraft | None:
    """Values parsed from one log line that include the study's objective
    metric count as a validation of that step, as a report of them would:
    they set the searcher metric and the best and latest validation."""
    if study is None or study.objective.metric_name not in parsed:
        return None
    wanted = {study.objective.metric_name, *study.objective.additional_metric_names}
    return ReportDraft(trial_id, run, VALIDATION, step, time, {k: v for k, v in parsed.items() if k in wanted})


@dataclass
class LogMetricRule:
    name: str
    pattern: re.Pattern


def compile_rules(definitions) -> list[LogMetricRule]:
    return [LogMetricRule(d.name, re.compile(d.regex)) for d in definitions if d.name and d.regex]


def extract_log_metrics(rules: list[LogMetricRule], message: str) -> list[tuple[str, float, int | None]]:
    """(name, value, step or None) for every rule that matches the line. The
    value is the group named "value" or else the first group; a group named
    "step" gives the step."""
    found = []
    for rule in rules:
        m = rule.pattern.search(message)
        if not m:
            continue
        groups = m.groupdict()
        if "value" in groups:
            text = groups["value"]
        else:
            # The first group that is not the step.
            step_index = m.re.groupindex.get("step")
            first = next((i for i in range(1, m.re.groups + 1) if i != step_index), None)
            text = m.group(first) if first else None
        try:
            value = float(text)
        except (TypeError, ValueError):
            continue
        step = None
        if groups.get("step") is not None:
            try:
                step = int(groups["step"])
            except ValueError:
                step = None
        found.append((rule.name, value, step))
    return found


@dataclass
class DebugEventDraft:
    trial_id: int
    kind: str  # VECTOR, PLOT or IMAGE
    metric: str
    variant: str
    iteration: int
    time: int
    payload: dict


@dataclass
class LogDraft:
    trial_id: int
    time: int
    level: str
    worker: str
    stream: str
    rank: int
    message: str


@dataclass
class IngestBatch:
    """Everything one ingest call stores, in one transaction."""

    reports: list[ReportDraft] = field(default_factory=list)
    points: list[PointDraft] = field(default_factory=list)
    debug_events: list[DebugEventDraft] = field(default_factory=list)
    logs: list[LogDraft] = field(default_factory=list)
    # Index of each item in the caller's request, for error reports.
    report_index: list[int] = field(default_factory=list)
    point_index: list[tuple[str, int]] = field(default_factory=list)
    event_index: list[int] = field(default_factory=list)
    log_index: list[int] = field(default_factory=list)
    # When set, one refused item refuses the whole batch: storage raises its
    # error inside its write transaction and stores nothing.
    all_or_nothing: bool = False


@dataclass
class IngestOutcome:
    added: int = 0
    duplicates: int = 0
    log_points: int = 0
    # (list name, index, why) of every item that was not stored.
    errors: list[tuple[str, int, DomainError]] = field(default_factory=list)
    # Per report: True if stored now, False if it was a retry of a stored one.
    report_created: list[bool] = field(default_factory=list)
    trial_ids: set[int] = field(default_factory=set)

    def to_record(self) -> str:
        """What a retry of the same request answers, as JSON."""
        errors = [(name, index, err.reason, err.message) for name, index, err in self.errors]
        return json.dumps({"added": self.added, "duplicates": self.duplicates, "log_points": self.log_points,
                           "errors": errors, "report_created": self.report_created})

    @classmethod
    def from_record(cls, record: str) -> IngestOutcome:
        r = json.loads(record)
        return cls(added=r["added"], duplicates=r["duplicates"], log_points=r["log_points"],
                   errors=[(name, index, DomainError(message, reason=reason)) for name, index, reason, message in r["errors"]],
                   report_created=r["report_created"])


_TERMINAL_NAMES = frozenset(s.value for s in TERMINAL)


def target_problem(trial_id: int, state: str, current_run: int, run: int) -> DomainError | None:
    """Why a report to this trial is refused, or None. state is the stored
    name; checked as text, as every report of a batch asks."""
    if state in _TERMINAL_NAMES:
        return TrialFinished(trial_id, TrialState(state))
    if run and run != current_run:
        return StaleTrialRun(trial_id, current_run, run)
    return None


CHUNK_POINTS = 512
# Appends smaller than this are stored as small chunks of their own and
# compacted into full chunks once a series has COMPACT_AFTER of them, so one
# point at a time costs a tiny insert instead of rewriting a large chunk.
SMALL_APPEND = 64
COMPACT_AFTER = 32


@dataclass
class PointColumns:
    """Points of one series as columns, the unit in which they are stored."""

    steps: np.ndarray  # int64
    runs: np.ndarray  # int64
    times: np.ndarray  # int64, microseconds
    values: np.ndarray  # float64, NaN allowed
    archived: np.ndarray  # bool
    raws: list | None = None  # values exactly as sent, for Katib observations

    @classmethod
    def build(cls, steps: list, runs: list, times: list, values: list, raws: list | None = None) -> PointColumns:
        n = len(steps)
        return cls(
            np.array(steps, dtype=np.int64), np.array(runs, dtype=np.int64), np.array(times, dtype=np.int64),
            np.array(values, dtype=np.float64), np.zeros(n, dtype=bool),
            raws if raws is not None and any(r is not None for r in raws) else None,
        )

    @classmethod
    def empty(cls) -> PointColumns:
        z = np.zeros(0, dtype=np.int64)
        return cls(z, z, z, np.zeros(0), np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.steps.size)

    def select(self, index) -> PointColumns:
        raws = None
        if self.raws is not None:
            raws = list(np.asarray(self.raws, dtype=object)[index])
        return PointColumns(self.steps[index], self.runs[index], self.times[index], self.values[index],
                            self.archived[index], raws)

    def sorted(self) -> PointColumns:
        if len(self) < 2:
            return self
        order = np.lexsort((self.runs, self.steps))
        return self if np.all(order[1:] > order[:-1]) else self.select(order)

    @staticmethod
    def concat(parts: list[PointColumns]) -> PointColumns:
        parts = [p for p in parts if len(p)]
        if not parts:
            return PointColumns.empty()
        if len(parts) == 1:
            return parts[0]
        raws = None
        if any(p.raws is not None for p in parts):
            raws = [r for p in parts for r in (p.raws if p.raws is not None else [None] * len(p))]
        steps, runs, times, values, archived = (np.concatenate([getattr(p, f) for p in parts])
                                                for f in ("steps", "runs", "times", "values", "archived"))
        return PointColumns(steps, runs, times, values, archived, raws)

    def to_bytes(self) -> bytes:
        return (self.steps.astype("<i8").tobytes() + self.runs.astype("<i8").tobytes()
                + self.times.astype("<i8").tobytes() + self.values.astype("<f8").tobytes()
                + self.archived.astype(np.uint8).tobytes())

    @staticmethod
    def live_steps_times_values(chunks: list[tuple[int, bytes]]) -> StepsTimesValues:
        """The steps, times and values of the live points of encoded chunks
        ((count, bytes) each), read in place: what bucketing needs, at a few
        array views per chunk."""
        steps, times, values = [], [], []
        for n, data in chunks:
            s = np.frombuffer(data, "<i8", n)
            t = np.frombuffer(data, "<i8", n, 16 * n)
            v = np.frombuffer(data, "<f8", n, 24 * n)
            archived = np.frombuffer(data, np.uint8, n, 32 * n)
            if archived.any():
                live = archived == 0
                s, t, v = s[live], t[live], v[live]
            steps.append(s)
            times.append(t)
            values.append(v)
        if not steps:
            return StepsTimesValues(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
        return StepsTimesValues(np.concatenate(steps), np.concatenate(times), np.concatenate(values))

    @classmethod
    def from_bytes(cls, data: bytes, n: int, raws: list | None = None) -> PointColumns:
        raw = np.frombuffer(data, dtype=np.uint8)
        w = 8 * n
        return cls(raw[:w].view("<i8"), raw[w:2 * w].view("<i8"), raw[2 * w:3 * w].view("<i8"),
                   raw[3 * w:4 * w].view("<f8"), raw[4 * w:4 * w + n].astype(bool), raws)

    def live(self) -> PointColumns:
        return self if not self.archived.any() else self.select(~self.archived)


@dataclass
class ChunkStats(Block):
    """Aggregates of the live points of a chunk, stored beside it; count is
    the number of live points."""

    total: float = 0.0
    finite_count: int = 0

    @classmethod
    def of(cls, cols: PointColumns) -> ChunkStats:
        live = cols.live()
        if not len(live):
            return cls()
        if len(live) <= 8:
            return cls._of_few(live)
        v = live.values
        finite = ~np.isnan(v)
        return cls(
            count=len(live), first_step=int(live.steps[0]), last_step=int(live.steps[-1]),
            first_time=int(live.times[0]), last_time=int(live.times[-1]), first=float(v[0]), last=float(v[-1]),
            vmin=float(np.fmin.reduce(v)), vmax=float(np.fmax.reduce(v)),
            total=_total(v[finite]), finite_count=int(finite.sum()),
        )

    @classmethod
    def _of_few(cls, live: PointColumns) -> ChunkStats:
        steps, times, values = live.steps.tolist(), live.times.tolist(), live.values.tolist()
        finite = [v for v in values if not math.isnan(v)]
        return cls(
            count=len(values), first_step=steps[0], last_step=steps[-1], first_time=times[0], last_time=times[-1],
            first=values[0], last=values[-1], vmin=min(finite) if finite else math.nan,
            vmax=max(finite) if finite else math.nan, total=float(sum(finite)), finite_count=len(finite),
        )


def _total(values: np.ndarray) -> float:
    # Both infinities make the total NaN, as sum() of the floats does, without a warning.
    with np.errstate(invalid="ignore"):
        return float(values.sum())


def add_to_summary(s: SeriesSummary, live: PointColumns) -> None:
    """Folds sorted live points into a series summary, vectorized."""
    if not len(live):
        return
    if len(live) <= 8:
        for step, time, value in zip(live.steps.tolist(), live.times.tolist(), live.values.tolist()):
            s.add(step, time, value)
        return
    v = live.values
    finite = ~np.isnan(v)
    s.count += len(live)
    s.finite_count += int(finite.sum())
    s.total += _total(v[finite])
    if finite.any():
        s.vmin = float(np.fmin(s.vmin, v[finite].min()))
        s.vmax = float(np.fmax(s.vmax, v[finite].max()))
    newer = live.steps >= s.last_step
    if newer.any():
        tail = v[newer]
        s.last, s.last_step, s.last_time = float(tail[-1]), int(live.steps[newer][-1]), int(live.times[newer][-1])
        s.recent = (s.recent + tail[-RECENT:].tolist())[-RECENT:]
