"""Profiler ingestion and downsampling speed against a trialplane server process.

Usage: .venv/bin/python bench/profiler_bench.py [--runs N]

Every run starts a fresh `trialplane serve` on a new database and measures, in
this order, so that neighbouring rows see the same machine:

* the raw narrow-row SQLite insert rate (one row per sample, indexed on
  (series_id, ts), WAL, synchronous=NORMAL, 100k-row transactions);
* StreamProfilerMetrics from one sender process against a counting-only gRPC
  server (the transport ceiling: bench/support.py ProfilerService), then
  against trialplane, for 5,000- and 1,000-sample batches; the same with four
  sender processes;
* trialplane's peak RSS (polled every 50 ms) and CPU during its ingest rows.

A rate is samples / seconds from the first send to the final acknowledgement
that equals the last sequence number (trialplane acknowledges only committed
batches). With four senders it is all samples / (last final ack - first
start). Senders are separate processes that stream pre-serialized messages:
a small per-message header (stream_id, sequence) concatenated with the same
encoded batch, since concatenated protobuf encodings merge.

Finally one 10,000,000-sample series is ingested as 2,000 chunks of 5,000 and
another as 10,000 chunks of 1,000, and GetProfilerSamples(buckets=1000) over
the whole series is timed 20 times from a warm client.

Internal mode (started by the bench itself): --client.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import psutil
from support import (
    CEILING_ACK_EVERY,
    QUIET,
    ROOT,
    PeakRss,
    PostgresSchema,
    Row,
    ServerProcess,
    cpu_seconds,
    median,
    print_table,
    remove_db,
    start_ceiling,
    start_trialplane,
)
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import profiler_service_pb2_grpc, trial_pb2, trial_service_pb2_grpc
from trialplane.v1 import trial_service_pb2 as ts

SCRIPT = Path(__file__).resolve()
METHOD = "/trialplane.v1.ProfilerService/StreamProfilerMetrics"
SAMPLES_PER_RUN = 20_000_000   # per ingest row and run, split evenly over the senders
DOWNSAMPLE_SAMPLES = 10_000_000
DOWNSAMPLE_CALLS = 20
BUCKETS = 1000
SMALL_BATCH_SHARE = 4          # the 1,000-sample rows send SAMPLES_PER_RUN / 4, to fit the time budget
BATCH_BASE = 20_000            # batches[i] = 20,000 + i: 3-byte varints, like a running trial's batch counter
RAW_SQLITE_ROWS = 1_000_000
RAW_SQLITE_TXN = 100_000
RSS_POLL_S = 0.05
HOUR_US = 3_600_000_000


# --- wire helpers ------------------------------------------------------------------------------

def varint(x: int) -> bytes:
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_varints(a: np.ndarray) -> bytes:
    """Packed varint encoding of non-negative int64s, vectorized."""
    u = a.astype(np.uint64)
    groups = np.empty((u.size, 10), dtype=np.uint8)
    nbytes = np.ones(u.size, dtype=np.int64)
    for k in range(10):
        groups[:, k] = ((u >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        if k:
            nbytes += u >= np.uint64(1 << (7 * k)) if 7 * k < 64 else 0
    keep = np.arange(10) < nbytes[:, None]
    groups[np.arange(10) < (nbytes - 1)[:, None]] |= 0x80
    return groups[keep].tobytes()


def field_bytes(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def bench_labels(trial_id: int, gpu: str = "GPU-0") -> pp.TrialProfilerMetricLabels:
    return pp.TrialProfilerMetricLabels(trial_id=trial_id, name="gpu_util", agent_id="agent-0", gpu_uuid=gpu,
                                        metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)


def batch_body(trial_id: int, n: int, first_ts: int, first_batch: int = 0, seed: int = 0) -> bytes:
    """Encoded StreamProfilerMetricsRequest(batch=...) of n samples, built with numpy.

    Equal, field by field, to what protobuf serializes (checked in self_check)."""
    values = np.random.default_rng(seed).random(n)
    batch = (
        field_bytes(1, values.astype("<f8").tobytes())
        + field_bytes(2, encode_varints(np.arange(first_batch, first_batch + n)))
        + field_bytes(3, encode_varints(np.arange(first_ts, first_ts + n)))
        + field_bytes(4, bench_labels(trial_id).SerializeToString())
    )
    return field_bytes(3, batch)


def header(stream_id: str, sequence: int) -> bytes:
    return ps.StreamProfilerMetricsRequest(stream_id=stream_id, sequence=sequence).SerializeToString()


def self_check() -> None:
    """The numpy encoder and the header+body concatenation against protobuf itself."""
    for x in (0, 1, 127, 128, 300, 2**35, 2**56 - 1, 2**56, 2**63 - 1):
        assert encode_varints(np.array([x, 5], dtype=np.int64)) == varint(x) + b"\x05", x
    t0 = time.time_ns() // 1000 - HOUR_US
    n = 777
    mine = header("s", 42) + batch_body(7, n, t0, first_batch=120)
    want = ps.StreamProfilerMetricsRequest(
        stream_id="s", sequence=42,
        batch=pp.TrialProfilerMetricsBatch(
            values=np.random.default_rng(0).random(n).tolist(), batches=list(range(120, 120 + n)),
            timestamps=list(range(t0, t0 + n)), labels=bench_labels(7),
        ),
    )
    assert ps.StreamProfilerMetricsRequest.FromString(mine) == want
    assert len(mine) == len(want.SerializeToString())


# --- one sender (a subprocess: --client) --------------------------------------------------------

def run_client(address: str, stream_id: str, trial_id: int, samples: int, batch: int, distinct: bool) -> None:
    """Streams samples // batch messages; prints one JSON line with its timings.

    Builds its messages, connects, prints "ready", waits for "go" on stdin."""
    messages = samples // batch
    t0 = time.time_ns() // 1000 - HOUR_US
    if distinct:
        # Consecutive timestamps across messages: a real series for the downsample rows.
        bodies = [batch_body(trial_id, batch, t0 + i * batch, first_batch=BATCH_BASE + i * batch, seed=i)
                  for i in range(messages)]
        frames = [header(stream_id, i + 1) + bodies[i] for i in range(messages)]
    else:
        body = batch_body(trial_id, batch, t0, first_batch=BATCH_BASE)
        frames = None
    body_len = len(bodies[0]) if distinct else len(body)

    def requests():
        if frames is not None:
            yield from frames
            return
        for i in range(1, messages + 1):
            yield header(stream_id, i) + body

    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.stream_stream(METHOD, request_serializer=lambda b: b,
                                     response_deserializer=ps.StreamProfilerMetricsResponse.FromString)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        start = time.monotonic_ns()
        end = None
        acks = rejected = 0
        last = 0
        for response in call(requests(), timeout=600):
            acks += 1
            if response.rejected_sequence:
                rejected += 1
                if rejected == 1:
                    print(f"rejected {response.rejected_sequence}: {response.rejected_reason}", file=sys.stderr, flush=True)
            last = max(last, response.acknowledged_sequence)
            if end is None and last == messages:
                end = time.monotonic_ns()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "start": start, "end": end, "last_ack": last, "messages": messages, "samples": messages * batch,
        "message_bytes": len(header(stream_id, messages)) + body_len, "acks": acks, "rejected": rejected,
        "cpu": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
    }), flush=True)


def _other_processes(exclude: set[int]) -> dict[int, tuple[float, float]]:
    """CPU seconds of every user-space process outside the bench, by pid (with its start time)."""
    out = {}
    for p in psutil.process_iter():
        try:
            if p.pid in exclude or p.ppid() in (0, 2):  # 2: kthreadd, the parent of kernel threads
                continue
            out[p.pid] = (p.create_time(), cpu_seconds(p))
        except psutil.Error:
            continue
    return out


class Watch:
    """During one row: peak RSS of a server (polled every 50 ms), its CPU seconds
    (whole process, its main thread, its busiest other thread), the bench's own
    CPU, how busy the machine was and how much of it other processes took."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.me = psutil.Process()
        self.rss = PeakRss(pid, RSS_POLL_S)

    def _threads(self) -> dict[int, float]:
        return {t.id: t.user_time + t.system_time for t in self.proc.threads()}

    def _exclude(self) -> set[int]:
        return {self.me.pid, self.proc.pid} | {c.pid for c in self.me.children(recursive=True)}

    def start(self) -> None:
        self.cpu0, self.me0, self.threads0 = cpu_seconds(self.proc), cpu_seconds(self.me), self._threads()
        self.others0 = _other_processes(self._exclude())
        self.machine0 = psutil.cpu_times()
        self.t0 = time.monotonic()
        self.rss.start()

    def stop(self) -> None:
        self.rss.stop()
        self.peak = self.rss.peak
        self.seconds = time.monotonic() - self.t0
        self.cpu = cpu_seconds(self.proc) - self.cpu0
        self.bench_cpu = cpu_seconds(self.me) - self.me0
        t1 = self._threads()
        delta = {k: v - self.threads0.get(k, 0.0) for k, v in t1.items()}
        self.main_thread = delta.pop(self.proc.pid, 0.0)
        self.busiest_other = max(delta.values(), default=0.0)
        others1 = _other_processes(self._exclude())
        self.others = sum(
            cpu - (self.others0[pid][1] if pid in self.others0 and self.others0[pid][0] == created else 0.0)
            for pid, (created, cpu) in others1.items()
        )
        m0, m1 = self.machine0, psutil.cpu_times()
        idle = (m1.idle - m0.idle) + (m1.iowait - m0.iowait)
        total = sum(m1) - sum(m0) - (m1.guest - m0.guest) - (m1.guest_nice - m0.guest_nice)
        self.machine_busy = psutil.cpu_count() * (1 - idle / total) if total > 0 else 0.0


