"""Retention of a day of task log lines: a dropped partition on PostgreSQL
beside the DELETE sweep (on PostgreSQL and on SQLite) of the same lines.

One trial's LINES lines are written into one old UTC day through the storage
itself. On PostgreSQL the day is its own partition: with every line expired
the sweep drops it; with one line of a trial kept forever in the same day it
cannot, and the sweep DELETEs in its usual transactions of 2,000 rows. The
SQLite sweep is always the DELETE.

Usage: .venv/bin/python bench/retention_bench.py [--runs N] [--lines N] [--postgres DSN]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from support import PostgresSchema, Table
from trialplane.server.domain import metrics as m
from trialplane.server.domain.models import Trial
from trialplane.server.services.jobs import RetentionJob
from trialplane.server.storage.factory import open_storage

DAY = 86_400_000_000
T0 = 1_767_268_800_000_000  # 2026-01-01 12:00 UTC
NOW = T0 + 40 * DAY
RETENTION_DAYS = 30
BATCH = 10_000


async def fill(storage, lines: int, keep_one: bool) -> None:
    trial = await storage.create_trial(Trial(), None, lambda st: None)
    for lo in range(0, lines, BATCH):
        drafts = [m.LogDraft(trial.id, T0 + i, "INFO", "w0", "stdout", 0, f"step {i} loss 0.{i % 1000:03d}")
                  for i in range(lo, min(lines, lo + BATCH))]
        await storage.ingest_metrics(m.IngestBatch(logs=drafts, log_index=list(range(len(drafts)))))
    if keep_one:
        forever = await storage.create_trial(Trial(log_retention_days=-1), None, lambda st: None)
        draft = m.LogDraft(forever.id, T0, "INFO", "w0", "stdout", 0, "kept")
        await storage.ingest_metrics(m.IngestBatch(logs=[draft], log_index=[0]))


async def sweep_seconds(url: str, lines: int, keep_one: bool) -> float:
    storage = open_storage(url, clock=lambda: T0)
    await storage.open()
    try:
        await fill(storage, lines, keep_one)
        job = RetentionJob(storage, RETENTION_DAYS, lambda: NOW)
        start = time.perf_counter()
        gone = await job.sweep()
        elapsed = time.perf_counter() - start
        assert gone == lines, (gone, lines)
        return elapsed
    finally:
        await storage.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--postgres", metavar="DSN", default="")
    args = parser.parse_args()
    table = Table()
    table.define("sqlite", f"SQLite: DELETE sweep of {args.lines:,} lines", "s", "transactions of 2,000 rows")
    if args.postgres:
        table.define("pg-delete", f"PostgreSQL: DELETE sweep of {args.lines:,} lines", "s",
                     "one line kept forever holds the partition")
        table.define("pg-drop", "PostgreSQL: sweep that drops their partition", "s", "DROP TABLE of the day")
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            table.add("sqlite", asyncio.run(sweep_seconds(str(Path(tmp) / f"r{run}.db"), args.lines, False)))
            if args.postgres:
                for key, keep_one in (("pg-delete", True), ("pg-drop", False)):
                    schema = PostgresSchema(args.postgres, f"bench_retention_{key.replace('-', '_')}")
                    try:
                        table.add(key, asyncio.run(sweep_seconds(schema.url, args.lines, keep_one)))
                    finally:
                        schema.drop()
    table.print()
    where = f" --postgres {args.postgres}" if args.postgres else ""
    print(f"\n{args.runs} runs; reproduce with: .venv/bin/python bench/retention_bench.py --runs {args.runs}"
          f" --lines {args.lines}{where}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
