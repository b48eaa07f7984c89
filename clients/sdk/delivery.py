"""Sending what journals hold to the server.

Records become ReportMetricColumns batches: up to MAX_ROWS records (or the
server's 1,000 names and 1,000,000 values per call, fewer once the server
refused a batch for its --max-batch-points: the records are then cut again
to that limit), one block per group and set of names. A checkpoint record is sent on its own with ReportCheckpoint,
after the points before it, so its validation metrics are already stored.

Every batch's request_id is made from the run, the journal's id and epoch,
and the journal offsets it covers. Whatever sends that range again - a
retry after a lost answer, the next process after a crash - sends the same
request and gets the first answer; a range cut differently is still safe,
because the server counts rows it already holds with the same values as
repeats. Once the server has settled a batch (stored it, or refused it for
good) its end offset is acknowledged in the journal.

Errors: UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED, CANCELLED, authentication
and load (RESOURCE_EXHAUSTED other than LIMIT_EXCEEDED, or with a RetryInfo) are retried with
exponential backoff, or after the RetryInfo delay when the server gave one;
the points wait in the journal. INTERNAL and UNKNOWN get a few tries. Every
other error refuses the batch for good (an unknown or terminal trial, a
stale run): it is logged once per kind with the number of points dropped,
and the sender goes on with the next batch. Rows that conflict with a step
stored with other values are listed by the server, counted and logged once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
from trialplane.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

from .errors import TrialplaneError, from_rpc_error
from .journal import CHECKPOINT, POINTS, Journal, Record, parse_records, split_blob

log = logging.getLogger("trialplane.client")

MAX_ROWS = 5000
MAX_NAMES = 1000
MAX_VALUES = 1_000_000
READ_BYTES = 1 << 20
CALL_TIMEOUT = 30.0
INITIAL_BACKOFF = 0.2
MAX_BACKOFF = 10.0
MAX_RETRY_DELAY = 60.0
DOUBTFUL_ATTEMPTS = 5

S = grpc.StatusCode
RETRIED = {S.UNAVAILABLE, S.DEADLINE_EXCEEDED, S.ABORTED, S.CANCELLED, S.UNAUTHENTICATED, S.PERMISSION_DENIED}
DOUBTFUL = {S.INTERNAL, S.UNKNOWN}


@dataclass
class Batch:
    """One call's worth of a journal: the records in [begin, end)."""

    journal: Journal
    begin: int
    end: int
    records: int
    points: int
    request: metrics_service_pb2.ReportMetricColumnsRequest | checkpoint_service_pb2.ReportCheckpointRequest | None
    attempts: int = 0

    @property
    def is_checkpoint(self) -> bool:
        return isinstance(self.request, checkpoint_service_pb2.ReportCheckpointRequest)


@dataclass
class DeliveryStats:
    """What a Delivery did: points stored (or already stored: repeats),
    points refused for good, rows the server rejected as conflicting with a
    stored step, checkpoints reported."""

    points_sent: int = 0
    points_refused: int = 0
    rows_conflicting: int = 0
    checkpoints_sent: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


def request_id(journal: Journal, begin: int, end: int) -> str:
    return f"tp-{journal.trial_run_id}-{journal.journal_id:x}-{journal.epoch}-{begin}-{end}"


_blob_names: dict[bytes, tuple[str, list[str]]] = {}


def _names(blob: bytes) -> tuple[str, list[str]]:
    got = _blob_names.get(blob)
    if got is None:
        if len(_blob_names) > 10_000:
            _blob_names.clear()
        got = _blob_names[blob] = split_blob(blob)
    return got


def columns_request(journal: Journal, records: list[Record], begin: int, end: int) -> metrics_service_pb2.ReportMetricColumnsRequest:
    """The ReportMetricColumns request for POINTS records: a block per group
    and set of names, in the order they first appear. Depends on nothing but
    the records, so the same range always makes the same request."""
    # Here, not at the top: the command line, which sends no points, starts without numpy.
    import numpy as np

    grouped: dict[bytes, tuple[list[int], list[int], list[bytes]]] = {}
    for record in records:
        entry = grouped.get(record.blob)
        if entry is None:
            entry = grouped[record.blob] = ([], [], [])
        entry[0].append(record.step)
        entry[1].append(record.time_us)
        entry[2].append(record.values)
    request = metrics_service_pb2.ReportMetricColumnsRequest(
        trial_id=journal.trial_id, trial_run_id=journal.trial_run_id, request_id=request_id(journal, begin, end),
    )
    for blob, (steps, times, chunks) in grouped.items():
        group, names = _names(blob)
        values = np.frombuffer(b"".join(chunks), dtype="<f8")
        request.blocks.add(group=group, names=names, steps=steps, report_times=times, values=values.tolist())
    return request


