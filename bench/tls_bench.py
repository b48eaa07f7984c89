"""What TLS costs: unary calls, new connections and the profiler stream over
TLS beside the same over plaintext, for trialplane and for an empty-handler
server (the transport alone).

Usage: .venv/bin/python bench/tls_bench.py [--runs N] [--calls N] [--connects N] [--messages N]

Four server processes on 127.0.0.1, started once: `trialplane serve` over
plaintext and with --tls-cert/--tls-key (each on a fresh SQLite database,
auth off: bench/auth_bench.py measures that),
and the empty-handler ceiling of bench/support.py for TrialService and
ProfilerService, over plaintext and (this script's --ceiling mode) over TLS
with the same certificate. Certificates come from tests/support/certs.py
(cryptography, a dev dependency): a P-256 CA and a server certificate for
127.0.0.1. Each run measures, TLS and plaintext back to back:

* GetTrial from one client, one call after another on a warm connection:
  microseconds per call (--calls calls);
* a new connection and its first GetTrial (TCP, TLS handshake, HTTP/2
  set-up): milliseconds each (--connects connections, each its own channel);
* StreamProfilerMetrics of --messages messages of 5,000 samples, sent from
  this process as pre-serialized bytes (bench/profiler_bench.py's encoding):
  samples per second from the first send to the acknowledgement of the last.

Each TLS row is printed with its plaintext twin below it as the ceiling, and
the per-run ratio. The client runs in this process, so its own TLS work is in
the numbers too, as it is for a real client. Defaults take about 30 s.
Every process started here is stopped by its own PID.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shlex
import sys
import tempfile
import time
from pathlib import Path

import grpc
from profiler_bench import batch_body, header
from support import (
    BENCH,
    ROOT,
    START_TIMEOUT,
    TRIALPLANE,
    ServerProcess,
    Table,
    start_ceiling,
    start_trialplane,
)
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

SCRIPT = Path(__file__).resolve()
GET = "/trialplane.v1.TrialService/GetTrial"
CREATE = "/trialplane.v1.TrialService/CreateTrial"
STREAM = "/trialplane.v1.ProfilerService/StreamProfilerMetrics"
BATCH = 5_000
CALL_TIMEOUT = 30.0
WARMUP_CALLS = 50
HOUR_US = 3_600_000_000
# Every channel its own TCP connection (gRPC core otherwise shares one
# between channels with the same target and arguments).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_send_message_length", 64 << 20)]


def load_certs_module():
    spec = importlib.util.spec_from_file_location("trialplane_test_certs", ROOT / "tests" / "support" / "certs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks its module up there
    spec.loader.exec_module(module)
    return module


class Endpoint:
    """A server to measure and how to reach it."""

    def __init__(self, server: ServerProcess, credentials: grpc.ChannelCredentials | None):
        self.server = server
        self.credentials = credentials

    def channel(self) -> grpc.Channel:
        if self.credentials is None:
            return grpc.insecure_channel(self.server.address, options=OWN_CONNECTION)
        return grpc.secure_channel(self.server.address, self.credentials, options=OWN_CONNECTION)


# --- measurements ----------------------------------------------------------------------------------


def unary_us(endpoint: Endpoint, request: bytes, calls: int) -> float:
    """Microseconds per GetTrial, one after another on one warm channel."""
    with endpoint.channel() as channel:
        call = channel.unary_unary(GET)
        for _ in range(WARMUP_CALLS):
            call(request, timeout=CALL_TIMEOUT)
        begin = time.perf_counter()
        for _ in range(calls):
            call(request, timeout=CALL_TIMEOUT)
        return (time.perf_counter() - begin) * 1e6 / calls


def connect_ms(endpoint: Endpoint, request: bytes, connects: int) -> float:
    """Milliseconds for a new channel's first GetTrial, handshake included."""
    total = 0.0
    for _ in range(connects):
        begin = time.perf_counter()
        with endpoint.channel() as channel:
            channel.unary_unary(GET)(request, timeout=CALL_TIMEOUT, wait_for_ready=True)
            total += time.perf_counter() - begin
    return total * 1e3 / connects


