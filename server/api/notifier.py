"""Wakes followers (watch and follow streams) when this server stored something."""

from __future__ import annotations

import asyncio

# Followers also poll this often, so changes made by another server process
# (or missed between a read and a wait) arrive anyway.
POLL_SECONDS = 1.0


class Notifier:
    """Followers wait on it with a timeout, so changes made by another server
    process are still picked up by polling."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._waiters = 0

    def notify(self) -> None:
        # Called for every stored report; free when nobody follows.
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


class KeyedNotifier:
    """Like Notifier, but per key (a trial id): only that key's waiters wake."""

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