def stream_run(address: str, trial_ids: list[int], streams: int, samples: int, batch: int, tag: str,
               distinct: bool = False, watch: Watch | None = None) -> dict:
    """Starts `streams` sender processes, releases them together, returns the aggregate.

    watch covers the senders' streaming only, not their start-up."""
    per_stream = samples // streams
    clients = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), "--client", address, f"{tag}-{i}", str(trial_ids[i % len(trial_ids)]),
             str(per_stream), str(batch)] + (["--distinct"] if distinct else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
        )
        for i in range(streams)
    ]
    try:
        for c in clients:
            line = c.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"sender did not get ready: {line!r}")
        if watch:
            watch.start()
        for c in clients:
            c.stdin.write("go\n")
            c.stdin.flush()
        results = [json.loads(c.stdout.readline()) for c in clients]
        if watch:
            watch.stop()
        for c in clients:
            c.wait(60)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
            for f in (c.stdin, c.stdout):
                if f:
                    f.close()
    for r in results:
        if r["end"] is None or r["last_ack"] != r["messages"] or r["rejected"]:
            raise RuntimeError(f"sender {tag} did not get its final acknowledgement: {r}")
    wall = (max(r["end"] for r in results) - min(r["start"] for r in results)) / 1e9
    total = sum(r["samples"] for r in results)
    return {"rate": total / wall, "wall": wall, "samples": total, "message_bytes": results[0]["message_bytes"],
            "messages": sum(r["messages"] for r in results), "acks": sum(r["acks"] for r in results), "client_cpu": sum(r["cpu"] for r in results),
            "max_client_cpu": max(r["cpu"] for r in results)}


