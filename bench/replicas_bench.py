"""One, two and three trialplane replicas on one PostgreSQL database, beside
one server on SQLite and the empty-handler ceiling, in the same run.

Each client thread has a channel of its own over every replica address with
gRPC's round_robin policy, as docs/postgresql.md tells clients to do. Per
workload the table also shows how busy the whole machine was, which is where
the bound is on a machine that runs the replicas, PostgreSQL and the clients
on the same cores.

Usage: .venv/bin/python bench/replicas_bench.py --postgres DSN [--runs N]
Without --postgres it says so and exits 0 (make bench runs it either way).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import psutil
from metrics_bench import new_trial, report
from support import (
    QUIET,
    PostgresSchema,
    ServerProcess,
    Table,
    start_ceiling,
    start_trialplane,
)
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

CLIENTS = 8
CREATE_CALLS = 1600
REPORT_CALLS = 1600
BATCH_CLIENTS = 2
BATCH_REPORTS = 1000
BATCH_METRICS = 10
BATCH_CALLS = 4
REPLICAS = (1, 2, 3)


def channel_to(addresses: Sequence[str]) -> grpc.Channel:
    # A local subchannel pool: each client thread its own connections.
    options = [("grpc.lb_policy_name", "round_robin"), ("grpc.use_local_subchannel_pool", 1),
               ("grpc.max_send_message_length", 64 << 20)]
    channel = grpc.insecure_channel("ipv4:" + ",".join(addresses), options=options)
    grpc.channel_ready_future(channel).result(timeout=20)
    return channel


def timed_clients(addresses: Sequence[str], clients: int, prepare: Callable[[grpc.Channel, int], Callable[[], int]]
                  ) -> tuple[float, float]:
    """Runs `clients` threads, each doing the work prepare gave it; returns
    (units per second, machine CPU busy in %) from the moment all are ready."""
    channels = [channel_to(addresses) for _ in range(clients)]
    try:
        works = [prepare(ch, i) for i, ch in enumerate(channels)]
        barrier = threading.Barrier(clients + 1)
        done: list[int] = []
        errors: list[BaseException] = []

        def run(work: Callable[[], int]) -> None:
            barrier.wait()
            try:
                done.append(work())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in works]
        for t in threads:
            t.start()
        psutil.cpu_percent(None)
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        busy = psutil.cpu_percent(None)
        if errors:
            raise errors[0]
        return sum(done) / elapsed, busy
    finally:
        for ch in channels:
            ch.close()


def creates(prefix: str):
    def prepare(channel: grpc.Channel, i: int) -> Callable[[], int]:
        call = channel.unary_unary("/trialplane.v1.TrialService/CreateTrial",
                                   request_serializer=ts.CreateTrialRequest.SerializeToString,
                                   response_deserializer=trial_pb2.Trial.FromString)
        per = CREATE_CALLS // CLIENTS
        requests = [ts.CreateTrialRequest(trial=trial_pb2.Trial(name=f"{prefix}-{i}-{n}", tags=["bench"]))
                    for n in range(per)]

        def work() -> int:
            for r in requests:
                call(r, timeout=30)
            return per
        return work
    return prepare


def one_point_reports(prefix: str):
    def prepare(channel: grpc.Channel, i: int) -> Callable[[], int]:
        trial = new_trial(channel, f"{prefix}-{i}")
        call = channel.unary_unary("/trialplane.v1.MetricsService/ReportMetrics",
                                   request_serializer=ms.ReportMetricsRequest.SerializeToString,
                                   response_deserializer=ms.ReportMetricsResponse.FromString)
        per = REPORT_CALLS // CLIENTS
        requests = [report(trial, step, loss=float(step)) for step in range(per)]

        def work() -> int:
            for r in requests:
                call(r, timeout=30)
            return per
        return work
    return prepare


def batches(prefix: str):
    def prepare(channel: grpc.Channel, i: int) -> Callable[[], int]:
        trial = new_trial(channel, f"{prefix}-{i}")
        call = channel.unary_unary("/trialplane.v1.MetricsService/AddEvents", request_serializer=lambda b: b,
                                   response_deserializer=ms.AddEventsResponse.FromString)
        bodies = [
            ms.AddEventsRequest(reports=[
                report(trial, step, **{f"m{j}": float(step * j) for j in range(BATCH_METRICS)})
                for step in range(c * BATCH_REPORTS, (c + 1) * BATCH_REPORTS)
            ]).SerializeToString()
            for c in range(BATCH_CALLS)
        ]

        def work() -> int:
            for body in bodies:
                assert call(body, timeout=60).added == BATCH_REPORTS
            return BATCH_CALLS * BATCH_REPORTS * BATCH_METRICS
        return work
    return prepare


def define(table: Table) -> None:
    table.define("create-sqlite", f"CreateTrial, {CLIENTS} clients, SQLite, 1 server", "calls/s",
                 "same run, same clients")
    table.define("create-ceiling", f"empty unary handler, {CLIENTS} clients", "calls/s", "the transport limit",
                 ceiling_of="create-sqlite", ratio="as share of the empty handler")
    for n in REPLICAS:
        table.define(f"create-{n}", f"CreateTrial, {CLIENTS} clients, PostgreSQL, {n} replica(s)", "calls/s")
        table.define(f"create-{n}-cpu", f"  machine CPU busy meanwhile ({n})", "%", f"{os.cpu_count()} cores")
    for n in REPLICAS:
        table.define(f"report-{n}", f"ReportMetrics one point, {CLIENTS} clients, {n} replica(s)", "calls/s",
                     "committed in PostgreSQL on return")
        table.define(f"report-{n}-cpu", f"  machine CPU busy meanwhile ({n})", "%")
    for n in REPLICAS:
        table.define(f"batch-{n}", f"AddEvents, {BATCH_CLIENTS} clients, {n} replica(s)", "points/s",
                     f"{BATCH_REPORTS} reports x {BATCH_METRICS} metrics per call")
        table.define(f"batch-{n}-cpu", f"  machine CPU busy meanwhile ({n})", "%")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", metavar="DSN", default="", help="the PostgreSQL database the replicas share")
    args = parser.parse_args()
    if not args.postgres:
        print("replicas_bench: needs --postgres DSN (make bench passes TRIALPLANE_TEST_POSTGRES_DSN); skipped\n")
        return 0
    table = Table()
    define(table)
    schema = PostgresSchema(args.postgres, "bench_replicas")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sqlite = start_trialplane(Path(tmp) / "bench.db", args=QUIET)
            ceiling = start_ceiling("TrialService")
            replicas = [start_trialplane(schema.url, args=QUIET) for _ in REPLICAS]
            for run in range(args.runs):
                tag = f"r{run}"
                table.add("create-ceiling", timed_clients([ceiling.address], CLIENTS, creates(tag))[0])
                table.add("create-sqlite", timed_clients([sqlite.address], CLIENTS, creates(tag))[0])
                for n in REPLICAS:
                    addresses = [r.address for r in replicas[:n]]
                    for key, workload, clients in (("create", creates, CLIENTS), ("report", one_point_reports, CLIENTS),
                                                   ("batch", batches, BATCH_CLIENTS)):
                        rate, busy = timed_clients(addresses, clients, workload(f"{tag}-{key}-{n}"))
                        table.add(f"{key}-{n}", rate)
                        table.add(f"{key}-{n}-cpu", busy)
            for server in (sqlite, ceiling, *replicas):
                server.stop()
        finally:
            ServerProcess.stop_all()
            schema.drop()
    table.print()
    print(f"\n{args.runs} runs; replicas, PostgreSQL and clients share this machine's {os.cpu_count()} cores;"
          f" reproduce with: .venv/bin/python bench/replicas_bench.py --runs {args.runs} --postgres {args.postgres}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
