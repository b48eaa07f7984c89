"""What every bench/*_bench.py shares: server processes, the ceiling server, medians and the table.

Every server a bench measures runs as its own process, so that clients and
server do not share a GIL. It is started with --port 0: the server binds a
free port itself and prints "... listening on HOST:PORT", and ServerProcess
reads the address from that line, so no port is chosen before the bind and
none can be taken in between. A server is ready when a channel to it connects
(trialplane: when its health Check says SERVING); waiting gives up at once if
the process died.

The ceiling is this module run as a program: a grpc.aio server with the
options trialplane's build_server sets, whose handlers for one service's
methods do nothing but answer (no database, no domain code). A bench measures
it in the same run as trialplane, and print_table prints each measured row
beside its ceiling and the per-run ratio of the two. The ceiling's peak RSS is
measured too, so it is started with -m from bench/ (run as a script, this
module costs it about 1 MiB more), what only the bench side needs (psutil,
statistics, grpc_health) is imported where it is used, and the ceiling imports
the generated modules of the one service it serves.

Usage of the ceiling: cd bench && ../.venv/bin/python -m support {MetricsService,ProfilerService,StudyService,TrialService}
                          [--host 127.0.0.1] [--port 0]
Prints "ceiling listening on HOST:PORT" once bound; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import grpc

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TRIALPLANE = Path(sys.executable).parent / "trialplane"
if not TRIALPLANE.exists():  # run by an interpreter outside the venv
    TRIALPLANE = ROOT / ".venv" / "bin" / "trialplane"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# trialplane serve with the retention sweep off and only warnings on stderr,
# for benches that measure ingestion rather than a server as deployed.
QUIET = ("--retention-interval", "0", "--log-level", "WARNING")
# The options trialplane's build_server sets (server/app.py), so that only the handlers differ.
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]
CEILING_ACK_EVERY = 10  # the profiler ceiling acknowledges every 10th message and the last one


# --- server processes ------------------------------------------------------------------------------


class ServerProcess:
    """A server subprocess a bench started; stopped by its own PID only."""

    alive: ClassVar[list[ServerProcess]] = []

    def __init__(self, argv: Sequence[str], ready_prefix: str, log: Path | None = None, cwd: Path = ROOT):
        self.argv = list(argv)
        self.ready_prefix = ready_prefix
        self.log_path = log
        self._log = open(log, "ab") if log else None
        self.began = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._log or subprocess.DEVNULL, bufsize=0,
        )
        ServerProcess.alive.append(self)
        self.address = ""
        self.listening_after = 0.0  # seconds from spawn to the listening line
        self.ready_after = 0.0      # seconds from spawn to ready

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def name(self) -> str:
        """The program, or for the interpreter the script or module it runs."""
        args = self.argv[1:] if self.argv[0] == sys.executable else self.argv
        return Path(next(a for a in args if not a.startswith("-"))).name

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        """Reads the 'listening on HOST:PORT' line from stdout; returns HOST:PORT."""
        deadline = time.monotonic() + timeout
        buf = b""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no listening line from {self.name} within {timeout:.0f}s{self._see_log()}")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited with {self.proc.wait()} before listening:\n{self.log_tail()}")
                buf += chunk
        line = buf.split(b"\n", 1)[0].decode().strip()
        if not line.startswith(self.ready_prefix):
            raise RuntimeError(f"unexpected first line {line!r} from {self.name}")
        self.listening_after = time.perf_counter() - self.began
        self.address = line.rsplit(" ", 1)[1]
        return self.address

    def wait_connected(self, channel: grpc.Channel, timeout: float = START_TIMEOUT) -> None:
        """Waits for the channel to connect, giving up at once if the server died."""
        deadline = time.monotonic() + timeout
        future = grpc.channel_ready_future(channel)
        while True:
            try:
                future.result(timeout=0.5)
                return
            except grpc.FutureTimeoutError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} (pid {self.pid}) exited with {self.proc.returncode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not connect to {self.address} within {timeout:.0f}s") from None

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _see_log(self) -> str:
        return f"; see {self.log_path}" if self.log_path else ""

    def vm_hwm_bytes(self) -> int | None:
        """The kernel's resident-set high-water mark for the process (Linux)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> float:
        """SIGTERM, then seconds until the process exited. Kills it and raises
        when it does not exit in time or exits non-zero."""
        begin = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TimeoutError(f"{self.name} (pid {self.pid}) ignored SIGTERM for {timeout:.0f}s") from None
        elapsed = time.perf_counter() - begin
        self._close()
        if code != 0:
            raise RuntimeError(f"{self.name} exited with {code}:\n{self.log_tail()}")
        return elapsed

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close()

    def _close(self) -> None:
        if self in ServerProcess.alive:
            ServerProcess.alive.remove(self)
        if self.proc.stdout:
            self.proc.stdout.close()
        if self._log:
            self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        """Cleanup path: SIGTERM what is left, SIGKILL what does not go."""
        for s in list(cls.alive):
            try:
                if s.proc.poll() is None:
                    s.proc.send_signal(signal.SIGTERM)
                    s.proc.wait(10)
            except (subprocess.TimeoutExpired, OSError):
                pass
            s.kill()


