"""One ladder of successive-halving rungs and the losses recorded at each, as
ASHA uses one and Hyperband uses one per bracket.

Rung k sits at step min_resource * reduction_factor ** (min_early_stopping_rate
+ k), strictly below max_resource when there is one: a trial that trained
max_resource steps has had its whole budget, so stopping it saves nothing.

A trial is judged at the highest rung it has reached, against the losses of
every trial that reached that rung, its own included (read as reading.py
says). It continues if its loss is within the best n // reduction_factor of
those n losses (ties continue); with fewer than reduction_factor losses there
is no top share to cut, and it continues. The decision is recomputed from
the curves at every call rather than taken once when the trial arrives at
the rung: it then depends on the curves only, not on which replica saw which
point first; so a trial that passed a rung among few rivals can still be
stopped before the next rung once better trials have reached it. The best
trial at a rung is never stopped there.

Each rung keeps its losses sorted, so judging is O(log n) and a trial's new
point costs O(log n) per rung it changes.
"""

from __future__ import annotations

import bisect
from array import array

import numpy as np

from .base import Curve, Decision
from .reading import indices_at, rank, show


class Rungs:
    """The ladder of one ASHA rule or Hyperband bracket, with the losses of
    the trials that reached each rung."""

    def __init__(self, min_resource: int, reduction_factor: int, min_early_stopping_rate: int, max_resource: int | None):
        self.reduction_factor = reduction_factor
        self.max_resource = max_resource
        self.first = min_resource * reduction_factor**min_early_stopping_rate
        # Sorted losses per rung, and per trial its loss at each rung reached.
        self._losses: list[array] = []
        self._reached: dict[int, list[float]] = {}

    def step(self, rung: int) -> int:
        return self.first * self.reduction_factor**rung

    def count(self, last_step: int) -> int:
        """How many rungs a trial whose latest step is last_step has reached."""
        rungs = 0
        while self.step(rungs) <= last_step and (self.max_resource is None or self.step(rungs) < self.max_resource):
            rungs += 1
        return rungs

    def has_rungs(self) -> bool:
        return self.max_resource is None or self.first < self.max_resource

    def update(self, trial_id: int, curve: Curve | None) -> None:
        old = self._reached.pop(trial_id, [])
        new = self._read(curve) if curve is not None else []
        for rung in range(max(len(old), len(new))):
            before = old[rung] if rung < len(old) else None
            after = new[rung] if rung < len(new) else None
            if before == after:
                continue
            if before is not None:
                values = self._losses[rung]
                del values[bisect.bisect_left(values, before)]
            if after is not None:
                while len(self._losses) <= rung:
                    self._losses.append(array("d"))
                bisect.insort(self._losses[rung], after)
        if new:
            self._reached[trial_id] = new

    def _read(self, curve: Curve) -> list[float]:
        if not len(curve.steps):
            return []
        rungs = self.count(int(curve.steps[-1]))
        if not rungs:
            return []
        at = indices_at(curve.steps, np.array([self.step(r) for r in range(rungs)], dtype=np.int64))
        values = np.asarray(curve.losses, dtype=np.float64)[at]
        return np.where(np.isnan(values), np.inf, values).tolist()

    def decide(self, curve: Curve, rule: str, scope: str = "") -> Decision:
        """scope names the ladder in reasons (" of bracket 2"), "" for ASHA's one."""
        tid = curve.trial_id
        if not len(curve.steps):
            return Decision(tid, False, rule, reason="no points reported yet")
        last = int(curve.steps[-1])
        if not self.has_rungs():
            return Decision(
                tid, False, rule, last,
                reason=f"no rung{scope} lies below max_resource {self.max_resource}; its trials run to the end",
            )
        reached = len(self._reached.get(tid, ()))
        if not reached:
            return Decision(tid, False, rule, last, reason=f"step {last} is before the first rung at step {self.first}")
        rung = reached - 1
        at = self.step(rung)
        value = float(np.asarray(curve.losses, dtype=np.float64)[indices_at(curve.steps, np.array([at]))[0]])
        losses = self._losses[rung]
        keep = len(losses) // self.reduction_factor
        if keep == 0:
            return Decision(
                tid, False, rule, at, value=value,
                reason=(
                    f"only {len(losses)} trials{scope} reached the rung at step {at}; "
                    f"cutting the top 1/{self.reduction_factor} needs {self.reduction_factor}"
                ),
            )
        cut = losses[keep - 1]
        stop = rank(value) > cut
        verdict = "is worse than" if stop else "is within"
        return Decision(
            tid, stop, rule, at, threshold=cut, value=value,
            reason=(
                f"loss {show(value)} at step {at} {verdict} the rung's top-1/{self.reduction_factor} "
                f"cut {show(cut)} among {len(losses)} trials{scope}"
            ),
        )
