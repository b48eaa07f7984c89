"""Services whose schema is published but whose behaviour lands in later
milestones: every method answers UNIMPLEMENTED with a clear status."""

from __future__ import annotations

from trialplane.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    log_service_pb2,
    log_service_pb2_grpc,
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

from ..domain.errors import Unimplemented
from .errors import abort


def _unimplemented_method(service: str, method: str):
    async def handler(self, request, context):
        await abort(context, Unimplemented(f"{service}.{method} is not implemented yet"))

    handler.__name__ = method
    return handler


def _pending(base, descriptor):
    methods = {m.name: _unimplemented_method(descriptor.name, m.name) for m in descriptor.methods}
    return type(f"Pending{descriptor.name}", (base,), methods)


PENDING = [
    (
        _pending(metrics_service_pb2_grpc.MetricsServiceServicer, metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"]),
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server,
    ),
    (
        _pending(checkpoint_service_pb2_grpc.CheckpointServiceServicer, checkpoint_service_pb2.DESCRIPTOR.services_by_name["CheckpointService"]),
        checkpoint_service_pb2_grpc.add_CheckpointServiceServicer_to_server,
    ),
    (
        _pending(log_service_pb2_grpc.LogServiceServicer, log_service_pb2.DESCRIPTOR.services_by_name["LogService"]),
        log_service_pb2_grpc.add_LogServiceServicer_to_server,
    ),
]
