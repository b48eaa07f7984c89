"""trialplane.v1.CheckpointService."""

from __future__ import annotations

import dataclasses

from trialplane.v1 import checkpoint_pb2, checkpoint_service_pb2_grpc
from trialplane.v1 import checkpoint_service_pb2 as cs

from ..domain import checkpoints as rules
from ..domain import listing
from ..domain.checkpoints import Checkpoint, CheckpointState
from ..domain.errors import invalid
from ..storage.interface import CheckpointFilter, Storage
from . import convert
from .errors import rpc

STATES = convert.EnumMap(checkpoint_pb2.CheckpointState, "CHECKPOINT_STATE_", CheckpointState)
ORDER_FIELDS = {"create_time", "steps_completed"}
MAX_DELETE = 1000


def checkpoint_to_proto(c: Checkpoint) -> checkpoint_pb2.Checkpoint:
    return checkpoint_pb2.Checkpoint(
        uuid=c.uuid, trial_id=c.trial_id, trial_run_id=c.trial_run_id, state=STATES.to_proto(c.state),
        resources=c.resources, steps_completed=c.steps_completed, metadata=convert.dict_to_struct(c.metadata),
        storage_uri=c.storage_uri, size_bytes=c.size_bytes, create_time=convert.timestamp(c.create_time),
        end_time=convert.timestamp(c.end_time),
        validation_metrics=convert.dict_to_struct(c.validation_metrics) if c.validation_metrics is not None else None,
    )


def _order(text: str) -> listing.Order:
    parts = text.split()
    if parts and parts[0].startswith("metric:"):
        if len(parts[0]) == len("metric:"):
            raise invalid("order_by", "name the metric: 'metric:<name>'")
        return listing.parse_order_by(text, {parts[0]})
    order = listing.parse_order_by(text, ORDER_FIELDS)
    return order if text.strip() else listing.Order("create_time")


class CheckpointServicer(checkpoint_service_pb2_grpc.CheckpointServiceServicer):
    def __init__(self, storage: Storage):
        self.storage = storage

    @rpc
    async def ReportCheckpoint(self, request, context):
        p = request.checkpoint
        report = Checkpoint(
            uuid=p.uuid, trial_id=p.trial_id, state=STATES.to_domain(p.state, "checkpoint.state"),
            trial_run_id=p.trial_run_id, resources=dict(p.resources), steps_completed=p.steps_completed,
            metadata=convert.struct_to_dict(p.metadata), storage_uri=p.storage_uri,
        )
        rules.validate_report(report)
        return checkpoint_to_proto(await self.storage.report_checkpoint(report))

    @rpc
    async def GetCheckpoint(self, request, context):
        if not request.uuid:
            raise invalid("uuid", "must not be empty")
        return checkpoint_to_proto(await self.storage.get_checkpoint(request.uuid))

    @rpc
    async def ListCheckpoints(self, request, context):
        if request.trial_id < 0 or request.study_id < 0:
            raise invalid("trial_id", "trial_id and study_id must not be negative")
        if request.max_steps and request.min_steps > request.max_steps:
            raise invalid("min_steps", "must not exceed max_steps")
        flt = CheckpointFilter(
            trial_id=request.trial_id,
            study_id=request.study_id,
            states=[s.value for s in STATES.to_domain_list(request.states, "states")],
            min_steps=request.min_steps or None,
            max_steps=request.max_steps or None,
            created_after=convert.optional_timestamp_us(request, "created_after", "created_after"),
            created_before=convert.optional_timestamp_us(request, "created_before", "created_before"),
        )
        page = listing.make_page(request.page_token, listing.page_size(request.page_size), _order(request.order_by),
                                 dataclasses.asdict(flt))
        found = await self.storage.list_checkpoints(flt, page)
        token = listing.encode_token(page, found.after) if found.after else ""
        return cs.ListCheckpointsResponse(checkpoints=[checkpoint_to_proto(c) for c in found.items], next_page_token=token)

    @rpc
    async def UpdateCheckpoint(self, request, context):
        convert.update_paths(request.update_mask, {"metadata"})
        if not request.checkpoint.uuid:
            raise invalid("checkpoint.uuid", "must not be empty")
        updated = await self.storage.update_checkpoint_metadata(
            request.checkpoint.uuid, convert.struct_to_dict(request.checkpoint.metadata)
        )
        return checkpoint_to_proto(updated)

    @rpc
    async def DeleteCheckpoints(self, request, context):
        uuids = list(dict.fromkeys(request.uuids))
        if not uuids:
            raise invalid("uuids", "name at least one checkpoint")
        if len(uuids) > MAX_DELETE:
            raise invalid("uuids", f"at most {MAX_DELETE} checkpoints per call")
        done = await self.storage.delete_checkpoints(uuids, request.confirm_deleted)
        return cs.DeleteCheckpointsResponse(checkpoints=[checkpoint_to_proto(c) for c in done])

    @rpc
    async def ApplyCheckpointRetention(self, request, context):
        if request.study_id <= 0:
            raise invalid("study_id", "must name a study")
        if request.keep_best < 0 or request.keep_latest < 0:
            raise invalid("keep_best", "keep_best and keep_latest must not be negative")
        keep_best, keep_latest = request.keep_best, request.keep_latest
        if not keep_best and not keep_latest:
            rule = (await self.storage.get_study(request.study_id)).checkpoint_retention
            keep_best, keep_latest = rule.keep_best, rule.keep_latest
            if not keep_best and not keep_latest:
                raise invalid("keep_best", "set keep_best or keep_latest, or give the study a checkpoint_retention")
        marked = await self.storage.apply_checkpoint_retention(request.study_id, keep_best, keep_latest, request.dry_run)
        return cs.ApplyCheckpointRetentionResponse(marked=[checkpoint_to_proto(c) for c in marked])
