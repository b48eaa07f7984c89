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
    # Ask every call for a bearer token (off: local development only).
    auth: bool = True
    # Where the first admin token's secret is written, readable by its
    # owner only, when the database has no token yet.
    admin_token_file: str = "./trialplane-admin.token"
