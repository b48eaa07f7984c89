"""WHERE clauses and keyset pages, built once for every listing.

A page is asked for with a sort field, a direction and the (sort value, id)
of the last row seen; the next page starts strictly after it, so rows added
or removed meanwhile never shift a page. Queries select their sort column as
`sort_value`, and ask for one row more than the page size to tell whether
another page follows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

from ...domain.listing import Page
from .statements import Row

T = TypeVar("T")

# What "no limit" is sent as: every engine takes a large LIMIT, not all take -1.
NO_LIMIT = 2**62


def row_limit(limit: int) -> int:
    """limit, with -1 (or any negative) meaning every row."""
    return NO_LIMIT if limit < 0 else limit


def marks(values: Collection[Any]) -> str:
    """Placeholders for an IN list of values."""
    return ", ".join("?" for _ in values)


class Query:
    """A WHERE clause under construction."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list = []

    def add(self, clause: str, *args: Any) -> None:
        self.clauses.append(clause)
        self.args.extend(args)

    def one_of(self, column: str, values: Collection[Any]) -> None:
        """column is one of values (nothing when values is empty)."""
        if values:
            self.add(f"{column} IN ({marks(values)})", *values)

    def where(self) -> str:
        return ("WHERE " + " AND ".join(self.clauses)) if self.clauses else ""


def keyset(q: Query, page: Page, table: str, column: str | None = None, tiebreak: str = "id") -> str:
    """Adds the condition for rows after page.after and returns the ORDER BY
    clause; column defaults to the table's page.order.field."""
    column = column or f"{table}.{page.order.field}"
    direction = "DESC" if page.order.descending else "ASC"
    if page.after is not None:
        op = "<" if page.order.descending else ">"
        q.add(f"({column}, {table}.{tiebreak}) {op} (?, ?)", *page.after)
    return f"ORDER BY {column} {direction}, {table}.{tiebreak} {direction}"


def page_of(rows: list[Row], page: Page, decode: Callable[[Row], T], tiebreak: str = "id") -> tuple[list[T], tuple | None]:
    """The page's items and the key to continue after (None at the end),
    from a query that fetched page.size + 1 rows."""
    items = [decode(r) for r in rows[: page.size]]
    if len(rows) <= page.size:
        return items, None
    last = rows[page.size - 1]
    return items, (last["sort_value"], last[tiebreak])
