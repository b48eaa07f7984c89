"""What the agent knows of its trial's state, kept current from the server.

TrialView holds the latest state, run id and (while stopping) grace period,
from three sources: WatchTrialEvents, a GetTrial poll while that stream is
down or not offered, and the answers to the agent's own reports. Each is
stamped with the server's time of the change, and an older one never
overwrites a newer one, whichever arrives first.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import grpc
from trialplane.v1 import trial_pb2, trial_service_pb2

from ..sdk import Client, TrialplaneError
from .calls import Backoff, Link, is_transient

log = logging.getLogger("trialplane.agent")

S = trial_pb2
TERMINAL = frozenset({S.TRIAL_STATE_CANCELED, S.TRIAL_STATE_COMPLETED, S.TRIAL_STATE_ERROR})
STOPPING = frozenset({
    S.TRIAL_STATE_STOPPING_CANCELED, S.TRIAL_STATE_STOPPING_KILLED, S.TRIAL_STATE_STOPPING_COMPLETED,
    S.TRIAL_STATE_STOPPING_ERROR,
})
# The order of an active trial's states; a report may only move forward.
ACTIVE_ORDER = {
    S.TRIAL_STATE_QUEUED: 0, S.TRIAL_STATE_ACTIVE: 0, S.TRIAL_STATE_PULLING: 1, S.TRIAL_STATE_STARTING: 2,
    S.TRIAL_STATE_RUNNING: 3,
}


def state_name(state: int) -> str:
    return trial_pb2.TrialState.Name(state).removeprefix("TRIAL_STATE_")


@dataclass(frozen=True)
class Snapshot:
    state: int
    run_id: int
    # Seconds the training process has to exit after SIGTERM, while
    # STOPPING_CANCELED; None when the trial is in another state.
    grace_seconds: float | None
    # Server time of the change this reflects, in microseconds.
    time_us: int
    gone: bool = False


def _us(ts) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


class TrialView:
    def __init__(self, trial: trial_pb2.Trial, wake: threading.Event):
        self._wake = wake
        self._lock = threading.Lock()
        self._snapshot = Snapshot(trial.state, trial.trial_run_id, None, 0)
        self.apply_trial(trial)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def _set(self, new: Snapshot) -> None:
        with self._lock:
            old = self._snapshot
            if new.time_us < old.time_us or new.run_id < old.run_id:
                return
            if (new.state, new.run_id, new.grace_seconds) == (old.state, old.run_id, old.grace_seconds):
                self._snapshot = new
                return
            self._snapshot = new
        self._wake.set()

    def apply_trial(self, trial: trial_pb2.Trial) -> None:
        grace = None
        if trial.state == S.TRIAL_STATE_STOPPING_CANCELED and trial.HasField("stop_deadline"):
            grace = max(0.0, _us(trial.stop_deadline) / 1e6 - time.time())
        self._set(Snapshot(trial.state, trial.trial_run_id, grace, _us(trial.update_time)))

    def apply_event(self, event: trial_pb2.TrialEvent) -> None:
        details = event.details.fields if event.HasField("details") else {}
        run_id = event.trial_run_id
        if "new_trial_run_id" in details:
            run_id = int(details["new_trial_run_id"].number_value)
        grace = None
        if event.to_state == S.TRIAL_STATE_STOPPING_CANCELED:
            grace = details["grace_period_seconds"].number_value if "grace_period_seconds" in details else None
        self._set(Snapshot(event.to_state, run_id, grace, _us(event.time)))

    def mark_gone(self) -> None:
        with self._lock:
            self._snapshot = Snapshot(self._snapshot.state, self._snapshot.run_id, None, self._snapshot.time_us, gone=True)
        self._wake.set()


class TrialWatcher:
    """Follows the trial's events into a TrialView from a thread, until the
    trial ends or close(). When the stream breaks it polls GetTrial every
    poll_interval seconds and opens the stream again, from the last event
    it saw."""

    def __init__(self, client: Client, link: Link, trial_id: int, view: TrialView, after_sequence: int,
                 poll_interval: float = 2.0):
        self.client, self.link, self.trial_id, self.view = client, link, trial_id, view
        self.after_sequence = after_sequence
        self.poll_interval = poll_interval
        self._closed = threading.Event()
        self._stream = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="trialplane-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        self._thread.join(5)

    def _follow(self) -> bool:
        """Streams events until the server ends the stream; True when the
        trial ended (nothing more will come)."""
        request = trial_service_pb2.WatchTrialEventsRequest(trial_id=self.trial_id, after_sequence=self.after_sequence)
        stream = self.client.stubs.trials.WatchTrialEvents(request)
        with self._lock:
            if self._closed.is_set():
                stream.close()
                return True
            self._stream = stream
        try:
            for response in stream:
                self.link.ok()
                self.after_sequence = response.event.sequence
                self.view.apply_event(response.event)
        finally:
            with self._lock:
                self._stream = None
        return self.view.snapshot().state in TERMINAL or self._closed.is_set()

    def _poll(self) -> None:
        trial = self.client.stubs.trials.GetTrial(trial_service_pb2.GetTrialRequest(id=self.trial_id))
        self.link.ok()
        self.view.apply_trial(trial)

    def _run(self) -> None:
        backoff = Backoff(initial=self.poll_interval / 4, maximum=self.poll_interval)
        streaming = True
        while not self._closed.is_set():
            try:
                if streaming:
                    if self._follow():
                        return
                    backoff.reset()
                    continue
                self._poll()
                if self.view.snapshot().state in TERMINAL:
                    return
            except TrialplaneError as err:
                if self._closed.is_set():
                    return
                if err.code == grpc.StatusCode.NOT_FOUND:
                    log.error("trial %d no longer exists", self.trial_id)
                    self.view.mark_gone()
                    return
                if err.code == grpc.StatusCode.UNIMPLEMENTED and streaming:
                    log.info("the server does not stream trial events; polling every %g s", self.poll_interval)
                    streaming = False
                    continue
                if err.retry_delay is not None and err.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    # A server limit (a stream's lifetime, streams per caller): not an outage.
                    self._closed.wait(err.retry_delay)
                    continue
                if is_transient(err):
                    self.link.failed(err)
                else:
                    log.warning("watching trial %d: %s", self.trial_id, err)
                try:
                    self._poll()
                except TrialplaneError:
                    pass
            self._closed.wait(backoff.next() if streaming else self.poll_interval)
