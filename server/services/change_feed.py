"""The change feed: what wakes followers (watch and follow streams, the
rendezvous) when this server stored something they may want.

A signal carries no data, only "look again": followers read from storage by
their own cursor, so a missed signal costs a poll interval, never an item.
Followers also wake every POLL_SECONDS on their own, so changes another
server process made on the same database reach them too. A backend that
can announce changes across processes may feed these signals later.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

POLL_SECONDS = 1.0


class Signal:
    """Wakes every waiter at once; free to raise while nobody waits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiters = 0

    def notify(self) -> None:
        # Called for every stored report; costs nothing when nobody follows.
        if self._waiters:
            self._event.set()
            self._event = asyncio.Event()

    async def wait(self, timeout: float = POLL_SECONDS) -> None:
        self._waiters += 1
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters -= 1


class KeyedSignal:
    """Like Signal, per key (a trial id): only that key's waiters wake."""

    def __init__(self) -> None:
        self._events: dict[object, asyncio.Event] = {}

    def notify(self, key) -> None:
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    async def wait(self, key, timeout: float = POLL_SECONDS) -> None:
        event = self._events.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass


@dataclass
class ChangeFeed:
    # Metric points, debug events and log lines of any trial.
    metrics: Signal = field(default_factory=Signal)
    # Profiler samples of any trial.
    profiler: Signal = field(default_factory=Signal)
    # A trial's state and history, by trial id.
    trials: KeyedSignal = field(default_factory=KeyedSignal)
    # The workers of a trial, by trial id.
    workers: KeyedSignal = field(default_factory=KeyedSignal)
