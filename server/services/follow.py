"""The one loop behind every Watch* stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from ..domain import trial_lifecycle
from ..domain.errors import LimitExceeded
from ..storage.interface import Storage

T = TypeVar("T")

# (monotonic end, seconds) of the follows of the current call: the stream
# limits bind it in the call's own task (api/limits.py); None: no end.
_lifetime: ContextVar[tuple[float, float] | None] = ContextVar("trialplane_follow_lifetime", default=None)


def limit_lifetime(seconds: float) -> None:
    """Follows of the current call end after seconds (0: never)."""
    _lifetime.set((time.monotonic() + seconds, seconds) if seconds > 0 else None)


def _expired(seconds: float) -> LimitExceeded:
    return LimitExceeded(
        f"this stream was open {seconds:g} s, the longest this server keeps a follow open; open it again from"
        " the last item received", name="max_stream_seconds", limit=int(seconds) if seconds.is_integer() else seconds,
        retry_after=0.0)


class Wakes(Protocol):
    """A change feed signal (change_feed.Signal, KeyedSignal.of(key))."""

    def mark(self) -> Any: ...

    async def wait(self, *, since: Any = None) -> None: ...


def trials_ended(storage: Storage, trial_ids: Iterable[int]) -> Callable[[], Awaitable[bool]]:
    """The finished() of a follow that lasts while any of the trials is live."""
    ids = list(trial_ids)

    async def ended() -> bool:
        for trial_id in ids:
            if not trial_lifecycle.is_terminal((await storage.get_trial(trial_id)).state):
                return False
        return True

    return ended


async def follow(
    read: Callable[[], Awaitable[list[T]]],
    finished: Callable[[], Awaitable[bool]],
    signal: Wakes,
) -> AsyncIterator[list[T]]:
    """Yields what read() returns (it keeps its own cursor) until what is
    followed has finished and nothing is left.

    After an empty read, finished() is asked; once it says yes, reads go on
    until one comes back empty, so what was stored between the last read and
    the end is still delivered. Otherwise it waits for the signal, marked
    before the read, so a change stored while reading wakes it at once.

    Under a lifetime limit the follow ends with LimitExceeded once it is
    over, between two batches (so the client's cursor is the last item it
    received) and not while the end is being drained.
    """
    ending = False
    lifetime = _lifetime.get()
    while True:
        if lifetime is not None and not ending and time.monotonic() >= lifetime[0]:
            raise _expired(lifetime[1])
        mark = signal.mark()
        batch = await read()
        if batch:
            yield batch
            continue
        if ending:
            return
        if await finished():
            ending = True
            continue
        if lifetime is None:
            await signal.wait(since=mark)
            continue
        try:
            await asyncio.wait_for(signal.wait(since=mark), max(0.0, lifetime[0] - time.monotonic()))
        except asyncio.TimeoutError:
            pass
