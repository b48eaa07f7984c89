"""Builds the gRPC server, runs the deadline watchdog and handles shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc
from trialplane.katib.v1beta1 import api_pb2, api_pb2_grpc
from trialplane.v1 import (
    checkpoint_service_pb2,
    checkpoint_service_pb2_grpc,
    log_service_pb2,
    log_service_pb2_grpc,
    metrics_service_pb2,
    metrics_service_pb2_grpc,
    profiler_service_pb2,
    study_service_pb2,
    study_service_pb2_grpc,
    token_service_pb2,
    token_service_pb2_grpc,
    trial_service_pb2,
    trial_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

from .api.auth import AuthInterceptor
from .api.checkpoint_service import CheckpointServicer
from .api.handlers import MethodTable
from .api.katib_early_stopping_service import KatibEarlyStoppingServicer
from .api.katib_service import KatibDBManagerServicer
from .api.katib_suggestion_service import KatibSuggestionServicer
from .api.limits import BatchLimits, StreamLimits
from .api.log_service import LogServicer
from .api.metrics_service import MetricsServicer
from .api.observability import Observability
from .api.profiler_service import ProfilerServicer, add_profiler_service
from .api.study_service import StudyServicer
from .api.token_service import TokenServicer
from .api.trial_service import TrialServicer
from .api.worker_service import WorkerServicer
from .config import ConfigError, ServerConfig
from .domain.clock import now_us
from .services.authority import Authority
from .services.change_feed import ChangeFeed
from .services.early_stopping import EarlyStopping
from .services.jobs import RetentionJob, Watchdog
from .services.katib_search import KatibSuggestions
from .services.katib_stopping import KatibStopping
from .settings import exposure_refusal
from .storage.factory import open_storage
from .storage.interface import Storage
from .tls import certificate_files

log = logging.getLogger("trialplane.server")

SERVICE_FILES = [
    study_service_pb2,
    trial_service_pb2,
    worker_service_pb2,
    metrics_service_pb2,
    checkpoint_service_pb2,
    profiler_service_pb2,
    log_service_pb2,
    token_service_pb2,
    api_pb2,
]
SERVICE_NAMES = [svc.full_name for f in SERVICE_FILES for svc in f.DESCRIPTOR.services_by_name.values()]


@dataclass
class App:
    server: grpc.aio.Server
    port: int
    storage: Storage
    health: health.aio.HealthServicer
    watchdog: Watchdog
    retention: RetentionJob
    config: ServerConfig
    profiler: ProfilerServicer | None = None
    feed: ChangeFeed | None = None
    early_stopping: EarlyStopping | None = None
    observability: Observability | None = None
    # Port of the Prometheus endpoint; 0 when it is off.
    metrics_port: int = 0
    stream_limits: StreamLimits | None = None
    _tasks: list | None = None

    async def start(self) -> None:
        await self.server.start()
        self._tasks = []
        if self.feed is not None and self.feed.relay is not None:
            self._tasks.append(asyncio.create_task(self.feed.relay_forever()))
        if self.config.watchdog_interval > 0:
            self._tasks.append(asyncio.create_task(self.watchdog.run(self.config.watchdog_interval)))
        if self.config.retention_interval > 0:
            self._tasks.append(asyncio.create_task(self.retention.run(self.config.retention_interval)))

    async def stop(self, grace: float | None = None) -> None:
        """Stops accepting calls, lets in-flight ones finish, closes the database."""
        await self.health.enter_graceful_shutdown()
        for task in self._tasks or []:
            task.cancel()
        await self.watchdog.release()
        await self.retention.release()
        await self.server.stop(self.config.shutdown_grace if grace is None else grace)
        if self.early_stopping is not None:
            await self.early_stopping.close()
        await self.storage.close()
        if self.observability is not None:
            self.observability.close()
        log.info("trialplane stopped")


class GenericHandlersOnly:
    """Hands services to the server as generic handlers only, each method guarded.

    The generated add_*_to_server functions also register each method with
    gRPC core. The asyncio server then keeps one pending request per
    registered method and waits on all of them for every incoming call: with
    this API's ~55 methods that wait cost more than a whole ReportMetrics
    handler (measured with bench/metrics_bench.py). The method handlers they
    pass along are served instead from one dictionary, the MethodTable, which
    guards each (api/handlers.py)."""

    def __init__(self, server: grpc.aio.Server, max_response_bytes: int):
        self.table = MethodTable(max_response_bytes)
        server.add_generic_rpc_handlers((self.table,))

    def add_generic_rpc_handlers(self, handlers) -> None:
        self.table.fallback.extend(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: dict) -> None:
        self.table.add(service_name, method_handlers)


def _probe_port(host: str, port: int) -> None:
    """OSError (one line) when no address of host:port can be bound.

    gRPC core would find out too, but only after printing its own multi-line
    complaint to stderr; a fixed port is tried here first, the way gRPC binds
    it (SO_REUSEADDR, any resolved address will do)."""
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    problems = []
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
                return
            except OSError as exc:
                problems.append(exc.strerror or str(exc))
    raise OSError(f"cannot listen on {host}:{port} ({(problems or ['no address'])[0].lower()})")


def interceptors(observability: Observability, auth: AuthInterceptor | None, stream_limits: StreamLimits
                 ) -> list[grpc.aio.ServerInterceptor]:
    """Every call passes these, outermost first: the call metrics see every
    call (refusals by the ones after them included); auth next, binding the
    call's principal, which the stream limits then count streams by."""
    return [observability.interceptor, *([auth] if auth is not None else []), stream_limits]


