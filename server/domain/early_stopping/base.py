"""What every early-stopping rule offers and what it is given.

A rule keeps an index of the curves it has seen (sorted values per step or
per rung), so that judging a trial costs O(log n) in the number of trials
instead of a pass over every point of the study; judge() is called on every
stored validation point of a running trial. The index is fed in one of two
ways, and both give the same decision for the same curves:

- judge(trial, others): the rule is brought to exactly these curves, then
  judges trial. A curve given again as the same object costs an identity
  check; a new object for a known trial costs a comparison with the old one,
  O(its points). Keep the Curve objects of unchanged trials between calls.
- observe(curve) when a trial's curve changed (forget(trial_id) when it left
  the study), then decide(trial_id): O(points of the changed curve) plus
  O(log n).

A Curve's arrays are not changed once it was given (a trial that reported
more is a new Curve). The verdict depends on the curves only, never on the
order in which they were observed, so two replicas (or a restarted server)
holding the same curves decide the same. A rule is not thread-safe: one
instance per study, used by one task at a time.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..search.base import SettingsError

__all__ = ["Curve", "Decision", "Rule", "SettingsError"]


@dataclass(frozen=True)
class Curve:
    """The objective metric of one trial over its steps, as a loss (lower is
    better: a MAXIMIZE study's values come negated), steps ascending."""

    trial_id: int
    steps: np.ndarray  # int64
    losses: np.ndarray  # float64
    # False once the trial has ended (its curve is complete).
    active: bool = True


@dataclass(frozen=True)
class Decision:
    """A rule's verdict on one trial, with what it was based on, so the
    trial's event can say exactly why it was stopped."""

    trial_id: int
    should_stop: bool
    rule: str
    # The step the decision is about (a rung's step for ASHA/Hyperband).
    step: int = 0
    # The value the trial had to beat, and the trial's own value, as losses.
    threshold: float | None = None
    value: float | None = None
    # Why, in words, for people.
    reason: str = ""


class Rule(abc.ABC):
    """An early-stopping rule bound to one study's settings.

    Subclasses implement _update (keep the index in step with one trial's
    curve) and decide (judge one trial against the index)."""

    name: ClassVar[str]
    settings_help: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Mapping[str, str]):
        """Raises SettingsError for an unknown setting or a bad value."""
        self.settings = dict(settings)
        self._curves: dict[int, Curve] = {}

    def judge(self, trial: Curve, others: Sequence[Curve]) -> Decision:
        """Whether trial should stop now, given every other trial of the
        study (active and ended). A trial the rule cannot judge yet (too few
        steps, too few others) is not stopped, nor is one that has ended."""
        known = self._curves
        for curve in others:
            if known.get(curve.trial_id) is not curve:
                self.observe(curve)
        # Last, so that a stale copy of trial among others does not win.
        self.observe(trial)
        given = {curve.trial_id for curve in others}
        given.add(trial.trial_id)
        if len(known) > len(given):
            for gone in [tid for tid in known if tid not in given]:
                self.forget(gone)
        return self.decide(trial.trial_id)

    def observe(self, curve: Curve) -> None:
        """Records a trial's curve as it is now, replacing what the rule knew
        of that trial (a curve may grow, or be rewritten after a rollback)."""
        previous = self._curves.get(curve.trial_id)
        if previous is curve:
            return
        self._curves[curve.trial_id] = curve
        self._update(curve.trial_id, previous, curve)

    def forget(self, trial_id: int) -> None:
        """Drops a trial that is no longer part of the study."""
        previous = self._curves.pop(trial_id, None)
        if previous is not None:
            self._update(trial_id, previous, None)

    def observed(self, trial_id: int) -> Curve | None:
        return self._curves.get(trial_id)

    @abc.abstractmethod
    def decide(self, trial_id: int) -> Decision:
        """judge() for an observed trial, against every other observed trial.
        An unknown trial is not stopped."""

    @abc.abstractmethod
    def _update(self, trial_id: int, previous: Curve | None, current: Curve | None) -> None:
        """Brings the index from previous (None: the trial was unknown) to
        current (None: forgotten)."""
