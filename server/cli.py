"""`trialplane serve`: the server's own command, added to the `trialplane`
command by the clients' CLI. Heavy imports wait until the server runs, so
`trialplane --help` stays fast."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .config import ServerConfig
from .domain.errors import Unavailable


def add_serve_command(sub) -> None:
    """The `serve` subcommand on the `trialplane` command's subparsers."""
    d = ServerConfig()
    p = sub.add_parser(
        "serve",
        help="run the control-plane server",
        description="Run the trialplane gRPC server on an embedded SQLite database. "
        "SIGTERM or Ctrl-C stops accepting calls, lets in-flight calls finish and closes the database.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default=d.host, help="address to listen on")
    p.add_argument("--port", type=int, default=d.port, help="TCP port; 0 picks a free one and prints it")
    p.add_argument("--db", dest="db_path", default=d.db_path,
                   help="database: a SQLite file (created if missing), sqlite:///path, or postgresql://user@host/db"
                        " (several replicas may share one)")
    p.add_argument(
        "--shutdown-grace", type=float, default=d.shutdown_grace, help="seconds in-flight calls get after SIGTERM"
    )
    p.add_argument(
        "--watchdog-interval",
        type=float,
        default=d.watchdog_interval,
        help="seconds between sweeps for trials past their stop or runtime deadline; 0 disables",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=d.heartbeat_timeout,
        help="seconds without any worker heartbeat after which an active trial with registered workers fails; 0 disables",
    )
    p.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes, help="largest accepted message")
    p.add_argument("--reader-threads", type=int, default=d.reader_threads, help="threads serving database reads")
    p.add_argument(
        "--max-buffered-samples",
        type=int,
        default=d.max_buffered_samples,
        help="profiler samples all streams together hold before they are stored; past it streams wait",
    )
    p.add_argument(
        "--retention-days",
        "--profiler-retention-days",
        dest="retention_days",
        type=int,
        default=d.retention_days,
        help="days task log lines and profiler samples are kept for trials that set no log_retention_days"
        " (--profiler-retention-days is the older name)",
    )
    p.add_argument(
        "--retention-interval", type=float, default=d.retention_interval, help="seconds between retention sweeps; 0 disables"
    )
    p.add_argument("--log-level", default=d.log_level, choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    _add_operations_flags(p, d)


def _add_operations_flags(p, d: ServerConfig) -> None:
    """The metrics endpoint and the limits (docs/operations.md)."""
    p.add_argument("--metrics-port", type=int, default=d.metrics_port,
                   help="port of the Prometheus metrics endpoint (HTTP /metrics); 0 turns it off")
    p.add_argument("--metrics-host", default=d.metrics_host, help="address the metrics endpoint listens on")
    p.add_argument("--max-batch-points", type=int, default=d.max_batch_points,
                   help="metric values per ReportMetrics or ReportMetricColumns call")
    p.add_argument("--max-batch-items", type=int, default=d.max_batch_items,
                   help="lines per AddLogs call, items per AddEvents call")
    p.add_argument("--max-batch-samples", type=int, default=d.max_batch_samples,
                   help="samples per profiler batch (a ReportProfilerMetrics call or a stream message)")
    p.add_argument("--max-streams-per-principal", type=int, default=d.max_streams_per_principal,
                   help="open streams per token (per client host with auth off); 0 means no limit")
    p.add_argument("--stream-retry-seconds", type=float, default=d.stream_retry_seconds,
                   help="how long a client refused a stream is told to wait")
    p.add_argument("--max-stream-seconds", type=float, default=d.max_stream_seconds,
                   help="seconds a Watch* stream stays open before the server ends it (clients resume); 0 means no limit")


def _operations_settings(args) -> dict:
    names = ("metrics_port", "metrics_host", "max_batch_points", "max_batch_items", "max_batch_samples",
             "max_streams_per_principal", "stream_retry_seconds", "max_stream_seconds")
    return {name: getattr(args, name) for name in names}


def run_serve(args) -> int:
    """Runs the server until SIGTERM or SIGINT; 1 when it cannot start."""
    from .app import serve

    config = ServerConfig(
        host=args.host,
        port=args.port,
        db_path=args.db_path,
        shutdown_grace=args.shutdown_grace,
        watchdog_interval=args.watchdog_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        max_message_bytes=args.max_message_bytes,
        reader_threads=args.reader_threads,
        retention_days=args.retention_days,
        max_buffered_samples=args.max_buffered_samples,
        retention_interval=args.retention_interval,
        log_level=args.log_level,
        **_operations_settings(args),
    )
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Imported here, not at the top: `trialplane --help` and the client
    # commands then start without loading the storage and numpy.
    from .storage.factory import UnknownStorage

    try:
        asyncio.run(serve(config))
    except UnknownStorage as exc:
        print(f"trialplane: {exc}", file=sys.stderr)
        return 2
    except (OSError, Unavailable) as exc:
        print(f"trialplane: {exc}", file=sys.stderr)
        return 1
    return 0
