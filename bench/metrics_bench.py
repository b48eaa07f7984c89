"""Metrics ingestion and query speed, measured against a trialplane server process.

Usage: .venv/bin/python bench/metrics_bench.py [--runs N]

Prints a table of medians (with min and max) of N runs; every row names its
workload. The raw SQLite insert and the empty gRPC handler (bench/support.py
MetricsService) are measured in the same run as the limits the service is
compared with.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from google.protobuf import field_mask_pb2, struct_pb2
from support import (
    QUIET,
    PostgresSchema,
    Row,
    ServerProcess,
    print_table,
    start_ceiling,
    start_trialplane,
)
from trialplane.v1 import (
    metrics_pb2 as mp,
)
from trialplane.v1 import (
    metrics_service_pb2 as ms,
)
from trialplane.v1 import (
    metrics_service_pb2_grpc,
    study_pb2,
    study_service_pb2_grpc,
    trial_pb2,
    trial_service_pb2_grpc,
)
from trialplane.v1 import (
    study_service_pb2 as ss,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)

METRICS_PER_REPORT = 10
REPORTS_PER_CALL = 5000
CALLS_PER_RUN = 8
# One-point calls per burst; bursts against the empty handler and against
# trialplane alternate so that both see the same machine load.
ONE_POINT_CALLS = 1600
REPORT_METHOD = "/trialplane.v1.MetricsService/ReportMetrics"


# --- workloads ---------------------------------------------------------------

def struct(values: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def report(trial_id: int, step: int, group="training", **values) -> ms.ReportMetricsRequest:
    return ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=mp.Metrics(avg_metrics=struct(values))),
        group=group,
    )


def new_trial(channel, name: str, study_id: int = 0, hps=None) -> int:
    stub = trial_service_pb2_grpc.TrialServiceStub(channel)
    return stub.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=name, study_id=study_id, hyperparameters=hps or {}))).id


def batched_ingest(address: str) -> float:
    """points/s through AddEvents, bodies serialized before timing."""
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as ch:
        trial = new_trial(ch, "batched")
        bodies = []
        for c in range(CALLS_PER_RUN):
            reports = [
                report(trial, step, **{f"metric_{j}": float(step * j) for j in range(METRICS_PER_REPORT)})
                for step in range(c * REPORTS_PER_CALL, (c + 1) * REPORTS_PER_CALL)
            ]
            bodies.append(ms.AddEventsRequest(reports=reports).SerializeToString())
        call = ch.unary_unary("/trialplane.v1.MetricsService/AddEvents", request_serializer=lambda b: b,
                              response_deserializer=ms.AddEventsResponse.FromString)
        start = time.perf_counter()
        for body in bodies:
            assert call(body).added == REPORTS_PER_CALL
        elapsed = time.perf_counter() - start
    return CALLS_PER_RUN * REPORTS_PER_CALL * METRICS_PER_REPORT / elapsed


def columnar_ingest(address: str) -> float:
    """points/s through ReportMetricColumns: the same points as batched_ingest,
    one block of a call's 5,000 steps x 10 metrics per call, bodies
    serialized before timing."""
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as ch:
        trial = new_trial(ch, "columnar")
        names = [f"metric_{j}" for j in range(METRICS_PER_REPORT)]
        bodies = []
        for c in range(CALLS_PER_RUN):
            steps = np.arange(c * REPORTS_PER_CALL, (c + 1) * REPORTS_PER_CALL)
            values = steps[:, None].astype(float) * np.arange(METRICS_PER_REPORT)[None, :]
            block = ms.MetricColumns(group="training", names=names, steps=steps.tolist(), values=values.ravel().tolist())
            bodies.append(ms.ReportMetricColumnsRequest(trial_id=trial, blocks=[block]).SerializeToString())
        call = ch.unary_unary("/trialplane.v1.MetricsService/ReportMetricColumns", request_serializer=lambda b: b,
                              response_deserializer=ms.ReportMetricColumnsResponse.FromString)
        start = time.perf_counter()
        for body in bodies:
            assert call(body).points_stored == REPORTS_PER_CALL * METRICS_PER_REPORT
        elapsed = time.perf_counter() - start
    return CALLS_PER_RUN * REPORTS_PER_CALL * METRICS_PER_REPORT / elapsed


def raw_sqlite_insert(tmp: Path) -> float:
    """rows/s of the same points as narrow indexed rows, executemany in transactions."""
    path = tmp / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE points (series_id INTEGER, step INTEGER, run INTEGER, time INTEGER, value REAL,"
                 " PRIMARY KEY (series_id, step, run)) WITHOUT ROWID")
    total = CALLS_PER_RUN * REPORTS_PER_CALL * METRICS_PER_REPORT
    now = time.time_ns() // 1000
    rows = [(j, step, 1, now, float(step * j)) for step in range(CALLS_PER_RUN * REPORTS_PER_CALL) for j in range(METRICS_PER_REPORT)]
    start = time.perf_counter()
    per_tx = REPORTS_PER_CALL * METRICS_PER_REPORT
    for lo in range(0, total, per_tx):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows[lo:lo + per_tx])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    path.unlink()
    return total / elapsed


def raw_postgres_copy(url: str) -> float:
    """rows/s of the same points as narrow indexed rows, one binary COPY per
    transaction of a call's worth: what a PostgreSQL replica could at most
    write."""
    import psycopg

    total = CALLS_PER_RUN * REPORTS_PER_CALL * METRICS_PER_REPORT
    now = time.time_ns() // 1000
    rows = [(j, step, 1, now, float(step * j)) for step in range(CALLS_PER_RUN * REPORTS_PER_CALL) for j in range(METRICS_PER_REPORT)]
    per_tx = REPORTS_PER_CALL * METRICS_PER_REPORT
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_points")
        conn.execute("CREATE TABLE raw_points (series_id BIGINT, step BIGINT, run BIGINT, time BIGINT,"
                     " value DOUBLE PRECISION, PRIMARY KEY (series_id, step, run))")
        start = time.perf_counter()
        for lo in range(0, total, per_tx):
            with conn.transaction(), conn.cursor() as cur:
                with cur.copy("COPY raw_points FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["int8", "int8", "int8", "int8", "float8"])
                    for row in rows[lo:lo + per_tx]:
                        copy.write_row(row)
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE raw_points")
    return total / elapsed


def one_point_rate(address: str, clients: int, trial_ids: list[int] | None) -> float:
    """ReportMetrics calls/s with one point each, `clients` threads with a channel each."""
    per_client = ONE_POINT_CALLS // clients if clients > 1 else ONE_POINT_CALLS
    channels = [grpc.insecure_channel(address) for _ in range(clients)]
    for ch in channels:
        grpc.channel_ready_future(ch).result(timeout=10)
    barrier = threading.Barrier(clients + 1)

    def worker(i: int) -> None:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channels[i])
        trial = trial_ids[i] if trial_ids else 1
        msgs = [report(trial, step, loss=float(step)) for step in range(per_client)]
        barrier.wait()
        for msg in msgs:
            stub.ReportMetrics(msg)

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(worker, i) for i in range(clients)]
        barrier.wait()
        start = time.perf_counter()
        for f in futures:
            f.result()
        elapsed = time.perf_counter() - start
    for ch in channels:
        ch.close()
    return per_client * clients / elapsed


def fill_series(address: str, points: int) -> int:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 256 << 20)]) as ch:
        trial = new_trial(ch, f"long-{points}")
        stub = metrics_service_pb2_grpc.MetricsServiceStub(ch)
        values = np.sin(np.arange(points) / 100.0)
        for lo in range(0, points, 10_000):
            stub.AddEvents(ms.AddEventsRequest(reports=[report(trial, i, loss=float(values[i])) for i in range(lo, min(points, lo + 10_000))]))
    return trial


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def query_times(address: str, history_trial: int, downsample_trial: int, study_id: int) -> dict[str, list[float]]:
    with grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 256 << 20)]) as ch:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(ch)
        trials = trial_service_pb2_grpc.TrialServiceStub(ch)
        hist = ms.GetMetricHistoryRequest(trial_ids=[history_trial], group="training", names=["loss"], page_size=100_000)
        assert len(stub.GetMetricHistory(hist).series[0].steps) == 100_000
        down = ms.GetMetricHistoryRequest(trial_ids=[downsample_trial], group="training", names=["loss"], buckets=1000)
        got = stub.GetMetricHistory(down).series[0].buckets
        assert sum(b.count for b in got) == 1_000_000, sum(b.count for b in got)
        listing = ts.ListTrialsRequest(study_id=study_id, order_by="metrics.validation.val_loss.last")
        assert len(trials.ListTrials(listing).trials) == 50
        masked = ts.ListTrialsRequest(study_id=study_id, order_by="metrics.validation.val_loss.last", page_size=100,
                                      read_mask=field_mask_pb2.FieldMask(paths=["id", "name", "state", "summary_metrics"]))
        assert len(trials.ListTrials(masked).trials) == 100
        return {
            "history": timed(lambda: stub.GetMetricHistory(hist), 10),
            "downsample": timed(lambda: stub.GetMetricHistory(down), 20),
            "listing": timed(lambda: trials.ListTrials(listing), 50),
            "masked": timed(lambda: trials.ListTrials(masked), 50),
        }


def study_of_1000(address: str) -> int:
    with grpc.insecure_channel(address) as ch:
        studies = study_service_pb2_grpc.StudyServiceStub(ch)
        study = studies.CreateStudy(ss.CreateStudyRequest(study=study_pb2.Study(
            name="bench-listing",
            objective=study_pb2.Objective(metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        )))
        stub = metrics_service_pb2_grpc.MetricsServiceStub(ch)
        rng = np.random.default_rng(1)
        reports = []
        for i in range(1000):
            trial = new_trial(ch, f"listed-{i}", study.id)
            reports.append(report(trial, 100, group="validation", val_loss=float(rng.random())))
        stub.AddEvents(ms.AddEventsRequest(reports=reports))
        return study.id



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--postgres", metavar="DSN", default="",
                        help="run trialplane on a fresh schema of this PostgreSQL database instead of SQLite,"
                             " beside a raw binary COPY")
    args = parser.parse_args()
    schema = PostgresSchema(args.postgres, "bench_metrics") if args.postgres else None
    results: dict[str, list[float]] = {k: [] for k in (
        "raw", "batched", "columnar", "empty1", "report1", "empty8", "report8")}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        try:
            server = start_trialplane(schema.url if schema else tmp / "bench.db", args=QUIET)
            empty = start_ceiling("MetricsService")
            with grpc.insecure_channel(server.address) as ch:
                one = [new_trial(ch, f"one-{i}") for i in range(8)]
            for _ in range(args.runs):
                results["raw"].append(raw_postgres_copy(schema.url) if schema else raw_sqlite_insert(tmp))
                results["batched"].append(batched_ingest(server.address))
                results["columnar"].append(columnar_ingest(server.address))
                for clients in (1, 8):
                    for _ in range(3):
                        results[f"empty{clients}"].append(one_point_rate(empty.address, clients, None))
                        results[f"report{clients}"].append(one_point_rate(server.address, clients, one[:clients]))
                        with grpc.insecure_channel(server.address) as ch:
                            one = [new_trial(ch, f"one-{i}") for i in range(8)]
            history_trial = fill_series(server.address, 100_000)
            downsample_trial = fill_series(server.address, 1_000_000)
            study_id = study_of_1000(server.address)
            queries = query_times(server.address, history_trial, downsample_trial, study_id)
            server.stop()
            empty.stop()
        finally:
            ServerProcess.stop_all()
            if schema:
                schema.drop()
    # Each burst against trialplane is paired with the burst against the empty
    # handler just before it.
    share = "as share of the empty handler"
    shape = f"{REPORTS_PER_CALL} reports x {METRICS_PER_REPORT} metrics per call"
    print_table([
        Row("raw PostgreSQL COPY, narrow indexed rows", "rows/s", "same points, binary COPY per call's worth", results["raw"])
        if schema else
        Row("raw SQLite insert, narrow indexed rows", "rows/s", "same points, executemany, WAL", results["raw"]),
        Row("batched ingest, AddEvents", "points/s", shape, results["batched"]),
        Row("batched ingest, ReportMetricColumns", "points/s", f"same points: one block of {REPORTS_PER_CALL} steps x"
            f" {METRICS_PER_REPORT} names per call", results["columnar"]),
        Row("ReportMetrics one point, 1 client", "calls/s",
            "committed in PostgreSQL on return" if schema else "journaled on return, stored in batches", results["report1"],
            ceiling=Row("empty unary handler, 1 client", "calls/s", "the transport limit", results["empty1"]), ratio=share),
        Row("ReportMetrics one point, 8 clients", "calls/s", "", results["report8"],
            ceiling=Row("empty unary handler, 8 clients", "calls/s", "8 threads, a channel each", results["empty8"]), ratio=share),
        Row("full history, 100,000 points", "ms", "one GetMetricHistory call", queries["history"]),
        Row("1,000-bucket downsample of 1,000,000", "ms", "first/last/min/max per bucket", queries["downsample"]),
        Row("ListTrials page of 50 of 1,000", "ms", "study filter, order by metric, whole trials", queries["listing"]),
        Row("ListTrials page of 100 of 1,000", "ms", "same, read_mask id,name,state,summary", queries["masked"]),
    ])
    where = f" --postgres {args.postgres}" if args.postgres else ""
    print(f"\n{'PostgreSQL' if schema else 'SQLite'}; {args.runs} runs each; reproduce with:"
          f" .venv/bin/python bench/metrics_bench.py --runs {args.runs}{where}\n")


if __name__ == "__main__":
    main()
