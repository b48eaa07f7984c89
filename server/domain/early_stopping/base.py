"""What every early-stopping rule offers and what it is given."""

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
    """An early-stopping rule bound to one study's settings."""

    name: ClassVar[str]
    settings_help: ClassVar[Mapping[str, str]] = {}

    def __init__(self, settings: Mapping[str, str]):
        """Raises SettingsError for an unknown setting or a bad value."""
        self.settings = dict(settings)

    @abc.abstractmethod
    def judge(self, trial: Curve, others: Sequence[Curve]) -> Decision:
        """Whether trial should stop now, given every other trial of the
        study (active and ended). A trial the rule cannot judge yet (too few
        steps, too few others) is not stopped."""
