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

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float = POLL_SECONDS) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
