"""Log lines to the server in batches, without ever holding up the child.

add() appends to a bounded queue in memory and returns; one thread takes
batches off it (up to 1,000 lines or 512 KiB, after at most interval
seconds) and sends each with AddLogs under a request_id fixed when the batch
was cut, so a batch retried after a lost answer is stored once. While the
server is unreachable the batch at the head is retried with backoff and new
lines queue behind it; when the queue is full the oldest lines are dropped
and counted, and the count is logged.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from functools import partial

from google.protobuf import timestamp_pb2
from trialplane.v1 import log_pb2, log_service_pb2

from ..sdk import Client, TrialplaneError
from .calls import Backoff, GaveUp, Link, retrying

log = logging.getLogger("trialplane.agent")

BATCH_LINES = 1000
BATCH_BYTES = 512 * 1024
DEFAULT_MAX_QUEUED = 100_000


@dataclass(frozen=True)
class Line:
    stream: str
    text: str
    time_ns: int
    level: int


class LogShipper:
    def __init__(
        self,
        client: Client,
        link: Link,
        trial_id: int,
        *,
        rank: int = 0,
        worker: str = "",
        max_queued: int = DEFAULT_MAX_QUEUED,
        interval: float = 0.5,
    ):
        self.client, self.link = client, link
        self.trial_id, self.rank, self.worker = trial_id, rank, worker
        self.max_queued = max_queued
        self.interval = interval
        self.sent = 0
        self.dropped = 0
        # Lowered to the server's limit when it refuses a batch as too large.
        self.batch_lines = BATCH_LINES
        self._queue: deque[Line] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name="trialplane-logs", daemon=True)
        self._thread.start()

    def add(self, stream: str, text: str, level: int, time_ns: int | None = None) -> None:
        line = Line(stream, text, time_ns if time_ns is not None else time.time_ns(), level)
        with self._cond:
            if len(self._queue) >= self.max_queued:
                self._queue.popleft()
                self.dropped += 1
                if not self._dropping:
                    self._dropping = True
                    log.warning("more than %d log lines wait for the server; dropping the oldest", self.max_queued)
            self._queue.append(line)
            if len(self._queue) >= BATCH_LINES:
                self._cond.notify()

    def pending(self) -> int:
        """Lines not yet stored by the server (queued or in flight)."""
        with self._cond:
            return len(self._queue) + self._in_flight

    def flush(self, timeout: float) -> bool:
        """Waits up to timeout seconds for every line added so far to be
        stored; True when they were."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify()
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
                self._cond.notify()
        return True

    def close(self) -> int:
        """Stops sending; returns how many lines were never stored."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(5)
        return self.pending()

    def _cut_batch(self) -> list[Line]:
        batch: list[Line] = []
        size = 0
        while self._queue and len(batch) < self.batch_lines:
            line = self._queue[0]
            size += len(line.text) + 64
            if batch and size > BATCH_BYTES:
                break
            batch.append(self._queue.popleft())
        return batch

    def _request(self, batch: list[Line]) -> log_service_pb2.AddLogsRequest:
        request = log_service_pb2.AddLogsRequest(request_id=uuid.uuid4().hex)
        for line in batch:
            request.logs.append(log_pb2.TaskLog(
                trial_id=self.trial_id, level=line.level, worker=self.worker, stream=line.stream, rank=self.rank,
                message=line.text,
                time=timestamp_pb2.Timestamp(seconds=line.time_ns // 1_000_000_000, nanos=line.time_ns % 1_000_000_000),
            ))
        return request

    def _smaller(self, err: TrialplaneError, sent: int) -> bool:
        """Whether err says the batch has more lines than the server takes
        per call; then later batches are cut to its limit."""
        if err.reason != "LIMIT_EXCEEDED" or err.metadata.get("limit_name") != "max_batch_items":
            return False
        try:
            limit = int(err.metadata["limit"])
        except (KeyError, ValueError):
            return False
        if not 0 < limit < sent:
            return False
        log.info("the server takes at most %d log lines per call; sending smaller batches", limit)
        self.batch_lines = limit
        return True

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(self.interval)
                    if not self._queue:
                        continue
                elif len(self._queue) < BATCH_LINES:
                    # Let a few more lines join the batch.
                    self._cond.wait(self.interval)
                batch = self._cut_batch()
                self._in_flight = len(batch)
            request = self._request(batch)
            try:
                retrying(partial(self.client.stubs.logs.AddLogs, request), self.link, stop=self._stop, backoff=backoff)
                self.sent += len(batch)
                backoff.reset()
            except GaveUp:
                with self._cond:
                    self._queue.extendleft(reversed(batch))
                    self._in_flight = 0
                    self._cond.notify_all()
                return
            except TrialplaneError as err:
                if self._smaller(err, len(batch)):
                    with self._cond:
                        self._queue.extendleft(reversed(batch))
                        self._in_flight = 0
                    continue
                # The server refused the lines themselves; sending them again
                # would be refused again.
                log.warning("the server refused %d log lines: %s", len(batch), err)
            except ValueError:
                # The channel was closed under the call: the agent is exiting.
                with self._cond:
                    self._queue.extendleft(reversed(batch))
                    self._in_flight = 0
                    self._cond.notify_all()
                return
            with self._cond:
                self._in_flight = 0
                if self._dropping and len(self._queue) < self.max_queued // 2:
                    self._dropping = False
                    log.warning("%d log lines dropped so far while the server was unreachable", self.dropped)
                self._cond.notify_all()
