"""Tokens: what a bearer secret stands for, how secrets are made and kept,
and which scope includes which.

A secret is `tp_` followed by 43 URL-safe characters (32 random bytes).
Only its SHA-256 is stored: the secret has the entropy of a key, so a slow
password hash would add cost to every call and nothing to its safety."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field, replace
from enum import Enum

from .errors import FieldViolation, InvalidArgument

SECRET_PREFIX = "tp_"
# Anything shaped like a secret, wherever it appears in text the server keeps.
SECRET_PATTERN = re.compile(r"tp_[A-Za-z0-9_-]{43}")
REDACTED = "tp_[redacted]"

READ, WRITE, ADMIN = "read", "write", "admin"
SCOPES = (READ, WRITE, ADMIN)
# A scope and every scope it includes.
_INCLUDES = {READ: {READ}, WRITE: {READ, WRITE}, ADMIN: {READ, WRITE, ADMIN}}

MAX_NAME = 100


class TokenKind(str, Enum):
    USER = "USER"
    SERVICE = "SERVICE"
    TRIAL_RUN = "TRIAL_RUN"


@dataclass
class Token:
    name: str
    kind: TokenKind
    scopes: frozenset[str] = frozenset()
    # None: every study.
    study_ids: frozenset[int] | None = None
    expire_time: int = 0
    trial_id: int = 0
    trial_run_id: int = 0
    created_by: str = ""
    # The token a trial-run token was made with: revoking that one revokes it.
    parent_id: int = 0
    id: int = 0
    create_time: int = 0
    revoke_time: int = 0
    secret_hash: bytes = field(default=b"", repr=False)

    def granted(self) -> frozenset[str]:
        """Every scope the token's scopes include."""
        return frozenset(s for scope in self.scopes for s in _INCLUDES[scope])

    def inactive(self, now: int) -> str | None:
        """Why the token no longer works at `now` (revoked, expired), or None."""
        if self.revoke_time:
            return "revoked"
        if self.expire_time and now >= self.expire_time:
            return "expired"
        return None


def new_secret() -> tuple[str, bytes]:
    """A fresh secret and the hash to store."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def redact(text: str) -> str:
    """text with every token secret in it replaced."""
    if SECRET_PREFIX not in text:
        return text
    return SECRET_PATTERN.sub(REDACTED, text)


def validated(token: Token, now: int) -> Token:
    """A user or service token as CreateToken may make it."""
    problems = []
    if not token.name or len(token.name) > MAX_NAME:
        problems.append(FieldViolation("token.name", f"must be 1 to {MAX_NAME} characters"))
    if token.kind not in (TokenKind.USER, TokenKind.SERVICE):
        problems.append(FieldViolation("token.kind", "must be TOKEN_KIND_USER or TOKEN_KIND_SERVICE"
                                       " (trial-run tokens come from CreateTrialRunToken)"))
    unknown = sorted(token.scopes - set(SCOPES))
    if unknown:
        problems.append(FieldViolation("token.scopes", f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}"))
    elif not token.scopes:
        problems.append(FieldViolation("token.scopes", f"at least one of {', '.join(SCOPES)}"))
    if token.study_ids is not None and any(s <= 0 for s in token.study_ids):
        problems.append(FieldViolation("token.study_ids", "study ids are positive"))
    if token.expire_time and token.expire_time <= now:
        problems.append(FieldViolation("token.expire_time", "must be in the future"))
    if token.study_ids is not None and ADMIN in token.scopes:
        problems.append(FieldViolation("token.study_ids", "an admin token reaches every study; leave study_ids empty"))
    if problems:
        raise InvalidArgument(problems)
    return replace(token, id=0, revoke_time=0, trial_id=0, trial_run_id=0, parent_id=0)
