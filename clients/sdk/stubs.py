"""Stubs whose every failure is a TrialplaneError.

A wrapped method is called like the generated one (request, timeout=...,
metadata=...). Unary calls get the client's default timeout unless the
caller gives one; streaming calls run until the server ends them or the
caller stops iterating, so a follow is not cut off by a deadline.
"""

from __future__ import annotations

from collections.abc import Iterator

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

from .errors import from_rpc_error


class ResponseStream:
    """The messages of a server-streaming call; close() cancels the call."""

    def __init__(self, call):
        self._call = call

    def __iter__(self) -> Iterator:
        try:
            yield from self._call
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                return
            raise from_rpc_error(err) from None

    def close(self) -> None:
        self._call.cancel()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Method:
    def __init__(self, multicallable, default_timeout: float | None, streaming: bool):
        self._call = multicallable
        self._default_timeout = default_timeout
        self._streaming = streaming

    def __call__(self, request, timeout: float | None = None, **kwargs):
        if self._streaming:
            try:
                return ResponseStream(self._call(request, timeout=timeout, **kwargs))
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
        try:
            return self._call(request, timeout=timeout if timeout is not None else self._default_timeout, **kwargs)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None


class GuardedStub:
    """A generated stub whose methods raise TrialplaneError instead of grpc.RpcError."""

    def __init__(self, stub, default_timeout: float | None):
        self._stub = stub
        self._default_timeout = default_timeout

    def __getattr__(self, name: str) -> _Method:
        multicallable = getattr(self._stub, name)
        streaming = isinstance(multicallable, (grpc.UnaryStreamMultiCallable, grpc.StreamStreamMultiCallable))
        method = _Method(multicallable, None if streaming else self._default_timeout, streaming)
        setattr(self, name, method)
        return method


class Stubs:
    """One guarded stub per service of the API, for calls the helpers do not cover."""

    def __init__(self, channel: grpc.Channel, default_timeout: float | None):
        def guard(stub_class):
            return GuardedStub(stub_class(channel), default_timeout)

        self.studies = guard(study_service_pb2_grpc.StudyServiceStub)
        self.trials = guard(trial_service_pb2_grpc.TrialServiceStub)
        self.workers = guard(worker_service_pb2_grpc.WorkerServiceStub)
        self.metrics = guard(metrics_service_pb2_grpc.MetricsServiceStub)
        self.logs = guard(log_service_pb2_grpc.LogServiceStub)
        self.profiler = guard(profiler_service_pb2_grpc.ProfilerServiceStub)
        self.checkpoints = guard(checkpoint_service_pb2_grpc.CheckpointServiceStub)
        self.tokens = guard(token_service_pb2_grpc.TokenServiceStub)
