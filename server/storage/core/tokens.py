"""Token rows: hashed secrets and what they allow."""

from __future__ import annotations

import json

from ...domain.errors import NotFound
from ...domain.listing import Page
from ...domain.tokens import Token, TokenKind
from ..interface import Paged
from .query import Query, keyset, page_of
from .statements import Tx

_COLUMNS = ("name", "kind", "secret_hash", "scopes", "study_ids", "trial_id", "trial_run_id", "create_time",
            "expire_time", "revoke_time", "created_by", "parent_id")
_INSERT = f"INSERT INTO tokens ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


def to_row(t: Token) -> tuple:
    return (
        t.name, t.kind.value, t.secret_hash, ",".join(sorted(t.scopes)),
        None if t.study_ids is None else json.dumps(sorted(t.study_ids)), t.trial_id, t.trial_run_id,
        t.create_time, t.expire_time, t.revoke_time, t.created_by, t.parent_id,
    )


def from_row(row) -> Token:
    return Token(
        id=row["id"], name=row["name"], kind=TokenKind(row["kind"]), secret_hash=bytes(row["secret_hash"]),
        scopes=frozenset(s for s in row["scopes"].split(",") if s),
        study_ids=None if row["study_ids"] is None else frozenset(json.loads(row["study_ids"])),
        trial_id=row["trial_id"], trial_run_id=row["trial_run_id"], create_time=row["create_time"],
        expire_time=row["expire_time"], revoke_time=row["revoke_time"], created_by=row["created_by"],
        parent_id=row["parent_id"],
    )


def insert(tx: Tx, t: Token) -> Token:
    t.id = tx.insert(_INSERT, to_row(t))
    return t


def any_token(tx: Tx, lock: bool = False) -> bool:
    """Whether a token exists; lock: and no other transaction makes one
    until this one ends (replicas starting together make one first token)."""
    if lock and tx.dialect.lock_table("tokens"):
        tx.run(tx.dialect.lock_table("tokens"))
    return tx.one("SELECT 1 FROM tokens LIMIT 1") is not None


def by_hash(tx: Tx, secret_hash: bytes) -> Token | None:
    row = tx.one("SELECT * FROM tokens WHERE secret_hash = ?", (secret_hash,))
    return None if row is None else from_row(row)


def require(tx: Tx, token_id: int, lock: bool = False) -> Token:
    row = tx.one(f"SELECT * FROM tokens WHERE id = ?{tx.dialect.for_update if lock else ''}", (token_id,))
    if row is None:
        raise NotFound("token", token_id)
    return from_row(row)


def revoke(tx: Tx, token_id: int, now: int) -> tuple[Token, list[int]]:
    """The token, revoked (once), and the ids of the trial-run tokens made
    with it that were revoked with it now."""
    t = require(tx, token_id, lock=True)
    if not t.revoke_time:
        tx.run("UPDATE tokens SET revoke_time = ? WHERE id = ?", (now, token_id))
        t.revoke_time = now
    children = [r["id"] for r in tx.all("SELECT id FROM tokens WHERE parent_id = ? AND revoke_time = 0", (token_id,))]
    if children:
        tx.run(f"UPDATE tokens SET revoke_time = ? WHERE id IN ({', '.join('?' for _ in children)})", (now, *children))
    return t, children


def list_page(tx: Tx, page: Page, include_inactive: bool, include_trial_run: bool, now: int) -> Paged[Token]:
    q = Query()
    if not include_inactive:
        q.add("tokens.revoke_time = 0")
        q.add("(tokens.expire_time = 0 OR tokens.expire_time > ?)", now)
    if not include_trial_run:
        q.add("tokens.kind != ?", TokenKind.TRIAL_RUN.value)
    order = keyset(q, page, "tokens")
    rows = tx.all(f"SELECT *, tokens.id AS sort_value FROM tokens {q.where()} {order} LIMIT ?", (*q.args, page.size + 1))
    return Paged(*page_of(rows, page, from_row))
