"""Profiler ingestion and downsampling speed against a trialplane server process.

Usage: .venv/bin/python bench/profiler_bench.py [--runs N]

Rows: durable samples/s through StreamProfilerMetrics from one stream and from
four, each beside the gRPC ceiling (the same client against a server whose
handler only counts) and the raw narrow-row SQLite insert rate measured in the
same run; the server's peak memory; a 1,000-bucket downsample of a
10,000,000-sample series.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import psutil

from common import ServerProcess, print_table, row
from trialplane.v1 import profiler_pb2 as pp, profiler_service_pb2 as ps, profiler_service_pb2_grpc, trial_pb2
from trialplane.v1 import trial_service_pb2 as ts, trial_service_pb2_grpc

BIN = Path(sys.executable).parent
METHOD = "/trialplane.v1.ProfilerService/StreamProfilerMetrics"
SAMPLES_PER_RUN = 8_000_000
BATCH = 5000


class CeilingServer:
    """Reads the stream and acknowledges every message without storing anything."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--ceiling-server"], stdout=subprocess.PIPE, text=True)
        self.address = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_ceiling_server() -> None:
    async def main():
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])

        async def stream(request_iterator, context):
            last = 0
            async for raw in request_iterator:
                last = ps.StreamProfilerMetricsRequest.FromString(raw).sequence
                yield ps.StreamProfilerMetricsResponse(acknowledged_sequence=last)

        handler = grpc.stream_stream_rpc_method_handler(
            stream, request_deserializer=lambda b: b,
            response_serializer=ps.StreamProfilerMetricsResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("trialplane.v1.ProfilerService", {"StreamProfilerMetrics": handler}),)
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        print(f"127.0.0.1:{port}", flush=True)
        await server.wait_for_termination()

    asyncio.run(main())


def batch_bytes(trial_id: int, n: int) -> bytes:
    start = time.time_ns() // 1000 - 3_600_000_000
    batch = pp.TrialProfilerMetricsBatch(
        values=np.random.default_rng(0).random(n).tolist(), batches=list(range(n)),
        timestamps=[start + i for i in range(n)],
        labels=pp.TrialProfilerMetricLabels(trial_id=trial_id, name="gpu_util", agent_id="a", gpu_uuid="GPU-0",
                                            metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM),
    )
    return ps.StreamProfilerMetricsRequest(batch=batch).SerializeToString()


def stream_client(address: str, stream_id: str, trial_id: int, samples: int, batch: int, out) -> None:
    """One sender: pre-serialized batches; returns (seconds, final ack) through out."""
    body = batch_bytes(trial_id, batch)
    messages = samples // batch
    frames = [ps.StreamProfilerMetricsRequest(stream_id=stream_id, sequence=i + 1).SerializeToString() + body
              for i in range(messages)]
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.stream_stream(METHOD, request_serializer=lambda b: b,
                                     response_deserializer=ps.StreamProfilerMetricsResponse.FromString)
        start = time.perf_counter()
        last = 0
        for response in call(iter(frames)):
            last = response.acknowledged_sequence
        out.put((time.perf_counter() - start, last == messages, messages * batch))


def ingest_rate(address: str, trial_ids: list[int], streams: int, batch: int, tag: str) -> float:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    per_stream = SAMPLES_PER_RUN // streams
    procs = [ctx.Process(target=stream_client, args=(address, f"{tag}-{i}-{time.time_ns()}", trial_ids[i], per_stream, batch, queue))
             for i in range(streams)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    wall = time.perf_counter() - start
    for p in procs:
        p.join()
    assert all(ok for _, ok, _ in results), "a stream did not get its final acknowledgement"
    # The senders start after process spawn; use the longest stream's own time.
    return sum(n for _, _, n in results) / max(t for t, _, _ in results) if wall else 0.0


class PeakRss:
    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def raw_sqlite_rate(tmp: Path) -> float:
    path = tmp / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE samples (series_id INTEGER, ts INTEGER, batch INTEGER, value REAL)")
    conn.execute("CREATE INDEX samples_series_ts ON samples (series_id, ts)")
    n = 1_000_000
    start_ts = time.time_ns() // 1000
    rows = [(1, start_ts + i, i, 0.5) for i in range(n)]
    start = time.perf_counter()
    for lo in range(0, n, 100_000):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows[lo:lo + 100_000])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    path.unlink()
    return n / elapsed


