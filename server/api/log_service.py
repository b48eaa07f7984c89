"""trialplane.v1.LogService: trial logs in, scrolled and followed out."""

from __future__ import annotations

import datetime as dt
import string

from trialplane.v1 import log_pb2, log_service_pb2 as ls, log_service_pb2_grpc

from ..domain import listing, metrics as m, trial_lifecycle
from ..domain.errors import ResourceExhausted, invalid
from ..storage.base import Storage
from . import convert
from .errors import rpc
from .metrics_service import LOG_LEVELS, log_draft
from .notifier import Notifier

DEFAULT_FORMAT = "{asctime} {worker} {level} {msg}"
FORMAT_FIELDS = {"asctime", "worker", "level", "stream", "rank", "msg", "trial_id", "id"}
LEVEL_NUMBERS = {name: number for number, name in LOG_LEVELS.items()}
DOWNLOAD_CHUNK = 64 * 1024


def log_to_proto(trial_id: int, r: dict) -> log_pb2.TaskLog:
    return log_pb2.TaskLog(
        trial_id=trial_id, id=r["id"], time=convert.timestamp(r["time"]), level=LEVEL_NUMBERS.get(r["level"], 0),
        worker=r["worker"], stream=r["stream"], rank=r["rank"], message=r["message"],
    )


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
    sample = {"id": 1, "time": 0, "level": "INFO", "worker": "w", "stream": "stdout", "rank": 0, "message": "m"}
    try:
        render(fmt, 1, sample)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise invalid("format", f"cannot be applied to a log line: {exc!r}") from None
    return fmt


def render(fmt: str, trial_id: int, r: dict) -> str:
    asctime = dt.datetime.fromtimestamp(r["time"] / 1e6, dt.timezone.utc).isoformat(timespec="milliseconds")
    return fmt.format(
        asctime=asctime, worker=r["worker"], level=r["level"], stream=r["stream"], rank=r["rank"],
        msg=r["message"], trial_id=trial_id, id=r["id"],
    )


class LogServicer(log_service_pb2_grpc.LogServiceServicer):
    def __init__(self, storage: Storage, notifier: Notifier):
        self.storage = storage
        self.notifier = notifier

    @rpc
    async def AddLogs(self, request, context):
        if len(request.logs) > m.MAX_BATCH_ITEMS:
            raise ResourceExhausted(f"at most {m.MAX_BATCH_ITEMS} lines per AddLogs call (got {len(request.logs)})")
        key = convert.request_key(request, "AddLogs")
        # All or nothing: storage checks every line's trial in its write
        # transaction, so a trial deleted meanwhile cannot split the call.
        batch = m.IngestBatch(
            logs=[log_draft(line, f"logs[{i}]") for i, line in enumerate(request.logs)],
            log_index=list(range(len(request.logs))),
            all_or_nothing=True,
        )
        outcome = await self.storage.ingest_metrics(batch, key)
        self.notifier.notify()
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
        token = listing.encode_token(page, (rows[size - 1]["id"], rows[size - 1]["id"])) if len(rows) > size else ""
        return ls.ListLogsResponse(logs=[log_to_proto(request.trial_id, r) for r in rows[:size]], next_page_token=token)

    @rpc
    async def WatchLogs(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        cursor = request.after_id
        while True:
            rows = await self.storage.list_logs(request.trial_id, False, [], "", cursor, 1000)
            if rows:
                cursor = rows[-1]["id"]
                yield ls.WatchLogsResponse(logs=[log_to_proto(request.trial_id, r) for r in rows])
                continue
            trial = await self.storage.get_trial(request.trial_id)
            if trial_lifecycle.is_terminal(trial.state):
                # Lines stored between the read above and this check.
                rows = await self.storage.list_logs(request.trial_id, False, [], "", cursor, 1000)
                if rows:
                    cursor = rows[-1]["id"]
                    yield ls.WatchLogsResponse(logs=[log_to_proto(request.trial_id, r) for r in rows])
                    continue
                return
            await self.notifier.wait()

    @rpc
    async def DownloadLogs(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        fmt = check_format(request.format)
        cursor = None
        buffer: list[str] = []
        size = 0
        while True:
            rows = await self.storage.list_logs(request.trial_id, False, [], "", cursor, 5000)
            for r in rows:
                line = render(fmt, request.trial_id, r) + "\n"
                buffer.append(line)
                size += len(line)
                if size >= DOWNLOAD_CHUNK:
                    yield ls.DownloadLogsResponse(chunk="".join(buffer).encode())
                    buffer, size = [], 0
            if len(rows) < 5000:
                break
            cursor = rows[-1]["id"]
        if buffer:
            yield ls.DownloadLogsResponse(chunk="".join(buffer).encode())