def next_batch(journal: Journal, max_rows: int = MAX_ROWS, max_values: int = MAX_VALUES) -> Batch | None:
    """The next batch of records the journal holds that the sender has not
    taken, or None when there is none."""
    while True:
        resend = journal.resend
        got = journal.read(READ_BYTES if resend is None else max(READ_BYTES, resend[1] - resend[0]))
        if got is None:
            return None
        begin, buffer = got
        records, end = parse_records(buffer, begin, max_rows)
        if resend is not None and resend[0] == begin and end >= resend[1]:
            # The batch an earlier process had in flight, cut where it was cut.
            records = [r for r in records if r.offset < resend[1]]
            end = resend[1]
        if end == begin:
            # Cannot happen with a journal this process writes; do not spin on it.
            log.error("trialplane: journal %s holds an unreadable record at offset %d; the rest is skipped",
                      journal.path, begin)
            journal.taken(journal.tail)
            journal.acknowledge(journal.tail, journal.pending_records, journal.pending_points)
            return None
        # Points up to the server's limits, or one checkpoint on its own.
        chosen: list[Record] = []
        names = values = 0
        seen: set[bytes] = set()
        for record in records:
            if record.kind == CHECKPOINT:
                if not chosen:
                    chosen.append(record)
                break
            new_names = 0 if record.blob in seen else record.count
            if chosen and (names + new_names > MAX_NAMES or values + record.count > max_values):
                break
            seen.add(record.blob)
            names += new_names
            values += record.count
            chosen.append(record)
        if len(chosen) < len(records):
            end = chosen[-1].end
        first_kept = journal.taken(end)
        kept = [r for r in chosen if r.offset >= first_kept]
        if not kept:
            # Only PAD records, or records dropped while they were copied.
            journal.acknowledge(end, 0, 0)
            continue
        begin = max(begin, first_kept)
        points = sum(r.count for r in kept if r.kind == POINTS)
        if kept[0].kind == CHECKPOINT:
            request = checkpoint_service_pb2.ReportCheckpointRequest.FromString(kept[0].blob)
            return Batch(journal, begin, end, 1, 0, request)
        return Batch(journal, begin, end, len(kept), points, columns_request(journal, kept, begin, end))


def backoff(attempt: int, cap: float = MAX_BACKOFF) -> float:
    return min(cap, INITIAL_BACKOFF * 2 ** min(attempt, 16)) * random.uniform(0.5, 1.0)


