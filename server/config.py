"""Server settings, filled from command-line flags, environment variables and
a config file (server/settings.py), or by tests.

Each field made with `setting(...)` is also a `trialplane serve` flag (its
name with dashes, or `flag=`), an environment variable (TRIALPLANE_ and the
flag's name in capitals) and a config-file key, so a field added here is
settable all three ways at once. A field without it is left to tests (or to a
flag cli.py adds by hand, which settings.py then reads from the environment
and the file the same way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A setting the server cannot start with; its message is one line that
    names the setting."""


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    choices: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    metavar: str | None = None,
    secret: bool = False,
    negate: bool = False,
) -> Any:
    """A ServerConfig field that is also a `serve` flag, an environment
    variable and a config-file key.

    flag: the flag's name without dashes when it is not the field's name.
    aliases: older names of the flag, still accepted. minimum, maximum: the
    range a number must be in. secret: its value is never printed (by
    --check-config). negate: for a bool defaulting to True, the flag turns it
    off (`auth` is `--no-auth`)."""
    return field(default=default, metadata={
        "help": help, "flag": flag, "aliases": aliases, "choices": choices, "minimum": minimum,
        "maximum": maximum, "metavar": metavar, "secret": secret, "negate": negate,
    })


@dataclass
class ServerConfig:
    host: str = setting("127.0.0.1", "address to listen on; one that is not loopback needs TLS and auth, or --insecure")
    # 0 picks a free port; build_server reports the one it bound.
    port: int = setting(50051, "TCP port; 0 picks a free one and prints it", minimum=0, maximum=65535)
    db_path: str = setting(
        "./trialplane.db",
        "database: a SQLite file (created if missing), sqlite:///path, or postgresql://user@host/db"
        " (several replicas may share one)",
        flag="db",
    )
    # Seconds in-flight calls get to finish after SIGTERM.
    shutdown_grace: float = setting(10.0, "seconds in-flight calls get after SIGTERM", minimum=0)
    # How often the watchdog looks for trials past their stop or runtime deadline.
    watchdog_interval: float = setting(
        5.0, "seconds between sweeps for trials past their stop or runtime deadline; 0 disables", minimum=0)
    # An active trial whose workers all stayed silent this long has failed;
    # 0 turns the check off. Trials without registered workers are not checked.
    heartbeat_timeout: float = setting(
        600.0,
        "seconds without any worker heartbeat after which an active trial with registered workers fails; 0 disables",
        minimum=0,
    )
    # Largest request the server accepts, in bytes.
    max_message_bytes: int = setting(64 * 1024 * 1024, "largest accepted message", minimum=1)
    reader_threads: int = setting(4, "threads serving database reads", minimum=1)
    # Profiler samples all streams together may hold before storage made
    # them durable (about 24 bytes each); past it streams stop reading.
    max_buffered_samples: int = setting(
        4_000_000, "profiler samples all streams together hold before they are stored; past it streams wait",
        minimum=1,
    )
    # Task log lines and profiler samples are kept this many days unless a
    # trial says otherwise (its log_retention_days; -1 keeps them forever).
    retention_days: int = setting(
        30,
        "days task log lines and profiler samples are kept for trials that set no log_retention_days"
        " (--profiler-retention-days is the older name)",
        aliases=("profiler-retention-days",),
    )
    # How often the retention job runs, in seconds; 0 disables it.
    retention_interval: float = setting(3600.0, "seconds between retention sweeps; 0 disables", minimum=0)
    log_level: str = setting("INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = setting("text", "text lines, or json: one JSON object per line", choices=("text", "json"))
    # TLS: a certificate chain and its key, both PEM; re-read when the files
    # change (server/tls.py). With a client CA, clients must present a
    # certificate it signed (mutual TLS).
    tls_cert: str | None = setting(None, "PEM certificate chain to serve TLS with (needs --tls-key)", metavar="PEM")
    tls_key: str | None = setting(None, "PEM private key of --tls-cert", metavar="PEM")
    tls_client_ca: str | None = setting(
        None, "PEM CA certificates; clients must present a certificate one of them signed (mutual TLS)",
        metavar="PEM")
    # Ask every call for a bearer token (off: local development only). With
    # TLS it also decides whether a non-loopback address may be served.
    auth: bool = setting(True, "serve without tokens: every call may do everything (local development only)",
                         flag="no-auth", negate=True)
    # Where the first admin token's secret is written, readable by its
    # owner only, when the database has no token yet.
    admin_token_file: str = setting(
        "./trialplane-admin.token",
        "where the first admin token's secret is written (owner-only) when the database has no token")
    insecure: bool = setting(
        False, "listen on a non-loopback address without TLS or without auth anyway")
    # Prometheus metrics over HTTP on their own port (0: off) and address.
    metrics_port: int = setting(0, "port of the Prometheus metrics endpoint (HTTP /metrics); 0 turns it off",
                                minimum=0, maximum=65535)
    metrics_host: str = setting("127.0.0.1", "address the metrics endpoint listens on")
    # Limits, each answered with RESOURCE_EXHAUSTED naming it
    # (docs/operations.md). Items per call: metric values per ReportMetrics
    # or ReportMetricColumns, lines per AddLogs, items per AddEvents, samples
    # per profiler batch; above the built-in maxima they are capped to them.
    max_batch_points: int = setting(1_000_000, "metric values per ReportMetrics or ReportMetricColumns call",
                                    minimum=1)
    max_batch_items: int = setting(10_000, "lines per AddLogs call, items per AddEvents call", minimum=1)
    max_batch_samples: int = setting(
        1_000_000, "samples per profiler batch (a ReportProfilerMetrics call or a stream message)", minimum=1)
    # Open streams (Watch*, DownloadLogs, the profiler stream) per principal,
    # or per client host with auth off; 0: no limit. A refused stream is told
    # to try again after stream_retry_seconds.
    max_streams_per_principal: int = setting(
        64, "open streams per token (per client host with auth off); 0 means no limit", minimum=0)
    stream_retry_seconds: float = setting(2.0, "how long a client refused a stream is told to wait", minimum=0)
    # A Watch* stream open this long ends (the clients resume from their
    # cursor); 0: no limit.
    max_stream_seconds: float = setting(
        3600.0, "seconds a Watch* stream stays open before the server ends it (clients resume); 0 means no limit",
        minimum=0)

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert or self.tls_key)
