"""The change feed: what wakes followers (watch and follow streams, the
rendezvous) when this server stored something they may want.

A signal carries no data, only "look again": followers read from storage by
their own cursor, so a missed signal costs a poll interval, never an item.
A follower takes a mark() before it reads and waits with it afterwards, so
a signal raised while it was reading is not missed.
Followers also wake every POLL_SECONDS on their own, so changes another
server process made on the same database reach them too. A backend that
can announce changes across processes (a ChangeRelay) carries every notify
to the other processes, which wake their own followers within a few tens
of milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..storage.interface import ChangeRelay

POLL_SECONDS = 1.0

log = logging.getLogger(__name__)

Announce = Callable[[str, "int | None"], None]


def _nobody(topic: str, key: int | None) -> None:
    pass


class Signal:
    """Wakes every waiter at once; free to raise while nobody waits."""

    def __init__(self, topic: str = "", announce: Announce = _nobody) -> None:
        self._event = asyncio.Event()
        self._waiters = 0
        self._generation = 0
        self.topic = topic
        self._announce = announce

    def notify(self) -> None:
        self._announce(self.topic, None)
        self.wake()

    def wake(self) -> None:
        """Wakes this process's waiters only."""
        # Called for every stored report; costs nothing when nobody follows.
        self._generation += 1
        if self._waiters:
            self._event.set()
            self._event = asyncio.Event()

    def mark(self) -> int:
        return self._generation

    async def wait(self, timeout: float | None = None, since: int | None = None) -> None:
        """Until the next wake (at most timeout seconds, POLL_SECONDS by
        default); at once when one came after the mark since."""
        if since is not None and since != self._generation:
            return
        self._waiters += 1
        try:
            await asyncio.wait_for(self._event.wait(), POLL_SECONDS if timeout is None else timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters -= 1


class KeyedSignal:
    """Like Signal, per key (a trial id): only that key's waiters wake."""

    def __init__(self, topic: str = "", announce: Announce = _nobody) -> None:
        self._events: dict[object, asyncio.Event] = {}
        self.topic = topic
        self._announce = announce
        # Called with the key of every wake, here or announced by another
        # process: caches of what the key names forget it.
        self.listeners: list[Callable[[object], None]] = []

    def notify(self, key) -> None:
        self._announce(self.topic, key)
        self.wake(key)

    def wake(self, key) -> None:
        for listener in self.listeners:
            listener(key)
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def mark(self, key) -> asyncio.Event:
        """What the next wake of key sets."""
        return self._events.setdefault(key, asyncio.Event())

    async def wait(self, key, timeout: float | None = None, since: asyncio.Event | None = None) -> None:
        """Until the next wake of key (at most timeout seconds, POLL_SECONDS
        by default); at once when one came after the mark since."""
        event = since if since is not None else self.mark(key)
        if event.is_set():
            return
        try:
            await asyncio.wait_for(event.wait(), POLL_SECONDS if timeout is None else timeout)
        except asyncio.TimeoutError:
            pass

    def of(self, key) -> KeySignal:
        """The signal of one key, as follow() takes it."""
        return KeySignal(self, key)


class KeySignal:
    def __init__(self, signal: KeyedSignal, key) -> None:
        self._signal, self._key = signal, key

    def mark(self) -> asyncio.Event:
        return self._signal.mark(self._key)

    async def wait(self, since: asyncio.Event | None = None) -> None:
        await self._signal.wait(self._key, since=since)


class ChangeFeed:
    def __init__(self, relay: ChangeRelay | None = None) -> None:
        self.relay = relay
        announce = relay.announce if relay is not None else _nobody
        # Metric points, debug events and log lines of any trial.
        self.metrics = Signal("metrics", announce)
        # Profiler samples of any trial.
        self.profiler = Signal("profiler", announce)
        # A trial's state and history, by trial id.
        self.trials = KeyedSignal("trials", announce)
        # The workers of a trial, by trial id.
        self.workers = KeyedSignal("workers", announce)
        # A token revoked, by token id.
        self.tokens = KeyedSignal("tokens", announce)

    def deliver(self, topic: str, key: int | None) -> None:
        """What another server process announced: wakes the followers here."""
        signal = getattr(self, topic, None)
        if isinstance(signal, Signal):
            signal.wake()
        elif isinstance(signal, KeyedSignal) and key is not None:
            signal.wake(key)
        else:
            log.debug("ignored announcement %r %r", topic, key)

    async def relay_forever(self) -> None:
        """Delivers other processes' announcements until cancelled."""
        if self.relay is not None:
            await self.relay.run(self.deliver)
