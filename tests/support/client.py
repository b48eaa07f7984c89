"""One client with a stub for every service."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from trialplane.v1 import (
    checkpoint_service_pb2_grpc,
    log_service_pb2_grpc,
    metrics_service_pb2_grpc,
    profiler_service_pb2_grpc,
    study_service_pb2_grpc,
    token_service_pb2_grpc,
    trial_service_pb2_grpc,
    worker_service_pb2_grpc,
)


@dataclass
class Client:
    channel: grpc.Channel
    studies: study_service_pb2_grpc.StudyServiceStub
    trials: trial_service_pb2_grpc.TrialServiceStub
    workers: worker_service_pb2_grpc.WorkerServiceStub
    metrics: metrics_service_pb2_grpc.MetricsServiceStub
    logs: log_service_pb2_grpc.LogServiceStub
    profiler: profiler_service_pb2_grpc.ProfilerServiceStub
    checkpoints: checkpoint_service_pb2_grpc.CheckpointServiceStub
    tokens: token_service_pb2_grpc.TokenServiceStub

    @classmethod
    def connect(cls, address: str, token: str | None = None) -> Client:
        """token: sent as `authorization: Bearer <token>` on every call."""
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=10)
        if token is not None:
            channel = grpc.intercept_channel(channel, Bearer(token))
        return cls(
            channel,
            study_service_pb2_grpc.StudyServiceStub(channel),
            trial_service_pb2_grpc.TrialServiceStub(channel),
            worker_service_pb2_grpc.WorkerServiceStub(channel),
            metrics_service_pb2_grpc.MetricsServiceStub(channel),
            log_service_pb2_grpc.LogServiceStub(channel),
            profiler_service_pb2_grpc.ProfilerServiceStub(channel),
            checkpoint_service_pb2_grpc.CheckpointServiceStub(channel),
            token_service_pb2_grpc.TokenServiceStub(channel),
        )


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method, self.timeout, self.credentials = details.method, details.timeout, details.credentials
        self.wait_for_ready, self.compression = details.wait_for_ready, details.compression
        self.metadata = metadata


class Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str):
        self.header = ("authorization", f"Bearer {token}")

    def _with(self, details):
        return _Details(details, [*(details.metadata or ()), self.header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._with(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._with(details), requests)
