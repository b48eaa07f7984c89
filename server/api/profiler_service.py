"""trialplane.v1.ProfilerService: streamed profiler samples and their queries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import numpy as np
from trialplane.v1 import profiler_pb2
from trialplane.v1 import profiler_service_pb2 as ps

from ..domain import listing, trial_lifecycle
from ..domain.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    LimitExceeded,
    MalformedRequest,
    NotFound,
    ResourceExhausted,
    invalid,
)
from ..domain.profiler import (
    Chunk,
    Labels,
    MetricType,
    SummaryTable,
    check_batch,
    downsample_samples,
    downsample_table,
)
from ..services.change_feed import ChangeFeed, Signal
from ..services.follow import follow, trials_ended
from ..storage.interface import IngestItem, SeriesInfo, Storage
from . import convert
from .budget import DOUBLE, FIELD, INT64, Room
from .errors import abort, internal_error, rpc
from .limits import DEFAULT_LIMITS, BatchLimits
from .profiler_wire import Columns, _columns_from_message, parse_stream_request

METRIC_TYPES = convert.EnumMap(profiler_pb2.ProfilerMetricType, "PROFILER_METRIC_TYPE_", MetricType)
SERVICE = "trialplane.v1.ProfilerService"
INT64_MAX = 2**63 - 1
MAX_BUCKETS = 10_000
DEFAULT_RAW_PAGE = 10_000
MAX_RAW_PAGE = 100_000
SERIES_PAGE = 100
SERIES_PAGE_MAX = 1000
# A sample of a raw page at its largest: value, batch, timestamp.
SAMPLE_BYTES = DOUBLE + 2 * INT64
# A ProfilerSamples without its samples: its field, the labels twice, three columns.
SERIES_BYTES = 2 * FIELD + 3 * FIELD
# A stream stops reading from its sender while this many samples wait for the
# database; HTTP/2 flow control then slows the sender down.
MAX_BUFFERED_SAMPLES = 400_000


def labels_from_proto(p: profiler_pb2.TrialProfilerMetricLabels, field: str = "labels") -> Labels:
    metric_type = METRIC_TYPES.to_domain(p.metric_type, f"{field}.metric_type", required=True)
    return Labels(p.trial_id, p.name, p.agent_id, p.gpu_uuid, metric_type)


def labels_to_proto(labels: Labels) -> profiler_pb2.TrialProfilerMetricLabels:
    return profiler_pb2.TrialProfilerMetricLabels(
        trial_id=labels.trial_id, name=labels.name, agent_id=labels.agent_id, gpu_uuid=labels.gpu_uuid,
        metric_type=METRIC_TYPES.to_proto(labels.metric_type),
    )


def batch_to_proto(labels: Labels, chunk: Chunk) -> profiler_pb2.TrialProfilerMetricsBatch:
    return profiler_pb2.TrialProfilerMetricsBatch(
        values=chunk.values.tolist(), batches=chunk.batches.tolist(), timestamps=chunk.timestamps.tolist(),
        labels=labels_to_proto(labels),
    )


def prepare(sequence: int, batch: profiler_pb2.TrialProfilerMetricsBatch, columns: Columns) -> IngestItem | FieldViolation:
    """An IngestItem for a batch, or why it is rejected: a violation whose
    field is a path inside the batch."""
    if not batch.HasField("labels"):
        return FieldViolation("labels", "must be set")
    try:
        labels = labels_from_proto(batch.labels)
    except InvalidArgument as err:
        return err.violations[0]
    chunk = Chunk(columns.values, columns.batches, columns.timestamps)
    problem = check_batch(labels, chunk)
    if problem:
        return problem
    return IngestItem(sequence, labels, chunk.summary(), chunk.to_bytes())


def in_batch(violation: FieldViolation) -> FieldViolation:
    """The violation with its path from the request (batch.<field>)."""
    return FieldViolation(f"batch.{violation.field}", violation.description)


class SampleBudget:
    """Samples that all streams together took in and storage has not yet
    made durable. Past the limit every stream stops reading from its sender
    until the writes bring the count below it again, so that many streams
    cannot hold more than the limit plus one batch each."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held = 0
        self.waiting = 0
        self._room = asyncio.Event()
        self._room.set()

    def take(self, samples: int) -> None:
        self.held += samples
        if self.held >= self.limit:
            self._room.clear()

    def give(self, samples: int) -> None:
        self.held -= samples
        if self.held < self.limit:
            self._room.set()

    async def wait(self) -> None:
        if self._room.is_set():
            return
        self.waiting += 1
        try:
            await self._room.wait()
        finally:
            self.waiting -= 1


