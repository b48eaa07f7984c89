"""trialplane.v1.LogService: trial logs in, scrolled and followed out."""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Callable, Iterable

from trialplane.v1 import log_pb2, log_service_pb2_grpc
from trialplane.v1 import log_service_pb2 as ls

from ..domain import listing
from ..domain import metrics as m
from ..domain.errors import invalid
from ..services.change_feed import ChangeFeed
from ..services.follow import follow, trials_ended
from ..storage.interface import LogLine, Storage
from . import convert
from .budget import FIELD, RESERVE, SCALAR, Room, text
from .errors import rpc
from .limits import DEFAULT_LIMITS, BatchLimits
from .metrics_service import LOG_LEVELS, log_draft

DEFAULT_FORMAT = "{asctime} {worker} {level} {msg}"
FORMAT_FIELDS = {"asctime", "worker", "level", "stream", "rank", "msg", "trial_id", "id"}
LEVEL_NUMBERS = {name: number for number, name in LOG_LEVELS.items()}
DOWNLOAD_CHUNK = 64 * 1024
# A TaskLog without its strings: its field, trial_id, id, time, level, rank.
LOG_BYTES = FIELD + SCALAR + SCALAR + FIELD + 2 * SCALAR + SCALAR + SCALAR


def log_to_proto(trial_id: int, r: LogLine) -> log_pb2.TaskLog:
    return log_pb2.TaskLog(
        trial_id=trial_id, id=r.id, time=convert.timestamp(r.time), level=LEVEL_NUMBERS.get(r.level, 0),
        worker=r.worker, stream=r.stream, rank=r.rank, message=r.message,
    )


def log_bytes(r: LogLine) -> int:
    return LOG_BYTES + text(r.worker) + text(r.stream) + text(r.message)


def fitting(rows: list[LogLine], limit: int, most: int) -> int:
    """How many of the first rows (at most most, one at least) fit in one answer."""
    room = Room(limit)
    for count, r in enumerate(rows[:most]):
        size = log_bytes(r)
        if count and not room.fits(size):
            return count
        room.take(size)
    return min(len(rows), most)


def check_format(fmt: str) -> str:
    fmt = fmt or DEFAULT_FORMAT
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None}
    except ValueError as exc:
        raise invalid("format", f"is not a valid format string: {exc}") from None
    unknown = names - FORMAT_FIELDS
    if unknown or "" in names:
        raise invalid("format", f"unknown fields {sorted(unknown) or ['(positional)']}; use {sorted(FORMAT_FIELDS)}")
    # Conversions and format specs only fail when applied: try them on a
    # sample line with the real field types before streaming anything.
    sample = LogLine(id=1, time=0, level="INFO", worker="w", stream="stdout", rank=0, message="m")
    try:
        render(fmt, 1, sample)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise invalid("format", f"cannot be applied to a log line: {exc!r}") from None
    return fmt


def render(fmt: str, trial_id: int, r: LogLine) -> str:
    asctime = dt.datetime.fromtimestamp(r.time / 1e6, dt.timezone.utc).isoformat(timespec="milliseconds")
    return fmt.format(
        asctime=asctime, worker=r.worker, level=r.level, stream=r.stream, rank=r.rank,
        msg=r.message, trial_id=trial_id, id=r.id,
    )


class LogServicer(log_service_pb2_grpc.LogServiceServicer):
    def __init__(self, storage: Storage, feed: ChangeFeed, max_response_bytes: int,
                 limits: BatchLimits = DEFAULT_LIMITS):
        self.storage = storage
        self.feed = feed
        self.max_response_bytes = max_response_bytes
        self.limits = limits
        # Called with the trials whose lines just became metric points.
        self.on_validation: Callable[[Iterable[int]], None] = lambda trial_ids: None
        # Called with a kind ("log_lines", "metric_points") and how many were stored.
        self.on_ingest: Callable[[str, int], None] = lambda kind, count: None

    @rpc
    async def AddLogs(self, request, context):
        self.limits.items(len(request.logs), "AddLogs", "lines", "trialplane.v1.LogService")
        key = convert.request_key(request, "AddLogs")
        # All or nothing: storage checks every line's trial in its write
        # transaction, so a trial deleted meanwhile cannot split the call.
        batch = m.IngestBatch(
            logs=[log_draft(line, f"logs[{i}]") for i, line in enumerate(request.logs)],
            log_index=list(range(len(request.logs))),
            all_or_nothing=True,
        )
        outcome = await self.storage.ingest_metrics(batch, key)
        self.feed.metrics.notify()
        self.on_ingest("log_lines", outcome.added)
        self.on_ingest("metric_points", outcome.log_points)
        if outcome.log_points:
            self.on_validation({line.trial_id for line in batch.logs})
        return ls.AddLogsResponse(added=outcome.added, metric_points=outcome.log_points)

    def _levels(self, levels) -> list[str]:
        out = []
        for i, level in enumerate(levels):
            if level not in LOG_LEVELS:
                raise invalid(f"levels[{i}]", f"unknown value {level}")
            out.append(LOG_LEVELS[level])
        return out

    @rpc
    async def ListLogs(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        levels = self._levels(request.levels)
        size = listing.page_size(request.page_size, 100, 5000)
        query = {"t": request.trial_id, "tail": request.from_tail, "l": levels, "w": request.worker}
        page = listing.make_page(request.page_token, size, listing.Order("id", request.from_tail), query)
        after = page.after[1] if page.after else None
        rows = await self.storage.list_logs(request.trial_id, request.from_tail, levels, request.worker, after, size + 1)
        size = fitting(rows, self.max_response_bytes, size)
        token = listing.encode_token(page, (rows[size - 1].id, rows[size - 1].id)) if len(rows) > size else ""
        return ls.ListLogsResponse(logs=[log_to_proto(request.trial_id, r) for r in rows[:size]], next_page_token=token)

    @rpc
    async def WatchLogs(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        cursor = request.after_id

        async def read() -> list[LogLine]:
            nonlocal cursor
            rows = await self.storage.list_logs(request.trial_id, False, [], "", cursor, 1000)
            rows = rows[:fitting(rows, self.max_response_bytes, len(rows))]
            if rows:
                cursor = rows[-1].id
            return rows

        async for rows in follow(read, trials_ended(self.storage, [request.trial_id]), self.feed.metrics):
            yield ls.WatchLogsResponse(logs=[log_to_proto(request.trial_id, r) for r in rows])

    @rpc
    async def DownloadLogs(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        fmt = check_format(request.format)
        # Chunks split lines where they must: the answer is one byte stream.
        chunk_size = max(1, min(DOWNLOAD_CHUNK, self.max_response_bytes - RESERVE))
        cursor = None
        buffer = bytearray()
        while True:
            rows = await self.storage.list_logs(request.trial_id, False, [], "", cursor, 5000)
            for r in rows:
                buffer += (render(fmt, request.trial_id, r) + "\n").encode()
                while len(buffer) >= chunk_size:
                    yield ls.DownloadLogsResponse(chunk=bytes(buffer[:chunk_size]))
                    del buffer[:chunk_size]
            if len(rows) < 5000:
                break
            cursor = rows[-1].id
        if buffer:
            yield ls.DownloadLogsResponse(chunk=bytes(buffer))
