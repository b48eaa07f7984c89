"""The agent: runs one trial's training and reports it to the server.

Wrap mode runs the command as a child, once per trial run: the server may
start a new run after a failure (the trial's retry strategy) or on
RestartTrial, and the agent runs the command again under the new run id.
Sidecar mode follows a training that runs elsewhere through its log file
and its process id or exit marker.

Nothing here waits on the server while the training runs. State reports go
through the Reporter (one thread, in order, retried), log lines through the
LogShipper, heartbeats through their own thread; the main thread only
supervises the child and reacts to what the TrialWatcher learns (stop, kill,
pause, a new run). When the training ends, the agent gives the remaining log
lines and the final state final_timeout seconds together to reach the
server, logs what did not, and exits with the training's exit status.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import socket
import threading
import time
import uuid
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import struct_pb2
from trialplane.v1 import (
    errors_pb2,
    trial_pb2,
    trial_service_pb2,
    worker_pb2,
    worker_service_pb2,
)

from ..sdk import (
    TLS,
    Client,
    FailedPrecondition,
    NotFound,
    RetryPolicy,
    TrialplaneError,
)
from ..sdk.environment import journal_dir
from ..sdk.sync import sync_journals
from . import environment
from .calls import GaveUp, Link, Reporter, is_transient, retrying
from .child import Child, describe_status, exit_status
from .follow import FileFollower, TrainingEnd
from .lines import level_of
from .outcome import Ending, final_state, last_lines, reportable, worker_state
from .secrets import Redactor, secret_values
from .shipper import DEFAULT_MAX_QUEUED, LogShipper
from .system import DEFAULT_INTERVAL, SystemMetrics
from .watch import ACTIVE_ORDER, STOPPING, TERMINAL, TrialView, TrialWatcher, state_name

log = logging.getLogger("trialplane.agent")

S = trial_pb2
W = worker_pb2

# The agent's own exit status when it could not run the training at all
# (server unreachable at start, unknown or finished trial), and the shell's
# for a command that cannot be executed or found.
EXIT_AGENT_FAILED = 125
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127

CALL_TIMEOUT = 10.0
TAIL_LINES = 20


@dataclass
class Options:
    trial_id: int
    command: list[str] = field(default_factory=list)
    address: str | None = None
    token: str | None = None
    # None: TLS from the environment (plaintext when it names none).
    tls: TLS | None = None
    rank: int | None = None
    journal_dir: str | None = None
    # Sidecar mode: the log file to follow, and what says the training ended.
    follow_log: Path | None = None
    pid: int | None = None
    exit_marker: Path | None = None
    stream: str = "stdout"
    heartbeat_interval: float = 30.0
    # Seconds between SIGTERM and SIGKILL when the agent stops the training
    # for a reason other than StopTrial (which carries its own grace period).
    grace: float = 30.0
    final_timeout: float = 30.0
    connect_timeout: float = 60.0
    max_queued_lines: int = DEFAULT_MAX_QUEUED
    poll_interval: float = 2.0
    # Seconds between readings of the child's process tree and the GPUs; 0: none.
    system_metrics_interval: float = DEFAULT_INTERVAL

    @property
    def sidecar(self) -> bool:
        return self.follow_log is not None


@dataclass
class _Supervision:
    """Why the agent ended a run before the training ended it by itself."""

    why: str = ""  # stopped | superseded | paused | ended | interrupted
    kill_at: float | None = None
    terminated: bool = False
    killed: bool = False


class _Worker:
    """The agent's worker record in one trial run."""

    def __init__(self, agent: Agent, run_id: int, kind: str):
        self.agent, self.run_id = agent, run_id
        self.id: int | None = None
        request = worker_service_pb2.RegisterWorkerRequest(
            worker=W.Worker(trial_id=agent.options.trial_id, type=kind, rank=agent.rank),
            request_id=uuid.uuid4().hex,
        )

        def call():
            worker = agent.client.stubs.workers.RegisterWorker(request)
            self.id = worker.id
            agent.heartbeat_worker = worker.id
            return worker

        agent.submit(f"registration of worker rank {agent.rank} in run {run_id}", call)

    def report(self, state: int, message: str = "") -> Future:
        def call():
            if self.id is None:
                return None
            request = worker_service_pb2.ReportWorkerStateRequest(id=self.id, state=state, message=message)
            worker = self.agent.client.stubs.workers.ReportWorkerState(request)
            if state != W.WORKER_STATE_RUNNING and self.agent.heartbeat_worker == self.id:
                self.agent.heartbeat_worker = None
            return worker

        name = W.WorkerState.Name(state).removeprefix("WORKER_STATE_")
        return self.agent.submit(f"worker state {name} in run {self.run_id}", call)