class _IngestSession:
    """One StreamProfilerMetrics call: reads, validates, group-writes, acknowledges.

    At most one write per stream is in flight; whatever arrives meanwhile is
    stored by the next write, so the write size adapts to the load.
    """

    def __init__(self, storage: Storage, context, notifier: Signal, budget: SampleBudget,
                 limits: BatchLimits = DEFAULT_LIMITS, on_stored: Callable[[int], None] = lambda samples: None):
        self.limits = limits
        self.on_stored = on_stored
        self.storage = storage
        self.context = context
        self.notifier = notifier
        self.budget = budget
        # Samples of this stream counted in the budget: buffered or being written.
        self.held = 0
        self.stream_id: str | None = None
        self.last_sequence = 0
        self.acknowledged = 0
        self.buffer: list[IngestItem] = []
        self.buffered_samples = 0
        self.pending = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.closed = False
        self.failure: BaseException | None = None
        self.send_lock = asyncio.Lock()

    async def send(self, **fields) -> None:
        async with self.send_lock:
            await self.context.write(ps.StreamProfilerMetricsResponse(**fields))

    async def reject(self, sequence: int, reason: str) -> None:
        await self.send(acknowledged_sequence=self.acknowledged, rejected_sequence=sequence, rejected_reason=reason)

    async def flusher(self) -> None:
        try:
            while True:
                await self.pending.wait()
                self.pending.clear()
                if not self.buffer:
                    if self.closed:
                        return
                    continue
                await self._store()
                if self.buffer or self.closed:
                    self.pending.set()
        except BaseException as exc:
            self.failure = exc
            # Nothing more of this stream gets stored: its share of the budget goes back now.
            self.buffer, self.buffered_samples = [], 0
            self._release(self.held)
            self.drained.set()
            raise

    def _release(self, samples: int) -> None:
        # At most what is held: a cancelled stream gives everything back once.
        samples = min(samples, self.held)
        self.held -= samples
        self.budget.give(samples)

    async def _store(self) -> None:
        """Writes what is buffered and acknowledges it. Its own frame, so
        nothing of the batches outlives the write."""
        items, self.buffer = self.buffer, []
        samples, self.buffered_samples = self.buffered_samples, 0
        self.drained.set()
        try:
            result = await self.storage.ingest_profiler(self.stream_id or "", items)
        finally:
            self._release(samples)
        self.notifier.notify()
        self.on_stored(result.stored_samples)
        self.acknowledged = max(self.acknowledged, result.acknowledged_sequence)
        for sequence, reason in result.rejected:
            await self.reject(sequence, reason)
        await self.send(acknowledged_sequence=self.acknowledged)

    async def read(self, request_iterator) -> None:
        async for message in request_iterator:
            if self.failure is not None:
                return
            # gRPC's receiver holds on to the last message while it waits for
            # the next, which may take minutes: take its contents out of it.
            await self.accept(*message.take())
            if self.buffered_samples >= MAX_BUFFERED_SAMPLES:
                self.drained.clear()
                await self.drained.wait()
            await self.budget.wait()

    async def accept(self, req: ps.StreamProfilerMetricsRequest, columns: Columns | None) -> None:
        """Buffers one message's batch, or rejects it."""
        if self.stream_id is None:
            self.stream_id = req.stream_id
            if self.stream_id:
                self.last_sequence = await self.storage.profiler_stream_position(self.stream_id)
                self.acknowledged = self.last_sequence
        if req.stream_id != self.stream_id:
            await self.reject(req.sequence, f"stream_id changed from {self.stream_id!r} within one stream")
            return
        # A sequence at or below the settled position is a resend after a
        # reconnect, or a batch that comes too late: storage tells which,
        # by whether it stored that very sequence.
        settled = bool(self.stream_id) and 0 < req.sequence <= self.acknowledged
        if req.sequence <= self.last_sequence and not settled:
            await self.reject(req.sequence, f"sequence must be positive and increasing (after {self.last_sequence})")
            return
        self.last_sequence = max(self.last_sequence, req.sequence)
        if columns is None:
            await self.reject(req.sequence, "batch is required")
            return
        # Past the limit the stream ends (after storing what came before):
        # the sender must cut its batches smaller, not resend this one.
        self.limits.samples(columns.values.size, "StreamProfilerMetrics message")
        item = prepare(req.sequence, req.batch, columns)
        if isinstance(item, FieldViolation):
            problem = in_batch(item)
            await self.reject(req.sequence, f"{problem.field}: {problem.description}")
            return
        self.buffer.append(item)
        self.buffered_samples += item.summary.count
        self.held += item.summary.count
        self.budget.take(item.summary.count)
        self.pending.set()

    async def run(self, request_iterator) -> None:
        flusher = asyncio.create_task(self.flusher())
        malformed: DomainError | None = None
        try:
            try:
                await self.read(request_iterator)
            except (MalformedRequest, LimitExceeded) as err:
                # The stream ends here, but what came before is stored and acknowledged.
                malformed = err
            self.closed = True
            self.pending.set()
            await flusher
        finally:
            if not flusher.done():
                flusher.cancel()
            # What a failed or cancelled stream still buffered is not stored.
            self._release(self.held)
        if malformed is not None:
            raise malformed


