"""Calls to the server that outlive an outage: retried with capped backoff,
with the same request_id on every attempt, so a retry is applied once.

What gives up, and when, is the caller's choice (a deadline, a stop event);
nothing here raises because the server is down, only because it said no or
time ran out. Link logs the outage once when it starts and once when it ends,
not once per failed attempt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import grpc

from ..sdk import TrialplaneError

log = logging.getLogger("trialplane.agent")

T = TypeVar("T")

_TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}


def is_transient(err: TrialplaneError) -> bool:
    """Whether the same call may succeed later: the server was unreachable,
    slow, lost a race, or asked to be called again later."""
    if err.code in _TRANSIENT:
        return True
    return err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.retry_delay is not None


class GaveUp(Exception):
    """A retried call was abandoned (deadline or stop) while the server was unreachable."""

    def __init__(self, last: TrialplaneError | None):
        super().__init__(str(last) if last else "abandoned")
        self.last = last


class Backoff:
    """Waits of initial, initial * factor ... up to maximum seconds, each
    jittered down by up to a quarter so agents do not retry in step, and
    never shorter than the server's RetryInfo delay (the hint)."""

    def __init__(self, initial: float = 0.2, maximum: float = 5.0, factor: float = 2.0):
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self._next = initial

    def next(self, hint: float | None = None) -> float:
        wait = self._next * (1 - random.random() / 4)
        self._next = min(self.maximum, self._next * self.factor)
        # A server's RetryInfo is a floor: the jitter never cuts it short.
        return max(wait, hint or 0.0)

    def reset(self) -> None:
        self._next = self.initial


class Link:
    """Whether the server is answering, as the agent's calls see it."""

    def __init__(self, address: str):
        self.address = address
        self._down = False
        self._lock = threading.Lock()

    def failed(self, err: TrialplaneError) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        log.warning("cannot reach the server at %s (%s); trying again", self.address, err)

    def ok(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        log.info("the server at %s answers again", self.address)

    @property
    def down(self) -> bool:
        return self._down


def retrying(
    call: Callable[[], T],
    link: Link,
    *,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    backoff: Backoff | None = None,
) -> T:
    """call() until it succeeds or fails for good (that error is raised).
    While it fails transiently it is tried again; GaveUp once the monotonic
    deadline passes or stop is set."""
    backoff = backoff or Backoff()
    while True:
        try:
            result = call()
        except TrialplaneError as err:
            if not is_transient(err):
                link.ok()
                raise
            if err.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                # A limit the server named is not an outage.
                link.failed(err)
            wait = backoff.next(err.retry_delay)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GaveUp(err) from None
                wait = min(wait, left)
            if stop is not None:
                if stop.wait(wait):
                    raise GaveUp(err) from None
            else:
                time.sleep(wait)
            continue
        link.ok()
        return result


class Reporter:
    """One thread making the agent's state calls (trial and worker) in the
    order they were submitted, each retried until it is answered.

    Order matters: RUNNING must not overtake STARTING, a worker's state must
    not overtake its registration. A caller that needs the answer waits on
    the Future with its own bound; the call keeps being retried behind it
    until close()."""

    def __init__(self, link: Link):
        self.link = link
        self._queue: list[tuple[str, Callable[[], Any], Future]] = []
        self._current: str | None = None
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trialplane-reporter", daemon=True)
        self._thread.start()

    def submit(self, description: str, call: Callable[[], Any]) -> Future:
        future: Future = Future()
        with self._cond:
            if self._closing.is_set():
                future.set_exception(GaveUp(None))
                return future
            self._queue.append((description, call, future))
            self._cond.notify()
        return future

    def pending(self) -> list[str]:
        """What has not been answered yet, oldest first."""
        with self._cond:
            current = [self._current] if self._current else []
            return current + [description for description, _, _ in self._queue]

    def close(self) -> list[str]:
        """Stops retrying; returns what was never answered."""
        left = self.pending()
        with self._cond:
            self._closing.set()
            abandoned, self._queue = self._queue, []
            self._cond.notify()
        for _, _, future in abandoned:
            future.set_exception(GaveUp(None))
        self._thread.join(5)
        return left

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing.is_set():
                    self._cond.wait()
                if self._closing.is_set():
                    return
                description, call, future = self._queue.pop(0)
                self._current = description
            try:
                future.set_result(retrying(call, self.link, stop=self._closing))
            except BaseException as err:  # the caller decides what an error means
                future.set_exception(err)
            finally:
                with self._cond:
                    self._current = None
