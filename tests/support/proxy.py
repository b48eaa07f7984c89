"""A gRPC proxy in front of a real server, for tests of what clients do when
calls fail: it forwards unary and server-streaming calls byte for byte,
records each attempt (method, metadata, request bytes), fails the attempts
it is told to, and cuts methods off (as an outage would) until told not to."""

from __future__ import annotations

import subprocess
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool
from trialplane.v1 import (  # noqa: F401 (their services go into the descriptor pool)
    checkpoint_service_pb2,
    log_service_pb2,
    metrics_service_pb2,
    study_service_pb2,
    trial_service_pb2,
    worker_service_pb2,
)

# What the proxy does with one attempt instead of only forwarding it.
FAIL_BEFORE = "fail before forwarding"  # UNAVAILABLE; the server never sees the call
FAIL_AFTER = "fail after forwarding"  # the server applies the call, its answer is lost


@dataclass
class Attempt:
    method: str
    metadata: dict[str, str]
    request: bytes


def _server_streaming(method: str) -> bool:
    service, name = method.lstrip("/").split("/")
    return descriptor_pool.Default().FindServiceByName(service).FindMethodByName(name).server_streaming


class Proxy:
    def __init__(self, target: str, server_credentials: grpc.ServerCredentials | None = None):
        self.upstream = grpc.insecure_channel(target)
        self.attempts: list[Attempt] = []
        # Set when a server-streaming call through the proxy has ended, however it ended.
        self.stream_ended = threading.Event()
        self._plans: dict[str, list] = defaultdict(list)
        self._lock = threading.Lock()
        # Cut off: full method name (or "*") -> whether attempts hang instead of failing.
        self._blocked: dict[str, bool] = {}
        self._released = threading.Event()
        self._streams: set = set()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers([_Handler(self)])
        if server_credentials is None:
            port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            port = self.server.add_secure_port("127.0.0.1:0", server_credentials)
        self.address = f"127.0.0.1:{port}"
        self.server.start()

    def fail(self, method: str, *actions) -> None:
        """The next attempts of method (e.g. "TrialService/CreateTrial") get
        these actions, one each: FAIL_BEFORE, FAIL_AFTER, or a grpc.Status to
        answer with instead of forwarding."""
        with self._lock:
            self._plans[f"/trialplane.v1.{method}"].extend(actions)

    def block(self, method: str | None = None, *, hang: bool = False) -> None:
        """Until unblock(), every attempt of method (every method when None)
        that has no planned action fails with UNAVAILABLE before reaching
        the server, as with the server down; with hang, it gets no answer
        until unblock() or its deadline, as with a server that stopped
        answering. Blocking every method also ends the streams under way."""
        with self._lock:
            self._blocked["*" if method is None else f"/trialplane.v1.{method}"] = hang
            self._released.clear()
            streams = list(self._streams) if method is None else []
        for call in streams:
            call.cancel()

    def unblock(self) -> None:
        with self._lock:
            self._blocked.clear()
            self._released.set()

    def attempts_of(self, method: str) -> list[Attempt]:
        return [a for a in self.attempts if a.method == f"/trialplane.v1.{method}"]

    def _next_action(self, method: str):
        with self._lock:
            plan = self._plans.get(method)
            return plan.pop(0) if plan else None

    def _begin(self, method: str, request: bytes, context: grpc.ServicerContext):
        with self._lock:
            self.attempts.append(Attempt(method, dict(context.invocation_metadata()), request))
        action = self._next_action(method)
        if action is None:
            with self._lock:
                hang = self._blocked.get(method, self._blocked.get("*"))
            if hang:
                while context.is_active() and not self._released.wait(0.05):
                    pass
            elif hang is not None:
                action = FAIL_BEFORE
        if action == FAIL_BEFORE:
            context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: upstream not reachable")
        if isinstance(action, grpc.Status):
            context.abort_with_status(action)
        return action

    def unary(self, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        action = self._begin(method, request, context)
        try:
            response = self.upstream.unary_unary(method)(request, timeout=30)
        except grpc.RpcError as err:
            context.set_trailing_metadata(err.trailing_metadata())
            context.abort(err.code(), err.details())
        if action == FAIL_AFTER:
            context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: connection lost")
        return response

    def streaming(self, method: str, request: bytes, context: grpc.ServicerContext):
        self._begin(method, request, context)
        call = self.upstream.unary_stream(method)(request)
        context.add_callback(call.cancel)
        context.add_callback(self.stream_ended.set)
        with self._lock:
            self._streams.add(call)
        try:
            yield from call
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.CANCELLED and context.is_active():
                context.abort(grpc.StatusCode.UNAVAILABLE, "proxy: connection lost")
            context.set_trailing_metadata(err.trailing_metadata())
            context.abort(err.code(), err.details())
        finally:
            with self._lock:
                self._streams.discard(call)

    def stop(self) -> None:
        self.unblock()
        self.server.stop(0).wait()
        self.upstream.close()


class _Handler(grpc.GenericRpcHandler):
    def __init__(self, proxy: Proxy):
        self.proxy = proxy

    def service(self, handler_call_details):
        method = handler_call_details.method
        if _server_streaming(method):
            return grpc.unary_stream_rpc_method_handler(lambda req, ctx: self.proxy.streaming(method, req, ctx))
        return grpc.unary_unary_rpc_method_handler(lambda req, ctx: self.proxy.unary(method, req, ctx))


def self_signed_certificate(directory: Path) -> tuple[bytes, bytes]:
    """A key and a certificate for 127.0.0.1 and localhost, made with openssl."""
    key, cert = directory / "server.key", directory / "server.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return key.read_bytes(), cert.read_bytes()