class ProfilerServicer:
    def __init__(self, storage: Storage, feed: ChangeFeed, max_response_bytes: int, max_buffered_samples: int,
                 limits: BatchLimits = DEFAULT_LIMITS):
        self.storage = storage
        self.feed = feed
        self.max_response_bytes = max_response_bytes
        self.budget = SampleBudget(max_buffered_samples)
        self.limits = limits
        # Called with a kind ("profiler_samples") and how many were stored.
        self.on_ingest: Callable[[str, int], None] = lambda kind, count: None

    def _stored(self, samples: int) -> None:
        self.on_ingest("profiler_samples", samples)

    @staticmethod
    def _series_bytes(labels: Labels) -> int:
        return SERIES_BYTES + 2 * (FIELD + labels_to_proto(labels).ByteSize())

    async def StreamProfilerMetrics(self, request_iterator, context):
        session = _IngestSession(self.storage, context, self.feed.profiler, self.budget, self.limits, self._stored)
        try:
            await session.run(request_iterator)
        except grpc.aio.AbortError:
            raise
        except DomainError as err:
            await abort(context, err)
        except Exception as exc:  # noqa: BLE001
            await abort(context, internal_error("StreamProfilerMetrics", exc))

    @rpc
    async def ReportProfilerMetrics(self, request, context):
        self.limits.samples(len(request.batch.values), "ReportProfilerMetrics")
        key = convert.request_key(request, "ReportProfilerMetrics")
        item = prepare(1, request.batch, _columns_from_message(request.batch))
        if isinstance(item, FieldViolation):
            raise InvalidArgument([in_batch(item)])
        result = await self.storage.ingest_profiler("", [item], key)
        if result.rejected:
            # Outside a stream the one reason to refuse a valid batch.
            raise NotFound("trial", request.batch.labels.trial_id)
        self.feed.profiler.notify()
        self._stored(result.stored_samples)
        return ps.ReportProfilerMetricsResponse(samples_stored=result.stored_samples)

    @rpc
    async def ListProfilerSeries(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        size = listing.page_size(request.page_size, SERIES_PAGE, SERIES_PAGE_MAX)
        page, after = listing.tuple_page(request.page_token, size, {"t": request.trial_id}, (str, str, str, str))
        rows = await self.storage.list_profiler_series(request.trial_id, after, size + 1)
        token = listing.next_tuple_token(page, rows, lambda s: s.labels.key()[1:])
        return ps.ListProfilerSeriesResponse(series=[self._series_to_proto(s) for s in rows[:size]], next_page_token=token)

    @staticmethod
    def _series_to_proto(s: SeriesInfo) -> ps.ProfilerSeries:
        return ps.ProfilerSeries(
            labels=labels_to_proto(s.labels), sample_count=s.sample_count,
            first_timestamp=s.first_ts or 0, last_timestamp=s.last_ts or 0,
            first_batch=s.first_batch or 0, last_batch=s.last_batch or 0,
        )

    @staticmethod
    def _labels(series_labels) -> list[Labels]:
        if not series_labels:
            raise invalid("series", "name at least one series")
        if len(series_labels) > 100:
            raise ResourceExhausted("at most 100 series per call")
        return [labels_from_proto(p, f"series[{i}]") for i, p in enumerate(series_labels)]

    async def _resolve(self, series_labels) -> list[SeriesInfo]:
        return [await self.storage.find_profiler_series(labels) for labels in self._labels(series_labels)]

    async def _find_or_wait(self, labels: Labels, first: bool) -> SeriesInfo | None:
        """The series, or None while it has no sample yet. On the first look,
        NOT_FOUND for an unknown trial, and for a missing series of a trial
        that is terminal already (a watch of it would end at once, empty);
        later the watch just ends when the trials do."""
        try:
            return await self.storage.find_profiler_series(labels)
        except NotFound:
            if first and trial_lifecycle.is_terminal((await self.storage.get_trial(labels.trial_id)).state):
                raise
            return None

    @rpc
    async def GetProfilerSamples(self, request, context):
        series = await self._resolve(request.series)
        start_ts = request.start_timestamp
        end_ts = request.end_timestamp or INT64_MAX
        start_b = request.start_batch
        end_b = request.end_batch or INT64_MAX
        if start_ts > end_ts:
            raise invalid("start_timestamp", "must not be after end_timestamp")
        if start_b > end_b:
            raise invalid("start_batch", "must not be after end_batch")
        if request.buckets < 0:
            raise invalid("buckets", "must not be negative")
        if request.buckets > 0:
            n = min(request.buckets, MAX_BUCKETS)
            out = [await self._downsample(s, start_ts, end_ts, start_b, end_b, n) for s in series]
            return ps.GetProfilerSamplesResponse(series=out)
        return await self._raw_page(request, series, start_ts, end_ts, start_b, end_b)

    @staticmethod
    def _in_range(chunk: Chunk, start_ts, end_ts, start_b, end_b) -> Chunk:
        t, b = chunk.timestamps, chunk.batches
        mask = (t >= start_ts) & (t <= end_ts) & (b >= start_b) & (b <= end_b)
        return chunk if mask.all() else chunk.select(mask)

    async def _downsample(self, s: SeriesInfo, start_ts, end_ts, start_b, end_b, n) -> ps.ProfilerSamples:
        table = await self.storage.profiler_summaries(s.series_id, start_ts, end_ts, start_b, end_b)
        cut = (table.first_ts < start_ts) | (table.last_ts > end_ts) | (table.first_batch < start_b) | (table.last_batch > end_b)
        decode_all = len(table) <= n
        to_decode = table.chunk_id.tolist() if decode_all else table.chunk_id[cut].tolist()
        decoded = await self.storage.profiler_chunks(to_decode) if to_decode else {}
        parts = {cid: self._in_range(c, start_ts, end_ts, start_b, end_b) for cid, c in decoded.items()}
        if decode_all:
            chunks = [parts[cid] for cid in to_decode if parts[cid].count]
            if not chunks:
                buckets = []
            else:
                merged = Chunk(*(np.concatenate([getattr(c, f) for c in chunks]) for f in ("values", "batches", "timestamps")))
                buckets = downsample_samples(merged, int(merged.timestamps.min()), int(merged.timestamps.max()), n)
        else:
            exact = [parts[cid].summary() for cid in to_decode if parts[cid].count]
            whole = table.select(~cut)
            buckets = downsample_table(SummaryTable.concat([whole, SummaryTable.from_summaries(exact)]) if exact else whole, n)
        return ps.ProfilerSamples(
            labels=labels_to_proto(s.labels),
            buckets=[
                ps.ProfilerBucket(start_timestamp=b.start_ts, end_timestamp=b.end_ts, min=b.vmin, max=b.vmax, last=b.vlast, count=b.count)
                for b in buckets
            ],
        )

    async def _raw_page(self, request, series, start_ts, end_ts, start_b, end_b) -> ps.GetProfilerSamplesResponse:
        size = listing.page_size(request.page_size, DEFAULT_RAW_PAGE, MAX_RAW_PAGE)
        query = {"series": [s.series_id for s in series], "t": [start_ts, end_ts], "b": [start_b, end_b]}
        page = listing.make_page(request.page_token, size, listing.Order("raw"), query)
        # Cursor: series index, then the chunk to resume at (first_ts, id; first_ts -1
        # for the start of the series) and how many of its samples were returned.
        first_index, first_ts, chunk_id, skip = 0, -1, 0, 0
        if page.after is not None:
            try:
                first_index, first_ts, chunk_id, skip = (int(x) for x in page.after[0])
            except (TypeError, ValueError):
                raise invalid("page_token", "is malformed", reason="INVALID_PAGE_TOKEN") from None
        budget = size
        room = Room(self.max_response_bytes)
        response = ps.GetProfilerSamplesResponse()
        for index in range(first_index, len(series)):
            s = series[index]
            header = self._series_bytes(s.labels)
            if response.series and not room.fits(header + SAMPLE_BYTES):
                response.next_page_token = listing.encode_token(page, ([index, -1, 0, 0], 0))
                return response
            room.take(header)
            before = budget = room.count(SAMPLE_BYTES, budget)
            resume = index == first_index and first_ts >= 0
            after = (first_ts, chunk_id - 1) if resume else None
            table = await self.storage.profiler_summaries(s.series_id, start_ts, end_ts, start_b, end_b, after)
            summaries = [table.row(i) for i in range(len(table))]
            pieces: list[Chunk] = []
            for group_start in range(0, len(summaries), 64):
                group = summaries[group_start:group_start + 64]
                data = await self.storage.profiler_chunks([x.chunk_id for x in group])
                for pos, x in enumerate(group, start=group_start):
                    part = self._in_range(data[x.chunk_id], start_ts, end_ts, start_b, end_b)
                    offset = skip if resume and x.chunk_id == chunk_id else 0
                    available = part.count - offset
                    if available <= 0:
                        continue
                    take = min(available, budget)
                    pieces.append(part.select(slice(offset, offset + take)))
                    budget -= take
                    if budget:
                        continue
                    response.series.append(self._samples(s, pieces))
                    if take < available:
                        cursor = (index, x.first_ts, x.chunk_id, offset + take)
                    elif pos + 1 < len(summaries):
                        cursor = (index, summaries[pos + 1].first_ts, summaries[pos + 1].chunk_id, 0)
                    elif index + 1 < len(series):
                        cursor = (index + 1, -1, 0, 0)
                    else:
                        return response
                    response.next_page_token = listing.encode_token(page, (list(cursor), 0))
                    return response
            response.series.append(self._samples(s, pieces))
            room.take((before - budget) * SAMPLE_BYTES)
        return response

    @staticmethod
    def _samples(s: SeriesInfo, pieces: list[Chunk]) -> ps.ProfilerSamples:
        if pieces:
            merged = Chunk(*(np.concatenate([getattr(c, f) for c in pieces]) for f in ("values", "batches", "timestamps")))
        else:
            merged = Chunk(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        return ps.ProfilerSamples(labels=labels_to_proto(s.labels), samples=batch_to_proto(s.labels, merged))

    @rpc
    async def WatchProfilerSamples(self, request, context):
        waiting = self._labels(request.series)
        trial_ids = {labels.trial_id for labels in waiting}
        series: list[SeriesInfo] = []
        cursors: dict[int, int] = {}
        after_ts = request.after_timestamp
        first = True

        async def read() -> list[ps.WatchProfilerSamplesResponse]:
            nonlocal waiting, first
            if waiting:
                resolved = [(labels, await self._find_or_wait(labels, first)) for labels in waiting]
                waiting = [labels for labels, info in resolved if info is None]
                for _, info in resolved:
                    if info is not None and info.series_id not in cursors:
                        series.append(info)
                        cursors[info.series_id] = 0
            first = False
            out = []
            for s in series:
                while True:
                    found = await self.storage.profiler_chunks_after(s.series_id, cursors[s.series_id], after_ts, 64)
                    for chunk_id, chunk in found:
                        cursors[s.series_id] = chunk_id
                        part = chunk.select(chunk.timestamps > after_ts) if after_ts else chunk
                        room = Room(self.max_response_bytes)
                        room.take(self._series_bytes(s.labels))
                        step = room.count(SAMPLE_BYTES, part.count)
                        for at in range(0, part.count, step):
                            piece = part.select(slice(at, at + step))
                            out.append(ps.WatchProfilerSamplesResponse(batch=batch_to_proto(s.labels, piece)))
                    # An empty answer must mean nothing is left: chunks
                    # wholly before after_ts do not end the reading.
                    if len(found) < 64 or out:
                        break
            return out

        async for responses in follow(read, trials_ended(self.storage, trial_ids), self.feed.profiler):
            for response in responses:
                yield response


def add_profiler_service(servicer: ProfilerServicer, server) -> None:
    """Registers the service with the raw-bytes deserializer for the stream."""
    handlers = {
        "StreamProfilerMetrics": grpc.stream_stream_rpc_method_handler(
            servicer.StreamProfilerMetrics,
            request_deserializer=parse_stream_request,
            response_serializer=ps.StreamProfilerMetricsResponse.SerializeToString,
        ),
        "ReportProfilerMetrics": grpc.unary_unary_rpc_method_handler(
            servicer.ReportProfilerMetrics,
            request_deserializer=ps.ReportProfilerMetricsRequest.FromString,
            response_serializer=ps.ReportProfilerMetricsResponse.SerializeToString,
        ),
        "ListProfilerSeries": grpc.unary_unary_rpc_method_handler(
            servicer.ListProfilerSeries,
            request_deserializer=ps.ListProfilerSeriesRequest.FromString,
            response_serializer=ps.ListProfilerSeriesResponse.SerializeToString,
        ),
        "GetProfilerSamples": grpc.unary_unary_rpc_method_handler(
            servicer.GetProfilerSamples,
            request_deserializer=ps.GetProfilerSamplesRequest.FromString,
            response_serializer=ps.GetProfilerSamplesResponse.SerializeToString,
        ),
        "WatchProfilerSamples": grpc.unary_stream_rpc_method_handler(
            servicer.WatchProfilerSamples,
            request_deserializer=ps.WatchProfilerSamplesRequest.FromString,
            response_serializer=ps.WatchProfilerSamplesResponse.SerializeToString,
        ),
    }
    server.add_registered_method_handlers(SERVICE, handlers)
