"""The trial handle: what a training script holds while it trains one run of
one trial (`init()` makes it).

    log()          appends to the run's journal (journal.py) and returns; a
                   sender thread ships the points in batches (delivery.py)
    checkpoint()   goes through the journal too, in order with the points
    should_stop()  reads a flag that a watcher thread keeps up to date from
                   the trial's event stream (WatchTrialEvents; a GetTrial
                   poll every 0.5 s where the server has no stream)
    close()        sends what is left, within its timeout, then reports the
                   end of the run unless an agent does that

Nothing here blocks on the network except init() (the trial's
hyperparameters come from the server), report_state() and close().
"""

from __future__ import annotations

import atexit
import logging
import operator
import os
import re
import signal
import struct
import sys
import threading
import time
import uuid as uuid_module
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from trialplane.v1 import (
    checkpoint_pb2,
    checkpoint_service_pb2,
    trial_pb2,
    trial_service_pb2,
)

from . import environment
from .channel import TLS, RetryPolicy
from .client import Client
from .delivery import MAX_ROWS, Delivery, DeliveryStats, backoff
from .errors import (
    FailedPrecondition,
    NotFound,
    ResourceExhausted,
    TrialplaneError,
    Unimplemented,
)
from .journal import (
    DEFAULT_CAPACITY,
    MAX_VALUES,
    Journal,
    JournalBusy,
    JournalError,
    journal_name,
    names_blob,
    run_journals,
    server_directory,
)
from .values import enum_value, python_value

log = logging.getLogger("trialplane.client")

DEFAULT_CLOSE_TIMEOUT = 10.0
SEND_INTERVAL = 0.1
POLL_INTERVAL = 0.5
DROP_LOG_INTERVAL = 30.0
# close(): the state report after the sending, and the cleanup, fit in this
# much past the timeout (the promise is timeout + 1 s).
POST_DEADLINE = 0.5
# init() and state reports: a few quick tries, so a script hears of a server
# that is down within seconds.
HANDLE_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.2, max_backoff=1.0)
# The first reconnection attempt after the server went away comes sooner
# than gRPC's 1 s (the Client caps later ones at 5 s).
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 200),)

S = trial_pb2.TrialState
STOPPING = {S.TRIAL_STATE_STOPPING_CANCELED, S.TRIAL_STATE_STOPPING_KILLED, S.TRIAL_STATE_STOPPING_COMPLETED,
            S.TRIAL_STATE_STOPPING_ERROR}
TERMINAL = {S.TRIAL_STATE_CANCELED, S.TRIAL_STATE_COMPLETED, S.TRIAL_STATE_ERROR}
REPORTS_RUNNING_FROM = {S.TRIAL_STATE_QUEUED, S.TRIAL_STATE_ACTIVE, S.TRIAL_STATE_PULLING, S.TRIAL_STATE_STARTING,
                        S.TRIAL_STATE_RUNNING}