def create_trials(address: str, n: int) -> list[int]:
    with grpc.insecure_channel(address) as ch:
        stub = trial_service_pb2_grpc.TrialServiceStub(ch)
        return [stub.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=f"bench-{i}"))).id for i in range(n)]


def downsample_ms(address: str, trial_id: int, expected: int) -> list[float]:
    labels = pp.TrialProfilerMetricLabels(trial_id=trial_id, name="gpu_util", agent_id="a", gpu_uuid="GPU-0",
                                          metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)
    req = ps.GetProfilerSamplesRequest(series=[labels], buckets=1000)
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = profiler_service_pb2_grpc.ProfilerServiceStub(ch)
        got = stub.GetProfilerSamples(req).series[0].buckets
        assert sum(b.count for b in got) == expected, (sum(b.count for b in got), expected)
        out = []
        for _ in range(20):
            start = time.perf_counter()
            stub.GetProfilerSamples(req)
            out.append((time.perf_counter() - start) * 1000)
    return out



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ceiling-server", action="store_true")
    args = parser.parse_args()
    if args.ceiling_server:
        run_ceiling_server()
        return
    r = {k: [] for k in ("raw", "one", "four", "small", "ceil1", "ceil4", "rss1", "rss4")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        server = ServerProcess(tmp / "profiler.db")
        ceiling = CeilingServer()
        try:
            trials = create_trials(server.address, 4)
            for run in range(args.runs):
                r["raw"].append(raw_sqlite_rate(tmp))
                r["ceil1"].append(ingest_rate(ceiling.address, trials, 1, BATCH, "c1"))
                with PeakRss(server.proc.pid) as rss:
                    r["one"].append(ingest_rate(server.address, trials, 1, BATCH, f"one{run}"))
                r["rss1"].append(rss.peak / 2**20)
                r["ceil4"].append(ingest_rate(ceiling.address, trials, 4, BATCH, "c4"))
                with PeakRss(server.proc.pid) as rss:
                    r["four"].append(ingest_rate(server.address, trials, 4, BATCH, f"four{run}"))
                r["rss4"].append(rss.peak / 2**20)
                r["small"].append(ingest_rate(server.address, trials, 1, 1000, f"small{run}"))
            big = create_trials(server.address, 2)
            for trial_id, batch in ((big[0], 5000), (big[1], 1000)):
                ctx = mp.get_context("spawn")
                queue = ctx.Queue()
                p = ctx.Process(target=stream_client, args=(server.address, f"big-{trial_id}", trial_id, 10_000_000, batch, queue))
                p.start()
                assert queue.get(timeout=900)[1]
                p.join()
            down5k = downsample_ms(server.address, big[0], 10_000_000)
            down1k = downsample_ms(server.address, big[1], 10_000_000)
        finally:
            server.stop()
            ceiling.stop()
    share1 = [100 * a / b for a, b in zip(r["one"], r["ceil1"])]
    share4 = [100 * a / b for a, b in zip(r["four"], r["ceil4"])]
    print_table([
        row("raw SQLite insert, one row per sample", r["raw"], "samples/s", "indexed (series, ts), 100k per transaction"),
        row("gRPC ceiling, 1 stream", r["ceil1"], "samples/s", f"handler only counts; {BATCH}-sample batches"),
        row("durable ingest, 1 stream", r["one"], "samples/s", f"acknowledged = committed; {BATCH}-sample batches"),
        row("  as share of the ceiling", share1, "%"),
        row("gRPC ceiling, 4 streams", r["ceil4"], "samples/s", "4 sender processes"),
        row("durable ingest, 4 streams", r["four"], "samples/s", "4 sender processes"),
        row("  as share of the ceiling", share4, "%"),
        row("durable ingest, 1 stream, small batches", r["small"], "samples/s", "1,000-sample batches"),
        row("server peak RSS, 1 stream", r["rss1"], "MiB"),
        row("server peak RSS, 4 streams", r["rss4"], "MiB"),
        row("1,000-bucket downsample of 10M samples", down5k, "ms", "2,000 chunks of 5,000"),
        row("1,000-bucket downsample of 10M samples", down1k, "ms", "10,000 chunks of 1,000"),
    ], args.runs, "profiler_bench.py")


if __name__ == "__main__":
    main()
