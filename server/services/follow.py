"""The one loop behind every Watch* stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Protocol, TypeVar

from ..domain import trial_lifecycle
from ..storage.interface import Storage

T = TypeVar("T")


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
    """
    ending = False
    while True:
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
        await signal.wait(since=mark)
