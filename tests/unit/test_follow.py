"""The loop behind every Watch* stream: a change stored while the follower
is reading wakes it, instead of waiting out the poll interval."""

import asyncio

import pytest
from trialplane.server.services import change_feed
from trialplane.server.services.change_feed import KeyedSignal, Signal
from trialplane.server.services.follow import follow


async def first_batches(signal, notify, count):
    """Follows a store whose first read is overtaken by a change: stored and
    signalled after the read looked, before the follower waits."""
    store: list[str] = []
    reads = 0

    async def read():
        nonlocal reads
        reads += 1
        seen, store[:] = list(store), []
        if reads == 1:
            store.append("late")
            notify()
        await asyncio.sleep(0)
        return seen

    async def finished():
        return False

    got = []
    async for batch in follow(read, finished, signal):
        got.append(batch)
        if len(got) == count:
            return got


@pytest.mark.parametrize("kind", ["signal", "keyed"])
def test_a_change_signalled_during_a_read_is_not_missed(kind, monkeypatch):
    # With no wake the follower would sleep for an hour, and the test time out.
    monkeypatch.setattr(change_feed, "POLL_SECONDS", 3600.0)

    async def scenario():
        if kind == "signal":
            signal = Signal()
            return await asyncio.wait_for(first_batches(signal, signal.notify, 1), 10)
        keyed = KeyedSignal()
        return await asyncio.wait_for(first_batches(keyed.of(7), lambda: keyed.notify(7), 1), 10)

    assert asyncio.run(scenario()) == [["late"]]
