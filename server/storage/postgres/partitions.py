"""Day partitions of the tables that retention empties.

profiler_chunks (by last_ts) and task_logs (by time) are partitioned by UTC
day. A partition all of whose rows are past their trial's retention is
dropped whole: no DELETE, no dead rows for VACUUM, no index churn, and the
cost does not grow with the rows it held. A partition that still holds rows
of a trial kept longer stays; the retention sweep DELETEs its expired rows
as on SQLite.

Partitions are created a few days ahead, at start-up and at every retention
sweep. A row outside them (a clock days off, a backfill) lands in the
table's default partition, where it is kept and expired by DELETE too.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from psycopg import errors as pg_errors

from ...domain import retention
from ..core import profiler
from ..core.statements import Tx

log = logging.getLogger(__name__)

DAYS_BEHIND = 1
DAYS_AHEAD = 3
# Dropping a partition takes its parent's strongest lock for a moment; a
# sweep that cannot have it soon lets ingest go on and tries next time.
LOCK_TIMEOUT = "500ms"
# "trialpp" in ASCII: held while partitions are created.
PARTITION_LOCK = 0x747269616C7070


@dataclass(frozen=True)
class DayPartitioned:
    table: str
    column: str
    # The partition's trials: straight from a column, or through the
    # series each row belongs to.
    trial_of_rows: str
    key_index_column: str


TABLES = (
    DayPartitioned("profiler_chunks", "last_ts", "SELECT trial_id FROM profiler_series WHERE id = ANY(?)", "series_id"),
    DayPartitioned("task_logs", "time", "", "trial_id"),
)


def day_of(time_us: int) -> int:
    return time_us // retention.DAY_US


def day_name(table: str, day: int) -> str:
    date = datetime.datetime.fromtimestamp(day * 86_400, datetime.timezone.utc)
    return f"{table}_p{date:%Y%m%d}"


def ensure_partitions(tx: Tx, now: int) -> list[str]:
    """Creates the missing partitions around now; returns their names."""
    # Replicas starting together would race to create the same partition.
    tx.run("SELECT pg_advisory_xact_lock(?)", (PARTITION_LOCK,))
    tx.run(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    created = []
    today = day_of(now)
    for t in TABLES:
        for day in range(today - DAYS_BEHIND, today + DAYS_AHEAD + 1):
            with tx.savepoint():
                try:
                    if tx.value("SELECT trialplane_add_day_partition(?, ?, ?)", (t.table, t.column, day)):
                        created.append(day_name(t.table, day))
                except pg_errors.LockNotAvailable:
                    log.info("%s is busy; its partition for day %s waits for the next sweep", t.table, day)
    return created


def day_partitions(tx: Tx, *, table: str) -> list[tuple[str, int]]:
    """(name, day) of a table's day partitions, oldest first."""
    names = tx.tuples(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = ?::regclass",
        (table,),
    )
    found = []
    prefix = f"{table}_p"
    for (name,) in names:
        if name.startswith(prefix):
            date = datetime.datetime.strptime(name[len(prefix):], "%Y%m%d").replace(tzinfo=datetime.timezone.utc)
            found.append((name, int(date.timestamp()) // 86_400))
    return sorted(found, key=lambda item: item[1])


def _distinct(tx: Tx, partition: str, column: str) -> list[int]:
    """The distinct values of an indexed leading column, one index seek
    each (PostgreSQL has no skip scan of its own)."""
    rows = tx.tuples(
        f"""
        WITH RECURSIVE v(x) AS (
            SELECT min({column}) FROM "{partition}"
            UNION ALL
            SELECT (SELECT min({column}) FROM "{partition}" WHERE {column} > v.x) FROM v WHERE v.x IS NOT NULL
        )
        SELECT x FROM v WHERE x IS NOT NULL
        """
    )
    return [r[0] for r in rows]


def _trials_in(tx: Tx, t: DayPartitioned, partition: str) -> tuple[list[int], list[int]]:
    """(trials, series) with rows in a partition; series only where rows
    belong to series."""
    keys = _distinct(tx, partition, t.key_index_column)
    if not t.trial_of_rows:
        return keys, []
    trials = [r[0] for r in tx.tuples(t.trial_of_rows, (keys,))] if keys else []
    return trials, keys


def _all_expired(tx: Tx, trials: list[int], end: int, now: int, default_days: int) -> bool:
    if not trials:
        return True
    rows = tx.tuples("SELECT log_retention_days FROM trials WHERE id = ANY(?)", (trials,))
    for (days,) in rows:
        cutoff = retention.cutoff(days, default_days, now)
        if cutoff is None or cutoff < end:
            return False
    return True


def drop_if_expired(tx: Tx, t: DayPartitioned, partition: str, day: int, now: int, default_days: int) -> int | None:
    """Drops one day partition when every row in it is past retention;
    returns the rows it held, None when it stays. Runs as its own
    transaction."""
    end = (day + 1) * retention.DAY_US
    if day >= day_of(now) - DAYS_BEHIND:
        return None
    # Counted before the lock, so ingest never waits for the count; a row
    # that arrives after it is judged by the check below like the others.
    rows = tx.value(f'SELECT count(*) FROM "{partition}"')
    tx.run(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        with tx.savepoint():
            # Parent first, as inserts take them, so the two cannot deadlock;
            # no row can arrive between the check and the drop.
            tx.run(f'LOCK TABLE {t.table}, "{partition}" IN ACCESS EXCLUSIVE MODE')
    except pg_errors.LockNotAvailable:
        log.info("%s is busy; dropping %s waits for the next sweep", t.table, partition)
        return None
    trials, series = _trials_in(tx, t, partition)
    if not _all_expired(tx, trials, end, now, default_days):
        return None
    tx.run(f'DROP TABLE "{partition}"')
    if series:
        profiler.refresh_series(tx, set(series))
    return rows
