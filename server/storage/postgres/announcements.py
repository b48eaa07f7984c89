"""Changes announced across replicas with LISTEN/NOTIFY, and job leases
held as advisory locks.

An announcement is a few bytes ("<origin> <topic> <key>"): which trial's
metrics, history or workers changed, never the data, so no payload comes
near PostgreSQL's 8,000-byte limit. Announcements made during 10 ms are
sent together, one round trip, on a connection of their own; each replica
listens on another and wakes its own followers. Followers read by their
own cursors and also poll every second, so a notification lost to a
reconnect costs at most that second, never an item.

A job lease is a session-level advisory lock on a connection of its own:
it is held for as long as that session lives, and PostgreSQL releases it
when the holder's process or connection dies, so another replica takes
the job at its next try. Before every sweep the holder checks that its
session is still alive; the jobs' writes are domain transitions that
refuse what is no longer legal, so a sweep that overlaps a takeover
changes nothing twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from ..interface import ChangeRelay, JobLease

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.01
LISTEN_POLL_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


class NotifyRelay(ChangeRelay):
    def __init__(self, dsn: str, options: dict, channel: str):
        self.dsn, self.options, self.channel = dsn, options, channel
        # Tells this replica's own announcements apart when they come back.
        self.origin = secrets.token_hex(4)
        self._pending: set[tuple[str, int | None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-notify")
        self._send_conn: psycopg.Connection | None = None
        self._stop = threading.Event()

    def announce(self, topic: str, key: int | None) -> None:
        self._pending.add((topic, key))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(BATCH_SECONDS, self._flush)

    def _flush(self) -> None:
        self._timer = None
        batch, self._pending = self._pending, set()
        payloads = [f"{self.origin} {topic} {'' if key is None else key}" for topic, key in batch]
        self._sender.submit(self._send, payloads)

    def _send(self, payloads: list[str]) -> None:
        try:
            if self._send_conn is None or self._send_conn.closed:
                self._send_conn = psycopg.connect(self.dsn, autocommit=True, **self.options)
            self._send_conn.execute("SELECT pg_notify(%s, p) FROM unnest(%s::text[]) AS p", (self.channel, payloads))
        except psycopg.Error as exc:
            # Followers elsewhere find the change at their next poll.
            log.warning("could not announce %d changes to other replicas: %s", len(payloads), exc)
            if self._send_conn is not None:
                self._send_conn.close()
                self._send_conn = None

    async def run(self, deliver: Callable[[str, int | None], None]) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        thread = threading.Thread(target=self._listen, args=(loop, deliver, done), name="postgres-listen", daemon=True)
        thread.start()
        try:
            await done
        finally:
            self._stop.set()

    def _listen(self, loop: asyncio.AbstractEventLoop, deliver, done: asyncio.Future) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, **self.options) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=LISTEN_POLL_SECONDS):
                            origin, topic, key = (note.payload.split(" ") + ["", ""])[:3]
                            if origin != self.origin:
                                loop.call_soon_threadsafe(deliver, topic, int(key) if key else None)
            except psycopg.Error as exc:
                log.warning("listening for other replicas' changes failed (%s); again in %.0f s", exc,
                            RECONNECT_SECONDS)
                self._stop.wait(RECONNECT_SECONDS)
            except RuntimeError:
                # The event loop closed under us: the server is gone.
                return
        try:
            loop.call_soon_threadsafe(_finish, done)
        except RuntimeError:
            pass

    def close(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()
        self._sender.shutdown(wait=True)
        if self._send_conn is not None:
            self._send_conn.close()


def _finish(done: asyncio.Future) -> None:
    if not done.done():
        done.set_result(None)


def channel_name(scope: str) -> str:
    """The NOTIFY channel of one database and schema (an identifier under 63 bytes)."""
    return "trialplane_" + hashlib.blake2b(scope.encode(), digest_size=8).hexdigest()


def lock_key(scope: str, job: str) -> int:
    """A 64-bit advisory lock number for a job in a schema."""
    digest = hashlib.blake2b(f"trialplane {scope} {job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLease(JobLease):
    def __init__(self, dsn: str, options: dict, key: int):
        self.dsn, self.options, self.key = dsn, options, key
        self._conn: psycopg.Connection | None = None
        self._held = False
        self._lock = threading.Lock()

    async def held(self) -> bool:
        return await asyncio.to_thread(self._check)

    def _check(self) -> bool:
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, autocommit=True, **self.options)
                    self._held = False
                if self._held:
                    # The lock lives as long as this session does.
                    self._conn.execute("SELECT 1")
                    return True
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                self._held = bool(row and row[0])
                return self._held
            except psycopg.Error as exc:
                log.warning("job lease %d lost: %s", self.key, exc)
                self._drop()
                return False

    def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def release(self) -> None:
        await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with self._lock:
            self._drop()