class Agent:
    def __init__(self, options: Options):
        self.options = options
        self.rank = options.rank if options.rank is not None else environment.rank_from()
        self.worker_name = socket.gethostname()
        self.client = Client(
            options.address, token=options.token, tls=options.tls, timeout=CALL_TIMEOUT,
            retry=RetryPolicy(max_attempts=2, initial_backoff=0.2, max_backoff=1.0),
        )
        self.redact = Redactor([self.client.token or "", *secret_values(os.environ)])
        self.link = Link(self.client.address)
        self.wake = threading.Event()
        self.signals: list[int] = []
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.reporter = Reporter(self.link)
        self.shipper = LogShipper(self.client, self.link, options.trial_id, rank=self.rank, worker=self.worker_name,
                                  max_queued=options.max_queued_lines)
        self.system = SystemMetrics(self.client, self.link, options.trial_id, f"{self.worker_name}/{self.rank}",
                                    interval=options.system_metrics_interval if not options.sidecar else 0)
        self.heartbeat_worker: int | None = None
        self._closing = threading.Event()
        self.view: TrialView | None = None
        self.watcher: TrialWatcher | None = None
        self.trial_environment: dict[str, str] = {}
        self._said_no_pid = False
        # Whether the server asks for tokens; learnt before the first run.
        self._auth_enabled: bool | None = None

    # --- the two modes -----------------------------------------------------

    def run(self) -> int:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        heartbeat = threading.Thread(target=self._heartbeats, name="trialplane-heartbeat", daemon=True)
        try:
            trial = self._connect()
            if trial is None:
                return EXIT_AGENT_FAILED
            heartbeat.start()
            return self._follow_sidecar() if self.options.sidecar else self._wrap()
        finally:
            self._closing.set()
            if heartbeat.is_alive():
                heartbeat.join(2.0)
            if self.watcher is not None:
                self.watcher.close()
            lines = self.shipper.close()
            samples = self.system.close()
            unanswered = self.reporter.close()
            if lines or samples or unanswered:
                what = [f"{lines} log lines"] if lines else []
                what += [f"{samples} system samples"] if samples else []
                log.error("not delivered to %s: %s", self.client.address, "; ".join(what + unanswered))
            if self.shipper.dropped:
                log.warning("%d log lines were dropped while the server was unreachable", self.shipper.dropped)
            self.client.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _wrap(self) -> int:
        assert self.view is not None
        code: int | None = None
        said_paused = False
        while not self.signals:
            snap = self.view.snapshot()
            if snap.gone:
                break
            if snap.state in TERMINAL:
                if code is None:
                    log.error("trial %d is %s; nothing to run", self.options.trial_id, state_name(snap.state))
                break
            if snap.state == S.TRIAL_STATE_PAUSED:
                if not said_paused:
                    log.info("trial %d is paused; waiting for it to be activated", self.options.trial_id)
                    said_paused = True
                self.wake.wait(1.0)
                self.wake.clear()
                continue
            said_paused = False
            if snap.state in STOPPING:
                # Asked to stop before this agent ran the run: only say so.
                self._end_run(snap.run_id, Ending(0, description="stopped before the agent ran it"), None)
                break
            code, again = self._run_once(snap.run_id)
            if not again:
                break
        return code if code is not None else EXIT_AGENT_FAILED

    def _run_once(self, run_id: int) -> tuple[int, bool]:
        """Runs the command once under run_id: its exit status, and whether
        the loop should look at the trial again (a new run, a pause)."""
        assert self.view is not None
        o = self.options
        worker = _Worker(self, run_id, "worker")
        self._report_progress(run_id)
        env = environment.child_environment(
            os.environ, address=self.client.address, token=self._run_token(run_id), tls=self.client.tls,
            trial_id=o.trial_id, trial_run_id=run_id, journal_dir=o.journal_dir,
            trial_environment=self.trial_environment,
        )
        child = Child(o.command, env, self._on_line, self.wake)
        try:
            child.start()
        except OSError as err:
            code = EXIT_NOT_FOUND if isinstance(err, FileNotFoundError) else EXIT_CANNOT_EXECUTE
            description = f"cannot run {o.command[0]}: {err.strerror or err}"
            log.error("%s", description)
            ending = Ending(code, description=description)
            trial = self._end_run(run_id, ending, worker)
            return code, self._new_run(trial, run_id)
        shown = shlex.join(o.command)
        shown = shown if len(shown) <= 200 else shown[:197] + "..."
        log.info("trial %d run %d: running %s (pid %d)", o.trial_id, run_id, shown, child.pid)
        self.system.watch(child.pid)
        self._report(S.TRIAL_STATE_RUNNING, run_id)
        worker.report(W.WORKER_STATE_RUNNING)
        sup = self._supervise(child, run_id)
        returncode = child.finish()
        self.system.unwatch()
        code = exit_status(returncode)
        for _, text in child.pending_text():
            self.tail.append(text)
        description = describe_status(returncode)
        log.info("trial %d run %d: %s", o.trial_id, run_id, description)
        signal_name = description.removeprefix("killed by ") if returncode < 0 else ""
        ending = Ending(
            None if returncode < 0 else returncode, signal_name=signal_name, interrupted=sup.why == "interrupted",
            stopped=bool(sup.why), last_lines=last_lines(self.tail), description=description,
        )
        self.tail.clear()
        if sup.why in ("superseded", "paused", "ended"):
            # The trial moved on without this run: no state to report for it.
            self._flush_logs(time.monotonic() + o.final_timeout / 2)
            worker.report(W.WORKER_STATE_KILLED, f"{description} ({sup.why})")
            return code, sup.why != "ended"
        trial = self._end_run(run_id, ending, worker)
        return code, sup.why != "interrupted" and (self._new_run(trial, run_id) or self._moved_on(run_id))

    def _follow_sidecar(self) -> int:
        assert self.view is not None and self.options.follow_log is not None
        o = self.options
        snap = self.view.snapshot()
        if snap.state in TERMINAL:
            log.error("trial %d is %s; nothing to follow", o.trial_id, state_name(snap.state))
            return EXIT_AGENT_FAILED
        run_id = snap.run_id
        worker = _Worker(self, run_id, "sidecar")
        self._report_progress(run_id)
        self._report(S.TRIAL_STATE_RUNNING, run_id)
        worker.report(W.WORKER_STATE_RUNNING)
        follower = FileFollower(self.options.follow_log, lambda text: self._on_line(o.stream, text))
        end = TrainingEnd(o.pid, o.exit_marker)
        log.info("trial %d run %d: following %s", o.trial_id, run_id, o.follow_log)
        sup = _Supervision()
        ended = None
        while True:
            ended = end.ended()
            if ended is not None:
                break
            self.wake.wait(0.2)
            self.wake.clear()
            if self.signals:
                sup.why = "interrupted"
                break
            snap = self.view.snapshot()
            if snap.gone or snap.run_id > run_id or snap.state in TERMINAL:
                sup.why = "ended"
                break
            self._steer(sup, snap, lambda sig: self._signal_pid(o.pid, sig))
            if sup.kill_at is not None and time.monotonic() >= sup.kill_at:
                self._kill(sup, lambda sig: self._signal_pid(o.pid, sig), "the grace period ran out")
        follower.close()
        if follower.pending_text():
            self.tail.append(follower.pending_text())
        if ended is None:
            self._flush_logs(time.monotonic() + o.final_timeout / 2)
            worker.report(W.WORKER_STATE_KILLED, f"the sidecar stopped following ({sup.why})")
            self._wait_answered(time.monotonic() + o.final_timeout / 2)
            return 128 + self.signals[0] if self.signals else 0
        if ended.exit_code is None:
            description = f"process {o.pid} exited" if o.pid else "the exit marker is empty"
            description += "; its exit status is not known"
        else:
            description = f"exit code {ended.exit_code}"
            if ended.text and not ended.text.lstrip("-").isdigit():
                description += f" ({ended.text})"
        log.info("trial %d run %d: %s", o.trial_id, run_id, description)
        ending = Ending(ended.exit_code, stopped=bool(sup.why), last_lines=last_lines(self.tail), description=description)
        self._end_run(run_id, ending, worker)
        return ended.exit_code if ended.exit_code is not None else 0

    # --- supervision -------------------------------------------------------

    def _supervise(self, child: Child, run_id: int) -> _Supervision:
        """Waits for the child to exit, stopping it when the trial or the
        agent's own signals say so."""
        assert self.view is not None
        sup = _Supervision()
        handled_signals = 0
        while not child.exited.is_set():
            timeout = 0.5 if sup.kill_at is None else max(0.0, min(0.5, sup.kill_at - time.monotonic()))
            self.wake.wait(timeout)
            self.wake.clear()
            if child.exited.is_set():
                break
            if len(self.signals) > handled_signals:
                handled_signals = len(self.signals)
                if handled_signals == 1:
                    sup.why = sup.why or "interrupted"
                    sig = self.signals[0]
                    log.info("passing %s on to the training; SIGKILL in %g s", signal.Signals(sig).name, self.options.grace)
                    child.signal(sig)
                    sup.terminated = True
                    sup.kill_at = time.monotonic() + self.options.grace
                else:
                    self._kill(sup, child.signal, "a second signal")
            snap = self.view.snapshot()
            if snap.gone:
                self._terminate(sup, child.signal, "ended", self.options.grace, "the trial was deleted")
            elif snap.run_id > run_id:
                self._terminate(sup, child.signal, "superseded", self.options.grace,
                                f"the trial moved on to run {snap.run_id}")
            else:
                self._steer(sup, snap, child.signal)
            if sup.kill_at is not None and time.monotonic() >= sup.kill_at:
                self._kill(sup, child.signal, "the grace period ran out")
        return sup

    def _steer(self, sup: _Supervision, snap, send) -> None:
        """Acts on the trial's state while the training runs."""
        state = snap.state
        if state == S.TRIAL_STATE_STOPPING_CANCELED:
            grace = snap.grace_seconds if snap.grace_seconds is not None else self.options.grace
            self._terminate(sup, send, "stopped", grace, "the trial is asked to stop")
        elif state == S.TRIAL_STATE_STOPPING_KILLED:
            sup.why = sup.why or "stopped"
            self._kill(sup, send, "the trial is killed")
        elif state == S.TRIAL_STATE_PAUSED:
            self._terminate(sup, send, "paused", self.options.grace, "the trial is paused")
        elif state in TERMINAL:
            self._terminate(sup, send, "ended", self.options.grace, f"the trial is {state_name(state)}")

    def _terminate(self, sup: _Supervision, send, why: str, grace: float, because: str) -> None:
        sup.why = sup.why or why
        deadline = time.monotonic() + grace
        if not sup.terminated:
            log.info("%s: SIGTERM to the training, SIGKILL in %g s", because, grace)
            send(signal.SIGTERM)
            sup.terminated = True
            sup.kill_at = deadline
        elif sup.kill_at is None or deadline < sup.kill_at:
            sup.kill_at = deadline

    def _kill(self, sup: _Supervision, send, because: str) -> None:
        if sup.killed:
            return
        log.info("%s: SIGKILL to the training", because)
        send(signal.SIGKILL)
        sup.killed = True
        sup.kill_at = None

    def _signal_pid(self, pid: int | None, sig: int) -> None:
        if pid is None:
            if not self._said_no_pid:
                log.warning("the training cannot be signalled: no --pid was given")
                self._said_no_pid = True
            return
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError) as err:
            log.warning("cannot signal process %d: %s", pid, err)

    def _on_signal(self, signum, frame) -> None:
        self.signals.append(signum)
        self.wake.set()

    # --- talking to the server ---------------------------------------------

    def _connect(self) -> trial_pb2.Trial | None:
        """The trial as it is now, with the watcher started after its last
        event; None (logged) when there is nothing to run."""
        o = self.options
        deadline = time.monotonic() + o.connect_timeout
        stubs = self.client.stubs
        try:
            events = retrying(lambda: stubs.trials.ListTrialEvents(trial_service_pb2.ListTrialEventsRequest(
                trial_id=o.trial_id, descending=True, page_size=1)), self.link, deadline=deadline)
            trial = retrying(lambda: stubs.trials.GetTrial(trial_service_pb2.GetTrialRequest(id=o.trial_id)),
                             self.link, deadline=deadline)
        except GaveUp as err:
            log.error("cannot reach the server at %s within %g s: %s", self.client.address, o.connect_timeout, err)
            return None
        except NotFound:
            log.error("trial %d not found at %s", o.trial_id, self.client.address)
            return None
        except TrialplaneError as err:
            log.error("cannot read trial %d: %s", o.trial_id, err)
            return None
        self.trial_environment = dict(trial.environment)
        self.redact.add(*secret_values(self.trial_environment))
        self.view = TrialView(trial, self.wake)
        after = events.events[0].sequence if events.events else 0
        self.watcher = TrialWatcher(self.client, self.link, o.trial_id, self.view, after, o.poll_interval)
        return trial

    def _run_token(self, run_id: int) -> str | None:
        """A trial-run token for the child: it reports this run of this trial
        and nothing else. None when the agent has no token (auth is off);
        the agent's own token, with a warning, when none can be made."""
        token = self.client.token
        if not token:
            return None
        tokens = self.client.tokens
        deadline = time.monotonic() + self.options.connect_timeout
        try:
            if self._auth_enabled is None:
                self._auth_enabled = retrying(tokens.whoami, self.link, deadline=deadline).auth_enabled
            if not self._auth_enabled:
                return token
            made = retrying(lambda: tokens.create_for_run(self.options.trial_id, run_id), self.link,
                            deadline=deadline)
        except (GaveUp, TrialplaneError) as err:
            log.warning("no trial-run token for run %d (%s); the command gets the agent's token", run_id, err)
            return token
        self.redact.add(made.secret)
        return made.secret

    def submit(self, description: str, call) -> Future:
        future = self.reporter.submit(description, call)
        future.add_done_callback(lambda f: self._log_refusal(description, f))
        return future

    @staticmethod
    def _log_refusal(description: str, future: Future) -> None:
        err = future.exception()
        if isinstance(err, FailedPrecondition) and err.reason in ("ILLEGAL_TRANSITION", "STALE_TRIAL_RUN"):
            log.debug("%s refused: %s", description, err)
        elif isinstance(err, TrialplaneError):
            log.warning("%s refused: %s", description, err)

    def _report(self, state: int, run_id: int, ending: Ending | None = None) -> Future:
        o = self.options
        request = trial_service_pb2.ReportTrialStateRequest(
            id=o.trial_id, state=state, trial_run_id=run_id, request_id=uuid.uuid4().hex,
        )
        if ending is not None:
            request.message = reportable(ending.description)
            if state == S.TRIAL_STATE_ERROR:
                request.failure_reason = ending.failure_reason()
            details = struct_pb2.Struct()
            details.update(ending.details())
            request.details.CopyFrom(details)

        def call():
            trial = self.client.stubs.trials.ReportTrialState(request)
            if self.view is not None:
                self.view.apply_trial(trial)
            return trial

        return self.submit(f"{state_name(state)} of trial {o.trial_id} run {run_id}", call)

    def _report_progress(self, run_id: int) -> None:
        """STARTING, unless the trial is past it already (an agent started
        again in the same run)."""
        assert self.view is not None
        if ACTIVE_ORDER.get(self.view.snapshot().state, 99) < ACTIVE_ORDER[S.TRIAL_STATE_STARTING]:
            self._report(S.TRIAL_STATE_STARTING, run_id)

    def _send_leftover_points(self, run_id: int, deadline: float) -> None:
        """Points the training left in its journal (killed before it sent
        them) go before the end of the run is reported: a trial that has
        ended takes no more."""
        directory = journal_dir(self.options.journal_dir)
        if not directory.exists():
            return
        try:
            results = sync_journals(directory, address=self.client.address, token=self.options.token, tls=self.client.tls or False,
                                    trial_id=self.options.trial_id, trial_run_id=run_id,
                                    timeout=max(1.0, (deadline - time.monotonic()) / 2))
        except Exception as exc:  # noqa: BLE001 - the end of the run is reported anyway
            log.warning("the points the training left in %s were not sent: %s", directory, exc)
            return
        for result in results:
            if result.points_sent or result.points_pending:
                log.info("sent %d points the training left in %s; %d remain", result.points_sent, result.path,
                         result.points_pending)

    def _end_run(self, run_id: int, ending: Ending, worker: _Worker | None) -> trial_pb2.Trial | None:
        """Ships the remaining log lines, then reports the end of the run
        (the worker's, then the trial's), all within final_timeout. Returns
        the trial as the final report left it, None when nothing was
        reported or it did not get through."""
        assert self.view is not None
        deadline = time.monotonic() + self.options.final_timeout
        self._flush_logs(time.monotonic() + self.options.final_timeout / 2)
        self._send_leftover_points(run_id, deadline)
        if worker is not None:
            worker.report(worker_state(ending), ending.description)
        state = final_state(self.view.snapshot().state, ending)
        for _ in range(4):
            if state is None:
                self._wait_answered(deadline)
                return None
            future = self._report(state, run_id, ending)
            try:
                trial = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                log.error("the final state %s of trial %d run %d (%s) did not reach %s within %g s",
                          state_name(state), self.options.trial_id, run_id, ending.description, self.client.address,
                          self.options.final_timeout)
                return None
            except FailedPrecondition as err:
                moved = err.detail(errors_pb2.IllegalTransitionDetails)
                if err.reason == "ILLEGAL_TRANSITION" and moved is not None:
                    # The trial changed meanwhile (a stop just before the end).
                    state = final_state(moved.current_state, ending)
                    continue
                if err.reason == "STALE_TRIAL_RUN":
                    log.info("trial %d moved on to a new run while run %d ended; not reporting it",
                             self.options.trial_id, run_id)
                    self._refresh(deadline)
                    return None
                log.warning("the final state of trial %d run %d was refused: %s", self.options.trial_id, run_id, err)
                return None
            except GaveUp:
                return None
            except TrialplaneError as err:
                log.warning("the final state of trial %d run %d was refused: %s", self.options.trial_id, run_id, err)
                return None
            log.info("trial %d run %d: reported %s", self.options.trial_id, run_id, state_name(state))
            self._flush_logs(deadline)
            return trial
        return None

    def _refresh(self, deadline: float) -> None:
        assert self.view is not None
        try:
            trial = retrying(lambda: self.client.stubs.trials.GetTrial(
                trial_service_pb2.GetTrialRequest(id=self.options.trial_id)), self.link, deadline=deadline)
        except (GaveUp, TrialplaneError):
            return
        self.view.apply_trial(trial)

    def _new_run(self, trial: trial_pb2.Trial | None, run_id: int) -> bool:
        """Whether the final report's answer is a new run for the agent to start."""
        if trial is None or trial.trial_run_id <= run_id or trial.state in TERMINAL:
            return False
        log.info("trial %d: the server started run %d (retry %d)", trial.id, trial.trial_run_id, trial.restarts)
        return True

    def _moved_on(self, run_id: int) -> bool:
        """Whether the trial went on to a newer run that is still to be run
        (a restart just as the command ended by itself)."""
        assert self.view is not None
        snap = self.view.snapshot()
        return not snap.gone and snap.run_id > run_id and snap.state not in TERMINAL

    def _flush_logs(self, deadline: float) -> None:
        self.shipper.flush(max(0.0, deadline - time.monotonic()))
        self.system.flush(max(0.0, deadline - time.monotonic()))

    def _wait_answered(self, deadline: float) -> None:
        while self.reporter.pending() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _on_line(self, stream: str, text: str) -> None:
        text = self.redact(text)
        self.tail.append(text)
        self.shipper.add(stream, text, level_of(text))

    def _heartbeats(self) -> None:
        interval = self.options.heartbeat_interval
        while not self._closing.wait(interval):
            worker_id = self.heartbeat_worker
            if worker_id is None:
                continue
            try:
                self.client.stubs.workers.HeartbeatWorker(
                    worker_service_pb2.HeartbeatWorkerRequest(id=worker_id), timeout=max(1.0, min(interval, CALL_TIMEOUT)))
                self.link.ok()
            except TrialplaneError as err:
                if is_transient(err):
                    self.link.failed(err)
                elif self.heartbeat_worker == worker_id:
                    # Ended or gone: nothing to keep alive.
                    self.heartbeat_worker = None
            except ValueError:
                return  # the channel closed under a late heartbeat: the agent is exiting


def run(options: Options) -> int:
    return Agent(options).run()
