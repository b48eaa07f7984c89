"""The auth interceptor: every call's bearer token checked against the
access table before its servicer runs, and its principal bound for it.

The token comes in the `authorization: Bearer <secret>` header (gRPC call
credentials on a secure channel send exactly that). The method's scope is
checked before the request is read; what the request touches, for tokens
that reach only part of the server, once it is decoded (on a request stream,
each message). Wrapped handlers are kept per method, so a call costs a
dictionary lookup, a hash and the check."""

from __future__ import annotations

import inspect

import grpc

from ..domain import principal as who
from ..domain.errors import DomainError, Unauthenticated
from ..services.authority import Authority
from .access import DENY_ALL, OPEN, TABLE, Rule, run_check, scope_check, target_check
from .errors import abort, internal_error
from .handlers import Malformed, WrappingInterceptor

_BEARER = "bearer "
_NO_REQUEST = object()


def bearer_secret(metadata) -> str:
    """The secret of the call's authorization header; Unauthenticated when
    there is none or it is not a bearer token."""
    for key, value in metadata or ():
        if key == "authorization":
            if value[:7].lower() != _BEARER or not value[7:].strip():
                raise Unauthenticated("the authorization header must be 'Bearer <token>'", "malformed")
            return value[7:].strip()
    raise Unauthenticated("this server needs a bearer token: send 'authorization: Bearer <token>'"
                          " (the SDK and CLI read TRIALPLANE_TOKEN)", "missing")


class AuthInterceptor(WrappingInterceptor):
    def __init__(self, authority: Authority | None = None, table: dict[str, Rule] = TABLE):
        # Set once storage is open: the server is built, with its
        # interceptors, before that.
        super().__init__()
        self.authority = authority
        self.table = table

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        rule = self.table.get(method, DENY_ALL)
        return handler if rule.scope == OPEN else self._wrap(method, rule, handler)

    async def _admit(self, method: str, rule: Rule, context) -> tuple[who.Principal, str]:
        secret = bearer_secret(context.invocation_metadata())
        principal = await self.authority_of().principal(secret)
        scope_check(method, rule, principal)
        who.bind(principal)
        return principal, secret

    def _wrap(self, method: str, rule: Rule, inner: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        authority = self.authority_of
        admit = self._admit

        async def refuse(context, exc: Exception):
            await abort(context, exc if isinstance(exc, DomainError) else internal_error(method, exc))

        async def enter(context, request=_NO_REQUEST) -> tuple[who.Principal, str]:
            try:
                principal, secret = await admit(method, rule, context)
                if request is not _NO_REQUEST and type(request) is not Malformed:
                    await target_check(method, rule, principal, request, authority())
                return principal, secret
            except Exception as exc:  # noqa: BLE001 - every failure ends the call with a status
                await refuse(context, exc)
            raise AssertionError("abort returned")

        async def still_allowed(context, secret: str, writing: bool = False) -> who.Principal:
            """On a stream, before each message either way: a token revoked or
            expired ends the stream, and so does the end of a trial-run token's
            run before a message it writes (its reads of its own trial may
            follow the trial to its end)."""
            try:
                principal = await authority().principal(secret)
                if writing and principal.kind == who.TRIAL_RUN:
                    await run_check(principal, authority())
                return principal
            except Exception as exc:  # noqa: BLE001
                await refuse(context, exc)
            raise AssertionError("abort returned")

        async def checked(secret, requests, context):
            async for request in requests:
                principal = await still_allowed(context, secret, writing=True)
                if type(request) is not Malformed:
                    try:
                        await target_check(method, rule, principal, request, authority())
                    except Exception as exc:  # noqa: BLE001
                        await refuse(context, exc)
                yield request

        if not inner.request_streaming and not inner.response_streaming:
            behavior = inner.unary_unary

            async def unary_unary(request, context):
                await enter(context, request)
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, inner.request_deserializer, inner.response_serializer)

        if not inner.request_streaming:
            behavior = inner.unary_stream

            async def yielded(request, context):
                _, secret = await enter(context, request)
                async for response in behavior(request, context):
                    await still_allowed(context, secret)
                    yield response

            async def written(request, context):
                await enter(context, request)
                await behavior(request, context)

            return grpc.unary_stream_rpc_method_handler(
                yielded if inspect.isasyncgenfunction(behavior) else written,
                inner.request_deserializer, inner.response_serializer)

        behavior = inner.stream_stream if inner.response_streaming else inner.stream_unary
        make = grpc.stream_stream_rpc_method_handler if inner.response_streaming else grpc.stream_unary_rpc_method_handler
        async def streamed(requests, context):
            _, secret = await enter(context)
            async for response in behavior(checked(secret, requests, context), context):
                await still_allowed(context, secret)
                yield response

        async def answered(requests, context):
            _, secret = await enter(context)
            return await behavior(checked(secret, requests, context), context)

        return make(streamed if inspect.isasyncgenfunction(behavior) else answered,
                    inner.request_deserializer, inner.response_serializer)

    def authority_of(self) -> Authority:
        assert self.authority is not None, "the interceptor serves calls only once storage is open"
        return self.authority
