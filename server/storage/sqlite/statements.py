"""The core's statements on a sqlite3 connection.

sqlite3 already speaks `?` placeholders and returns rows that read by name
and by position, so a transaction is a thin layer over its connection. Row
locks are not needed: one writer connection holds the database for the
whole write transaction (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..core.statements import Args, Dialect


class SqliteDialect:
    for_update = ""

    def lock_table(self, table: str) -> str:
        return ""

    def least(self, a: str, b: str) -> str:
        return f"min({a}, {b})"

    def greatest(self, a: str, b: str) -> str:
        return f"max({a}, {b})"

    def json_number(self, column: str, key_placeholder: str) -> str:
        # A key is quoted in the path so names with dots stay one key.
        return f"json_extract({column}, '$.\"' || {key_placeholder} || '\"')"


DIALECT = SqliteDialect()


class SqliteTx:
    dialect: Dialect = DIALECT
    failures: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

    __slots__ = ("conn", "_depth")

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self._depth = 0

    def one(self, sql: str, args: Args = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, args).fetchone()

    def all(self, sql: str, args: Args = ()) -> list:
        return self.conn.execute(sql, args).fetchall()

    def value(self, sql: str, args: Args = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()[0]

    def tuples(self, sql: str, args: Args = ()) -> list[tuple]:
        cursor = self.conn.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, args).fetchall()

    def run(self, sql: str, args: Args = ()) -> int:
        return self.conn.execute(sql, args).rowcount

    def run_many(self, sql: str, rows: Iterable[Args]) -> None:
        self.conn.executemany(sql, rows)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Args]) -> None:
        marks = ", ".join("?" for _ in columns)
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def insert(self, sql: str, args: Args = ()) -> int:
        cur = self.conn.execute(sql, args)
        if cur.lastrowid is None:
            raise sqlite3.InterfaceError("the statement inserted no row")
        return cur.lastrowid

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._depth += 1
        name = f"s{self._depth}"
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            self.conn.execute(f"RELEASE {name}")
            raise
        else:
            self.conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1
