"""Server start-up and trial throughput against a trialplane server process.

Usage: .venv/bin/python bench/core_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import print_table, row
from trialplane.v1 import trial_pb2, trial_service_pb2 as ts, trial_service_pb2_grpc

BIN = Path(sys.executable).parent
CREATES_PER_RUN = 1500


def start(db: Path) -> tuple[subprocess.Popen, str, float]:
    """Spawns a server; returns it, its address and seconds until health says SERVING."""
    begin = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "trialplane"), "serve", "--port", "0", "--db", str(db), "--watchdog-interval", "0",
         "--retention-interval", "0", "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    address = proc.stdout.readline().strip().rsplit(" ", 1)[1]
    with grpc.insecure_channel(address) as ch:
        status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=30)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
    return proc, address, time.perf_counter() - begin


def stop(proc: subprocess.Popen) -> float:
    begin = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return time.perf_counter() - begin


def create_rate(address: str, clients: int, total: int) -> float:
    channels = [grpc.insecure_channel(address) for _ in range(clients)]
    per = total // clients
    barrier = threading.Barrier(clients + 1)

    def worker(i):
        stub = trial_service_pb2_grpc.TrialServiceStub(channels[i])
        reqs = [ts.CreateTrialRequest(trial=trial_pb2.Trial(name=f"c{i}-{n}", tags=["bench", f"client-{i}"])) for n in range(per)]
        barrier.wait()
        for r in reqs:
            stub.CreateTrial(r)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, i) for i in range(clients)]
        barrier.wait()
        begin = time.perf_counter()
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - begin
    for ch in channels:
        ch.close()
    return per * clients / elapsed


def get_rate(address: str, clients: int, total: int) -> float:
    channels = [grpc.insecure_channel(address) for _ in range(clients)]
    per = total // clients

    def worker(i):
        stub = trial_service_pb2_grpc.TrialServiceStub(channels[i])
        for n in range(per):
            stub.GetTrial(ts.GetTrialRequest(id=1 + (n * 7 + i) % 1000))

    begin = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    elapsed = time.perf_counter() - begin
    for ch in channels:
        ch.close()
    return per * clients / elapsed



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    r = {k: [] for k in ("fresh", "restart", "stop", "c1", "c8", "g1", "g8")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i in range(args.runs):
            proc, _, seconds = start(tmp / f"fresh-{i}.db")
            r["fresh"].append(seconds * 1000)
            r["stop"].append(stop(proc) * 1000)
        db = tmp / "main.db"
        proc, address, _ = start(db)
        try:
            for _ in range(args.runs):
                r["c1"].append(create_rate(address, 1, CREATES_PER_RUN))
                r["c8"].append(create_rate(address, 8, CREATES_PER_RUN))
                r["g1"].append(get_rate(address, 1, CREATES_PER_RUN))
                r["g8"].append(get_rate(address, 8, CREATES_PER_RUN))
            # The restart rows below open a database with at least 10,000 trials.
            missing = 10_000 - args.runs * CREATES_PER_RUN * 2
            if missing > 0:
                create_rate(address, 8, missing)
        finally:
            stop(proc)
        for _ in range(args.runs):
            proc, _, seconds = start(db)
            r["restart"].append(seconds * 1000)
            stop(proc)
    print_table([
        row("start-up, new database", r["fresh"], "ms", "spawn until grpc.health says SERVING"),
        row("start-up, existing database", r["restart"], "ms", f"{max(10_000, args.runs * CREATES_PER_RUN * 2):,} trials"),
        row("SIGTERM to exit", r["stop"], "ms", "drain, close the database"),
        row("CreateTrial, 1 client", r["c1"], "trials/s", "durable on return, name + 2 tags"),
        row("CreateTrial, 8 clients", r["c8"], "trials/s", "8 threads, a channel each"),
        row("GetTrial, 1 client", r["g1"], "calls/s"),
        row("GetTrial, 8 clients", r["g8"], "calls/s"),
    ], args.runs, "core_bench.py", decimals=2)


if __name__ == "__main__":
    main()
