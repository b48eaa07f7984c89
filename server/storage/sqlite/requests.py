"""Scoped request ids recorded in the transaction of the write they name."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Protocol, TypeVar

from ...domain.idempotency import RequestKey, check_same_request


class Recorded(Protocol):
    def to_record(self) -> str: ...


R = TypeVar("R", bound=Recorded)


def recall(conn: sqlite3.Connection, key: RequestKey | None) -> str | None:
    """The recorded result of this request, None if it is new; raises
    RequestIdReused when the id was used for another request."""
    if key is None:
        return None
    row = conn.execute(
        "SELECT digest, result FROM request_ids WHERE scope = ? AND request_id = ?", (key.scope, key.request_id)
    ).fetchone()
    if row is None:
        return None
    check_same_request(key, row[0])
    return row[1]


def remember(conn: sqlite3.Connection, key: RequestKey | None, result: str, now: int) -> None:
    if key is not None:
        conn.execute(
            "INSERT INTO request_ids (scope, request_id, digest, result, create_time) VALUES (?, ?, ?, ?, ?)",
            (key.scope, key.request_id, key.digest, result, now),
        )


def once(conn: sqlite3.Connection, key: RequestKey | None, now: int, write: Callable[[], R],
         from_record: Callable[[str], R]) -> R:
    """write()'s result, recorded under key; for a key seen before, the
    recorded first result instead, and write() is not run."""
    earlier = recall(conn, key)
    if earlier is not None:
        return from_record(earlier)
    result = write()
    if key is not None:
        remember(conn, key, result.to_record(), now)
    return result
