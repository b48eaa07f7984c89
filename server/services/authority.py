"""Who a bearer secret is, and the few facts about trials, workers and
checkpoints that deciding what it may touch needs, kept in memory.

Every cache forgets through the change feed: a revoked token on any replica,
a trial whose run moved on or ended. A fill that raced with such a change is
used for its call but not kept. Trial facts also age out after a few seconds,
as a bound for a change some path did not announce."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..domain.errors import NotFound, Unauthenticated
from ..domain.principal import SERVICE, TRIAL_RUN, USER, Principal
from ..domain.tokens import ADMIN, Token, TokenKind, hash_secret, new_secret
from ..domain.trial_lifecycle import is_terminal
from ..storage.interface import Storage
from .change_feed import ChangeFeed

log = logging.getLogger(__name__)

# Entries past this many are dropped wholesale: a flood of made-up secrets
# must not grow memory.
MAX_ENTRIES = 20_000
TRIAL_FACTS_SECONDS = 5.0


@dataclass(frozen=True)
class TrialFacts:
    study_id: int
    run_id: int
    finished: bool
    read_at: float


def principal_of(token: Token) -> Principal:
    return Principal(
        kind={TokenKind.USER: USER, TokenKind.SERVICE: SERVICE, TokenKind.TRIAL_RUN: TRIAL_RUN}[token.kind],
        name=token.name, token_id=token.id, scopes=token.granted(), study_ids=token.study_ids,
        trial_id=token.trial_id or None, run_id=token.trial_run_id or None,
    )


class Authority:
    def __init__(self, storage: Storage, feed: ChangeFeed, clock: Callable[[], int]):
        self.storage = storage
        self.clock = clock
        # secret hash -> (token, principal), or None for a secret no token has.
        self._tokens: dict[bytes, tuple[Token, Principal] | None] = {}
        self._trials: dict[int, TrialFacts] = {}
        self._worker_trials: dict[int, int] = {}
        self._checkpoint_trials: dict[str, int] = {}
        self._changes = 0
        feed.tokens.listeners.append(self._token_changed)
        feed.trials.listeners.append(self._trial_changed)

    # --- tokens ----------------------------------------------------------------

    async def principal(self, secret: str) -> Principal:
        """The principal of a presented secret; Unauthenticated when no
        usable token has it."""
        key = hash_secret(secret)
        try:
            entry = self._tokens[key]
        except KeyError:
            seen = self._changes
            token = await self.storage.token_by_hash(key)
            entry = None if token is None else (token, principal_of(token))
            if seen == self._changes:
                if len(self._tokens) >= MAX_ENTRIES:
                    self._tokens.clear()
                self._tokens[key] = entry
        if entry is None:
            raise Unauthenticated("the bearer token is not one this server made", "unknown")
        token, principal = entry
        problem = token.inactive(self.clock())
        if problem is not None:
            raise Unauthenticated(f"the bearer token was {problem}", problem)
        return principal

    def _token_changed(self, token_id) -> None:
        self._changes += 1
        for key, entry in list(self._tokens.items()):
            if entry is not None and entry[0].id == token_id:
                del self._tokens[key]

    async def ensure_first_admin(self, path: Path) -> bool:
        """With no token at all, makes an admin token and writes its secret
        to path, readable by its owner only. False when tokens exist.

        The secret is written to a new file of its own (O_EXCL, mode 0600,
        an unguessable name beside path) and moved into place only once the
        token is stored: nothing another user made can receive it."""
        if await self.storage.any_token():
            return False
        secret, secret_hash = new_secret()
        fd, staged_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        staged = Path(staged_name)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secret + "\n")
                out.flush()
                os.fsync(out.fileno())
            made = await self.storage.create_token(
                Token(name="admin", kind=TokenKind.USER, scopes=frozenset({ADMIN}), secret_hash=secret_hash,
                      create_time=self.clock(), created_by="server"),
                only_if_none=True,
            )
            if made is None:
                return False
            os.replace(staged, path)
        finally:
            staged.unlink(missing_ok=True)
        log.info("made the first admin token (id %d); its secret is in %s", made.id, path)
        return True

    # --- what tokens reach -------------------------------------------------

    async def trial_facts(self, trial_id: int) -> TrialFacts | None:
        """None for a trial that does not exist."""
        facts = self._trials.get(trial_id)
        now = time.monotonic()
        if facts is not None and now - facts.read_at < TRIAL_FACTS_SECONDS:
            return facts
        seen = self._changes
        try:
            trial = await self.storage.get_trial(trial_id)
        except NotFound:
            return None
        facts = TrialFacts(trial.study_id, trial.trial_run_id, is_terminal(trial.state), now)
        if seen == self._changes:
            if len(self._trials) >= MAX_ENTRIES:
                self._trials.clear()
            self._trials[trial_id] = facts
        return facts

    def _trial_changed(self, trial_id) -> None:
        self._changes += 1
        self._trials.pop(trial_id, None)

    async def trial_of_worker(self, worker_id: int) -> int | None:
        return await _trial_of(self._worker_trials, worker_id, self.storage.get_worker)

    async def trial_of_checkpoint(self, uuid: str) -> int | None:
        return await _trial_of(self._checkpoint_trials, uuid, self.storage.get_checkpoint)


async def _trial_of(cache: dict, key, get) -> int | None:
    """The trial of a worker or checkpoint (which never changes), remembered;
    None when there is no such thing."""
    trial_id = cache.get(key)
    if trial_id is None:
        try:
            trial_id = (await get(key)).trial_id
        except NotFound:
            return None
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = trial_id
    return trial_id
