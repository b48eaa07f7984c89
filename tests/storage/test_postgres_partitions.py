"""PostgreSQL's day partitions: retention drops whole partitions that hold
only expired rows and DELETEs the rest; a version-1 database is converted
with its rows. Runs when TRIALPLANE_TEST_POSTGRES_DSN is given."""

from __future__ import annotations

import asyncio

import numpy as np
import psycopg
import pytest
from support import postgres
from trialplane.server.domain import metrics as m
from trialplane.server.domain.models import Trial
from trialplane.server.domain.profiler import Chunk, Labels
from trialplane.server.storage.factory import open_storage
from trialplane.server.storage.interface import IngestItem
from trialplane.server.storage.postgres import migrations
from trialplane.server.storage.postgres import storage as postgres_storage

pytestmark = pytest.mark.skipif(not postgres.DSN, reason="needs TRIALPLANE_TEST_POSTGRES_DSN")

DAY = 86_400_000_000
T0 = 1_768_046_400_000_000  # 2026-01-10 12:00 UTC, in microseconds


def connect(schema: str) -> psycopg.Connection:
    return psycopg.connect(postgres.DSN, autocommit=True, options=f"-c search_path={schema}")


def partitions(schema: str, table: str) -> list[str]:
    with connect(schema) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass ORDER BY c.relname", (table,)
        ).fetchall()
    return [r[0] for r in rows]


def rows_in(schema: str, partition: str) -> int:
    with connect(schema) as conn:
        return conn.execute(f'SELECT count(*) FROM "{partition}"').fetchone()[0]


class Clock:
    def __init__(self, now: int):
        self.now = now

    def __call__(self) -> int:
        return self.now


def run_with(schema: str, clock: Clock, body):
    storage = open_storage(postgres.url_with_schema(schema), clock=clock)

    async def main():
        await storage.open()
        try:
            return await body(storage)
        finally:
            await storage.close()

    return asyncio.run(main())


def samples(labels: Labels, sequence: int, first_ts: int, values: list[float]) -> IngestItem:
    n = len(values)
    chunk = Chunk(np.array(values, dtype=np.float64), np.arange(sequence * 100, sequence * 100 + n, dtype=np.int64),
                  np.arange(first_ts, first_ts + n * 1000, 1000, dtype=np.int64))
    return IngestItem(sequence, labels, chunk.summary(), chunk.to_bytes())


def log_line(trial_id: int, time: int, message: str) -> m.LogDraft:
    return m.LogDraft(trial_id, time, "INFO", "w0", "stdout", 0, message)


async def add_logs(s, lines: list[m.LogDraft]) -> None:
    await s.ingest_metrics(m.IngestBatch(logs=lines, log_index=list(range(len(lines)))))


async def messages(s, trial_id: int) -> list[str]:
    return [r.message for r in await s.list_logs(trial_id, False, [], "", None, 100)]


def test_partitions_exist_around_the_clock_with_a_default(schema):
    run_with(schema, Clock(T0), lambda s: asyncio.sleep(0))
    expected = ["task_logs_default"] + [f"task_logs_p202601{d:02}" for d in range(9, 14)]
    assert partitions(schema, "task_logs") == expected
    assert partitions(schema, "profiler_chunks") == [p.replace("task_logs", "profiler_chunks") for p in expected]


