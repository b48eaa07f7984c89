"""Speed of the clients: the SDK's log() and end-to-end ingest, and the agent.

Usage: .venv/bin/python bench/clients_bench.py [--runs N]

One `trialplane serve` on a fresh SQLite database serves every row; each run
uses trials of its own. Rows, in this order within a run:

* log() of 10 scalars, timed on the caller's thread one call at a time
  (perf_counter_ns around each), while the SDK's sender ships them to the
  server: p50 and p99 over LATENCY_CALLS calls.
* SDK end to end: init(), SDK_STEPS log() calls of 10 scalars, close();
  points / seconds from init() to close() returning with every point stored
  (close() says every point was sent and none is pending, refused or dropped). Beside it,
  the ceiling: the same points as ReportMetricColumns calls of 5,000 steps
  (the SDK's batch size), serialized before timing and sent one after the
  other by this process to the same server.
* agent, log lines: `trialplane agent` wrapping a child that prints
  AGENT_LINES lines as fast as it can; lines / seconds from the agent's
  spawn to its exit (which waits until every line is stored), so the agent's
  start and its final report are in it.
* agent CPU: `trialplane agent` with its default 1 Hz system-metric sampling
  wrapping a child that prints one line a second; the agent process's own
  user + system CPU (psutil) over IDLE_WINDOW seconds, after IDLE_WARMUP
  seconds of start-up, in percent of one core.

Every process started here is stopped by its own PID.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import psutil
from support import (
    QUIET,
    ROOT,
    TRIALPLANE,
    ServerProcess,
    Table,
    percentile,
    start_trialplane,
)
from trialplane.client import Client, init
from trialplane.v1 import metrics_service_pb2 as ms

SCRIPT = Path(__file__).resolve()
NAMES = [f"metric_{j}" for j in range(10)]
LATENCY_CALLS = 100_000
SDK_STEPS = 100_000
COLUMN_ROWS = 5_000
AGENT_LINES = 200_000
IDLE_WARMUP = 3.0
IDLE_WINDOW = 10.0

FAST_CHILD = f"""
import sys
w = sys.stdout.write
for i in range({AGENT_LINES}):
    w("step %d loss=0.125 lr=1e-05\\n" % i)
"""
SLOW_CHILD = f"""
import time
for i in range({int(IDLE_WARMUP + IDLE_WINDOW + 3)}):
    print("tick", i, flush=True)
    time.sleep(1)
