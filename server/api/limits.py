"""Limits on what one caller may take of the server, each answered with
RESOURCE_EXHAUSTED through the one error map (a LimitExceeded: ErrorInfo
reason LIMIT_EXCEEDED with the limit's name and value, a QuotaFailure, and a
RetryInfo when waiting helps). docs/operations.md lists them.

Items per call: BatchLimits, which the ingesting servicers ask before they
decode the items. Retrying the same call cannot help, so there is no
RetryInfo; the message tells the caller to split the batch.

Open streams per principal and the lifetime of follows: StreamLimits, a
server interceptor around every streaming method. A stream past the limit
is refused before the servicer sees it, with a RetryInfo of a few seconds; a
Watch* stream ends once it is open longer than the lifetime, between two
answers, with a RetryInfo of 0 (services/follow.py), and the clients open it
again from their cursor. The principal is the one auth bound for the call;
with auth off every caller is anonymous, so streams are counted per client
host instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import grpc

from ..domain import metrics as m
from ..domain import principal
from ..domain.errors import LimitExceeded
from ..domain.profiler import MAX_SAMPLES_PER_BATCH
from ..services.follow import limit_lifetime
from .errors import abort
from .handlers import WrappingInterceptor, behavior_of, with_behavior

# Streams of these services are the tools' own (grpcurl's reflection, health
# watches) and are not counted.
UNCOUNTED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
                      "grpc.reflection.v1.ServerReflection")


@dataclass(frozen=True)
class BatchLimits:
    """Items one call may carry; above the built-in maxima a setting is
    capped to them."""

    max_points: int = m.MAX_COLUMN_VALUES
    max_items: int = m.MAX_BATCH_ITEMS
    max_samples: int = MAX_SAMPLES_PER_BATCH

    @classmethod
    def from_config(cls, config) -> BatchLimits:
        return cls(
            max_points=max(1, min(config.max_batch_points, m.MAX_COLUMN_VALUES)),
            max_items=max(1, min(config.max_batch_items, m.MAX_BATCH_ITEMS)),
            max_samples=max(1, min(config.max_batch_samples, MAX_SAMPLES_PER_BATCH)),
        )

    def _check(self, count: int, limit: int, name: str, what: str, method: str, service: str) -> None:
        if count > limit:
            raise LimitExceeded(
                f"at most {limit} {what} per {method} call (got {count}); split them into several calls",
                name=name, limit=limit, requested=count, service=service)

    def points(self, count: int, method: str, what: str = "metric values",
               service: str = "trialplane.v1.MetricsService") -> None:
        self._check(count, self.max_points, "max_batch_points", what, method, service)

    def items(self, count: int, method: str, what: str, service: str) -> None:
        self._check(count, self.max_items, "max_batch_items", what, method, service)

    def samples(self, count: int, method: str, service: str = "trialplane.v1.ProfilerService") -> None:
        self._check(count, self.max_samples, "max_batch_samples", "samples", method, service)


DEFAULT_LIMITS = BatchLimits()


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: ipv4:10.0.0.5:5123 -> 10.0.0.5,
    ipv6:[::1]:5123 (or %5B::1%5D:5123) -> ::1, unix:/path -> unix."""
    scheme, _, rest = (peer or "").partition(":")
    if scheme not in ("ipv4", "ipv6"):
        return scheme or "unknown"
    host = unquote(rest).rsplit(":", 1)[0]
    return host.strip("[]")


def stream_key(context) -> str:
    """Whom an open stream is counted for."""
    who = principal.current()
    if who.kind != principal.ANONYMOUS_KIND:
        return who.key
    return f"host:{peer_host(context.peer())}"


class StreamLimits(WrappingInterceptor):
    """Counts the open streams of each principal; refuses one past
    max_streams, and bounds the lifetime of Watch* follows."""

    def __init__(self, max_streams: int, retry_seconds: float, lifetime_seconds: float):
        super().__init__()
        self.max_streams = max_streams
        self.retry_seconds = retry_seconds
        self.lifetime_seconds = lifetime_seconds
        self.open: dict[str, int] = {}
        # Called for each refused stream (the metrics count them).
        self.on_refused: Callable[[], None] = lambda: None

    @classmethod
    def from_config(cls, config) -> StreamLimits:
        return cls(config.max_streams_per_principal, config.stream_retry_seconds, config.max_stream_seconds)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        service = method.split("/")[1] if method.count("/") == 2 else ""
        if not (handler.request_streaming or handler.response_streaming) or service in UNCOUNTED_SERVICES:
            return handler
        return with_behavior(handler, self._wrap(method, service, behavior_of(handler)))

    async def _enter(self, context, service: str) -> str:
        key = stream_key(context)
        count = self.open.get(key, 0)
        if self.max_streams > 0 and count >= self.max_streams:
            self.on_refused()
            await abort(context, LimitExceeded(
                f"{key} has {count} streams open, the most this server allows one caller; close one or try"
                f" again in {self.retry_seconds:g} s", name="max_streams_per_principal", limit=self.max_streams,
                subject=key, retry_after=self.retry_seconds, service=service))
        self.open[key] = count + 1
        return key

    def _leave(self, key: str) -> None:
        count = self.open.get(key, 1) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)

    def _wrap(self, method: str, service: str, behavior):
        lifetime = self.lifetime_seconds if method.rsplit("/", 1)[-1].startswith("Watch") else 0.0
        enter, leave = self._enter, self._leave
        if inspect.isasyncgenfunction(behavior):

            async def responses(request, context):
                key = await enter(context, service)
                try:
                    if lifetime:
                        limit_lifetime(lifetime)
                    async for response in behavior(request, context):
                        yield response
                finally:
                    leave(key)

            return responses

        async def call(request, context):
            key = await enter(context, service)
            try:
                if lifetime:
                    limit_lifetime(lifetime)
                return await behavior(request, context)
            finally:
                leave(key)

        return call