def test_retention_drops_partitions_that_hold_only_expired_rows(schema):
    clock = Clock(T0)

    async def fill(s):
        default = await s.create_trial(Trial(), None, lambda st: None)
        short = await s.create_trial(Trial(log_retention_days=1), None, lambda st: None)
        forever = await s.create_trial(Trial(log_retention_days=-1), None, lambda st: None)
        await add_logs(s, [log_line(default.id, T0, "d0"), log_line(short.id, T0 + 1, "s0"),
                           log_line(forever.id, T0 - DAY, "f-1"), log_line(default.id, T0 - DAY + 5, "d-1")])
        util = Labels(default.id, "util")
        await s.ingest_profiler("", [samples(util, 0, T0, [1.0, 2.0]), samples(util, 1, T0 + 3 * DAY, [3.0])])
        return default, short, forever

    default, short, forever = run_with(schema, clock, fill)
    assert rows_in(schema, "task_logs_p20260110") == 2 and rows_in(schema, "task_logs_p20260109") == 2

    async def sweep(s):
        # Five days on, with two days of retention by default: the 10th holds
        # only expired rows; the 9th also holds a line kept forever.
        dropped = await s.drop_expired_partitions(T0 + 5 * DAY, 2)
        deleted = await s.delete_expired_logs(T0 + 5 * DAY, 2, 100)
        series = await s.list_profiler_series(default.id)
        return dropped, deleted, series, {t.id: await messages(s, t.id) for t in (default, short, forever)}

    clock.now = T0 + 5 * DAY
    dropped, deleted, (series,), logs = run_with(schema, clock, sweep)
    # Empty past days go too; the 13th is within two days of the 15th noon.
    assert {name: rows for name, rows in dropped.items() if rows} == {"profiler_chunks_p20260110": 1, "task_logs_p20260110": 2}
    assert "profiler_chunks_p20260113" in partitions(schema, "profiler_chunks")
    assert "task_logs_p20260110" not in partitions(schema, "task_logs")
    assert "task_logs_p20260109" in partitions(schema, "task_logs")
    # The 9th stays for the line kept forever; its expired line goes by DELETE.
    assert deleted == 1
    assert logs == {default.id: [], short.id: [], forever.id: ["f-1"]}
    # The series lost its first chunk with the partition; its summary follows.
    assert (series.sample_count, series.chunk_count, series.first_ts, series.first_batch) == (1, 1, T0 + 3 * DAY, 100)
    # Partitions now reach five days past the new clock.
    assert "task_logs_p20260118" in partitions(schema, "task_logs")


def test_rows_outside_the_partitions_go_to_the_default_and_expire_by_delete(schema):
    clock = Clock(T0)
    far = T0 + 100 * DAY

    async def fill(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        await add_logs(s, [log_line(t.id, far, "from a clock 100 days ahead")])
        return t

    t = run_with(schema, clock, fill)
    assert rows_in(schema, "task_logs_default") == 1

    async def later(s):
        # The day of that line comes round: no partition can be made over
        # the row the default holds, and the line is still read.
        dropped = await s.drop_expired_partitions(far, 30)
        assert dropped and not any(dropped.values())  # the empty days of January
        return await messages(s, t.id), await s.delete_expired_logs(far + 40 * DAY, 30, 100)

    clock.now = far
    kept, deleted = run_with(schema, clock, later)
    assert kept == ["from a clock 100 days ahead"] and deleted == 1
    assert "task_logs_p20260420" not in partitions(schema, "task_logs")
    assert "task_logs_p20260421" in partitions(schema, "task_logs")


def test_a_version_one_database_keeps_its_rows_in_day_partitions(schema, monkeypatch):
    clock = Clock(T0)

    async def first(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        await add_logs(s, [log_line(t.id, T0 - 3 * DAY, "old"), log_line(t.id, T0, "new")])
        await s.ingest_profiler("", [samples(Labels(t.id, "util"), 0, T0, [1.0, 2.0])])
        return t, [r.id for r in await s.list_logs(t.id, False, [], "", None, 100)]

    with monkeypatch.context() as patch:
        # Every migration but the one that partitions, so today's code can write.
        patch.setattr(migrations, "MIGRATIONS", [mig for mig in migrations.MIGRATIONS if mig[0] != 2])
        patch.setattr(postgres_storage, "ensure_partitions", lambda tx, now: [])
        t, old_ids = run_with(schema, clock, first)
    assert partitions(schema, "task_logs") == []

    async def converted(s):
        await add_logs(s, [log_line(t.id, T0 + 1, "after")])
        (series,) = await s.list_profiler_series(t.id)
        return [(r.id, r.message) for r in await s.list_logs(t.id, False, [], "", None, 100)], series

    lines, series = run_with(schema, clock, converted)
    assert [msg for _, msg in lines] == ["old", "new", "after"]
    assert [i for i, _ in lines][:2] == old_ids and lines[2][0] > old_ids[1]
    assert rows_in(schema, "task_logs_p20260107") == 1 and rows_in(schema, "task_logs_p20260110") == 2
    assert rows_in(schema, "task_logs_default") == 0
    assert rows_in(schema, "profiler_chunks_p20260110") == 1 and series.sample_count == 2
