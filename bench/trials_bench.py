"""trialplane benchmark: start-up/shutdown, CreateTrial throughput beside an
empty-handler transport ceiling, GetTrial and ListTrials over 10,000 trials.

Every server runs as its own subprocess on 127.0.0.1 (so clients and server do
not share a GIL); every measurement is the median of --runs runs. The script
prints a plain-text table and the command that reproduces it.

Usage: .venv/bin/python bench/trials_bench.py [--runs N] [--create-1 N] [--create-8 N]
           [--get-1 N] [--get-8 N] [--db-trials N] [--get-ceiling] [--keep-logs]
Exits 0 when every measurement ran, non-zero (after cleaning up) otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import grpc
from support import (
    BENCH,
    ROOT,
    START_TIMEOUT,
    PeakRss,
    ServerProcess,
    Table,
    cpu_seconds,
    median,
    percentile,
    remove_db,
    start_ceiling,
    start_trialplane,
)
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

CREATE = "/trialplane.v1.TrialService/CreateTrial"
GET = "/trialplane.v1.TrialService/GetTrial"
SERVICE = "TrialService"
CEILING = f"bench/support.py {SERVICE}"  # the empty-handler ceiling
# Each client thread gets its own channel; a local subchannel pool makes that
# its own TCP connection too (grpc core otherwise shares one between channels
# with the same target and arguments).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]
CALL_TIMEOUT = 30.0
WARMUP_CALLS = 25
LIST_PAGE = 100
LIST_ORDER = "create_time desc"
LIST_PATTERN = "bench%"


# --- load ---------------------------------------------------------------------------


def drive(server: ServerProcess, method: str, request_type, work: list[list], warmup: list[list]) -> tuple[float, float]:
    """Runs len(work) client threads, each with its own channel, calling `method`
    with its list of requests back to back. Returns calls per second, counted
    from the moment all threads finished their warm-up calls, and the CPU time
    the server process used meanwhile, in microseconds per call."""
    n = len(work)
    server_pid = server.pid
    channels = [grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) for _ in range(n)]
    try:
        for ch in channels:
            server.wait_connected(ch)
        calls = [
            ch.unary_unary(method, request_serializer=request_type.SerializeToString,
                           response_deserializer=trial_pb2.Trial.FromString)
            for ch in channels
        ]
        barrier = threading.Barrier(n + 1)
        errors: list[BaseException] = []

        def client(i: int) -> None:
            call = calls[i]
            try:
                for req in warmup[i]:
                    call(req, timeout=CALL_TIMEOUT)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                barrier.abort()
                return
            try:
                barrier.wait(START_TIMEOUT)
            except threading.BrokenBarrierError:
                return
            try:
                for req in work[i]:
                    call(req, timeout=CALL_TIMEOUT)
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        try:
            barrier.wait(START_TIMEOUT)
        except threading.BrokenBarrierError:
            for t in threads:
                t.join(CALL_TIMEOUT)
            raise (errors[0] if errors else RuntimeError("client threads did not start")) from None
        begin = time.perf_counter()
        cpu_before = cpu_seconds(server_pid)
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - begin
        cpu = cpu_seconds(server_pid) - cpu_before
        if errors:
            raise errors[0]
        total = sum(len(w) for w in work)
        return total / elapsed, cpu * 1e6 / total
    finally:
        for ch in channels:
            ch.close()


def create_requests(prefix: str, clients: int, total: int) -> list[list[ts.CreateTrialRequest]]:
    """Standalone trials (study_id 0), a name and two tags each."""
    per = total // clients
    return [
        [
            ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=0, name=f"{prefix}-c{i}-{n:05d}",
                                                        tags=["bench", f"client-{i}"]))
            for n in range(per)
        ]
        for i in range(clients)
    ]


def get_requests(ids: list[int], clients: int, total: int, seed: int) -> list[list[ts.GetTrialRequest]]:
    rng = random.Random(seed)
    per = total // clients
    return [[ts.GetTrialRequest(id=rng.choice(ids)) for _ in range(per)] for _ in range(clients)]


def fill_database(db: Path, count: int, logs: Path) -> str:
    """Writes `count` standalone trials named bench-* into a new database.
    Uses bench/trials_fill_db.py (CreateTrial's code path without the gRPC round
    trip); should that fail (server internals changed), CreateTrial over gRPC."""
    log = logs / "trials_fill_db.log"
    try:
        with open(log, "ab") as err:
            done = subprocess.run([sys.executable, str(BENCH / "trials_fill_db.py"), "--db", str(db), "--count", str(count)],
                                  cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                  timeout=120)
        if done.returncode == 0 and done.stdout.strip() == str(count).encode():
            return "bench/trials_fill_db.py"
    except subprocess.TimeoutExpired:
        pass
    print(f"  bench/trials_fill_db.py failed, filling through CreateTrial instead:\n{log.read_text(errors='replace')[-2000:]}",
          flush=True)
    remove_db(db)
    server = start_trialplane(db, logs / "trialplane.log")
    per = count // 8
    fill = create_requests("bench", 8, per * 8)
    if count - per * 8:
        fill[0] += create_requests("bench-extra", 1, count - per * 8)[0]
    drive(server, CREATE, ts.CreateTrialRequest, fill, [[] for _ in fill])
    server.stop()
    return "CreateTrial over gRPC, 8 clients"


def walk_list(server: ServerProcess) -> tuple[list[float], float, int]:
    """Pages through every trial matching LIST_PATTERN, newest first. Returns
    per-page latencies (s), total seconds and the number of rows seen."""
    with grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS) as ch:
        server.wait_connected(ch)
        list_trials = ch.unary_unary(
            "/trialplane.v1.TrialService/ListTrials",
            request_serializer=ts.ListTrialsRequest.SerializeToString,
            response_deserializer=ts.ListTrialsResponse.FromString,
        )
        # Warm-up: the first page once.
        list_trials(ts.ListTrialsRequest(page_size=LIST_PAGE, order_by=LIST_ORDER, name_pattern=LIST_PATTERN),
                    timeout=CALL_TIMEOUT)
        latencies, rows, token = [], 0, ""
        begin = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            reply = list_trials(
                ts.ListTrialsRequest(page_size=LIST_PAGE, order_by=LIST_ORDER, name_pattern=LIST_PATTERN,
                                     page_token=token),
                timeout=CALL_TIMEOUT,
            )
            latencies.append(time.perf_counter() - t0)
            rows += len(reply.trials)
            token = reply.next_page_token
            if not token:
                break
        return latencies, time.perf_counter() - begin, rows


def scan_logs(logs: Path) -> list[str]:
    """Tracebacks the servers wrote to stderr during the run, summarised."""
    notes = []
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        kinds: dict[str, int] = {}
        for i, line in enumerate(lines):
            if line.startswith("Traceback (most recent call last)"):
                last = next((x for x in lines[i + 1:] if x and not x.startswith(" ") and not x.startswith("Traceback")), "?")
                last = re.sub(r"0x[0-9a-f]+", "0x...", last)
                kinds[last] = kinds.get(last, 0) + 1
        for last, count in kinds.items():
            notes.append(f"server log {log.name}: {count} x {last[:160]}")
    return notes


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} over {os.cpu_count()} CPUs"


def environment() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), *args], capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    commit = git("rev-parse", "--short", "HEAD") + (f" + {len(dirty.splitlines())} modified files" if dirty else "")
    return (
        f"trialplane {commit}; Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    )


# --- the benchmark ---------------------------------------------------------------


def bench(args, tmp: Path, results: Table) -> None:
    R = results
    runs = args.runs
    R.define("start_new", "start-up, new database", "ms", "spawn -> health Check SERVING")
    R.define("start_10k", f"start-up, {args.db_trials:,}-trial database", "ms", "same, reopening the file")
    R.define("stop_new", "shutdown, new database", "ms", "SIGTERM -> exit, idle server")
    R.define("stop_10k", f"shutdown, {args.db_trials:,}-trial database", "ms", "SIGTERM -> exit, idle server")
    R.define("stop_load", "shutdown after the CreateTrial runs", "ms", "SIGTERM -> exit")
    cpu_note = "server process user+sys CPU / calls"
    ratio = "trialplane / ceiling, {} client{}"
    R.define("c1", "CreateTrial, 1 client", "trials/s", f"{args.create_1:,} per run, name + 2 tags, study_id 0",
             ratio=ratio.format(1, ""))
    R.define("c1_ceil", "empty handler, 1 client", "calls/s", f"same requests, {CEILING}", ceiling_of="c1")
    R.define("c1_cpu", "  trialplane server CPU per call, 1 client", "us", cpu_note)
    R.define("c1_ceil_cpu", "  ceiling server CPU per call, 1 client", "us", cpu_note)
    R.define("c8", "CreateTrial, 8 clients", "trials/s", f"{args.create_8:,} per run, a channel per thread",
             ratio=ratio.format(8, "s"))
    R.define("c8_ceil", "empty handler, 8 clients", "calls/s", f"same requests, {CEILING}", ceiling_of="c8")
    R.define("c8_cpu", "  trialplane server CPU per call, 8 clients", "us", cpu_note)
    R.define("c8_ceil_cpu", "  ceiling server CPU per call, 8 clients", "us", cpu_note)
    R.define("rss", "trialplane peak RSS, CreateTrial runs", "MiB", "psutil every 10 ms")
    R.define("rss_ceil", "ceiling server peak RSS", "MiB", "psutil every 10 ms; one process over all runs")
    for clients, count in ((1, args.get_1), (8, args.get_8)):
        key, s = f"g{clients}", "s" if clients > 1 else ""
        R.define(key, f"GetTrial, {clients} client{s}", "calls/s", f"{count:,} per run, random ids", ratio=ratio.format(clients, s))
        if args.get_ceiling:
            R.define(key + "_ceil", f"empty handler, {clients} client{s}", "calls/s", f"GetTrial path, {CEILING}",
                     ceiling_of=key)
        R.define(key + "_cpu", f"  trialplane server CPU per call, {clients} client{s}", "us", cpu_note)
        if args.get_ceiling:
            R.define(key + "_ceil_cpu", f"  ceiling server CPU per call, {clients} client{s}", "us", cpu_note)
    R.define("lp", "ListTrials, 1 client", "pages/s",
             f"page_size {LIST_PAGE}, '{LIST_ORDER}', name_pattern '{LIST_PATTERN}'")
    R.define("lp_ms", "  ListTrials per-page latency (median)", "ms", "")
    logs = tmp / "logs"
    logs.mkdir()
    mib = 1024 * 1024

    # An unmeasured start first, so that no run pays for a cold page cache.
    warm_dir = tmp / "warm-up"
    warm_dir.mkdir()
    server = start_trialplane(warm_dir / "x.db", logs / "trialplane.log")
    server.stop()

    # A database of db_trials standalone trials named bench-*, for restarts and reads.
    db = tmp / "10k" / "x.db"
    db.parent.mkdir()
    t0 = time.perf_counter()
    how = fill_database(db, args.db_trials, logs)
    fill_seconds = time.perf_counter() - t0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = [r[0] for r in conn.execute("SELECT id FROM trials ORDER BY id")]
    finally:
        conn.close()
    if len(ids) != args.db_trials:
        raise RuntimeError(f"expected {args.db_trials} trials in {db}, found {len(ids)}")
    print(f"  {args.db_trials:,}-trial database built in {fill_seconds:.1f}s ({how})", flush=True)

    # 1. Start-up and shutdown: a new database (fresh directory) and a restart
    # on the filled one, interleaved run by run.
    listening = []
    for i in range(runs):
        d = tmp / f"fresh-{i}"
        d.mkdir()
        server = start_trialplane(d / "x.db", logs / "trialplane.log")
        listening.append(server.listening_after)
        R.add("start_new", server.ready_after * 1000)
        R.add("stop_new", server.stop() * 1000)
        server = start_trialplane(db, logs / "trialplane.log")
        R.add("start_10k", server.ready_after * 1000)
        R.add("stop_10k", server.stop() * 1000)
    R.note("start_new", f"spawn -> health Check SERVING; listening line after {median(listening) * 1000:.0f} ms")
    print(f"  start-up/shutdown done ({runs} runs each)", flush=True)

    # 2./3. CreateTrial beside the empty-handler ceiling, interleaved per run;
    # trialplane gets a fresh database each run, the ceiling runs throughout.
    ceiling = start_ceiling(SERVICE, logs / "ceiling.log")
    hwm = []
    with PeakRss(ceiling.pid) as ceiling_rss:
        for i in range(runs):
            d = tmp / f"create-{i}"
            d.mkdir()
            server = start_trialplane(d / "x.db", logs / "trialplane.log")
            with PeakRss(server.pid) as rss:
                for clients, total, key in ((1, args.create_1, "c1"), (8, args.create_8, "c8")):
                    work = create_requests(f"r{i}-{clients}", clients, total)
                    warm = create_requests(f"warm{i}-{clients}", clients, WARMUP_CALLS * clients)
                    targets = [(server, key), (ceiling, key + "_ceil")]
                    if i % 2:  # alternate which goes first
                        targets.reverse()
                    for target, k in targets:
                        rate, cpu = drive(target, CREATE, ts.CreateTrialRequest, work, warm)
                        R.add(k, rate)
                        R.add(k + "_cpu", cpu)
            R.add("rss", rss.peak / mib)
            h = server.vm_hwm_bytes()
            if h:
                hwm.append(h / mib)
            R.add("stop_load", server.stop() * 1000)
            print(f"  CreateTrial run {i + 1}/{runs} done", flush=True)
    R.add("rss_ceil", ceiling_rss.peak / mib)
    ceiling.stop()
    created = args.create_1 + args.create_8 + WARMUP_CALLS * 9
    R.note("stop_load", f"SIGTERM -> exit, database with {created:,} new trials")
    if hwm:
        R.note("rss", f"psutil every 10 ms; kernel VmHWM median {median(hwm):.1f} MiB")

    # 5. GetTrial (beside the ceiling) and ListTrials over that database.
    server = start_trialplane(db, logs / "trialplane.log")
    ceiling = start_ceiling(SERVICE, logs / "ceiling.log") if args.get_ceiling else None
    page_ms = []
    for i in range(runs):
        for clients, total, key in ((1, args.get_1, "g1"), (8, args.get_8, "g8")):
            work = get_requests(ids, clients, total, seed=i * 10 + clients)
            warm = get_requests(ids, clients, WARMUP_CALLS * clients, seed=1000 + i)
            targets = [(server, key)]
            if ceiling is not None:
                targets.append((ceiling, key + "_ceil"))
            if i % 2:
                targets.reverse()
            for target, k in targets:
                rate, cpu = drive(target, GET, ts.GetTrialRequest, work, warm)
                R.add(k, rate)
                R.add(k + "_cpu", cpu)
        latencies, seconds, rows = walk_list(server)
        if rows != args.db_trials:
            raise RuntimeError(f"ListTrials returned {rows} rows, expected {args.db_trials}")
        R.add("lp", len(latencies) / seconds)
        R.add("lp_ms", median(latencies) * 1000)
        page_ms += [x * 1000 for x in latencies]
        print(f"  GetTrial/ListTrials run {i + 1}/{runs} done", flush=True)
    if ceiling is not None:
        ceiling.stop()
    server.stop()
    R.note("lp", f"{len(page_ms) // runs} pages of all {args.db_trials:,} rows per run, page token followed")
    R.note("lp_ms", f"over all pages: p90 {percentile(page_ms, 90):.1f} ms, max {max(page_ms):.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; the table shows their median")
    parser.add_argument("--create-1", type=int, default=1500, help="CreateTrial calls per run from 1 client")
    parser.add_argument("--create-8", type=int, default=3000, help="CreateTrial calls per run from 8 clients")
    parser.add_argument("--get-1", type=int, default=1000, help="GetTrial calls per run from 1 client")
    parser.add_argument("--get-8", type=int, default=2000, help="GetTrial calls per run from 8 clients")
    parser.add_argument("--db-trials", type=int, default=10_000, help="trials in the database for restarts and reads")
    parser.add_argument("--get-ceiling", action="store_true",
                        help="also run the GetTrial pattern against the empty handler (about 20 s more)")
    parser.add_argument("--keep-logs", action="store_true", help="print the servers' stderr logs at the end")
    args = parser.parse_args()
    for name in ("runs", "create_1", "create_8", "get_1", "get_8", "db_trials"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.create_8 < 8 or args.get_8 < 8 or args.db_trials < LIST_PAGE:
        parser.error("--create-8 and --get-8 need at least 8 calls, --db-trials at least one page")

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)

    command = "cd {} && {}".format(
        shlex.quote(str(ROOT)),
        shlex.join([".venv/bin/python", "bench/trials_bench.py", "--runs", str(args.runs), "--create-1", str(args.create_1),
                    "--create-8", str(args.create_8), "--get-1", str(args.get_1), "--get-8", str(args.get_8),
                    "--db-trials", str(args.db_trials)] + (["--get-ceiling"] if args.get_ceiling else [])),
    )
    print(f"trialplane benchmark: {environment()}", flush=True)
    print(f"load average before: {load()}", flush=True)
    results = Table()
    began = time.perf_counter()
    failed: BaseException | None = None
    tmp_dir = tempfile.TemporaryDirectory(prefix="trialplane-bench-")
    try:
        bench(args, Path(tmp_dir.name), results)
    except BaseException as exc:  # noqa: BLE001 - reported below, after cleanup
        failed = exc
        traceback.print_exc()
        for s in ServerProcess.alive:
            tail = s.log_tail()
            if tail:
                print(f"--- last lines of {s.log_path.name} (pid {s.pid}) ---\n{tail}", file=sys.stderr)
    finally:
        ServerProcess.stop_all()
        try:
            log_notes = scan_logs(Path(tmp_dir.name) / "logs")
            if args.keep_logs:
                for log in sorted((Path(tmp_dir.name) / "logs").glob("*.log")):
                    print(f"--- {log.name} ---\n{log.read_text(errors='replace')}")
        except OSError as exc:
            log_notes = [f"could not read the server logs: {exc}"]
        finally:
            tmp_dir.cleanup()
    print()
    results.print()
    print(f"\nmedian, min and max of {args.runs} runs each; the whole benchmark took {time.perf_counter() - began:.0f}s")
    for line in log_notes:
        print(line)
    print(f"load average after: {load()} (other processes on the machine skew every number; compare ratios)")
    print(f"reproduce with: {command}")
    if failed is not None:
        print(f"\nbenchmark FAILED: {type(failed).__name__}: {failed}", file=sys.stderr)
        if isinstance(failed, KeyboardInterrupt):
            return 130
        if isinstance(failed, SystemExit) and isinstance(failed.code, int):
            return failed.code
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
