"""Server settings, filled from command-line flags or by tests."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    # 0 picks a free port; build_server reports the one it bound.
    port: int = 50051
    db_path: str = "./trialplane.db"
    # Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace: float = 10.0
    # How often the watchdog looks for trials past their stop or runtime deadline.
    watchdog_interval: float = 5.0
    # An active trial whose workers all stayed silent this long has failed;
    # 0 turns the check off. Trials without registered workers are not checked.
    heartbeat_timeout: float = 600.0
    # Largest request the server accepts, in bytes.
    max_message_bytes: int = 64 * 1024 * 1024
    reader_threads: int = 4
    # Profiler samples all streams together may hold before storage made
    # them durable (about 24 bytes each); past it streams stop reading.
    max_buffered_samples: int = 4_000_000
    # Task log lines and profiler samples are kept this many days unless a
    # trial says otherwise (its log_retention_days; -1 keeps them forever).
    retention_days: int = 30
    # How often the retention job runs, in seconds; 0 disables it.
    retention_interval: float = 3600.0
    log_level: str = "INFO"
    # Prometheus metrics over HTTP on their own port (0: off) and address.
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # Limits, each answered with RESOURCE_EXHAUSTED naming it
    # (docs/operations.md). Items per call: metric values per ReportMetrics
    # or ReportMetricColumns, lines per AddLogs, items per AddEvents, samples
    # per profiler batch; above the built-in maxima they are capped to them.
    max_batch_points: int = 1_000_000
    max_batch_items: int = 10_000
    max_batch_samples: int = 1_000_000
    # Open streams (Watch*, DownloadLogs, the profiler stream) per principal,
    # or per client host with auth off; 0: no limit. A refused stream is told
    # to try again after stream_retry_seconds.
    max_streams_per_principal: int = 64
    stream_retry_seconds: float = 2.0
    # A Watch* stream open this long ends (the clients resume from their
    # cursor); 0: no limit.
    max_stream_seconds: float = 3600.0
