"""Scoped request ids recorded in the transaction of the write they name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from ...domain.idempotency import RequestKey, check_same_request
from .statements import Tx


class Recorded(Protocol):
    def to_record(self) -> str: ...


R = TypeVar("R", bound=Recorded)


def recall(tx: Tx, key: RequestKey | None) -> str | None:
    """The recorded result of this request, None if it is new; raises
    RequestIdReused when the id was used for another request."""
    if key is None:
        return None
    row = tx.one(
        "SELECT digest, result FROM request_ids WHERE scope = ? AND request_id = ?", (key.scope, key.request_id)
    )
    if row is None:
        return None
    check_same_request(key, row[0])
    return row[1]


def remember(tx: Tx, key: RequestKey | None, result: str, now: int) -> None:
    if key is not None:
        tx.run(
            "INSERT INTO request_ids (scope, request_id, digest, result, create_time) VALUES (?, ?, ?, ?, ?)",
            (key.scope, key.request_id, key.digest, result, now),
        )


def once(tx: Tx, key: RequestKey | None, now: int, write: Callable[[], R],
         from_record: Callable[[str], R]) -> R:
    """write()'s result, recorded under key; for a key seen before, the
    recorded first result instead, and write() is not run."""
    earlier = recall(tx, key)
    if earlier is not None:
        return from_record(earlier)
    result = write()
    if key is not None:
        remember(tx, key, result.to_record(), now)
    return result