def health_check(address: str, timeout: float = START_TIMEOUT) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(f"health at {address} says {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


def start_trialplane(db: Path | str, log: Path | None = None, args: Sequence[str] = (), auth: bool = False
                     ) -> ServerProcess:
    """`trialplane serve` on a free port with the watchdog off (and auth off
    unless asked for), plus args; returns once its health Check says SERVING,
    with ready_after set to the seconds since spawn."""
    argv = [str(TRIALPLANE), "serve", "--port", "0", "--db", str(db), "--watchdog-interval", "0",
            *([] if auth else ["--no-auth"]), *args]
    server = ServerProcess(argv, "trialplane listening on ", log)
    health_check(server.wait_listening())
    server.ready_after = time.perf_counter() - server.began
    return server


class PostgresSchema:
    """A fresh schema in the PostgreSQL database of dsn for one bench run, dropped after it."""

    def __init__(self, dsn: str, name: str):
        from urllib.parse import quote

        import psycopg

        self.dsn, self.name = dsn, name
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        separator = "&" if "?" in dsn else "?"
        self.url = f"{dsn}{separator}options={quote(f'-csearch_path={name}')}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


def start_ceiling(service: str, log: Path | None = None) -> ServerProcess:
    """The ceiling server for one service (see the module docstring); returns once a channel connects."""
    server = ServerProcess([sys.executable, "-m", "support", service], "ceiling listening on ", log, cwd=BENCH)
    server.wait_listening()
    with grpc.insecure_channel(server.address) as ch:
        server.wait_connected(ch)
    server.ready_after = time.perf_counter() - server.began
    return server


def remove_db(path: Path) -> None:
    """A SQLite database file with its -wal and -shm files."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- what a server process uses -------------------------------------------------------------------


def cpu_seconds(process) -> float:
    """User + system CPU seconds of a process (a psutil.Process or a pid)."""
    import psutil

    p = process if isinstance(process, psutil.Process) else psutil.Process(process)
    t = p.cpu_times()
    return t.user + t.system


class PeakRss:
    """Samples a process's RSS with psutil every `interval` seconds, from start() to stop()."""

    def __init__(self, pid: int, interval: float = 0.01):
        import psutil

        self._error = psutil.Error
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            self.peak = max(self.peak, self.process.memory_info().rss)
        except self._error:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> PeakRss:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def __enter__(self) -> PeakRss:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- medians and percentiles ----------------------------------------------------------------------


def median(samples: Iterable[float]) -> float:
    import statistics

    return statistics.median(samples)


def percentile(samples: Iterable[float], q: float) -> float:
    """The sample at rank q% (0..100) of the sorted samples, rounded down; no interpolation."""
    ordered = sorted(samples)
    return ordered[int(q / 100 * (len(ordered) - 1))]


def ratios(measured: Sequence[float], ceiling: Sequence[float]) -> list[float]:
    """measured / ceiling in %, run by run: sample i of each was taken in the same run."""
    return [100 * m / c for m, c in zip(measured, ceiling)]


# --- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One measurement, one sample per run (or per call). A row with a ceiling is
    printed with the ceiling below it and then the per-run ratio of the two."""

    name: str
    unit: str
    note: str = ""
    samples: list[float] = field(default_factory=list)
    ceiling: Row | None = None
    ratio: str = "as % of the ceiling"


class Table:
    """Rows defined up front by key (so a row that never got a sample still
    shows, as not measured), filled run by run."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._by_key: dict[str, Row] = {}

    def define(self, key: str, name: str, unit: str, note: str = "", *, ceiling_of: str = "", ratio: str = "") -> Row:
        """A row; with ceiling_of, the same-run ceiling of that row (printed beside it)."""
        row = Row(name, unit, note)
        if ceiling_of:
            measured = self._by_key[ceiling_of]
            measured.ceiling = row
            if ratio:
                measured.ratio = ratio
        else:
            if ratio:
                row.ratio = ratio
            self.rows.append(row)
        self._by_key[key] = row
        return row

    def add(self, key: str, value: float) -> None:
        self._by_key[key].samples.append(value)

    def last(self, key: str) -> float:
        """The latest sample of a row."""
        return self._by_key[key].samples[-1]

    def note(self, key: str, text: str) -> None:
        self._by_key[key].note = text

    def print(self) -> None:
        print_table(self.rows)


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cells(row: Row, indent: str = "") -> tuple[str, ...]:
    s = row.samples
    if not s:
        return (indent + row.name, "-", "-", "-", row.unit, "not measured")
    return (indent + row.name, fmt(median(s)), fmt(min(s)), fmt(max(s)), row.unit, row.note)


def print_table(rows: Iterable[Row]) -> None:
    """measurement, median, min, max, unit, note; a row with a ceiling is followed
    by the ceiling's row and by the ratio of the two, computed run by run."""
    header = ("measurement", "median", "min", "max", "unit", "note")
    cells = [header]
    for r in rows:
        cells.append(_cells(r))
        if r.ceiling is not None:
            cells.append(_cells(r.ceiling, "  "))
            ratio = Row(r.ratio, "%", "per run against its same-run ceiling, then median", ratios(r.samples, r.ceiling.samples))
            cells.append(_cells(ratio, "  "))
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    right = {1, 2, 3}
    for i, c in enumerate(cells):
        print("  ".join(x.rjust(w) if j in right else x.ljust(w) for j, (x, w) in enumerate(zip(c, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# --- the ceiling server (this module as a script) -------------------------------------------------


def _ceiling_sequence(raw: bytes) -> int:
    """The sequence number from the header at the front of a StreamProfilerMetricsRequest."""
    pos = 0
    while pos < len(raw):
        key = raw[pos]
        pos += 1
        if key == 0x0A:  # stream_id
            length = 0
            shift = 0
            while True:
                b = raw[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            pos += length
        elif key == 0x10:  # sequence
            value = shift = 0
            while True:
                b = raw[pos]
                pos += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    return value
        else:
            break
    from trialplane.v1 import profiler_service_pb2 as ps

    return ps.StreamProfilerMetricsRequest.FromString(raw).sequence


def _trial_handlers() -> dict[str, grpc.RpcMethodHandler]:
    """CreateTrial and GetTrial return an empty Trial."""
    from trialplane.v1 import trial_pb2, trial_service_pb2

    async def empty_trial(request, context) -> trial_pb2.Trial:
        return trial_pb2.Trial()

    return {
        "CreateTrial": grpc.unary_unary_rpc_method_handler(
            empty_trial,
            request_deserializer=trial_service_pb2.CreateTrialRequest.FromString,
            response_serializer=trial_pb2.Trial.SerializeToString,
        ),
        "GetTrial": grpc.unary_unary_rpc_method_handler(
            empty_trial,
            request_deserializer=trial_service_pb2.GetTrialRequest.FromString,
            response_serializer=trial_pb2.Trial.SerializeToString,
        ),
    }


def _metrics_handlers() -> dict[str, grpc.RpcMethodHandler]:
    """ReportMetrics answers created=True."""
    from trialplane.v1 import metrics_service_pb2 as ms

    async def report(request, context) -> ms.ReportMetricsResponse:
        return ms.ReportMetricsResponse(created=True)

    return {
        "ReportMetrics": grpc.unary_unary_rpc_method_handler(
            report, request_deserializer=ms.ReportMetricsRequest.FromString,
            response_serializer=ms.ReportMetricsResponse.SerializeToString,
        ),
    }


def _profiler_handlers() -> dict[str, grpc.RpcMethodHandler]:
    """StreamProfilerMetrics only counts: it reads the sequence from each raw
    message, acknowledges every CEILING_ACK_EVERY-th and the last one."""
    from trialplane.v1 import profiler_service_pb2 as ps

    async def stream(request_iterator, context):
        messages = nbytes = last = 0
        async for raw in request_iterator:
            messages += 1
            nbytes += len(raw)
            last = _ceiling_sequence(raw)
            if messages % CEILING_ACK_EVERY == 0:
                yield ps.StreamProfilerMetricsResponse(acknowledged_sequence=last)
        yield ps.StreamProfilerMetricsResponse(acknowledged_sequence=last)

    return {
        "StreamProfilerMetrics": grpc.stream_stream_rpc_method_handler(
            stream, request_deserializer=lambda b: b,
            response_serializer=ps.StreamProfilerMetricsResponse.SerializeToString,
        ),
    }


def _study_handlers() -> dict[str, grpc.RpcMethodHandler]:
    """SuggestTrials answers an empty response (no trials)."""
    from trialplane.v1 import study_service_pb2 as ss

    async def suggest(request, context) -> ss.SuggestTrialsResponse:
        return ss.SuggestTrialsResponse()

    return {
        "SuggestTrials": grpc.unary_unary_rpc_method_handler(
            suggest, request_deserializer=ss.SuggestTrialsRequest.FromString,
            response_serializer=ss.SuggestTrialsResponse.SerializeToString,
        ),
    }


CEILINGS: dict[str, Callable[[], dict[str, grpc.RpcMethodHandler]]] = {
    "TrialService": _trial_handlers,
    "MetricsService": _metrics_handlers,
    "ProfilerService": _profiler_handlers,
    "StudyService": _study_handlers,
}


def ceiling_handlers(service: str) -> grpc.GenericRpcHandler:
    """The empty handlers of one service, as a generic handler."""
    return grpc.method_handlers_generic_handler(f"trialplane.v1.{service}", CEILINGS[service]())


async def serve_until_signalled(server: grpc.aio.Server, label: str, address: str, grace: float = 1.0) -> None:
    """Starts a bound server, prints "<label> listening on <address>" (what
    ServerProcess waits for), and serves until SIGTERM or SIGINT."""
    await server.start()
    print(f"{label} listening on {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace)


async def serve_ceiling(service: str, host: str, port: int) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((ceiling_handlers(service),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await serve_until_signalled(server, "ceiling", f"{host}:{bound}")


def main() -> None:
    parser = argparse.ArgumentParser(description="The ceiling server: empty handlers for one trialplane service.")
    parser.add_argument("service", choices=sorted(CEILINGS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve_ceiling(args.service, args.host, args.port))


if __name__ == "__main__":
    main()
