"""What the agent reports when the training ends, from the trial's state at
that moment (server/domain/trial_lifecycle.py decides what is legal) and how
the training ended."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from trialplane.v1 import trial_pb2, worker_pb2

from .watch import STOPPING, TERMINAL

S = trial_pb2
MAX_REASON_CHARS = 4096


@dataclass(frozen=True)
class Ending:
    """How one run of the training ended.

    exit_code: the process's exit code; None when it is not known (a
    sidecar that saw only the process disappear). signal_name: the signal
    that killed it. interrupted: the agent itself was told to stop. stopped:
    the agent stopped the training because the trial was stopped.
    """

    exit_code: int | None
    signal_name: str = ""
    interrupted: bool = False
    stopped: bool = False
    last_lines: list[str] = field(default_factory=list)
    description: str = ""

    @property
    def failed(self) -> bool:
        return self.interrupted or bool(self.signal_name) or (self.exit_code is not None and self.exit_code != 0)

    def details(self) -> dict:
        out: dict = {}
        if self.exit_code is not None and not self.signal_name:
            out["exit_code"] = self.exit_code
        if self.signal_name:
            out["signal"] = self.signal_name
        if self.interrupted:
            out["agent_interrupted"] = True
        return out

    def failure_reason(self) -> str:
        head = self.description + (" (the agent was interrupted)" if self.interrupted else "")
        if not self.last_lines:
            return reportable(head)
        return reportable(head + "; last lines:\n" + "\n".join(self.last_lines))


def reportable(text: str) -> str:
    """text as the server takes it for a message or a failure reason: at
    most MAX_REASON_CHARS, and no NUL (an exit marker's text may hold one).
    A refused final report would leave the trial RUNNING."""
    return clip(text.replace("\x00", "\ufffd"), MAX_REASON_CHARS)


def clip(text: str, limit: int) -> str:
    """text, or its head line and as much of its end as fits in limit."""
    if len(text) <= limit:
        return text
    head, _, rest = text.partition("\n")
    room = limit - len(head) - 5
    return head + "\n...\n" + rest[-room:] if room > 0 else text[:limit]


def final_state(current: int, ending: Ending) -> int | None:
    """The state to report for a run that ended as ending says while the
    trial is in current; None when there is nothing to report (the trial
    ended already, or is paused and waits to be activated)."""
    if current in TERMINAL or current == S.TRIAL_STATE_PAUSED:
        return None
    if current in (S.TRIAL_STATE_STOPPING_CANCELED, S.TRIAL_STATE_STOPPING_KILLED):
        return S.TRIAL_STATE_CANCELED
    if current == S.TRIAL_STATE_STOPPING_ERROR:
        return S.TRIAL_STATE_ERROR
    assert current not in STOPPING or current == S.TRIAL_STATE_STOPPING_COMPLETED
    return S.TRIAL_STATE_ERROR if ending.failed else S.TRIAL_STATE_COMPLETED


def worker_state(ending: Ending) -> int:
    if ending.stopped or ending.interrupted:
        return worker_pb2.WORKER_STATE_KILLED
    return worker_pb2.WORKER_STATE_ERROR if ending.failed else worker_pb2.WORKER_STATE_COMPLETED


def last_lines(lines: Iterable[str], limit_chars: int = MAX_REASON_CHARS) -> list[str]:
    """The last of lines (oldest first) that fit in limit_chars together."""
    picked: list[str] = []
    total = 0
    for line in reversed(list(lines)):
        total += len(line) + 1
        if picked and total > limit_chars:
            break
        picked.append(line)
    return picked[::-1]
