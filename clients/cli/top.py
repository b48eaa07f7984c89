"""`trialplane top`: the running trials, a frame every --interval seconds.

A frame lists the trials that are starting, running or stopping, with their
steps, best objective value, how long ago they last reported a metric, how
long ago one of their run's workers last sent a heartbeat, and how many of
those workers are running. On a terminal the frame is redrawn in place
(rich's Live); elsewhere frames follow one another. --once, and any -o but
table, prints one frame and exits; Ctrl-C ends it with status 0."""

from __future__ import annotations

import datetime as dt
import time

from trialplane.v1 import trial_pb2, worker_pb2

from ..sdk import Client
from ..sdk.values import enum_name
from .commands import _Objectives, _study_id
from .output import Printer, Table, duration

LIVE_STATES = ["pulling", "starting", "running", "stopping_canceled", "stopping_killed", "stopping_completed",
               "stopping_error"]

TOP_TABLE = Table(["ID", "STUDY", "NAME", "STATE", "STEPS", "BEST", "REPORTED", "HEARTBEAT", "WORKERS", "RUNNING"],
                  flex="NAME", right={"ID", "STUDY", "STEPS", "BEST", "REPORTED", "HEARTBEAT", "WORKERS", "RUNNING"})


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos / 1e9


def _age(then: float, now: float) -> str:
    """How long ago: "4s", "3m05s"; "0s" for now or a clock a little ahead."""
    if not then:
        return ""
    return duration(now - then) or "0s"


class _Frame:
    def __init__(self, client: Client, study_id: int):
        self.client = client
        self.study_id = study_id
        self.objectives = _Objectives(client)

    def trials(self) -> list[trial_pb2.Trial]:
        return list(self.client.trials.list(self.study_id, states=LIVE_STATES))

    def row(self, trial: trial_pb2.Trial, now: float) -> list:
        reported = max((_seconds(s.last_time) for s in trial.summary_metrics), default=0.0)
        workers = list(self.client.workers.list(trial.id, trial_run_id=trial.trial_run_id))
        heartbeat = max((_seconds(w.last_heartbeat_time) for w in workers), default=0.0)
        running = sum(w.state == worker_pb2.WORKER_STATE_RUNNING for w in workers)
        return [str(trial.id), str(trial.study_id) if trial.study_id else "-", trial.name,
                enum_name(trial_pb2.TrialState, "TRIAL_STATE_", trial.state), trial.steps_completed,
                self.objectives.best(trial), _age(reported, now), _age(heartbeat, now),
                f"{running}/{len(workers)}" if workers else "", duration(trial.wall_clock_seconds)]


def top(client: Client, args, out: Printer) -> int:
    frame = _Frame(client, _study_id(client, args.study) if args.study else 0)
    if args.once or not out.as_table:
        trials = frame.trials()
        now = time.time()
        out.items(trials, TOP_TABLE, lambda t: frame.row(t, now))
        return 0
    try:
        if out.styled:
            _live(client, frame, args.interval, out)
        else:
            while True:
                out.text(_frame_text(client, frame.trials(), args.interval, frame, out))
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    return 0


def _frame_text(client: Client, trials: list, interval: float, frame: _Frame, out: Printer) -> str:
    now = time.time()
    clock = dt.datetime.fromtimestamp(now).strftime("%H:%M:%S")
    head = f"live trials: {len(trials)} at {client.address}, {clock} (every {interval:g}s; Ctrl-C ends)"
    return head + "\n" + TOP_TABLE.render((frame.row(t, now) for t in trials), styled=out.styled) + "\n"


def _live(client: Client, frame: _Frame, interval: float, out: Printer) -> None:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    console = Console(file=out.out, highlight=False, markup=False, emoji=False)
    with Live(console=console, auto_refresh=False, transient=False) as live:
        while True:
            live.update(Text.from_ansi(_frame_text(client, frame.trials(), interval, frame, out)), refresh=True)
            time.sleep(interval)
