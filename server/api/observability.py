"""Prometheus metrics of one server: what its calls, streams, storage and
background jobs do, served over HTTP on a port of their own.

Each App has its own registry (tests run several servers in one process).
Call metrics come from CallMetrics, a server interceptor that wraps each
method's behavior once and keeps the labelled children it counts with, so a
call costs two clock reads and two locked increments. The status of a call
is OK, the code an abort set, CANCELLED when the client went away, or
UNKNOWN for an exception that escaped every handler. Storage gauges are read
when the endpoint is scraped, from whatever the storage has: the SQLite
writer's queue, PostgreSQL's pool, the metric report journal.
docs/operations.md lists every name and label.
"""

from __future__ import annotations

import asyncio
import inspect
import time

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import status_name_of
from .handlers import WrappingInterceptor, behavior_of, with_behavior

# Unary handlers here take from tens of microseconds to seconds.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0, 30.0)
INGESTED = {
    "metric_points": ("trialplane_metric_points_stored_total", "Metric points the server stored"),
    "profiler_samples": ("trialplane_profiler_samples_stored_total", "Profiler samples the server stored"),
    "log_lines": ("trialplane_log_lines_stored_total", "Task log lines the server stored"),
}


def split_method(method: str) -> tuple[str, str]:
    """("trialplane.v1.TrialService", "GetTrial") from "/trialplane.v1.TrialService/GetTrial"."""
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class Observability:
    """The registry of one App and the metrics everything reports into."""

    def __init__(self, storage=None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("trialplane_rpc_calls", "Finished calls by method and status code",
                             ["service", "method", "code"], registry=r)
        self.latency = Histogram("trialplane_rpc_duration_seconds",
                                 "Time from a unary call's start to its answer, by method",
                                 ["service", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.streams = Gauge("trialplane_rpc_open_streams", "Streaming calls open now, by method",
                             ["service", "method"], registry=r)
        self.stream_refusals = Counter("trialplane_stream_refusals",
                                       "Streams refused because their caller had max_streams_per_principal open",
                                       registry=r)
        self._ingested = {kind: Counter(name.removesuffix("_total"), text, registry=r)
                          for kind, (name, text) in INGESTED.items()}
        self.job_actions = Counter("trialplane_job_actions", "What the background jobs did, by job and action",
                                   ["job", "action"], registry=r)
        ProcessCollector(registry=r)
        if storage is not None:
            r.register(StorageCollector(storage))
        self.interceptor = CallMetrics(self)
        self._http = None

    def ingested(self, kind: str, count: int) -> None:
        """count items of a kind (metric_points, profiler_samples, log_lines) stored."""
        if count > 0:
            self._ingested[kind].inc(count)

    def job_action(self, job: str, action: str, count: int = 1) -> None:
        if count > 0:
            self.job_actions.labels(job, action).inc(count)

    def stream_refused(self) -> None:
        self.stream_refusals.inc()

    # --- the HTTP endpoint

    def serve(self, host: str, port: int) -> int:
        """Serves /metrics on its own thread; returns the port (port 0 picks one)."""
        try:
            self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise OSError(f"cannot serve metrics on {host}:{port} ({exc.strerror or exc})") from None
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class StorageCollector(Collector):
    """Gauges of the storage's queues, read at scrape time from the HTTP
    thread (plain counters, so a read is a snapshot, never a lock)."""

    def __init__(self, storage):
        self.storage = storage

    def collect(self):
        storage = self.storage
        inner = getattr(storage, "inner", storage)
        engine = getattr(inner, "engine", None)
        if engine is not None and hasattr(engine, "queue_depth"):
            yield GaugeMetricFamily("trialplane_storage_write_queue_depth",
                                    "Writes waiting for the SQLite writer or being written", value=engine.queue_depth())
        pool = getattr(engine, "pool", None)
        if pool is not None and hasattr(pool, "get_stats"):
            stats = pool.get_stats()
            yield GaugeMetricFamily("trialplane_storage_pool_waiting_requests",
                                    "Database calls waiting for a pooled PostgreSQL connection",
                                    value=stats.get("requests_waiting", 0))
            yield GaugeMetricFamily("trialplane_storage_pool_connections", "Connections the PostgreSQL pool holds",
                                    value=stats.get("pool_size", 0))
        reports = getattr(storage, "reports", None)
        journal = getattr(reports, "journal", None)
        if reports is not None and journal is not None:
            yield GaugeMetricFamily("trialplane_report_journal_bytes",
                                    "Bytes of metric reports in the write-behind journal", value=journal.size)
            yield GaugeMetricFamily("trialplane_report_journal_capacity_bytes",
                                    "Size of the write-behind journal; reports take the direct way when it is full",
                                    value=journal.capacity)
            yield GaugeMetricFamily("trialplane_report_journal_unstored_reports",
                                    "Metric reports acknowledged from the journal and not yet stored",
                                    value=reports.unstored)


class CallMetrics(WrappingInterceptor):
    """Counts every call by method and code, times unary calls, and keeps
    the number of open streams per method."""

    def __init__(self, observability: Observability):
        super().__init__()
        self.o = observability

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return with_behavior(handler, self._counted(method, handler))

    def _counted(self, method: str, handler: grpc.RpcMethodHandler):
        service, name = split_method(method)
        calls = self.o.calls
        by_code: dict[str, object] = {}

        def count(code: str) -> None:
            child = by_code.get(code)
            if child is None:
                child = by_code[code] = calls.labels(service, name, code)
            child.inc()  # type: ignore[attr-defined]

        behavior = behavior_of(handler)
        streaming = handler.request_streaming or handler.response_streaming
        if inspect.isasyncgenfunction(behavior):
            return _counted_stream(behavior, count, self.o.streams.labels(service, name))
        if not inspect.iscoroutinefunction(behavior):
            return _counted_blocking(behavior, count, self.o.latency.labels(service, name))
        if streaming:
            return _counted_call(behavior, count, None, self.o.streams.labels(service, name))
        return _counted_call(behavior, count, self.o.latency.labels(service, name), None)


def _counted_call(behavior, count, latency, open_streams):
    perf = time.perf_counter

    async def call(request, context):
        start = perf()
        code = "UNKNOWN"
        if open_streams is not None:
            open_streams.inc()
        try:
            response = await behavior(request, context)
            code = status_name_of(context)
            return response
        except grpc.aio.AbortError:
            code = status_name_of(context)
            raise
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            count(code)
            if latency is not None:
                latency.observe(perf() - start)
            else:
                open_streams.dec()

    return call


def _counted_stream(behavior, count, open_streams):
    async def responses(request, context):
        code = "UNKNOWN"
        open_streams.inc()
        try:
            async for response in behavior(request, context):
                yield response
            code = status_name_of(context)
        except grpc.aio.AbortError:
            code = status_name_of(context)
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        finally:
            open_streams.dec()
            count(code)

    return responses


def _counted_blocking(behavior, count, latency):
    perf = time.perf_counter

    def call(request, context):
        start = perf()
        code = "UNKNOWN"
        try:
            response = behavior(request, context)
            code = status_name_of(context)
            return response
        except Exception:
            code = status_name_of(context) if context.code() is not None else "UNKNOWN"
            raise
        finally:
            count(code)
            latency.observe(perf() - start)

    return call
