"""The median stopping rule (Vizier's automated stopping, Katib's medianstop).

A trial is judged at its latest step s. When s >= start_step and at least
min_trials_required other trials have reached s, the trial is stopped if its
best loss so far is strictly worse than the median, over those others, of
their running average loss up to s (the mean of their losses at steps <= s).
Best-so-far against running averages is Vizier's definition, which Katib and
Ray Tune follow: a trial survives as long as its best point beats what a
typical trial averaged up to the same step, so one noisy point stops nothing.
Curves are read as reading.py says (reached, gaps, NaN).

Where this differs from Katib's medianstop, and why:
- start_step is a step number, not a count of reports (curves carry explicit
  steps; for a trial that reports steps 1, 2, 3, ... the two agree).
- The others are every other trial that reached s, running or ended, not
  only succeeded ones: once a trial has reached s its running average at s no
  longer changes, and waiting for trials to succeed would leave the first
  trials of a study unjudged. A trial stopped before s does not count at s.
- The median is a true median (Katib averages the per-trial averages).

Cost: for each step at which some trial was judged with enough others, the
running averages of the trials that reached it are kept sorted. A trial's
new points add its average at the kept steps it just passed, O(log n) each,
and judging at a kept step is O(log n). The first judgement at a step nobody
was judged at costs one pass over the trials that reached it. Memory is 8
bytes per kept step and trial that reached it (8 MB for 1,000 trials judged
at 1,000 steps).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from .base import Curve, Decision, Rule
from .reading import index_at, running_averages, show
from .registry import register
from .settings import check_known, integer


class _Track:
    """One trial as the rule reads it: steps, running averages and best loss."""

    __slots__ = ("steps", "averages", "last", "best", "best_shown")

    def __init__(self, curve: Curve):
        steps = np.asarray(curve.steps, dtype=np.int64)
        losses = np.asarray(curve.losses, dtype=np.float64)
        self.steps = array("q", steps.tobytes())
        self.averages = array("d", running_averages(losses).tobytes())
        self.last = int(steps[-1])
        # fmin skips NaN, so the best is NaN only when every loss is.
        best = float(np.fmin.reduce(losses))
        self.best_shown = best
        self.best = np.inf if np.isnan(best) else best

    def average_at(self, step: int) -> float:
        return self.averages[index_at(self.steps, step)]


def _extends(previous: Curve, current: Curve) -> bool:
    """Whether current is previous with points appended (or unchanged)."""
    n = len(previous.steps)
    return (
        len(current.steps) >= n
        and np.array_equal(current.steps[:n], previous.steps)
        and np.array_equal(current.losses[:n], previous.losses, equal_nan=True)
    )


def _median_without(values: array, own: float) -> float:
    """The median of sorted values with one occurrence of own left out."""
    skip = bisect.bisect_left(values, own)
    count = len(values) - 1

    def at(k: int) -> float:
        return values[k] if k < skip else values[k + 1]

    middle = count // 2
    if count % 2:
        return at(middle)
    return (at(middle - 1) + at(middle)) / 2


@register
class MedianStop(Rule):
    name = "medianstop"
    settings_help: ClassVar[Mapping[str, str]] = {
        "min_trials_required": "other trials that must have reached a step before a trial is judged there (default 3)",
        "start_step": "first step at which trials are judged (default 4)",
    }

    def __init__(self, settings: Mapping[str, str]):
        super().__init__(settings)
        check_known(settings, self.settings_help, self.name)
        self.min_trials_required = integer(settings, "min_trials_required", 3, minimum=1)
        self.start_step = integer(settings, "start_step", 4, minimum=1)
        self._tracks: dict[int, _Track] = {}
        # (last step, trial id) of every trial with points, sorted.
        self._lasts: list[tuple[int, int]] = []
        # The kept steps, sorted, and for each the sorted running averages
        # of the trials that reached it (the judged trial's own included).
        self._kept: list[int] = []
        self._averages: dict[int, array] = {}

    def _update(self, trial_id: int, previous: Curve | None, current: Curve | None) -> None:
        old = self._tracks.pop(trial_id, None)
        # Kept steps up to grown_from hold this trial's averages already.
        grown_from = None
        if old is not None and previous is not None and current is not None and _extends(previous, current):
            if len(current.steps) == len(previous.steps):
                self._tracks[trial_id] = old  # the same points (the trial ended, say)
                return
            grown_from = old.last
        if old is not None:
            del self._lasts[bisect.bisect_left(self._lasts, (old.last, trial_id))]
            if grown_from is None:
                for step in self._kept[: bisect.bisect_right(self._kept, old.last)]:
                    values = self._averages[step]
                    del values[bisect.bisect_left(values, old.average_at(step))]
        if current is None or not len(current.steps):
            return
        new = self._tracks[trial_id] = _Track(current)
        bisect.insort(self._lasts, (new.last, trial_id))
        begin = 0 if grown_from is None else bisect.bisect_right(self._kept, grown_from)
        for step in self._kept[begin : bisect.bisect_right(self._kept, new.last)]:
            bisect.insort(self._averages[step], new.average_at(step))

    def _averages_at(self, step: int) -> array:
        values = self._averages.get(step)
        if values is None:
            # The one pass over the trials that reached step, inlined: it is
            # the cost of judging at a new step.
            tracks = self._tracks
            after = bisect.bisect_right
            found = []
            for _, tid in self._lasts[bisect.bisect_left(self._lasts, (step,)) :]:
                track = tracks[tid]
                i = after(track.steps, step)
                found.append(track.averages[i - 1 if i else 0])
            found.sort()
            values = array("d", found)
            self._averages[step] = values
            bisect.insort(self._kept, step)
        return values

    def decide(self, trial_id: int) -> Decision:
        track = self._tracks.get(trial_id)
        curve = self._curves.get(trial_id)
        if track is None or curve is None:
            return Decision(trial_id, False, self.name, reason="no points reported yet")
        step = track.last
        if not curve.active:
            return Decision(trial_id, False, self.name, step, reason="the trial has ended")
        if step < self.start_step:
            return Decision(
                trial_id, False, self.name, step, value=track.best_shown,
                reason=f"step {step} is before start_step {self.start_step}",
            )
        others = len(self._lasts) - bisect.bisect_left(self._lasts, (step,)) - 1
        if others < self.min_trials_required:
            return Decision(
                trial_id, False, self.name, step, value=track.best_shown,
                reason=f"{others} other trials reached step {step}; min_trials_required is {self.min_trials_required}",
            )
        median = _median_without(self._averages_at(step), track.average_at(step))
        stop = track.best > median
        verdict = "is worse than" if stop else "is not worse than"
        return Decision(
            trial_id, stop, self.name, step, threshold=median, value=track.best_shown,
            reason=(
                f"best loss {show(track.best_shown)} by step {step} {verdict} {show(median)}, "
                f"the median running average of the {others} other trials that reached step {step}"
            ),
        )