def _bind(config: ServerConfig, chain: list[grpc.aio.ServerInterceptor]) -> tuple[grpc.aio.Server, int]:
    """A server bound to its port, before anything touches the database, so
    that a failed start leaves no file behind. ConfigError when the address
    may not be served that way or a TLS file is wrong."""
    refusal = exposure_refusal(config)
    if refusal:
        raise ConfigError(refusal)
    certificates = certificate_files(config)
    _probe_port(config.host, config.port)
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options, interceptors=chain)
    try:
        address = f"{config.host}:{config.port}"
        if certificates is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, certificates.credentials())
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port} (address in use or not available)")
    return server, port


async def build_server(config: ServerConfig, storage: Storage | None = None) -> App:
    # Chosen before binding: a database address that names nothing fails first.
    storage = storage or open_storage(config.db_path, readers=config.reader_threads)
    auth = AuthInterceptor() if config.auth else None
    observability = Observability(storage)
    stream_limits = StreamLimits.from_config(config)
    stream_limits.on_refused = observability.stream_refused
    server, port = _bind(config, interceptors(observability, auth, stream_limits))
    try:
        metrics_port = observability.serve(config.metrics_host, config.metrics_port) if config.metrics_port else 0
        await storage.open()
    except BaseException:
        observability.close()
        await server.stop(None)
        raise
    batch_limits = BatchLimits.from_config(config)
    clock = getattr(storage, "clock", now_us)
    feed = ChangeFeed(storage.change_relay())
    authority = Authority(storage, feed, clock)
    if auth is not None:
        auth.authority = authority
        try:
            await authority.ensure_first_admin(Path(config.admin_token_file))
        except OSError as exc:
            await server.stop(None)
            await storage.close()
            raise OSError(f"cannot write the first admin token to {config.admin_token_file}: {exc.strerror}") from None
    trials = TrialServicer(storage, clock, feed, batch_limits)
    handlers = GenericHandlersOnly(server, config.max_message_bytes)
    early_stopping = EarlyStopping(storage, feed)
    trials.on_created = early_stopping.know
    trials.on_validation = early_stopping.notice
    metrics = MetricsServicer(storage, feed, config.max_message_bytes, batch_limits)
    metrics.on_validation = early_stopping.notice
    metrics.on_ingest = observability.ingested
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(metrics, handlers)
    profiler = ProfilerServicer(storage, feed, config.max_message_bytes, config.max_buffered_samples, batch_limits)
    profiler.on_ingest = observability.ingested
    add_profiler_service(profiler, handlers)
    worker_service_pb2_grpc.add_WorkerServiceServicer_to_server(WorkerServicer(storage, feed), handlers)
    trial_service_pb2_grpc.add_TrialServiceServicer_to_server(trials, handlers)
    logs = LogServicer(storage, feed, config.max_message_bytes, batch_limits)
    logs.on_validation = early_stopping.notice
    logs.on_ingest = observability.ingested
    log_service_pb2_grpc.add_LogServiceServicer_to_server(logs, handlers)
    checkpoint_service_pb2_grpc.add_CheckpointServiceServicer_to_server(CheckpointServicer(storage), handlers)
    study_service_pb2_grpc.add_StudyServiceServicer_to_server(StudyServicer(storage, feed, clock, early_stopping), handlers)
    api_pb2_grpc.add_DBManagerServicer_to_server(KatibDBManagerServicer(storage), handlers)
    api_pb2_grpc.add_SuggestionServicer_to_server(KatibSuggestionServicer(KatibSuggestions(storage)), handlers)
    api_pb2_grpc.add_EarlyStoppingServicer_to_server(
        KatibEarlyStoppingServicer(KatibStopping(storage, feed, clock)), handlers)
    token_service_pb2_grpc.add_TokenServiceServicer_to_server(
        TokenServicer(storage, feed, clock, config.auth), handlers)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, handlers)
    for name in ["", *SERVICE_NAMES]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection_names = [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(reflection_names), handlers)
    retention = RetentionJob(storage, config.retention_days, clock)
    watchdog = Watchdog(storage, feed, clock, config.heartbeat_timeout)
    retention.on_action = watchdog.on_action = observability.job_action
    return App(server, port, storage, health_servicer, watchdog, retention, config, profiler, feed, early_stopping,
               observability, metrics_port, stream_limits)


async def serve(config: ServerConfig) -> None:
    app = await build_server(config)
    await app.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The one line that says the server is up (scripts read the port from
    # it); from here on SIGTERM drains the server instead of killing it.
    print(f"trialplane listening on {config.host}:{app.port}", flush=True)
    if app.metrics_port:
        log.info("Prometheus metrics on http://%s:%d/metrics", config.metrics_host, app.metrics_port)
    await stop.wait()
    log.info("shutting down: draining in-flight calls for up to %.1fs", config.shutdown_grace)
    await app.stop()
