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
from .handlers import Malformed, WrappingInterceptor, behavior_of, with_behavior

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

    def _wrap(self, method: str, rule: Rule, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        authority = self.authority_of
        behavior = behavior_of(handler)

        async def checking(context, check):
            """What check gives; any failure of it ends the call with its status."""
            try:
                return await check
            except Exception as exc:  # noqa: BLE001 - every failure ends the call with a status
                await abort(context, exc if isinstance(exc, DomainError) else internal_error(method, exc))
            raise AssertionError("abort returned")

        async def admit(context, request=_NO_REQUEST) -> str:
            """The call's secret, once its principal is bound and allowed."""
            secret = bearer_secret(context.invocation_metadata())
            principal = await authority().principal(secret)
            scope_check(method, rule, principal)
            who.bind(principal)
            if request is not _NO_REQUEST and type(request) is not Malformed:
                await target_check(method, rule, principal, request, authority())
            return secret

        async def still_allowed(secret: str, writing: bool = False) -> who.Principal:
            """On a stream, before each message either way: a token revoked or
            expired ends the stream, and so does the end of a trial-run token's
            run before a message it writes (its reads of its own trial may
            follow the trial to its end)."""
            principal = await authority().principal(secret)
            if writing and principal.kind == who.TRIAL_RUN:
                await run_check(principal, authority())
            return principal

        async def checked(secret, requests, context):
            async for request in requests:
                principal = await checking(context, still_allowed(secret, writing=True))
                if type(request) is not Malformed:
                    await checking(context, target_check(method, rule, principal, request, authority()))
                yield request

        if not handler.request_streaming and not handler.response_streaming:
            async def unary(request, context):
                await checking(context, admit(context, request))
                return await behavior(request, context)

            return with_behavior(handler, unary)

        streams_out = inspect.isasyncgenfunction(behavior)
        if not handler.request_streaming:
            async def yielded(request, context):
                secret = await checking(context, admit(context, request))
                async for response in behavior(request, context):
                    await checking(context, still_allowed(secret))
                    yield response

            async def written(request, context):
                await checking(context, admit(context, request))
                await behavior(request, context)

            return with_behavior(handler, yielded if streams_out else written)

        async def streamed(requests, context):
            secret = await checking(context, admit(context))
            async for response in behavior(checked(secret, requests, context), context):
                await checking(context, still_allowed(secret))
                yield response

        async def answered(requests, context):
            secret = await checking(context, admit(context))
            return await behavior(checked(secret, requests, context), context)

        return with_behavior(handler, streamed if streams_out else answered)

    def authority_of(self) -> Authority:
        assert self.authority is not None, "the interceptor serves calls only once storage is open"
        return self.authority