"""


def log_latency(address: str, journals: Path) -> tuple[float, float]:
    client = Client(address)
    trial = client.trials.create(name="log latency")
    client.close()
    run = init(trial.id, address=address, journal_dir=journals, agent=False, handle_sigterm=False)
    metrics = dict.fromkeys(NAMES, 0.5)
    timings = np.empty(LATENCY_CALLS, dtype=np.int64)
    clock = time.perf_counter_ns
    log = run.log
    for step in range(LATENCY_CALLS):
        metrics["metric_0"] = step * 0.001
        begin = clock()
        log(step, metrics)
        timings[step] = clock() - begin
    result = run.close(60)
    assert result.points_pending == 0, result
    us = (timings / 1000).tolist()
    return percentile(us, 50), percentile(us, 99)


def sdk_end_to_end(address: str, journals: Path) -> float:
    with Client(address) as client:
        trial = client.trials.create(name="sdk end to end")
    metrics = dict.fromkeys(NAMES, 0.5)
    begin = time.perf_counter()
    run = init(trial.id, address=address, journal_dir=journals, agent=False, handle_sigterm=False)
    for step in range(SDK_STEPS):
        metrics["metric_0"] = step * 0.001
        run.log(step, metrics)
    result = run.close(120)
    elapsed = time.perf_counter() - begin
    points = SDK_STEPS * len(NAMES)
    if result.points_pending or result.points_refused or result.points_dropped or result.points_sent != points:
        raise RuntimeError(f"the SDK did not store every point: {result}")
    return points / elapsed


def columns_ceiling(address: str) -> float:
    with Client(address) as client:
        trial = client.trials.create(name="columns ceiling")
    bodies = []
    for c in range(SDK_STEPS // COLUMN_ROWS):
        steps = np.arange(c * COLUMN_ROWS, (c + 1) * COLUMN_ROWS)
        values = np.full((COLUMN_ROWS, len(NAMES)), 0.5)
        values[:, 0] = steps * 0.001
        times = np.full(COLUMN_ROWS, time.time_ns() // 1000)
        block = ms.MetricColumns(group="training", names=NAMES, steps=steps.tolist(), report_times=times.tolist(),
                                 values=values.ravel().tolist())
        bodies.append(ms.ReportMetricColumnsRequest(trial_id=trial.id, blocks=[block],
                                                    request_id=f"ceiling-{trial.id}-{c}").SerializeToString())
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as channel:
        call = channel.unary_unary("/trialplane.v1.MetricsService/ReportMetricColumns", request_serializer=lambda b: b,
                                   response_deserializer=ms.ReportMetricColumnsResponse.FromString)
        grpc.channel_ready_future(channel).result(timeout=30)
        begin = time.perf_counter()
        stored = sum(call(body, timeout=60).points_stored for body in bodies)
        elapsed = time.perf_counter() - begin
    assert stored == SDK_STEPS * len(NAMES), stored
    return stored / elapsed


def agent_argv(address: str, trial_id: int, child: str) -> list[str]:
    return [str(TRIALPLANE), "--address", address, "agent", "--trial", str(trial_id), "-q",
            "--max-queued-lines", str(AGENT_LINES * 2), "--", sys.executable, "-c", child]


def agent_lines(address: str, tmp: Path) -> float:
    with Client(address) as client:
        trial = client.trials.create(name="agent lines")
    err = tmp / f"agent-lines-{trial.id}.err"
    with open(err, "wb") as stderr:
        begin = time.perf_counter()
        proc = subprocess.Popen(agent_argv(address, trial.id, FAST_CHILD), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            code = proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        elapsed = time.perf_counter() - begin
    problems = err.read_text(errors="replace")
    if code != 0 or "dropped" in problems or "not delivered" in problems:
        raise RuntimeError(f"the agent exited {code}: {problems}")
    return AGENT_LINES / elapsed


def agent_cpu(address: str, tmp: Path) -> float:
    with Client(address) as client:
        trial = client.trials.create(name="agent cpu")
    err = tmp / f"agent-cpu-{trial.id}.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(agent_argv(address, trial.id, SLOW_CHILD), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            agent = psutil.Process(proc.pid)
            time.sleep(IDLE_WARMUP)
            t0, c0 = time.perf_counter(), agent.cpu_times()
            time.sleep(IDLE_WINDOW)
            t1, c1 = time.perf_counter(), agent.cpu_times()
            if proc.poll() is not None:
                raise RuntimeError(f"the agent exited early: {err.read_text(errors='replace')}")
        finally:
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    used = (c1.user + c1.system) - (c0.user + c0.system)
    return 100 * used / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu-runs", type=int, default=2, help="runs of the agent CPU row (each takes ~15 s)")
    args = parser.parse_args()

    table = Table()
    table.define("p50", "log() of 10 scalars, p50", "us", f"{LATENCY_CALLS:,} calls per run; target p99 <= 20 us")
    table.define("p99", "log() of 10 scalars, p99", "us", "caller's thread, sender running against the server")
    table.define("sdk", "SDK end to end, one process", "points/s",
                 f"init, {SDK_STEPS:,} x log(10 scalars), close, close() says all stored; target >= 500k")
    table.define("ceiling", "ReportMetricColumns from this process", "points/s",
                 f"same points, {COLUMN_ROWS:,}-step calls, pre-serialized", ceiling_of="sdk")
    table.define("lines", "agent: log lines forwarded", "lines/s",
                 f"{AGENT_LINES:,} lines, child printing flat out; spawn to exit")
    table.define("cpu", "agent: own CPU, 1 Hz sampling, 1 line/s", "% of a core",
                 f"{IDLE_WINDOW:g} s window after {IDLE_WARMUP:g} s; target <= 1 %")

    with tempfile.TemporaryDirectory(prefix="clients-bench-") as name:
        tmp = Path(name)
        server: ServerProcess = start_trialplane(tmp / "bench.db", tmp / "server.log", QUIET)
        try:
            address = server.address
            for i in range(args.runs):
                p50, p99 = log_latency(address, tmp / f"journals-latency-{i}")
                table.add("p50", p50)
                table.add("p99", p99)
                table.add("sdk", sdk_end_to_end(address, tmp / f"journals-sdk-{i}"))
                table.add("ceiling", columns_ceiling(address))
                table.add("lines", agent_lines(address, tmp))
                if i < args.cpu_runs:
                    table.add("cpu", agent_cpu(address, tmp))
            server.stop()
        finally:
            ServerProcess.stop_all()

    print(f"clients bench: {args.runs} runs (agent CPU: {min(args.runs, args.cpu_runs)}), one trialplane server "
          f"on SQLite, {psutil.cpu_count()} cores")
    table.print()
    print(f"reproduce: cd {shlex.quote(str(ROOT))} && .venv/bin/python bench/{SCRIPT.name}"
          + (f" --runs {args.runs}" if args.runs != 3 else ""))


if __name__ == "__main__":
    main()
