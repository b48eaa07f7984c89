"""Stubs whose every failure is a TrialplaneError.

A wrapped method is called like the generated one (request, timeout=...,
metadata=...). Unary calls get the client's default timeout unless the
caller gives one; streaming calls run until the server ends them or the
caller stops iterating, so a follow is not cut off by a deadline.

A call the server refused with RESOURCE_EXHAUSTED and a RetryInfo (it is
past a limit now, not for good) is made again after that delay, at most
LIMIT_ATTEMPTS times: a unary call that carries a request_id (so a retry is
applied once), and a stream open (refused before its first answer). What
is raised after the last attempt carries the delay as retry_delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

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

from .errors import TrialplaneError, from_rpc_error

LIMIT_ATTEMPTS = 5
# Longest wait a RetryInfo may ask for; past it the error is raised at once.
MAX_LIMIT_DELAY = 60.0


def limit_delay(err: TrialplaneError) -> float | None:
    """Seconds to wait before trying again when the server said the call is
    past a limit for now (RESOURCE_EXHAUSTED with a RetryInfo), else None."""
    if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED or err.retry_delay is None:
        return None
    return err.retry_delay if err.retry_delay <= MAX_LIMIT_DELAY else None


class ResponseStream:
    """The messages of a server-streaming call; close() cancels the call.
    reopen() makes the same call again, for a stream refused before its
    first answer."""

    def __init__(self, call, reopen: Callable[[], object] | None = None):
        self._call = call
        self._reopen = reopen
        # Set by close(), which also cuts short a wait before reopening.
        self._closed = threading.Event()

    def __iter__(self) -> Iterator:
        attempts = 1
        while True:
            answered = False
            try:
                for response in self._call:
                    answered = True
                    yield response
                return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED and (self._call.cancelled() or self._closed.is_set()):
                    return
                error = from_rpc_error(err)
            delay = limit_delay(error)
            if answered or delay is None or self._reopen is None or attempts >= LIMIT_ATTEMPTS:
                raise error from None
            attempts += 1
            if self._closed.wait(delay):
                return
            self._call = self._reopen()
            if self._closed.is_set():  # closed while it was being opened
                self._call.cancel()

    def close(self) -> None:
        self._closed.set()
        self._call.cancel()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _has_request_id(request) -> bool:
    """Whether the request carries a request_id (the channel fills in an empty one)."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    return descriptor is not None and "request_id" in descriptor.fields_by_name


class _Method:
    def __init__(self, multicallable, default_timeout: float | None, streaming: bool):
        self._call = multicallable
        self._default_timeout = default_timeout
        self._streaming = streaming

    def __call__(self, request, timeout: float | None = None, **kwargs):
        if self._streaming:
            def reopen():
                return self._call(request, timeout=timeout, **kwargs)

            try:
                return ResponseStream(reopen(), reopen)
            except grpc.RpcError as err:
                raise from_rpc_error(err) from None
        timeout = timeout if timeout is not None else self._default_timeout
        attempts = LIMIT_ATTEMPTS if _has_request_id(request) else 1
        for attempt in range(1, attempts + 1):
            try:
                return self._call(request, timeout=timeout, **kwargs)
            except grpc.RpcError as err:
                error = from_rpc_error(err)
            delay = limit_delay(error)
            if delay is None or attempt == attempts:
                raise error from None
            time.sleep(delay)
        raise AssertionError("unreachable")


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