# How a run that did not fail ends from each stopping state.
CLEAN_END = {
    S.TRIAL_STATE_STOPPING_CANCELED: S.TRIAL_STATE_CANCELED,
    S.TRIAL_STATE_STOPPING_KILLED: S.TRIAL_STATE_CANCELED,
    S.TRIAL_STATE_STOPPING_COMPLETED: S.TRIAL_STATE_COMPLETED,
    S.TRIAL_STATE_STOPPING_ERROR: S.TRIAL_STATE_ERROR,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_GROUP, MAX_NAME = 128, 256


class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM while a Run is open (when the
    script had no SIGTERM handler of its own), so that the training unwinds
    and the run is closed - its points sent - before the process exits."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + signum)

    def __str__(self) -> str:
        return "terminated by SIGTERM"


def _on_sigterm(signum, frame) -> None:
    for run in list(_live_runs):
        run._terminated = True
    raise Terminated(signum)


def _state_name(state: int) -> str:
    try:
        return S.Name(state).removeprefix("TRIAL_STATE_")
    except ValueError:
        return str(state)


@dataclass(frozen=True)
class CloseResult:
    """What close() left behind: points_pending still on disk in journal
    (None when the journal was sent whole and deleted), points dropped
    because the journal was full, points the server refused for good, and
    the state reported (empty when none was)."""

    points_sent: int
    points_pending: int
    points_dropped: int
    points_refused: int
    journal: Path | None
    state_reported: str


class _Sender(threading.Thread):
    """Runs a Delivery: wakes every SEND_INTERVAL (or when log() has a full
    batch waiting), sends batch after batch until nothing is left, and
    waits out retry delays."""

    def __init__(self, delivery: Delivery, live: Journal):
        super().__init__(name="trialplane-sender", daemon=True)
        self.delivery = delivery
        self.live = live
        self.wake = threading.Event()
        self.urgent = threading.Event()
        self.stopping = False
        self.flushing = False
        self.dropped_logged = 0
        self._last_drop_log = 0.0

    def run(self) -> None:
        try:
            while not self.stopping:
                self.log_drops()
                outcome, delay = self.delivery.send()
                if outcome == "cancelled":
                    return
                if outcome == "sent":
                    self._sync()
                    continue
                if outcome == "idle":
                    self._sync()
                    self._close_drained()
                    if not self.flushing:
                        self.wake.wait(SEND_INTERVAL)
                        self.wake.clear()
                    else:
                        self.urgent.wait(0.02)
                    continue
                self.urgent.wait(min(delay, 0.25) if self.flushing else delay)
                self.urgent.clear()
        except Exception:
            if not self.stopping:
                log.exception("trialplane: the metrics sender stopped; what is left stays in %s", self.live.path)

    def log_drops(self, final: bool = False) -> None:
        """Says how many points the full journal dropped: at the first drop,
        then at most every DROP_LOG_INTERVAL, and at close."""
        dropped = self.delivery.dropped_points()
        now = time.monotonic()
        if dropped > self.dropped_logged and (final or not self.dropped_logged
                                              or now - self._last_drop_log >= DROP_LOG_INTERVAL):
            self.dropped_logged, self._last_drop_log = dropped, now
            log.warning("trialplane: the journal %s is full (%d bytes); %d of the oldest unsent points were dropped%s",
                        self.live.path, self.live.capacity, dropped, "" if final else " so far")

    def _sync(self) -> None:
        for journal in self.delivery.journals:
            if not journal.closed:
                journal.sync_to_disk()

    def _close_drained(self) -> None:
        for journal in self.delivery.journals:
            if journal is not self.live and not journal.closed and journal.pending_records == 0:
                journal.close()


class _StopWatcher(threading.Thread):
    """Keeps Run's stop flag and trial state up to date from the trial's
    events: a StopTrial, KillTrial or an early-stopping decision moves the
    trial to a STOPPING state; a restart moves it on to a newer run."""

    def __init__(self, run: Run, client: Client):
        super().__init__(name="trialplane-watcher", daemon=True)
        self._run = run
        self._client = client
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._stream: Any = None

    def stop(self) -> None:
        with self._lock:
            self._closed.set()
            if self._stream is not None:
                self._stream.close()

    def run(self) -> None:
        after = 0
        failures = 0
        request = trial_service_pb2.WatchTrialEventsRequest(trial_id=self._run.trial_id)
        while not self._closed.is_set() and not self._run._ended:
            try:
                with self._lock:
                    if self._closed.is_set():
                        return
                    request.after_sequence = after
                    self._stream = self._client.stubs.trials.WatchTrialEvents(request)
                for response in self._stream:
                    after = response.event.sequence
                    self._run._observe(response.event)
                    failures = 0
            except Unimplemented:
                self._poll()
                return
            except NotFound:
                self._run._request_stop(f"trial {self._run.trial_id} no longer exists")
                return
            except TrialplaneError as err:
                if isinstance(err, ResourceExhausted) and err.retry_delay is not None:
                    # A server limit: open the stream again after the delay it gave.
                    self._closed.wait(err.retry_delay)
                    continue
                failures += 1
            except Exception:
                if self._closed.is_set():
                    return
                log.exception("trialplane: watching trial %d failed", self._run.trial_id)
                failures += 1
            # The server ends the stream once the trial is terminal.
            self._closed.wait(backoff(failures, cap=1.0) if failures else 0.2)

    def _poll(self) -> None:
        while not self._closed.wait(POLL_INTERVAL):
            try:
                trial = self._client.trials.get(self._run.trial_id, fields=["state", "trial_run_id"])
            except NotFound:
                self._run._request_stop(f"trial {self._run.trial_id} no longer exists")
                return
            except TrialplaneError:
                continue
            self._run._observe_trial(trial)


class Run:
    """One run of one trial, as the training script sees it. Made by init().

    trial_id, run_id: what the points are reported as; hparams: the trial's
    hyperparameters as Python values; trial: the Trial as init() read it;
    journal_path: where unsent points wait. Use it as a context manager, or
    call close(); at interpreter exit it is closed for you.
    """

    def __init__(self, client: Client, trial: trial_pb2.Trial, run_id: int, journal: Journal,
                 leftovers: list[Journal], *, agent_managed: bool, close_timeout: float):
        self.trial = trial
        self.trial_id = trial.id
        self.run_id = run_id
        self.hparams: dict[str, Any] = {name: python_value(v) for name, v in trial.hyperparameters.items()}
        self.agent_managed = agent_managed
        self.close_timeout = close_timeout
        self.state = trial.state
        self.stop_reason = ""
        self._stop_requested = False
        self._ended = False
        self._closed = False
        self._forked = False
        self._terminated = False
        self._handles_sigterm = False
        self._result: CloseResult | None = None
        self._client = client
        self._journal = journal
        self._blobs: dict[tuple, bytes] = {}
        self._unsent = 0
        self._pid = os.getpid()
        self._close_lock = threading.Lock()
        self._delivery = Delivery(client.channel, [*leftovers, journal])
        self._sender = _Sender(self._delivery, journal)
        self._watcher = _StopWatcher(self, client)
        self._observe_trial(trial)

    @property
    def journal_path(self) -> Path:
        return self._journal.path

    @property
    def pending_points(self) -> int:
        """Points logged (or left by an earlier process) that the server has not settled yet."""
        return self._delivery.pending_points()

    @property
    def dropped_points(self) -> int:
        """Points dropped, oldest first, because the journal was full."""
        return self._delivery.dropped_points()

    @property
    def stats(self) -> DeliveryStats:
        return self._delivery.stats

    def _start(self, handle_sigterm: bool) -> None:
        if (handle_sigterm and threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            signal.signal(signal.SIGTERM, _on_sigterm)
            self._handles_sigterm = True
        if not self.agent_managed and self.state in REPORTS_RUNNING_FROM:
            try:
                self._report(S.TRIAL_STATE_RUNNING, timeout=None)
            except FailedPrecondition as err:
                log.warning("trialplane: trial %d could not be reported RUNNING: %s", self.trial_id, err)
        self._sender.start()
        self._watcher.start()
        atexit.register(self._at_exit)
        _live_runs.add(self)

    def _refuse(self) -> None:
        if self._forked:
            raise RuntimeError("a Run is used only by the process that made it, not by a forked child")
        raise RuntimeError(f"run {self.run_id} of trial {self.trial_id} is closed")

    # --- for the training loop

    def log(self, step: int, metrics: Mapping[str, float], group: str = "training") -> None:
        """Records metrics (name -> number) at step of group and returns at
        once; a background thread sends them. One call per step and group:
        a step reported twice with other values is kept as first stored.
        NaN and infinities are values like any other; an empty mapping
        records nothing."""
        if self._closed:
            self._refuse()
        if not metrics:
            return
        key = (group, *metrics)
        blob = self._blobs.get(key)
        if blob is None:
            blob = self._blob(group, metrics)
            self._blobs[key] = blob
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"step must not be negative (got {step})")
        try:
            self._journal.append_points(step, time.time_ns() // 1000, blob, metrics.values())
        except struct.error:
            self._raise_for_values(metrics)
            raise
        self._unsent += 1
        if self._unsent >= MAX_ROWS:
            self._unsent = 0
            self._sender.wake.set()

    def _blob(self, group: str, metrics: Mapping[str, float]) -> bytes:
        if not isinstance(group, str) or not group or len(group) > MAX_GROUP or _CONTROL.search(group):
            raise ValueError(f"a group is 1 to {MAX_GROUP} printable characters, not {group!r}")
        if len(metrics) > MAX_VALUES:
            raise ValueError(f"at most {MAX_VALUES} metrics per call (got {len(metrics)})")
        for name in metrics:
            if not isinstance(name, str) or not name or len(name) > MAX_NAME or _CONTROL.search(name):
                raise ValueError(f"a metric name is 1 to {MAX_NAME} printable characters, not {name!r}")
        if len(self._blobs) > 10_000:
            self._blobs.clear()
        return names_blob(group, metrics)

    @staticmethod
    def _raise_for_values(metrics: Mapping[str, Any]) -> None:
        for name, value in metrics.items():
            try:
                float(value)
            except (TypeError, ValueError):
                raise TypeError(f"metric {name!r} is {type(value).__name__}, not a number") from None

    def checkpoint(
        self,
        steps_completed: int,
        *,
        uuid: str | None = None,
        files: Mapping[str, int] | str | os.PathLike | None = None,
        storage_uri: str = "",
        metadata: Mapping[str, Any] | None = None,
        state: int | str = "completed",
    ) -> str:
        """Reports a checkpoint written at steps_completed and returns its
        uuid (a new one unless given). files maps paths to sizes in bytes, or
        names a file or directory whose files are listed with their sizes.
        Like log(), it returns at once: the report goes after the points
        logged before it."""
        if self._closed:
            self._refuse()
        checkpoint = checkpoint_pb2.Checkpoint(
            uuid=uuid or str(uuid_module.uuid4()), trial_id=self.trial_id, trial_run_id=self.run_id,
            state=enum_value(checkpoint_pb2.CheckpointState, "CHECKPOINT_STATE_", state),
            steps_completed=operator.index(steps_completed), storage_uri=storage_uri,
        )
        if files is not None:
            checkpoint.resources.update(files if isinstance(files, Mapping) else _file_sizes(Path(files)))
        if metadata is not None:
            checkpoint.metadata.update(dict(metadata))
        payload = checkpoint_service_pb2.ReportCheckpointRequest(checkpoint=checkpoint).SerializeToString()
        self._journal.append_checkpoint(checkpoint.steps_completed, payload)
        self._sender.wake.set()
        return checkpoint.uuid

    def should_stop(self) -> bool:
        """True once the trial was asked to stop (StopTrial, KillTrial, an
        early-stopping decision, a restart that started a newer run) or
        ended; seen within about a second. Reads a flag: no network call."""
        return self._stop_requested

    def report_state(
        self,
        state: int | str | None = None,
        *,
        runner_state: str = "",
        steps_completed: int = 0,
        message: str = "",
        failure_reason: str = "",
        details: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> trial_pb2.Trial:
        """Sends a ReportTrialState for this run and returns the trial. state
        defaults to the trial's current one, so report_state(runner_state=
        "evaluating", steps_completed=1200) only records progress. Raises
        like any Client call (Unavailable when the server is down)."""
        number = enum_value(S, "TRIAL_STATE_", state) if state is not None else self.state
        trial = self._report(number, runner_state=runner_state, steps_completed=steps_completed, message=message,
                             failure_reason=failure_reason, details=details, timeout=timeout)
        return trial

    def _report(self, state: int, *, timeout: float | None, details: Mapping[str, Any] | None = None,
                **fields: Any) -> trial_pb2.Trial:
        request = trial_service_pb2.ReportTrialStateRequest(id=self.trial_id, state=state, trial_run_id=self.run_id,
                                                            **fields)
        if details:
            request.details.CopyFrom(_struct(details))
        trial = self._client.stubs.trials.ReportTrialState(request, timeout=timeout)
        self._observe_trial(trial)
        return trial

    # --- what the watcher sees

    def _observe(self, event: trial_pb2.TrialEvent) -> None:
        new_run = event.details.fields.get("new_trial_run_id") if event.HasField("details") else None
        if event.trial_run_id > self.run_id or (new_run is not None and new_run.number_value > self.run_id):
            self._request_stop(f"trial {self.trial_id} moved on to a newer run")
            return
        if event.trial_run_id != self.run_id:
            return
        self.state = event.to_state
        if event.to_state in STOPPING or event.to_state in TERMINAL:
            self._ended = event.to_state in TERMINAL
            self._request_stop(event.message or _state_name(event.to_state))

    def _observe_trial(self, trial: trial_pb2.Trial) -> None:
        if trial.trial_run_id > self.run_id:
            self._request_stop(f"trial {self.trial_id} moved on to run {trial.trial_run_id}")
            return
        self.state = trial.state
        if trial.state in STOPPING or trial.state in TERMINAL:
            self._ended = trial.state in TERMINAL
            self._request_stop(_state_name(trial.state))

    def _request_stop(self, reason: str) -> None:
        if not self._stop_requested:
            self.stop_reason = reason
            self._stop_requested = True

    # --- the end

    def flush(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> bool:
        """Waits until everything logged so far is settled by the server, at
        most timeout seconds. True when it is."""
        deadline = time.monotonic() + timeout
        self._sender.wake.set()
        while not self._delivery.settled():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._sender.is_alive():
                return False
            self._sender.wake.set()
            time.sleep(min(0.01, remaining))
        return True

    def close(self, timeout: float | None = None, *, error: BaseException | None = None) -> CloseResult:
        """Sends what is left, for at most timeout seconds (default 10), and
        returns within timeout + 1 s whether the server answers or not.
        Unless an agent manages the trial, then reports the run COMPLETED
        (ERROR when error is given; CANCELED after a stop request). What
        could not be sent stays in the journal, which is named in a warning:
        `trialplane sync PATH`, or the next init() of this run, sends it, and
        reports the state this run ended in."""
        with self._close_lock:
            if self._result is not None:
                return self._result
            timeout = self.close_timeout if timeout is None else timeout
            deadline = time.monotonic() + max(timeout, 0.0)
            self._closed = True
            atexit.unregister(self._at_exit)
            sender = self._sender
            sender.flushing = True
            sender.urgent.set()
            sender.wake.set()
            while not self._delivery.settled() and sender.is_alive():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                time.sleep(min(0.01, remaining))
            self._watcher.stop()
            sender.stopping = True
            self._delivery.cancel()
            sender.urgent.set()
            sender.wake.set()
            sender.join(0.3)
            sender.log_drops(final=True)
            settled = self._delivery.settled()
            # What follows the sending gets at most POST_DEADLINE past the deadline.
            reported = self._report_end(error, settled, deadline + POST_DEADLINE)
            leftovers = [j for j in self._delivery.journals if not j.closed]
            pending = self._delivery.pending_points()
            kept = None
            for journal in leftovers:
                deleted = journal.close()
                if not deleted and journal is self._journal:
                    kept = journal.path
            if kept is not None:
                what = f"{pending} points" if pending else "the trial's final state"
                log.warning("trialplane: %s of trial %d run %d could not be sent within %g s and are kept in %s; "
                            "`trialplane sync %s` sends them", what, self.trial_id, self.run_id, timeout, kept, kept)
            self._watcher.join(0.1)
            self._client.close()
            if (self._handles_sigterm and threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGTERM) is _on_sigterm):
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            stats = self._delivery.stats
            self._result = CloseResult(stats.points_sent, pending, self._delivery.dropped_points(),
                                       stats.points_refused, kept, reported)
            return self._result

    def _end_state(self, error: BaseException | None) -> int | None:
        if self.state in TERMINAL:
            return None
        if isinstance(error, Terminated) and self._stop_requested:
            # The stop's own SIGTERM (an agent's, or a user's after StopTrial).
            error = None
        if error is not None:
            return S.TRIAL_STATE_ERROR
        return CLEAN_END.get(self.state, S.TRIAL_STATE_COMPLETED)

    def _report_end(self, error: BaseException | None, settled: bool, deadline: float) -> str:
        if self.agent_managed:
            return ""
        if isinstance(error, Terminated) and not self._stop_requested and settled:
            # The SIGTERM may have come right after a stop the watcher has not seen yet.
            try:
                request = trial_service_pb2.GetTrialRequest(id=self.trial_id)
                request.read_mask.paths.extend(["state", "trial_run_id"])
                self._observe_trial(self._client.stubs.trials.GetTrial(
                    request, timeout=max(deadline - time.monotonic(), 0.05)))
            except TrialplaneError:
                pass
        state = self._end_state(error)
        if state is None:
            return ""
        # As the server takes it: short, and no NUL (which it refuses).
        reason = f"{type(error).__name__}: {error}"[:500].replace("\x00", "\ufffd") if error is not None else ""
        if not settled:
            self._journal.set_final_state(state, reason)
            return ""
        try:
            self._report(state, failure_reason=reason, timeout=max(deadline - time.monotonic(), 0.05))
        except FailedPrecondition as err:
            log.warning("trialplane: trial %d could not be reported %s: %s", self.trial_id, _state_name(state), err)
            return ""
        except TrialplaneError as err:
            log.warning("trialplane: trial %d could not be reported %s now (%s); the journal keeps the state for "
                        "`trialplane sync`", self.trial_id, _state_name(state), err)
            self._journal.set_final_state(state, reason)
            return ""
        return _state_name(state)

    def _at_exit(self) -> None:
        if os.getpid() != self._pid or self._forked:
            return
        error = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        if error is None and self._terminated:
            error = Terminated()
        try:
            self.close(error=error if isinstance(error, BaseException) else None)
        except Exception:
            log.exception("trialplane: closing run %d of trial %d at exit failed", self.run_id, self.trial_id)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            exc = None
        self.close(error=exc)

    def __repr__(self) -> str:
        return f"Run(trial_id={self.trial_id}, run_id={self.run_id})"


# A forked child shares the parent's journal mapping but not its lock or
# threads: its copies of the parent's runs refuse to log.
_live_runs: weakref.WeakSet[Run] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for run in list(_live_runs):
        run._forked = True
        run._closed = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(dict(values))
    return out


def _file_sizes(path: Path) -> dict[str, int]:
    if path.is_file():
        return {path.name: path.stat().st_size}
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def _open_journals(directory: Path, trial_id: int, run_id: int, address: str, capacity: int,
                   soft_size: int | None) -> tuple[Journal, list[Journal]]:
    """The journal this process appends to, and the leftovers of earlier
    processes of the same run to send first. The first journal file not
    held by a live process is taken over; the others not held are drained."""
    live: Journal | None = None
    leftovers: list[Journal] = []
    used = set()
    for path in run_journals(directory, trial_id, run_id):
        used.add(path.name)
        try:
            journal = Journal.open(path, trial_id=trial_id, trial_run_id=run_id, address=address,
                                   capacity=capacity, soft_size=soft_size, create=False)
        except JournalBusy:
            continue
        except JournalError as err:
            log.warning("trialplane: %s is left alone: %s", path, err)
            continue
        _report_recovery(journal)
        if live is None:
            live = journal
            if journal.final_state:
                journal.set_final_state(0)
        else:
            leftovers.append(journal)
    if live is None:
        index = 1
        while True:
            name = journal_name(trial_id, run_id, index)
            if name not in used:
                try:
                    live = Journal.open(directory / name, trial_id=trial_id, trial_run_id=run_id, address=address,
                                        capacity=capacity, soft_size=soft_size)
                    break
                except JournalBusy:
                    pass
            index += 1
    return live, leftovers


def _report_recovery(journal: Journal) -> None:
    found = journal.recovery
    if found.cut_at is not None:
        log.warning("trialplane: %s ended in a torn record at offset %d (the process was killed while writing "
                    "it); it was cut and the %d points before it are kept", journal.path, found.cut_at, found.points)
    if found.records:
        log.info("trialplane: sending %d points an earlier process left in %s", found.points, journal.path)


def init(
    trial_id: int | None = None,
    *,
    address: str | None = None,
    token: str | None = None,
    tls: bool | str | Path | TLS | None = None,
    trial_run_id: int | None = None,
    journal_dir: str | os.PathLike | None = None,
    journal_capacity: int = DEFAULT_CAPACITY,
    agent: bool | None = None,
    close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
    handle_sigterm: bool = True,
    _journal_soft_size: int | None = None,
) -> Run:
    """Starts reporting one run of a trial and returns its Run.

    Everything left out comes from the environment an agent sets
    (environment.py): the trial ($TRIALPLANE_TRIAL_ID), the run
    ($TRIALPLANE_TRIAL_RUN_ID, else the trial's current run), the server
    ($TRIALPLANE_ADDRESS, $TRIALPLANE_TOKEN), the journal directory
    ($TRIALPLANE_JOURNAL_DIR, else ~/.cache/trialplane/journals) and whether
    an agent reports the trial's state ($TRIALPLANE_AGENT=1). Without an
    agent, init() reports the trial RUNNING and close() reports how it ended.

    journal_capacity: bytes of points kept on disk while the server cannot
    take them (1 GiB); past it the oldest are dropped. close_timeout: how
    long close() (and the exit handler) sends what is left. handle_sigterm:
    when the script has no SIGTERM handler, SIGTERM (how an agent stops a
    training) raises Terminated, a SystemExit with status 143, in the main
    thread, so the run is closed and its points sent before the exit.

    Reads the trial from the server, so it raises NotFound for an unknown
    trial and Unavailable when the server cannot be reached. Points an
    earlier process of the same run left unsent are sent first.
    """
    if trial_id is None:
        trial_id = environment.trial_id()
    if trial_id is None:
        raise ValueError(f"no trial to report to: pass trial_id or set ${environment.TRIAL_ID}")
    client = Client(address, token=token, tls=tls, retry=HANDLE_RETRY, channel_options=CHANNEL_OPTIONS)
    try:
        trial = client.trials.get(trial_id)
        run_id = trial_run_id or environment.trial_run_id() or trial.trial_run_id
        directory = server_directory(environment.journal_dir(journal_dir), client.address)
        journal, leftovers = _open_journals(directory, trial_id, run_id, client.address, journal_capacity,
                                            _journal_soft_size)
        managed = environment.agent_managed() if agent is None else agent
        run = Run(client, trial, run_id, journal, leftovers, agent_managed=managed, close_timeout=close_timeout)
    except BaseException:
        client.close()
        raise
    try:
        run._start(handle_sigterm)
    except BaseException:
        # Nothing was reported, so nothing is to be reported as ended.
        run.agent_managed = True
        run.close(timeout=0)
        raise
    return run
