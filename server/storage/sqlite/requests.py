"""Scoped request ids recorded in the transaction of the write they name."""

from __future__ import annotations

import sqlite3

from ...domain.idempotency import RequestKey, check_same_request


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
