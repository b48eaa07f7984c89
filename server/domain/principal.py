"""Who is making the current call: the principal the auth interceptor found
for its token, readable anywhere below it (limits, servicers, events).

The interceptor binds it inside the call's own task, so `current()` answers
for the call being served; outside any call, and with auth off, it is the
anonymous principal."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

USER = "user"
SERVICE = "service"
TRIAL_RUN = "trial-run"
ANONYMOUS_KIND = "anonymous"


@dataclass(frozen=True)
class Principal:
    kind: str
    # The token's name for people and logs; never the secret itself.
    name: str
    token_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    # Studies a scoped token may touch; None means every study.
    study_ids: frozenset[int] | None = None
    # What a trial-run token is bound to.
    trial_id: int | None = None
    run_id: int | None = None

    @property
    def key(self) -> str:
        """Stable identity for per-principal limits and counters."""
        return f"{self.kind}:{self.token_id}" if self.token_id is not None else self.kind

    def describe(self) -> str:
        """How events and logs name the principal: `token 7 (ci-bot)`."""
        if self.token_id is None:
            return self.name
        return f"{self.kind} token {self.token_id} ({self.name})"


ANONYMOUS = Principal(kind=ANONYMOUS_KIND, name="anonymous")

_current: ContextVar[Principal] = ContextVar("trialplane_principal", default=ANONYMOUS)


def current() -> Principal:
    return _current.get()


def bind(principal: Principal) -> None:
    """Makes `principal` current for the rest of this task (each call runs in
    a task of its own)."""
    _current.set(principal)
