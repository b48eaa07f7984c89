"""Client: one channel to a trialplane server and the helpers over it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from .channel import (
    TLS,
    RetryPolicy,
    open_channel,
    resolve_address,
    resolve_tls,
    resolve_token,
)
from .errors import Unavailable
from .resources import (
    CheckpointsApi,
    LogsApi,
    MetricsApi,
    StudiesApi,
    TokensApi,
    TrialsApi,
    WorkersApi,
)
from .stubs import Stubs

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class Client:
    """A connection to a trialplane server.

    address: host:port, else $TRIALPLANE_ADDRESS, else 127.0.0.1:50051.
    token: sent as `authorization: Bearer <token>` on every call, else
    $TRIALPLANE_TOKEN; None and no variable sends none.
    tls: False for plaintext, True for TLS with the system's root
    certificates, a path for TLS with the PEM root certificates in that file,
    TLS(ca=..., cert=..., key=...) to present a client certificate too
    (mutual TLS); None: from $TRIALPLANE_TLS_CA, $TRIALPLANE_TLS_CERT and
    $TRIALPLANE_TLS_KEY ($TRIALPLANE_TLS=1: the system's roots), plaintext
    when none is set. ValueError when a file cannot be read.
    timeout: the deadline in seconds of every unary call (streams that follow
    a trial have none); None waits for ever.
    retry: how calls failing with UNAVAILABLE are retried; RetryPolicy(1)
    turns retries off. Every write that takes a request_id gets a fresh one,
    so a retried write is applied once.

    Helpers: studies, trials, metrics, logs, checkpoints, workers. Every
    method of the API, with the same token, retries, request ids and errors,
    is at client.stubs.<service>.<Method>(request). Failed calls raise a
    subclass of trialplane.client.TrialplaneError. Close it, or use it as a
    context manager.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        tls: bool | str | Path | TLS | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel_options: Sequence[tuple[str, Any]] = (),
    ):
        self.address = resolve_address(address)
        self.timeout = timeout
        # The bearer secret calls carry (None: none); never in repr or logs.
        self.token = resolve_token(token)
        # The TLS settings in use (None: plaintext), for an agent to hand on.
        self.tls = resolve_tls(tls)
        self._raw_channel, self.channel = open_channel(
            self.address, self.token, self.tls or False, retry or RetryPolicy(), max_message_bytes,
            channel_options,
        )
        self.stubs = Stubs(self.channel, timeout)
        self.studies = StudiesApi(self.stubs)
        self.trials = TrialsApi(self.stubs)
        self.metrics = MetricsApi(self.stubs)
        self.logs = LogsApi(self.stubs)
        self.checkpoints = CheckpointsApi(self.stubs)
        self.workers = WorkersApi(self.stubs)
        self.tokens = TokensApi(self.stubs)

    def wait_until_ready(self, timeout: float = 10.0) -> None:
        """Returns once the channel is connected; Unavailable after timeout seconds."""
        try:
            grpc.channel_ready_future(self._raw_channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise Unavailable(f"no connection to {self.address} within {timeout:g} s") from None

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"
