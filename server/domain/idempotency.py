"""Request ids: what makes a retried write safe.

A client's request_id is scoped to the method and to the resource the call
acts on (a study's trials, a trial's transitions ...), so the same id sent to
two methods, or to one method for two parents, names two requests. The
digest covers everything else the request carries: a retry with the same id
and the same digest returns the first answer, the same id with another
digest is refused instead of answering for a request the client did not send.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FailedPrecondition


@dataclass(frozen=True)
class RequestKey:
    method: str
    parent: str
    request_id: str
    digest: bytes

    @property
    def scope(self) -> str:
        return f"{self.method}/{self.parent}" if self.parent else self.method


class RequestIdReused(FailedPrecondition):
    reason = "REQUEST_ID_REUSED"

    def __init__(self, request_id: str, method: str, parent: str = ""):
        where = f" of {parent}" if parent else ""
        super().__init__(
            f"request_id {request_id!r} was used for another {method} request{where};"
            " send a new request_id for a new request",
            metadata={"request_id": request_id, "method": method},
        )


def check_same_request(key: RequestKey, stored_digest: bytes | None) -> None:
    """Raises RequestIdReused unless the stored request is this one. Ids
    recorded before digests were kept (None) match any request."""
    if stored_digest is not None and bytes(stored_digest) != key.digest:
        raise RequestIdReused(key.request_id, key.method, key.parent)