class Delivery:
    """Sends the records of some journals, one batch at a time, oldest
    journal first. Used by the trial handle's sender thread and by
    `trialplane sync`."""

    def __init__(self, channel: grpc.Channel, journals: list[Journal], *, max_rows: int = MAX_ROWS,
                 call_timeout: float = CALL_TIMEOUT):
        self._columns = metrics_service_pb2_grpc.MetricsServiceStub(channel).ReportMetricColumns
        self._checkpoint = checkpoint_service_pb2_grpc.CheckpointServiceStub(channel).ReportCheckpoint
        self.journals = list(journals)
        self.max_rows = max_rows
        # Lowered to the server's max_batch_points when it refuses a batch as too large.
        self.max_values = MAX_VALUES
        self.call_timeout = call_timeout
        self.batch: Batch | None = None
        self.stats = DeliveryStats()
        self._failures = 0
        self._logged: set[str] = set()
        self._in_flight: grpc.Future | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self.last_error: TrialplaneError | None = None

    # --- what is left

    def settled(self) -> bool:
        """Nothing in flight and nothing left in any journal."""
        return self.batch is None and all(j.pending_records == 0 for j in self.journals if not j.closed)

    def pending_points(self) -> int:
        return sum(j.pending_points for j in self.journals if not j.closed)

    def dropped_points(self) -> int:
        return sum(j.dropped_points for j in self.journals)

    def take(self) -> Batch | None:
        """The batch in flight, else the next one (None when every journal is sent)."""
        if self.batch is None:
            for journal in self.journals:
                if journal.closed:
                    continue
                self.batch = next_batch(journal, self.max_rows, self.max_values)
                if self.batch is not None:
                    break
        return self.batch

    # --- sending

    def cancel(self) -> None:
        """Cancels the call in flight, from another thread; send() then answers 'cancelled'."""
        with self._lock:
            self._cancelled = True
            if self._in_flight is not None:
                self._in_flight.cancel()

    def send(self, timeout: float | None = None) -> tuple[str, float]:
        """Sends the batch in flight once. Returns ("sent", 0), ("idle", 0)
        when there was nothing to send, ("retry", seconds to wait first) or
        ("cancelled", 0)."""
        batch = self.take()
        if batch is None:
            return "idle", 0.0
        call = self._checkpoint if batch.is_checkpoint else self._columns
        if batch.attempts == 0:
            batch.journal.set_in_flight(batch.begin, batch.end)
        with self._lock:
            if self._cancelled:
                return "cancelled", 0.0
            future = self._in_flight = call.future(batch.request, timeout=timeout or self.call_timeout)
        try:
            response = future.result()
        except grpc.FutureCancelledError:
            return "cancelled", 0.0
        except grpc.RpcError as err:
            error = from_rpc_error(err)
            if error.code == S.CANCELLED and self._cancelled:
                return "cancelled", 0.0
            return self._failed(batch, error)
        finally:
            with self._lock:
                self._in_flight = None
        self._failures = 0
        self.last_error = None
        if batch.is_checkpoint:
            self.stats.checkpoints_sent += 1
        else:
            self._count_rejections(batch, response)
        self._settle(batch)
        return "sent", 0.0

    def _settle(self, batch: Batch) -> None:
        batch.journal.acknowledge(batch.end, batch.records, batch.points)
        self.batch = None

    def _count_rejections(self, batch: Batch, response: metrics_service_pb2.ReportMetricColumnsResponse) -> None:
        rejected = response.rows_rejected
        request = batch.request
        assert isinstance(request, metrics_service_pb2.ReportMetricColumnsRequest)
        lost = 0
        for row in response.rejected_rows:
            lost += len(request.blocks[row.block_index].names)
        self.stats.points_sent += batch.points - lost
        if not rejected:
            return
        self.stats.rows_conflicting += rejected
        if "conflict" not in self._logged:
            self._logged.add("conflict")
            first = response.rejected_rows[0] if response.rejected_rows else None
            where = f" (first: group {request.blocks[first.block_index].group!r} step {first.step}: {first.reason})" if first else ""
            log.warning("trialplane: trial %d: %d reports were not stored because their step was already reported "
                        "with other values%s; log each step of a group once", request.trial_id, rejected, where)

    def _recut(self, batch: Batch, error: TrialplaneError) -> bool:
        """Whether the batch was refused as more values than the server takes
        per call; then its records are cut again to the server's limit."""
        if batch.is_checkpoint or error.reason != "LIMIT_EXCEEDED" or error.retry_delay is not None:
            return False
        if error.metadata.get("limit_name") != "max_batch_points":
            return False
        try:
            limit = int(error.metadata["limit"])
        except (KeyError, ValueError):
            return False
        if not 0 < limit < self.max_values:
            return False
        log.info("trialplane: the server takes at most %d metric values per call; sending smaller batches", limit)
        self.max_values = limit
        batch.journal.untake(batch.begin)
        self.batch = None
        return True

    def _failed(self, batch: Batch, error: TrialplaneError) -> tuple[str, float]:
        self.last_error = error
        if self._recut(batch, error):
            return "retry", 0.0
        batch.attempts += 1
        # A LIMIT_EXCEEDED with a RetryInfo passes later; without one the batch itself is too large.
        retried = error.code in RETRIED or (error.code == S.RESOURCE_EXHAUSTED and (
            error.reason != "LIMIT_EXCEEDED" or error.retry_delay is not None))
        if retried or (error.code in DOUBTFUL and batch.attempts < DOUBTFUL_ATTEMPTS):
            self._failures += 1
            delay = backoff(self._failures - 1)
            if error.retry_delay is not None:
                delay = min(max(error.retry_delay, 0.0), MAX_RETRY_DELAY)
            key = f"retry:{error.code.name}"
            if error.code not in (S.UNAVAILABLE, S.DEADLINE_EXCEEDED) and key not in self._logged:
                self._logged.add(key)
                log.warning("trialplane: sending metrics of trial %d failed (%s); the points stay in %s and are "
                            "sent again", batch.journal.trial_id, error, batch.journal.path)
            return "retry", delay
        what = "a checkpoint report" if batch.is_checkpoint else f"{batch.points} points"
        kind = error.reason or error.code.name
        self.stats.points_refused += batch.points
        self.stats.refusals[kind] = self.stats.refusals.get(kind, 0) + batch.points
        if kind not in self._logged:
            self._logged.add(kind)
            log.error("trialplane: the server refused %s of trial %d run %d for good, so they are dropped: %s "
                      "(later refusals of this kind are only counted)", what, batch.journal.trial_id,
                      batch.journal.trial_run_id, error)
        self._settle(batch)
        return "sent", 0.0

    def run(self, deadline: float, *, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Sends until every journal is sent or the deadline (time.monotonic)
        passes; waits out retry delays on this thread. True when settled."""
        while not should_stop():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            outcome, delay = self.send(timeout=min(self.call_timeout, max(remaining, 0.05)))
            if outcome == "idle":
                return self.settled()
            if outcome == "cancelled":
                break
            if outcome == "retry":
                time.sleep(max(0.0, min(delay, deadline - time.monotonic())))
        return self.settled()
