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

    @classmethod
    def connect(cls, address: str) -> Client:
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=10)
        return cls(
            channel,
            study_service_pb2_grpc.StudyServiceStub(channel),
            trial_service_pb2_grpc.TrialServiceStub(channel),
            worker_service_pb2_grpc.WorkerServiceStub(channel),
            metrics_service_pb2_grpc.MetricsServiceStub(channel),
            log_service_pb2_grpc.LogServiceStub(channel),
            profiler_service_pb2_grpc.ProfilerServiceStub(channel),
            checkpoint_service_pb2_grpc.CheckpointServiceStub(channel),
        )
