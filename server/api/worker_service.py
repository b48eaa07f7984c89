"""trialplane.v1.WorkerService: worker registration, heartbeats and rendezvous."""

from __future__ import annotations

from trialplane.v1 import (
    trial_pb2,
    worker_pb2,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

from ..domain import listing, validation, worker_lifecycle
from ..domain.errors import ViolationCollector, invalid
from ..domain.models import Worker, WorkerState
from ..services.change_feed import ChangeFeed
from ..services.rendezvous import rendezvous
from ..storage.interface import Storage
from . import convert
from .errors import rpc

WORKER_STATES = convert.EnumMap(worker_pb2.WorkerState, "WORKER_STATE_", WorkerState)
UPDATABLE = {"tags", "address", "slots"}
DEFAULT_RENDEZVOUS_TIMEOUT = 60.0
MAX_STATE_MESSAGE = 4096


def worker_to_proto(w: Worker) -> worker_pb2.Worker:
    return worker_pb2.Worker(
        id=w.id,
        trial_id=w.trial_id,
        trial_run_id=w.trial_run_id,
        type=w.type,
        state=WORKER_STATES.to_proto(w.state),
        tags=w.tags,
        last_heartbeat_time=convert.timestamp(w.last_heartbeat),
        address=w.address,
        rank=w.rank,
        slots=w.slots,
        create_time=convert.timestamp(w.create_time),
        update_time=convert.timestamp(w.update_time),
        state_message=w.state_message,
    )


def _require_id(value: int, field: str = "id") -> int:
    return convert.require_id(value, field, "worker")


class WorkerServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    def __init__(self, storage: Storage, feed: ChangeFeed):
        self.storage = storage
        # Wakes rendezvous waiters of a trial when a worker joins or changes state.
        self.feed = feed

    @rpc
    async def RegisterWorker(self, request, context):
        p = request.worker
        key = convert.request_key(request, "RegisterWorker", f"trial {p.trial_id}")
        worker = Worker(
            trial_id=p.trial_id, type=p.type, tags=list(p.tags), address=p.address, rank=p.rank, slots=p.slots
        )
        validation.validate_new_worker(worker)
        stored = await self.storage.register_worker(worker, key, worker_lifecycle.admit_registration)
        self.feed.workers.notify(stored.trial_id)
        return worker_to_proto(stored)

    @rpc
    async def GetWorker(self, request, context):
        return worker_to_proto(await self.storage.get_worker(_require_id(request.id)))

    @rpc
    async def ListWorkers(self, request, context):
        if request.trial_id < 0:
            raise invalid("trial_id", "must not be negative")
        if request.trial_run_id < 0:
            raise invalid("trial_run_id", "must not be negative")
        flt = listing.WorkerFilter(
            trial_id=request.trial_id,
            trial_run_id=request.trial_run_id,
            states=[s.value for s in WORKER_STATES.to_domain_list(request.states, "states")],
        )
        page = listing.make_page(request.page_token, listing.page_size(request.page_size), listing.Order(), vars(flt))
        workers, last_key = await self.storage.list_workers(flt, page)
        return worker_service_pb2.ListWorkersResponse(
            workers=[worker_to_proto(w) for w in workers],
            next_page_token=listing.encode_token(page, last_key) if last_key else "",
        )

    @rpc
    async def UpdateWorker(self, request, context):
        paths = convert.update_paths(request.update_mask, UPDATABLE)
        p = request.worker
        v = ViolationCollector()
        validation.check_tags(v, "worker.tags", list(p.tags))
        validation.check_text(v, "worker.address", p.address, 512)
        if p.slots < 0:
            v.add("worker.slots", "must not be negative")
        v.raise_if_any()

        def apply(w: Worker, now: int) -> Worker:
            for path in paths:
                setattr(w, path, list(p.tags) if path == "tags" else getattr(p, path))
            return w

        return worker_to_proto(await self.storage.change_worker(_require_id(p.id, "worker.id"), apply))

    @rpc
    async def DeleteWorker(self, request, context):
        return worker_to_proto(await self.storage.delete_worker(_require_id(request.id)))

    @rpc
    async def HeartbeatWorker(self, request, context):
        return worker_to_proto(await self.storage.change_worker(_require_id(request.id), worker_lifecycle.heartbeat))

    @rpc
    async def ReportWorkerState(self, request, context):
        state = WORKER_STATES.to_domain(request.state, "state", required=True)
        if len(request.message) > MAX_STATE_MESSAGE:
            raise invalid("message", f"must be at most {MAX_STATE_MESSAGE} characters")
        worker = await self.storage.change_worker(
            _require_id(request.id), lambda w, now: worker_lifecycle.report_state(w, now, state, request.message)
        )
        self.feed.workers.notify(worker.trial_id)
        return worker_to_proto(worker)

    @rpc
    async def GetRendezvousInfo(self, request, context):
        convert.require_id(request.trial_id, "trial_id", "trial")
        _require_id(request.worker_id, "worker_id")
        timeout = DEFAULT_RENDEZVOUS_TIMEOUT
        if request.HasField("timeout"):
            timeout = convert.duration_seconds(request.timeout, "timeout")
        remaining = context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        met = await rendezvous(self.storage, self.feed, request.trial_id, request.worker_id, timeout)
        return trial_pb2.RendezvousInfo(
            addresses=[w.address for w in met.members],
            rank=met.rank,
            slots=[w.slots for w in met.members],
            trial_run_id=met.trial_run_id,
        )