def create_trials(address: str, n: int, prefix: str) -> list[int]:
    with grpc.insecure_channel(address) as ch:
        stub = trial_service_pb2_grpc.TrialServiceStub(ch)
        return [stub.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=f"{prefix}-{i}"))).id for i in range(n)]


# --- raw SQLite ---------------------------------------------------------------------------------

def raw_sqlite_rate(path: Path) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE samples (series_id INTEGER, ts INTEGER, batch INTEGER, value REAL)")
        conn.execute("CREATE INDEX samples_series_ts ON samples (series_id, ts)")
        t0 = time.time_ns() // 1000 - HOUR_US
        values = np.random.default_rng(0).random(RAW_SQLITE_ROWS).tolist()
        rows = [(1, t0 + i, i, values[i]) for i in range(RAW_SQLITE_ROWS)]
        start = time.perf_counter()
        for lo in range(0, RAW_SQLITE_ROWS, RAW_SQLITE_TXN):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO samples VALUES (?, ?, ?, ?)", rows[lo:lo + RAW_SQLITE_TXN])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    remove_db(path)
    return RAW_SQLITE_ROWS / elapsed


# --- downsampling -------------------------------------------------------------------------------

def downsample_ms(address: str, trial_id: int, expected: int) -> tuple[list[float], int]:
    req = ps.GetProfilerSamplesRequest(series=[bench_labels(trial_id)], buckets=BUCKETS)
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)]) as ch:
        stub = profiler_service_pb2_grpc.ProfilerServiceStub(ch)
        series = stub.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial_id)).series
        assert [s.sample_count for s in series] == [expected], series
        got = stub.GetProfilerSamples(req).series[0].buckets  # warms the client and the server
        total = sum(b.count for b in got)
        assert total == expected, f"bucket counts sum to {total:,}, not {expected:,}"
        assert 0 < len(got) <= BUCKETS, len(got)
        out = []
        for _ in range(DOWNSAMPLE_CALLS):
            start = time.perf_counter()
            resp = stub.GetProfilerSamples(req)
            out.append((time.perf_counter() - start) * 1000)
            assert sum(b.count for b in resp.series[0].buckets) == expected
    return out, len(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=SAMPLES_PER_RUN, help="samples per ingest row and run")
    parser.add_argument("--client", nargs=5, metavar=("ADDRESS", "STREAM_ID", "TRIAL", "SAMPLES", "BATCH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--distinct", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--postgres", metavar="DSN", default="",
                        help="run trialplane on fresh schemas of this PostgreSQL database instead of SQLite files")
    args = parser.parse_args()
    if args.client:
        address, stream_id, trial, samples, batch = args.client
        run_client(address, stream_id, int(trial), int(samples), int(batch), args.distinct)
        return

    self_check()
    began = time.perf_counter()
    n = args.samples
    # key: (label, streams, batch size, samples per run)
    shapes = {
        "1x5k": ("1 stream", 1, 5000, n),
        "4x5k": ("4 streams", 4, 5000, n),
        "1x1k": ("1 stream, 1k batches", 1, 1000, n // SMALL_BATCH_SHARE),
    }
    m: dict[str, list[float]] = {}  # measurement name -> one value per run

    def put(name: str, value: float) -> None:
        m.setdefault(name, []).append(value)

    info: dict[str, dict] = {}
    disturbed: dict[str, float] = {}  # row -> the most CPU other processes took during it, in cores
    with tempfile.TemporaryDirectory(prefix="profiler-bench-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            for run in range(args.runs):
                put("raw", raw_sqlite_rate(tmp / "raw.db"))
                schema = PostgresSchema(args.postgres, f"bench_profiler_{run}") if args.postgres else None
                db = tmp / f"p{run}.db"
                server = start_trialplane(schema.url if schema else db, args=QUIET)
                ceiling = start_ceiling("ProfilerService")
                trials = create_trials(server.address, 4, f"bench-run{run}")
                for key, (_, streams, batch, samples) in shapes.items():
                    # The ceiling first, then trialplane: neighbours see the same machine.
                    for who, proc in (("ceil", ceiling), ("tp", server)):
                        w = Watch(proc.pid)
                        got = stream_run(proc.address, trials, streams, samples, batch, f"{who}{key}-r{run}", watch=w)
                        put(f"{who}{key}", got["rate"])
                        put(f"{who}cpu{key}", 100 * w.cpu / w.seconds)
                        put(f"{who}main{key}", 100 * w.main_thread / w.seconds)
                        put(f"{who}other{key}", 100 * w.busiest_other / w.seconds)
                        put(f"{who}senders{key}", 100 * got["client_cpu"] / got["wall"])
                        put(f"{who}busy{key}", w.machine_busy)
                        put(f"{who}others{key}", 100 * w.others / w.seconds)
                        put(f"{who}rss{key}", w.peak / 1e6)
                        put(f"{who}perack{key}", got["messages"] / got["acks"])
                        if w.others / w.seconds > 0.1:
                            name = f"{'ceiling' if who == 'ceil' else 'trialplane'} {shapes[key][0]}, run {run + 1}"
                            disturbed[name] = w.others / w.seconds
                        info[f"{who}{key}"] = got
                server.stop()
                ceiling.stop()
                if schema:
                    schema.drop()
                else:
                    remove_db(db)

            # Downsampling: one fresh server, two 10M-sample series with consecutive timestamps.
            schema = PostgresSchema(args.postgres, "bench_profiler_downsample") if args.postgres else None
            server = start_trialplane(schema.url if schema else tmp / "downsample.db", args=QUIET)
            big = create_trials(server.address, 2, "bench-downsample")
            down = {}
            for trial_id, batch in zip(big, (5000, 1000)):
                got = stream_run(server.address, [trial_id], 1, DOWNSAMPLE_SAMPLES, batch, f"down{batch}", distinct=True)
                down[batch] = (*downsample_ms(server.address, trial_id, DOWNSAMPLE_SAMPLES), got["rate"])
            server.stop()
            if schema:
                schema.drop()
        finally:
            ServerProcess.stop_all()
    elapsed = time.perf_counter() - began

    def med(name: str, fmt_: str = "{:.0f}") -> str:
        return fmt_.format(median(m[name]))

    def workload(key: str) -> str:
        _, streams, batch, _ = shapes[key]
        g = info[f"tp{key}"]
        each = f"{g['samples'] // streams:,} samples each" if streams > 1 else f"{g['samples']:,} samples"
        return f"{streams} sender process{'es' if streams > 1 else ''}, {each}, {batch:,}/batch, {g['message_bytes']:,} B/message"

    rows = [
        Row("raw SQLite insert, 1 row per sample", "samples/s",
            f"{RAW_SQLITE_ROWS:,} rows (series_id, ts, batch, value), index (series_id, ts), WAL, "
            f"synchronous=NORMAL, executemany, {RAW_SQLITE_TXN:,} rows/transaction, in the bench process", m["raw"]),
    ]
    for key, (label, *_rest) in shapes.items():
        ceiling = Row(f"gRPC ceiling, {label}", "samples/s",
                      f"counting-only grpc.aio server, ack every {CEILING_ACK_EVERY} messages and at the end; {workload(key)}",
                      m[f"ceil{key}"])
        rows += [
            Row(f"trialplane durable ingest, {label}", "samples/s",
                f"until the ack of the last sequence; {workload(key)}; {med(f'tpperack{key}', '{:.1f}')} messages/ack",
                m[f"tp{key}"], ceiling=ceiling, ratio="trialplane as % of the ceiling"),
            Row("  trialplane server CPU", "% of 1 core",
                f"main (event loop) thread {med(f'tpmain{key}')}%, busiest other thread {med(f'tpother{key}')}%; "
                f"senders {med(f'tpsenders{key}')}%; machine busy {med(f'tpbusy{key}', '{:.2f}')} of "
                f"{psutil.cpu_count()} cores; other processes {med(f'tpothers{key}')}%", m[f"tpcpu{key}"]),
            Row("  ceiling server CPU", "% of 1 core",
                f"senders {med(f'ceilsenders{key}')}%; machine busy {med(f'ceilbusy{key}', '{:.2f}')} of "
                f"{psutil.cpu_count()} cores; other processes {med(f'ceilothers{key}')}%", m[f"ceilcpu{key}"]),
        ]
    rows += [
        Row("trialplane peak RSS, 1 stream", "MB", "during the 1-stream 5k row; psutil every 50 ms; 10^6 B", m["tprss1x5k"]),
        Row("trialplane peak RSS, 4 streams", "MB", "during the 4-stream 5k row; psutil every 50 ms; 10^6 B", m["tprss4x5k"]),
    ]
    for batch, chunks in ((5000, 2000), (1000, 10000)):
        times, buckets, rate = down[batch]
        rows.append(Row(
            f"downsample {DOWNSAMPLE_SAMPLES:,} samples, {chunks:,} chunks", "ms",
            f"GetProfilerSamples buckets={BUCKETS} over the whole series, {DOWNSAMPLE_CALLS} calls, warm client; "
            f"{buckets} buckets, counts sum to {DOWNSAMPLE_SAMPLES:,}; {chunks:,} x {batch:,}-sample batches "
            f"(ingested at {rate / 1e6:.1f}M samples/s)", times,
        ))
    print_table(rows)
    print(f"\nIngest rows: median, min and max of {args.runs} runs, each on a fresh server and database; "
          f"downsample rows: of {DOWNSAMPLE_CALLS} calls.")
    print("A rate is samples / seconds from the first send to the final acknowledgement (4 streams: first start "
          "to last final ack). CPU %: CPU seconds / wall seconds of the row, 100% = one core.")
    if disturbed:
        print("WARNING: processes outside the bench took CPU during " + "; ".join(
            f"{name} ({100 * v:.0f}% of a core)" for name, v in disturbed.items()) + ": those rates are disturbed.")
    print(f"Took {elapsed:.0f} s.")
    cmd = [".venv/bin/python", "bench/profiler_bench.py", "--runs", str(args.runs)]
    if args.samples != SAMPLES_PER_RUN:
        cmd += ["--samples", str(args.samples)]
    if args.postgres:
        cmd += ["--postgres", args.postgres]
        print("trialplane ran on PostgreSQL (a fresh schema per run); the raw row is still SQLite's.")
    print(f"Reproduce: cd {shlex.quote(str(ROOT))} && {shlex.join(cmd)}")


if __name__ == "__main__":
    main()
