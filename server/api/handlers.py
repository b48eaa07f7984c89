"""Every method handler as the server runs it, guarded on the way in.

gRPC calls a method's request deserializer before the servicer sees the call;
bytes that do not parse would end the call with UNKNOWN (or, on a stream,
surface as an exception inside the servicer). The guarded deserializer hands
the servicer a Malformed marker instead, and the guarded behavior answers it
with INVALID_ARGUMENT, reason MALFORMED_REQUEST, through the one error map.
On a request stream the marker raises MalformedRequest where the servicer
reads the next message, so it can settle what came before.

On the way out the guard serializes each answer itself: one larger than the
server may send (--max-message-bytes) would fail inside gRPC with a bare
status and a traceback; it answers RESOURCE_EXHAUSTED, reason
RESPONSE_TOO_LARGE, instead. Readers that page cut their pages to fit first.

Behaviors are asynchronous, except for unary ones such as the Health
service's List (inherited from its generated base class), which the asyncio
server runs on a thread pool; a synchronous streaming behavior is refused.
"""

from __future__ import annotations

import inspect

import grpc

from ..domain.errors import MalformedRequest
from .errors import abort, abort_blocking, response_too_large


class Malformed:
    """What the guarded deserializer returns for bytes that do not parse."""

    __slots__ = ("error",)

    def __init__(self, error: MalformedRequest):
        self.error = error


def _decoder(deserialize, method: str):
    def decode(raw: bytes):
        try:
            return deserialize(raw)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the client's bytes
            return Malformed(MalformedRequest(f"the request of {method} is not a valid protobuf message: {exc}"))

    return decode


async def _checked(requests):
    async for request in requests:
        if type(request) is Malformed:
            raise request.error
        yield request
        del request  # not kept while the next message is awaited


def _unary_request(behavior, serialize, limit: int):
    if inspect.isasyncgenfunction(behavior):

        async def responses(request, context):
            if type(request) is Malformed:
                await abort(context, request.error)
            async for response in behavior(request, context):
                raw = serialize(response)
                if len(raw) > limit:
                    await abort(context, response_too_large(len(raw), limit))
                yield raw

        return responses

    if serialize is None:  # a response stream written with context.write

        async def written(request, context):
            if type(request) is Malformed:
                await abort(context, request.error)
            await behavior(request, context)

        return written

    async def call(request, context):
        if type(request) is Malformed:
            await abort(context, request.error)
        response = await behavior(request, context)
        if response is None:
            return None
        raw = serialize(response)
        if len(raw) > limit:
            await abort(context, response_too_large(len(raw), limit))
        return raw

    return call


def _blocking_unary(behavior, serialize, limit: int):
    def call(request, context):
        if type(request) is Malformed:
            abort_blocking(context, request.error)
        response = behavior(request, context)
        if response is None:
            return None
        raw = serialize(response)
        if len(raw) > limit:
            abort_blocking(context, response_too_large(len(raw), limit))
        return raw

    return call


def _stream_request(behavior, serialize, limit: int):
    inner = _unary_request(behavior, serialize, limit)

    if inspect.isasyncgenfunction(inner):

        async def responses(requests, context):
            try:
                async for response in inner(_checked(requests), context):
                    yield response
            except MalformedRequest as err:
                await abort(context, err)

        return responses

    async def call(requests, context):
        try:
            return await inner(_checked(requests), context)
        except MalformedRequest as err:
            await abort(context, err)

    return call


_MAKERS = {
    (False, False): ("unary_unary", grpc.unary_unary_rpc_method_handler, _unary_request),
    (False, True): ("unary_stream", grpc.unary_stream_rpc_method_handler, _unary_request),
    (True, False): ("stream_unary", grpc.stream_unary_rpc_method_handler, _stream_request),
    (True, True): ("stream_stream", grpc.stream_stream_rpc_method_handler, _stream_request),
}


def guard(method: str, handler: grpc.RpcMethodHandler, max_response_bytes: int) -> grpc.RpcMethodHandler:
    """handler (of the method "/package.Service/Method"), guarded."""
    kind, make, wrap = _MAKERS[(handler.request_streaming, handler.response_streaming)]
    behavior = getattr(handler, kind)
    serialize = handler.response_serializer
    if not (inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)):
        if kind != "unary_unary":
            raise TypeError(f"{method} has a synchronous streaming handler; serve an asyncio servicer")
        wrap = _blocking_unary
    if handler.response_streaming and not inspect.isasyncgenfunction(behavior):
        # Written with context.write, serialized by gRPC: small messages only.
        return make(wrap(behavior, None, max_response_bytes), _decoder(handler.request_deserializer, method), serialize)
    # The guard serializes every answer itself, to check its size.
    return make(wrap(behavior, serialize, max_response_bytes), _decoder(handler.request_deserializer, method), None)


class MethodTable(grpc.GenericRpcHandler):
    """Every guarded method handler in one dictionary; generic handlers that
    were only added as such are asked last and their answers guarded too."""

    def __init__(self, max_response_bytes: int):
        self.max_response_bytes = max_response_bytes
        self.methods: dict[str, grpc.RpcMethodHandler] = {}
        self.fallback: list[grpc.GenericRpcHandler] = []

    def add(self, service_name: str, method_handlers: dict) -> None:
        for name, handler in method_handlers.items():
            method = f"/{service_name}/{name}"
            self.methods[method] = guard(method, handler, self.max_response_bytes)

    def service(self, handler_call_details):
        method = handler_call_details.method
        handler = self.methods.get(method)
        if handler is not None:
            return handler
        for generic in self.fallback:
            handler = generic.service(handler_call_details)
            if handler is not None:
                handler = self.methods[method] = guard(method, handler, self.max_response_bytes)
                return handler
        return None


def behavior_of(handler: grpc.RpcMethodHandler):
    """The function that serves the handler's calls, whatever its kind."""
    return getattr(handler, _MAKERS[(handler.request_streaming, handler.response_streaming)][0])


def with_behavior(handler: grpc.RpcMethodHandler, behavior) -> grpc.RpcMethodHandler:
    """The handler with another behavior of the same kind (an interceptor's
    wrapper), its (de)serializers kept."""
    _, make, _ = _MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(behavior, handler.request_deserializer, handler.response_serializer)


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that serves each method through a handler built
    once: wrap(method, handler) returns what to serve instead (the handler
    itself to leave the method alone). A per-call cost of one lookup, kept
    as long as the rest of the chain hands over the same handler."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        raise NotImplementedError
