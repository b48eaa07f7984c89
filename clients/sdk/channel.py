"""The channel a Client talks through: address, TLS, the bearer token, retries
of UNAVAILABLE, and a request_id on every write that takes one.

TLS is off unless asked for: tls=True (the system's root certificates), a
path of PEM root certificates, or a TLS(ca, cert, key) with a client
certificate for a server that wants one (mutual TLS). Left out (None), it
comes from $TRIALPLANE_TLS_CA, $TRIALPLANE_TLS_CERT, $TRIALPLANE_TLS_KEY and
$TRIALPLANE_TLS=1, and is off when none is set.

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
from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class TLS:
    """How a client speaks TLS. ca: a file of PEM root certificates the
    server's certificate must chain to (None: the system's). cert and key:
    PEM files of a client certificate and its key, for a server that requires
    one (mutual TLS); both or neither. server_name: the name the server's
    certificate is checked against when it is not the address's host (a
    certificate without the IP address one connects to)."""

    ca: str | Path | None = None
    cert: str | Path | None = None
    key: str | Path | None = None
    server_name: str | None = None

    def __post_init__(self):
        if (self.cert is None) != (self.key is None):
            given, missing = ("cert", "key") if self.key is None else ("key", "cert")
            raise ValueError(f"a TLS client {given} needs its {missing} too (${environment.TLS_CERT} and "
                             f"${environment.TLS_KEY} in the environment)")

    @classmethod
    def from_environment(
        cls,
        ca: str | Path | None = None,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        env: Mapping[str, str] = os.environ,
        on: bool = False,
    ) -> TLS | None:
        """Each of ca, cert and key, else its $TRIALPLANE_TLS_* variable; None
        (plaintext) when none is set and neither `on` nor $TRIALPLANE_TLS=1
        asks for TLS with the system's roots."""
        ca = ca or env.get(environment.TLS_CA) or None
        cert = cert or env.get(environment.TLS_CERT) or None
        key = key or env.get(environment.TLS_KEY) or None
        if not (on or ca or cert or key or env.get(environment.TLS, "").strip() == "1"):
            return None
        return cls(ca, cert, key)

    def environment(self) -> dict[str, str]:
        """The variables that make a child process's Client speak the same
        TLS (absolute paths: the child may start elsewhere)."""
        env = {environment.TLS: "1"}
        for name, path in ((environment.TLS_CA, self.ca), (environment.TLS_CERT, self.cert),
                           (environment.TLS_KEY, self.key)):
            if path is not None:
                env[name] = os.path.abspath(path)
        return env

    def credentials(self) -> grpc.ChannelCredentials:
        def read(what: str, path: str | Path | None) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read the TLS {what} {path}: {exc.strerror or exc}") from None

        return grpc.ssl_channel_credentials(
            root_certificates=read("CA file", self.ca), private_key=read("key", self.key),
            certificate_chain=read("certificate", self.cert),
        )


def resolve_tls(tls: bool | str | Path | TLS | None) -> TLS | None:
    """None for plaintext. False: plaintext; True: the system's root
    certificates; a path: a file of PEM root certificates; a TLS as it is;
    None: from the environment (TLS.from_environment)."""
    if tls is False:
        return None
    if tls is None:
        return TLS.from_environment()
    if tls is True:
        return TLS()
    if isinstance(tls, TLS):
        return tls
    return TLS(ca=tls)


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
    tls: bool | str | Path | TLS | None,
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
    settings = resolve_tls(tls)
    if settings is None:
        raw = grpc.insecure_channel(address, options=options)
    else:
        if settings.server_name:
            options.append(("grpc.ssl_target_name_override", settings.server_name))
        raw = grpc.secure_channel(address, settings.credentials(), options=options)
    return raw, grpc.intercept_channel(raw, _OutgoingInterceptor(token))
