"""The core's statements on a psycopg connection.

The core writes `?` placeholders; psycopg takes `%s`, so each statement is
translated once and cached (a literal `%` is doubled first). Rows read by
column name and by position, as sqlite3.Row does. Row locks are real here:
`for_update` keeps the rows a write decides on locked until its commit, so
two replicas deciding on one trial take turns.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import RowMaker

from ..core.statements import Args, Dialect


class PostgresDialect:
    # NO KEY UPDATE, the lock an UPDATE of non-key columns takes: FOR UPDATE
    # would also wait for the KEY SHARE locks that foreign-key checks take on
    # the referenced row (a trial updated twice in one transaction takes one
    # on its study), and two such transactions would deadlock on the study.
    for_update = " FOR NO KEY UPDATE"

    def lock_table(self, table: str) -> str:
        return f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"

    def least(self, a: str, b: str) -> str:
        return f"LEAST({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"GREATEST({a}, {b})"

    def json_number(self, column: str, key_placeholder: str) -> str:
        return f"trialplane_json_number({column}, {key_placeholder})"


DIALECT = PostgresDialect()


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """A statement with `?` placeholders as psycopg takes it."""
    return sql.replace("%", "%%").replace("?", "%s")


class Row(tuple):
    """A result row that reads by column name and by position."""

    __slots__ = ()
    names: dict[str, int] = {}

    def __getitem__(self, key):
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


def named_rows(cursor: psycopg.Cursor) -> RowMaker[Row]:
    """psycopg row factory: one Row class per result shape."""
    if cursor.description is None:
        return tuple  # type: ignore[return-value]
    names = {c.name: i for i, c in enumerate(cursor.description)}
    shaped = type("Row", (Row,), {"__slots__": (), "names": names})
    return shaped  # type: ignore[return-value]


class PostgresTx:
    dialect: Dialect = DIALECT
    failures: tuple[type[BaseException], ...] = (psycopg.OperationalError,)

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def one(self, sql: str, args: Args = ()) -> Row | None:
        with self.conn.cursor(row_factory=named_rows) as cur:
            return cur.execute(translate(sql), args).fetchone()

    def all(self, sql: str, args: Args = ()) -> list:
        with self.conn.cursor(row_factory=named_rows) as cur:
            return cur.execute(translate(sql), args).fetchall()

    def value(self, sql: str, args: Args = ()) -> Any:
        with self.conn.cursor() as cur:
            row = cur.execute(translate(sql), args).fetchone()
            assert row is not None, "the statement returned no row"
            return row[0]

    def tuples(self, sql: str, args: Args = ()) -> list[tuple]:
        with self.conn.cursor() as cur:
            return cur.execute(translate(sql), args).fetchall()

    def run(self, sql: str, args: Args = ()) -> int:
        with self.conn.cursor() as cur:
            return cur.execute(translate(sql), args).rowcount

    def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        rows = list(rows)
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(translate(sql), rows)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Args]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert(self, sql: str, args: Args = ()) -> int:
        with self.conn.cursor() as cur:
            row = cur.execute(translate(sql) + " RETURNING id", args).fetchone()
            assert row is not None
            return row[0]

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.conn.transaction():
            yield
