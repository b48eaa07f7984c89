"""What the backend-neutral core asks of a database backend.

The core's transaction scripts are written once, in the SQL every supported
engine understands: `?` placeholders, row values, ON CONFLICT, window
functions. A backend supplies three things:

- a `Tx`: runs statements inside the transaction it was handed, and returns
  rows that read both by column name and by position;
- a `Dialect`: the few fragments engines spell differently (row locks, the
  scalar min/max, reading a number out of a JSON body);
- a `Database`: write and read transactions, awaited from the event loop.

Read-check-write scripts lock the rows they decide on with
`dialect.for_update`, so they hold with several server processes on one
database, not only behind SQLite's single writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

Args = Sequence[Any]


class Row(Protocol):
    """A result row: row["column"] and row[0] both work."""

    def __getitem__(self, key: int | str) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def keys(self) -> list[str]: ...


class Dialect(Protocol):
    # Appended to a SELECT of the rows a write decides on: the rows stay
    # locked until the transaction ends ("" where one writer holds the
    # whole database).
    for_update: str

    def lock_table(self, table: str) -> str:
        """A statement that holds back other writers of a table until the
        transaction ends, for a decision on "no row yet" ("" where one
        writer holds the whole database)."""
        ...

    def least(self, a: str, b: str) -> str:
        """The smaller of two expressions (NULL-free)."""
        ...

    def greatest(self, a: str, b: str) -> str: ...

    def json_number(self, column: str, key_placeholder: str) -> str:
        """The number stored under a key, given as a parameter, of the JSON
        object in column; NULL when it is absent or not a number."""
        ...


class Tx(Protocol):
    """Statements inside one transaction."""

    dialect: Dialect
    # The exceptions that mean the database itself failed (disk full, I/O,
    # connection lost), as opposed to a statement that broke a constraint.
    failures: tuple[type[BaseException], ...]

    def one(self, sql: str, args: Args = ()) -> Row | None: ...

    def all(self, sql: str, args: Args = ()) -> list[Row]: ...

    def value(self, sql: str, args: Args = ()) -> Any:
        """The first column of the first row: an aggregate, or a column of
        a row known to exist."""
        ...

    def tuples(self, sql: str, args: Args = ()) -> list[tuple]:
        """Plain tuples, for reads of thousands of rows."""
        ...

    def run(self, sql: str, args: Args = ()) -> int:
        """Runs a statement; returns how many rows it changed."""
        ...

    def run_many(self, sql: str, rows: Iterable[Args]) -> None: ...

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Args]) -> None:
        """Inserts new rows that break no unique key (the caller checked,
        under the locks it holds) the fastest way the engine has: COPY
        where there is one."""
        ...

    def insert(self, sql: str, args: Args = ()) -> int:
        """Runs an INSERT of one row into a table keyed by `id`; returns the new id."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only its statements."""
        ...


class Database(Protocol):
    """Transactions of a backend, awaited from the event loop."""

    async def write(self, fn: Callable[[Tx], T], small: bool = False) -> T:
        """Runs fn in a write transaction; returns once it is committed.
        small: a few statements, which the backend may group with others."""
        ...

    async def read(self, fn: Callable[[Tx], T], small: bool = False) -> T:
        """Runs fn in a read transaction; small: a lookup of a few rows."""
        ...

    def write_now(self, fn: Callable[[Tx], T]) -> Future:
        """Starts a write from the event loop, at once or at the end of the
        loop's turn, before any write made after it; the future resolves
        once it is committed."""
        ...

    def query_one(self, sql: str, args: Args = ()) -> Row | None:
        """One row, read at once on the calling thread; for lookups that
        cost less than a hop to another thread."""
        ...

    def close(self) -> None: ...
