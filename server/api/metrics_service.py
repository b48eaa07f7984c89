"""trialplane.v1.MetricsService: metric reports, ClearML-style events, queries."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np
from trialplane.v1 import log_pb2, metrics_pb2, metrics_service_pb2_grpc
from trialplane.v1 import metrics_service_pb2 as ms

from ..domain import listing
from ..domain import metrics as m
from ..domain.errors import DomainError, ResourceExhausted, ViolationCollector, invalid
from ..domain.tokens import redact
from ..services.change_feed import ChangeFeed
from ..services.follow import follow, trials_ended
from ..storage.interface import DebugEvent, MetricSeriesSummary, Storage
from . import convert
from .budget import DOUBLE, FIELD, INT64, SCALAR, Room, text
from .errors import error_reason, rpc
from .limits import DEFAULT_LIMITS, BatchLimits

SERVICE = "trialplane.v1.MetricsService"
INT64_MAX = 2**63 - 1
MAX_TRIALS_PER_QUERY = 100
MAX_NAMES_PER_QUERY = 100
MAX_BUCKETS = 10_000
DEFAULT_RAW_PAGE = 10_000
MAX_RAW_PAGE = 100_000
SUMMARY_PAGE = 100
SUMMARY_PAGE_MAX = 1000
LOG_LEVELS = {v: k[len("LOG_LEVEL_"):] for k, v in log_pb2.LogLevel.items() if v}
DEBUG_KINDS = {v: k[len("DEBUG_EVENT_KIND_"):] for k, v in ms.DebugEventKind.items() if v}
# A point of a MetricSeries at its largest: step, run, time, value, archived.
POINT_BYTES = 3 * INT64 + DOUBLE + 1
# A MetricSeries without its group, name and points: its own field, trial_id, five columns.
SERIES_BYTES = FIELD + SCALAR + 5 * FIELD
# The two answers of ReportMetrics, built once; gRPC only serializes them.
CREATED = ms.ReportMetricsResponse(created=True)
NOT_CREATED = ms.ReportMetricsResponse(created=False)
# Report times of a columnar batch: microseconds before the year 10000, the
# range a Timestamp holds, so every stored time reads back as one.
MAX_REPORT_TIME_US = 253_402_300_800 * convert.US


def _report_violations(req: ms.ReportMetricsRequest, metrics: dict, path: str) -> ViolationCollector:
    v = ViolationCollector()
    tm = req.metrics
    if tm.trial_id <= 0:
        v.add(f"{path}metrics.trial_id", "must name a trial")
    if tm.trial_run_id < 0:
        v.add(f"{path}metrics.trial_run_id", "must not be negative")
    if tm.steps_completed < 0:
        v.add(f"{path}metrics.steps_completed", "must not be negative")
    m.check_name(v, f"{path}group", req.group, m.MAX_GROUP)
    for name in metrics:
        m.check_name(v, f"{path}metrics.metrics.avg_metrics[{name}]", name, m.MAX_METRIC_NAME)
    if len(req.request_id) > 128:
        v.add(f"{path}request_id", "must be at most 128 characters")
    return v


def report_draft(req: ms.ReportMetricsRequest, path: str = "") -> m.ReportDraft:
    """A validated ReportDraft or InvalidArgument naming fields under path
    ("" for a ReportMetrics request, "reports[3]." inside AddEvents)."""
    # Each field is read once: on the hot path every protobuf access counts.
    tm = req.metrics
    metrics = convert.metric_values(tm.metrics.avg_metrics, f"{path}metrics.metrics.avg_metrics")
    trial_id, run, steps = tm.trial_id, tm.trial_run_id, tm.steps_completed
    group, request_id = req.group, req.request_id
    # The common case passes these cheap checks; only a failure builds the
    # detailed violation list.
    if (trial_id <= 0 or run < 0 or steps < 0 or len(request_id) > 128 or len(group) > m.MAX_GROUP
            or not m.names_ok((group, *metrics))):
        _report_violations(req, metrics, path).raise_if_any()
    report_time = convert.timestamp_us(tm.report_time, f"{path}metrics.report_time") if tm.HasField("report_time") else 0
    return m.ReportDraft(trial_id, run, group, steps, report_time, metrics, request_id)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def column_block(block: ms.MetricColumns, path: str, v: ViolationCollector) -> m.MetricColumns | None:
    """The block as a table, or None after adding its violations to v.
    Array fields name their first bad entry, as blocks[0].steps[7]."""
    before = len(v.violations)
    group, names = block.group, list(block.names)
    m.check_name(v, f"{path}.group", group, m.MAX_GROUP)
    if not names:
        v.add(f"{path}.names", "name at least one metric")
    elif not m.names_ok(names):
        for j, name in enumerate(names):
            m.check_name(v, f"{path}.names[{j}]", name, m.MAX_METRIC_NAME)
    if len(set(names)) != len(names):
        seen: dict[str, int] = {}
        for j, name in enumerate(names):
            if name in seen:
                v.add(f"{path}.names[{j}]", f"repeats names[{seen[name]}]")
            seen.setdefault(name, j)
    steps = np.array(block.steps, dtype=np.int64)
    rows, width = steps.size, len(names)
    if (bad := _first(steps < 0)) is not None:
        v.add(f"{path}.steps[{bad}]", "must not be negative")
    times = np.array(block.report_times, dtype=np.int64)
    if times.size and times.size != rows:
        v.add(f"{path}.report_times", f"has {times.size} entries for {rows} steps: send one per step, or none")
    elif (bad := _first((times < 0) | (times >= MAX_REPORT_TIME_US))) is not None:
        v.add(f"{path}.report_times[{bad}]", "must be 0 or microseconds since the Unix epoch before the year 10000")
    values = np.array(block.values, dtype=np.float64)
    if values.size != rows * width:
        v.add(f"{path}.values", f"has {values.size} entries; {rows} steps x {width} names need {rows * width}")
    missing = np.array(block.missing_indices, dtype=np.int64)
    if (bad := _first((missing < 0) | (missing >= values.size))) is not None:
        v.add(f"{path}.missing_indices[{bad}]", f"{missing[bad]} is not an index of values (0 to {values.size - 1})")
    if len(v.violations) > before:
        return None
    present = None
    if missing.size:
        cells = np.ones(values.size, dtype=bool)
        cells[missing] = False
        present = cells.reshape(rows, width)
    return m.MetricColumns(group, names, steps, times if times.size else np.zeros(rows, dtype=np.int64),
                           values.reshape(rows, width), present)


def column_batch(request: ms.ReportMetricColumnsRequest, limits: BatchLimits = DEFAULT_LIMITS) -> m.ColumnBatch:
    """A validated ColumnBatch; ResourceExhausted past a limit, else
    InvalidArgument naming every bad field."""
    limits.points(sum(len(b.values) for b in request.blocks), "ReportMetricColumns", "values over all blocks")
    names = sum(len(b.names) for b in request.blocks)
    if names > m.MAX_COLUMN_NAMES:
        raise ResourceExhausted(
            f"at most {m.MAX_COLUMN_NAMES} names over all blocks per ReportMetricColumns call (got {names}); send"
            " several calls", metadata={"limit": m.MAX_COLUMN_NAMES, "requested": names})
    v = ViolationCollector()
    if request.trial_id <= 0:
        v.add("trial_id", "must name a trial")
    if request.trial_run_id < 0:
        v.add("trial_run_id", "must not be negative")
    blocks = [column_block(block, f"blocks[{i}]", v) for i, block in enumerate(request.blocks)]
    v.raise_if_any()
    return m.ColumnBatch(request.trial_id, request.trial_run_id, [b for b in blocks if b is not None])


def columns_response(outcome: m.ColumnOutcome) -> ms.ReportMetricColumnsResponse:
    return ms.ReportMetricColumnsResponse(
        rows_stored=outcome.rows_stored, points_stored=outcome.points_stored, rows_repeated=outcome.rows_repeated,
        rows_rejected=outcome.rows_rejected,
        rejected_rows=[
            ms.RejectedMetricRow(block_index=r.block, row_index=r.row, step=r.step, reason=r.error.message,
                                 error_reason=error_reason(r.error))
            for r in outcome.rejected
        ],
    )


def _event_time(item, path: str) -> int:
    return convert.timestamp_us(item.time, f"{path}.time") if item.HasField("time") else 0


def add_event(batch: m.IngestBatch, item: metrics_pb2.TrialEventItem, index: int) -> None:
    path = f"events[{index}]"
    kind = item.WhichOneof("event")
    if kind is None:
        raise invalid(path, "set one of scalar, vector, plot or image")
    event = getattr(item, kind)
    v = ViolationCollector()
    if item.trial_id <= 0:
        v.add(f"{path}.trial_id", "must name a trial")
    m.check_name(v, f"{path}.{kind}.metric", event.metric, m.MAX_GROUP)
    if event.variant:
        m.check_name(v, f"{path}.{kind}.variant", event.variant, m.MAX_METRIC_NAME)
    if event.iteration < 0:
        v.add(f"{path}.{kind}.iteration", "must not be negative")
    payload: dict = {}
    if kind == "plot":
        try:
            payload = {"plot": json.loads(event.plot_json)}
        except ValueError as exc:
            v.add(f"{path}.plot.plot_json", f"is not JSON: {exc}")
    elif kind == "vector":
        payload = {"values": list(event.values)}
    elif kind == "image":
        if not event.url and not event.key:
            v.add(f"{path}.image", "needs a url or a key")
        payload = {"url": event.url, "key": event.key}
    v.raise_if_any()
    time = _event_time(item, path)
    if kind == "scalar":
        batch.points.append(m.PointDraft(item.trial_id, event.metric, event.variant or event.metric, event.iteration, 0,
                                         time, event.value))
        batch.point_index.append(("events", index))
    else:
        batch.debug_events.append(m.DebugEventDraft(item.trial_id, kind.upper(), event.metric, event.variant,
                                                    event.iteration, time, payload))
        batch.event_index.append(index)


def log_draft(line: log_pb2.TaskLog, path: str) -> m.LogDraft:
    v = ViolationCollector()
    if line.trial_id <= 0:
        v.add(f"{path}.trial_id", "must name a trial")
    if line.level and line.level not in LOG_LEVELS:
        v.add(f"{path}.level", f"unknown value {line.level}")
    if len(line.message) > 65536:
        v.add(f"{path}.message", "must be at most 65536 characters")
    if len(line.worker) > 256 or len(line.stream) > 64:
        v.add(f"{path}.worker", "worker must be at most 256 and stream at most 64 characters")
    v.raise_if_any()
    time = convert.timestamp_us(line.time, f"{path}.time") if line.HasField("time") else 0
    return m.LogDraft(line.trial_id, time, LOG_LEVELS.get(line.level, "INFO"), line.worker, line.stream or "stdout",
                      line.rank, redact(line.message))


def summary_to_proto(s: MetricSeriesSummary) -> metrics_pb2.MetricSummary:
    return convert.summary_to_proto(s.trial_id, s.group, s.name, s.summary)


def columns(series: ms.MetricSeries, cols: m.PointColumns) -> None:
    if not len(cols):
        return
    series.steps.extend(cols.steps.tolist())
    series.trial_run_ids.extend(cols.runs.tolist())
    series.times.extend(cols.times.tolist())
    series.values.extend(cols.values.tolist())
    if cols.archived.any():
        series.archived.extend(cols.archived.tolist())


def bucket_to_proto(b: m.Block) -> metrics_pb2.MetricBucket:
    return metrics_pb2.MetricBucket(
        first_step=b.first_step, last_step=b.last_step, first=b.first, last=b.last, min=b.vmin, max=b.vmax,
        count=b.count, first_time=convert.timestamp(b.first_time), last_time=convert.timestamp(b.last_time),
    )


def item_error(list_name: str, index: int, err: DomainError) -> ms.ItemError:
    return ms.ItemError(index=index, list=list_name, reason=err.message, error_reason=error_reason(err))


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, storage: Storage, feed: ChangeFeed, max_response_bytes: int,
                 limits: BatchLimits = DEFAULT_LIMITS):
        self.storage = storage
        self.feed = feed
        self.max_response_bytes = max_response_bytes
        self.limits = limits
        # Called with the trials that just stored validation points.
        self.on_validation: Callable[[Iterable[int]], None] = lambda trial_ids: None
        # Called with a kind ("metric_points", "log_lines") and how many were stored.
        self.on_ingest: Callable[[str, int], None] = lambda kind, count: None

    @rpc
    async def ReportMetrics(self, request, context):
        points = len(request.metrics.metrics.avg_metrics)
        if points > self.limits.max_points:
            self.limits.points(points, "ReportMetrics")
        draft = report_draft(request)
        created = await self.storage.report_metrics(draft)
        self.feed.metrics.notify()
        if created:
            self.on_ingest("metric_points", len(draft.metrics))
            if draft.group == m.VALIDATION:
                self.on_validation([draft.trial_id])
        return CREATED if created else NOT_CREATED

    @rpc
    async def AddEvents(self, request, context):
        self.limits.items(len(request.reports) + len(request.events) + len(request.logs), "AddEvents", "items", SERVICE)
        self.limits.points(sum(len(r.metrics.metrics.avg_metrics) for r in request.reports), "AddEvents")
        key = convert.request_key(request, "AddEvents")
        batch = m.IngestBatch()
        errors: list[ms.ItemError] = []

        # One bad item must not sink the others: each is checked on its own.
        for i, report in enumerate(request.reports):
            try:
                batch.reports.append(report_draft(report, f"reports[{i}]."))
                batch.report_index.append(i)
            except DomainError as exc:
                errors.append(item_error("reports", i, exc))
        for i, item in enumerate(request.events):
            try:
                add_event(batch, item, i)
            except DomainError as exc:
                errors.append(item_error("events", i, exc))
        for i, line in enumerate(request.logs):
            try:
                batch.logs.append(log_draft(line, f"logs[{i}]"))
                batch.log_index.append(i)
            except DomainError as exc:
                errors.append(item_error("logs", i, exc))
        outcome = await self.storage.ingest_metrics(batch, key)
        if outcome.added:
            self._count_events(batch, outcome)
            self.feed.metrics.notify()
            self.on_validation({r.trial_id for r in batch.reports if r.group == m.VALIDATION}
                               | {line.trial_id for line in batch.logs})
        errors.extend(item_error(name, i, err) for name, i, err in outcome.errors)
        errors.sort(key=lambda e: (e.list, e.index))
        return ms.AddEventsResponse(added=outcome.added, errors=errors)

    def _count_events(self, batch: m.IngestBatch, outcome: m.IngestOutcome) -> None:
        refused = {(name, i) for name, i, _ in outcome.errors}
        points = sum(len(r.metrics) for r, created in zip(batch.reports, outcome.report_created) if created)
        points += sum(1 for where in batch.point_index if where not in refused)
        self.on_ingest("metric_points", points)
        self.on_ingest("log_lines", sum(1 for i in batch.log_index if ("logs", i) not in refused))

    @rpc
    async def ReportMetricColumns(self, request, context):
        batch = column_batch(request, self.limits)
        # One digest of the whole request: it tells a retry from another batch.
        key = convert.request_key(request, "ReportMetricColumns", f"trial {request.trial_id}")
        outcome = await self.storage.report_metric_columns(batch, key)
        self.on_ingest("metric_points", outcome.points_stored)
        if outcome.rows_stored:
            self.feed.metrics.notify()
            if any(block.group == m.VALIDATION for block in request.blocks):
                self.on_validation([request.trial_id])
        return columns_response(outcome)

    @staticmethod
    def _trial_ids(ids, field: str = "trial_ids") -> list[int]:
        if not ids:
            raise invalid(field, "name at least one trial")
        if len(ids) > MAX_TRIALS_PER_QUERY:
            raise invalid(field, f"at most {MAX_TRIALS_PER_QUERY} trials per call")
        if any(i <= 0 for i in ids):
            raise invalid(field, "must be trial ids")
        return list(dict.fromkeys(ids))

    async def _summary_page(self, request, group: str) -> tuple[list, str]:
        trial_ids = self._trial_ids(request.trial_ids)
        size = listing.page_size(request.page_size, SUMMARY_PAGE, SUMMARY_PAGE_MAX)
        page, after = listing.tuple_page(request.page_token, size, {"t": trial_ids, "g": group}, (int, str, str))
        rows = await self.storage.metric_summaries(trial_ids, group, after=after, limit=size + 1)
        token = listing.next_tuple_token(page, rows, lambda s: (s.trial_id, s.group, s.name))
        return [summary_to_proto(s) for s in rows[:size]], token

    @rpc
    async def ListMetricNames(self, request, context):
        summaries, token = await self._summary_page(request, "")
        return ms.ListMetricNamesResponse(metrics=summaries, next_page_token=token)

    @rpc
    async def GetLatestMetrics(self, request, context):
        summaries, token = await self._summary_page(request, request.group)
        return ms.GetLatestMetricsResponse(summaries=summaries, next_page_token=token)

    @rpc
    async def GetMetricHistory(self, request, context):
        trial_ids = self._trial_ids(request.trial_ids)
        if not request.group:
            raise invalid("group", "must not be empty")
        names = list(dict.fromkeys(request.names))
        if not names:
            raise invalid("names", "name at least one metric")
        if len(names) > MAX_NAMES_PER_QUERY:
            raise invalid("names", f"at most {MAX_NAMES_PER_QUERY} metrics per call")
        start, end = request.start_step, request.end_step or INT64_MAX
        if start < 0 or start > end:
            raise invalid("start_step", "must be between 0 and end_step")
        if request.buckets < 0:
            raise invalid("buckets", "must not be negative")
        if request.axis and request.axis not in ms.MetricAxis.values():
            raise invalid("axis", f"unknown value {request.axis}")
        await self.storage.metric_summaries(trial_ids)  # NOT_FOUND for unknown trials
        targets = [(t, n, await self.storage.metric_series_id(t, request.group, n)) for t in trial_ids for n in names]
        if request.buckets:
            by_time = request.axis in (ms.METRIC_AXIS_WALL_TIME, ms.METRIC_AXIS_EPOCH_TIME)
            n = min(request.buckets, MAX_BUCKETS)
            out = []
            for trial_id, name, sid in targets:
                series = ms.MetricSeries(trial_id=trial_id, group=request.group, name=name)
                if sid is not None:
                    found = await self.storage.metric_buckets(sid, start, end, n, by_time, request.include_archived)
                    series.buckets.extend(bucket_to_proto(b) for b in found)
                out.append(series)
            return ms.GetMetricHistoryResponse(series=out)
        return await self._raw_page(request, targets, start, end)

    async def _raw_page(self, request, targets, start, end) -> ms.GetMetricHistoryResponse:
        size = listing.page_size(request.page_size, DEFAULT_RAW_PAGE, MAX_RAW_PAGE)
        query = {"t": [t for t, _, _ in targets], "n": [n for _, n, _ in targets], "g": request.group,
                 "r": [start, end], "a": request.include_archived}
        page = listing.make_page(request.page_token, size, listing.Order("raw"), query)
        first, after = 0, None
        if page.after is not None:
            try:
                first, step, run = (int(x) for x in page.after[0])
            except (TypeError, ValueError):
                raise invalid("page_token", "is malformed", reason="INVALID_PAGE_TOKEN") from None
            after = (step, run) if step >= 0 else None
        response = ms.GetMetricHistoryResponse()
        budget = size
        room = Room(self.max_response_bytes)
        for index in range(first, len(targets)):
            trial_id, name, sid = targets[index]
            header = SERIES_BYTES + text(request.group) + text(name)
            if response.series and not room.fits(header + POINT_BYTES):
                response.next_page_token = listing.encode_token(page, ([index, -1, 0], 0))
                return response
            room.take(header)
            series = response.series.add(trial_id=trial_id, group=request.group, name=name)
            if sid is None:
                continue
            n = room.count(POINT_BYTES, budget)
            cols = await self.storage.metric_points(
                sid, start, end, request.include_archived, after if index == first else None, n + 1
            )
            more = len(cols) > n
            cols = cols.select(slice(0, n))
            columns(series, cols)
            budget -= len(cols)
            room.take(len(cols) * POINT_BYTES)
            if more:
                last = [index, int(cols.steps[-1]), int(cols.runs[-1])]
                response.next_page_token = listing.encode_token(page, (last, 0))
                return response
            if budget == 0 and index + 1 < len(targets):
                response.next_page_token = listing.encode_token(page, ([index + 1, -1, 0], 0))
                return response
        return response

    @rpc
    async def WatchMetrics(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        names = set(request.names)
        # Unset, the cursor is before every point; set, it is after that step in every run.
        start = (request.after_step, INT64_MAX) if request.HasField("after_step") else None
        cursors: dict[int, tuple | None] = {}

        async def read() -> list[ms.MetricSeries]:
            out = []
            for s in await self.storage.metric_summaries([request.trial_id]):
                if names and s.name not in names:
                    continue
                sid = s.series_id
                room = Room(self.max_response_bytes)
                room.take(SERIES_BYTES + text(s.group) + text(s.name))
                cols = await self.storage.metric_points(
                    sid, 0, INT64_MAX, False, cursors.get(sid, start), room.count(POINT_BYTES, 10_000))
                if len(cols):
                    series = ms.MetricSeries(trial_id=request.trial_id, group=s.group, name=s.name)
                    columns(series, cols)
                    cursors[sid] = (int(cols.steps[-1]), int(cols.runs[-1]))
                    out.append(series)
            return out

        async for batch in follow(read, trials_ended(self.storage, [request.trial_id]), self.feed.metrics):
            for series in batch:
                yield ms.WatchMetricsResponse(series=[series])

    @rpc
    async def ListDebugEvents(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        kinds = []
        for i, k in enumerate(request.kinds):
            if k not in DEBUG_KINDS:
                raise invalid(f"kinds[{i}]", f"unknown value {k}")
            kinds.append(DEBUG_KINDS[k])
        size = listing.page_size(request.page_size, 100, 1000)
        page = listing.make_page(request.page_token, size, listing.Order(), {"t": request.trial_id, "k": kinds, "m": request.metric})
        after_id = page.after[1] if page.after else 0
        rows = await self.storage.debug_events(request.trial_id, kinds, request.metric, after_id, size + 1)
        token = listing.encode_token(page, (rows[size - 1].id, rows[size - 1].id)) if len(rows) > size else ""
        return ms.ListDebugEventsResponse(events=[self._event(request.trial_id, r) for r in rows[:size]], next_page_token=token)

    @staticmethod
    def _event(trial_id: int, r: DebugEvent) -> metrics_pb2.TrialEventItem:
        item = metrics_pb2.TrialEventItem(trial_id=trial_id, time=convert.timestamp(r.time))
        common = {"metric": r.metric, "variant": r.variant, "iteration": r.iteration}
        if r.kind == "VECTOR":
            item.vector.CopyFrom(metrics_pb2.VectorEvent(values=r.payload["values"], **common))
        elif r.kind == "PLOT":
            item.plot.CopyFrom(metrics_pb2.PlotEvent(plot_json=json.dumps(r.payload["plot"]), **common))
        else:
            item.image.CopyFrom(metrics_pb2.ImageEvent(url=r.payload["url"], key=r.payload["key"], **common))
        return item