def stream_rate(endpoint: Endpoint, trial_id: int, messages: int, run: int) -> float:
    """Samples per second of one StreamProfilerMetrics, until the last acknowledgement."""
    body = batch_body(trial_id, BATCH, time.time_ns() // 1000 - HOUR_US - run * messages * BATCH)
    stream_id = f"tls-bench-{run}-{time.monotonic_ns()}"
    frames = [header(stream_id, i) + body for i in range(1, messages + 1)]
    with endpoint.channel() as channel:
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        call = channel.stream_stream(STREAM, request_serializer=lambda b: b,
                                     response_deserializer=ps.StreamProfilerMetricsResponse.FromString)
        begin = time.perf_counter()
        end = None
        for response in call(iter(frames), timeout=600):
            if response.rejected_sequence:
                raise RuntimeError(f"message {response.rejected_sequence} rejected: {response.rejected_reason}")
            if response.acknowledged_sequence == messages and end is None:
                end = time.perf_counter()
        if end is None:
            raise RuntimeError("the stream ended before its last message was acknowledged")
    return messages * BATCH / (end - begin)


# --- the TLS ceiling (this script run with --ceiling) ----------------------------------------------


async def serve_tls_ceiling(service: str, cert: Path, key: Path) -> None:
    from support import SERVER_OPTIONS, ceiling_handlers, serve_until_signalled

    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((ceiling_handlers(service),))
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await serve_until_signalled(server, "ceiling", f"127.0.0.1:{port}")


def start_tls_ceiling(service: str, cert: Path, key: Path, credentials, log: Path) -> ServerProcess:
    server = ServerProcess([sys.executable, str(SCRIPT), "--ceiling", service, str(cert), str(key)],
                           "ceiling listening on ", log, cwd=BENCH)
    server.wait_listening()
    with grpc.secure_channel(server.address, credentials) as ch:
        server.wait_connected(ch)
    return server


# --- the bench -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="GetTrial calls per row and run")
    parser.add_argument("--connects", type=int, default=40, help="new connections per row and run")
    parser.add_argument("--messages", type=int, default=200, help="5,000-sample messages per stream and run")
    parser.add_argument("--ceiling", nargs=3, metavar=("SERVICE", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ceiling:
        service, cert, key = args.ceiling
        asyncio.run(serve_tls_ceiling(service, Path(cert), Path(key)))
        return 0

    certs = load_certs_module()
    table = Table()
    for what, unit in [("GetTrial, warm connection", "us/call"), ("new connection + first GetTrial", "ms"),
                       (f"StreamProfilerMetrics, {BATCH:,}-sample messages", "samples/s")]:
        for server_kind in ("trialplane", "empty handler"):
            key = f"{server_kind}: {what}"
            table.define(f"{key} tls", f"{key}, TLS", unit)
            table.define(f"{key} plain", f"{key}, plaintext", unit, ceiling_of=f"{key} tls",
                         ratio="TLS as % of plaintext")
    with tempfile.TemporaryDirectory(prefix="tls-bench-") as tmp:
        work = Path(tmp)
        ca = certs.CA("tls bench CA")
        cert, key = ca.issue("tls bench server").write(work, "server")
        credentials = grpc.ssl_channel_credentials(ca.pem)
        try:
            plain = Endpoint(start_trialplane(work / "plain.db", work / "plain.log",
                                              ["--retention-interval", "0", "--log-level", "WARNING"]), None)
            tls_server = ServerProcess(
                [str(TRIALPLANE), "serve", "--port", "0", "--db", str(work / "tls.db"), "--watchdog-interval", "0",
                 "--retention-interval", "0", "--log-level", "WARNING", "--no-auth",
                 "--tls-cert", str(cert), "--tls-key", str(key)],
                "trialplane listening on ", work / "tls.log")
            tls_server.wait_listening()
            tls = Endpoint(tls_server, credentials)
            with tls.channel() as ch:
                tls_server.wait_connected(ch)
            ceilings = {
                (service, secure): (Endpoint(start_tls_ceiling(service, cert, key, credentials, work / f"{service}-tls.log"),
                                             credentials) if secure
                                    else Endpoint(start_ceiling(service, work / f"{service}.log"), None))
                for service in ("TrialService", "ProfilerService") for secure in (True, False)
            }
            trial_ids = {}
            for name, endpoint in (("plain", plain), ("tls", tls)):
                with endpoint.channel() as ch:
                    create = ch.unary_unary(CREATE, request_serializer=ts.CreateTrialRequest.SerializeToString,
                                            response_deserializer=trial_pb2.Trial.FromString)
                    trial_ids[name] = create(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=f"tls-bench-{name}")),
                                             timeout=CALL_TIMEOUT).id
            for run in range(args.runs):
                for server_kind in ("trialplane", "empty handler"):
                    for secure in (True, False):
                        suffix = "tls" if secure else "plain"
                        if server_kind == "trialplane":
                            endpoint = tls if secure else plain
                            profiler = endpoint
                            trial_id = trial_ids[suffix]
                        else:
                            endpoint = ceilings["TrialService", secure]
                            profiler = ceilings["ProfilerService", secure]
                            trial_id = 1
                        request = ts.GetTrialRequest(id=trial_id).SerializeToString()
                        key_of = f"{server_kind}: %s {suffix}"
                        table.add(key_of % "GetTrial, warm connection", unary_us(endpoint, request, args.calls))
                        table.add(key_of % "new connection + first GetTrial", connect_ms(endpoint, request, args.connects))
                        table.add(key_of % f"StreamProfilerMetrics, {BATCH:,}-sample messages",
                                  stream_rate(profiler, trial_id, args.messages, run))
        finally:
            ServerProcess.stop_all()
    print(f"TLS beside plaintext, median of {args.runs} runs (P-256 certificate, one client in this process)\n")
    table.print()
    print(f"\n$ {shlex.join([Path(sys.executable).name, 'bench/tls_bench.py', *sys.argv[1:]])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
