"""The channel a Client talks through: address, TLS, the bearer token, retries
of UNAVAILABLE, and a request_id on every write that takes one.

Retries are gRPC's own (a service-config retryPolicy), so a retried call
resends the same bytes: the request_id the interceptor put in on the first
attempt is the one every retry carries, and the server answers a retry with
the first answer instead of applying the write again. The token goes as
`authorization` metadata through an interceptor because gRPC Python drops
call credentials on insecure channels without a word.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from . import environment

DEFAULT_ADDRESS = "127.0.0.1:50051"
ADDRESS_ENV = environment.ADDRESS
TOKEN_ENV = environment.TOKEN
TOKEN_FILE_ENV = environment.TOKEN_FILE

SERVICES = [
    "trialplane.v1.StudyService",
    "trialplane.v1.TrialService",
    "trialplane.v1.WorkerService",
    "trialplane.v1.MetricsService",
    "trialplane.v1.LogService",
    "trialplane.v1.ProfilerService",
    "trialplane.v1.CheckpointService",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call that failed with UNAVAILABLE is
    tried again. gRPC caps max_attempts at 5; each wait is random up to
    initial_backoff * multiplier ** n, at most max_backoff seconds."""

    max_attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 10.0
    multiplier: float = 2.0

    def service_config(self) -> str:
        method_config: dict = {"name": [{"service": s} for s in SERVICES]}
        if self.max_attempts > 1:
            method_config["retryPolicy"] = {
                "maxAttempts": self.max_attempts,
                "initialBackoff": f"{self.initial_backoff}s",
                "maxBackoff": f"{self.max_backoff}s",
                "backoffMultiplier": self.multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
        return json.dumps({"methodConfig": [method_config]})


def resolve_address(address: str | None) -> str:
    return address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


def resolve_token(token: str | None) -> str | None:
    """The token given, else $TRIALPLANE_TOKEN, else the first line of the
    file $TRIALPLANE_TOKEN_FILE names (the server's admin token file, a
    mounted secret)."""
    if token is not None:
        return token
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV]
    path = os.environ.get(TOKEN_FILE_ENV)
    if path:
        try:
            return Path(path).read_text().strip().splitlines()[0] or None
        except (OSError, IndexError) as exc:
            raise ValueError(f"cannot read the token in {TOKEN_FILE_ENV}={path}: {exc}") from None
    return None


def _credentials(tls: bool | str | Path | None) -> grpc.ChannelCredentials | None:
    """None for plaintext; True for the system's root certificates; a path for
    a file of PEM root certificates."""
    if tls is None or tls is False:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    return grpc.ssl_channel_credentials(root_certificates=Path(tls).read_bytes())


def _with_request_id(request):
    """The request, with a fresh request_id when it has an empty one.

    A copy, so a caller's message is left as it was."""
    field = request.DESCRIPTOR.fields_by_name.get("request_id")
    if field is None or field.type != field.TYPE_STRING or request.request_id:
        return request
    copy = type(request)()
    copy.CopyFrom(request)
    copy.request_id = uuid.uuid4().hex
    return copy


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, details: grpc.ClientCallDetails, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


class _OutgoingInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the bearer token to every call and a request_id to every unary
    request that has an empty one."""

    def __init__(self, token: str | None):
        self._auth = (("authorization", f"Bearer {token}"),) if token else ()

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        if not self._auth:
            return details
        return _CallDetails(details, tuple(details.metadata or ()) + self._auth)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), _with_request_id(request))

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), _with_request_id(request))

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def open_channel(
    address: str,
    token: str | None,
    tls: bool | str | Path | None,
    retry: RetryPolicy,
    max_message_bytes: int,
    extra_options: Sequence[tuple[str, Any]] = (),
) -> tuple[grpc.Channel, grpc.Channel]:
    """The raw channel (to close) and the intercepted one (to call through)."""
    options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", retry.service_config()),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        # gRPC waits up to 120 s between reconnection attempts by default, so
        # after a long outage a client would go on failing for up to two
        # minutes once the server is back.
        ("grpc.max_reconnect_backoff_ms", 5000),
        *extra_options,
    ]
    credentials = _credentials(tls)
    if credentials is None:
        raw = grpc.insecure_channel(address, options=options)
    else:
        raw = grpc.secure_channel(address, credentials, options=options)
    return raw, grpc.intercept_channel(raw, _OutgoingInterceptor(token))
