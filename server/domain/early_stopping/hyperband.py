"""Hyperband as brackets of asynchronous successive halving (Li et al.;
Optuna's HyperbandPruner).

Bracket b (0 <= b < B, B = 1 + floor(log(max_resource / min_resource) /
log(reduction_factor))) is an ASHA ladder whose first rung is at
min_resource * reduction_factor ** b; the last bracket may have no rung
below max_resource and then runs its trials to the end, Hyperband's plain
random-search bracket. A trial is judged only against the trials of its own
bracket (rungs.py says how).

A trial's bracket is a fixed function of its id alone, the same in every
replica and after a restart: the id is mixed (splitmix64) and taken modulo
the total of the brackets' weights. Bracket b weighs what Hyperband starts it
with, ceil(B * reduction_factor ** s / (s + 1)) trials for s = B - 1 - b, so
the aggressive brackets, which stop most of their trials early, get more.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from itertools import accumulate
from typing import ClassVar

from .base import Curve, Decision, Rule, SettingsError
from .registry import register
from .rungs import Rungs
from .settings import check_known, integer, required_integer

_MASK = (1 << 64) - 1


def mix(value: int) -> int:
    """splitmix64's finaliser: consecutive ids land far apart."""
    z = (value + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@register
class Hyperband(Rule):
    name = "hyperband"
    settings_help: ClassVar[Mapping[str, str]] = {
        "min_resource": "steps to the first rung of the most aggressive bracket (default 1)",
        "max_resource": "steps of a full trial (required)",
        "reduction_factor": "1/reduction_factor of a bracket's trials at a rung continue (default 3)",
    }

    def __init__(self, settings: Mapping[str, str]):
        super().__init__(settings)
        check_known(settings, self.settings_help, self.name)
        self.min_resource = integer(settings, "min_resource", 1, minimum=1)
        self.max_resource = required_integer(settings, "max_resource", minimum=1, rule=self.name)
        self.reduction_factor = integer(settings, "reduction_factor", 3, minimum=2)
        if self.max_resource <= self.min_resource:
            raise SettingsError(
                "max_resource", f"max_resource must be greater than min_resource {self.min_resource}, got {self.max_resource}"
            )
        count = 0
        while self.min_resource * self.reduction_factor**count <= self.max_resource:
            count += 1
        self.brackets = [Rungs(self.min_resource, self.reduction_factor, b, self.max_resource) for b in range(count)]
        self.weights = [
            -(-count * self.reduction_factor ** (count - 1 - b) // (count - b)) for b in range(count)
        ]
        self._bounds = list(accumulate(self.weights))

    def bracket_of(self, trial_id: int) -> int:
        return bisect.bisect_right(self._bounds, mix(trial_id & _MASK) % self._bounds[-1])

    def _update(self, trial_id: int, previous: Curve | None, current: Curve | None) -> None:
        self.brackets[self.bracket_of(trial_id)].update(trial_id, current)

    def decide(self, trial_id: int) -> Decision:
        curve = self._curves.get(trial_id)
        if curve is None:
            return Decision(trial_id, False, self.name, reason="no points reported yet")
        if not curve.active:
            return Decision(trial_id, False, self.name, reason="the trial has ended")
        bracket = self.bracket_of(trial_id)
        return self.brackets[bracket].decide(curve, self.name, f" of bracket {bracket}")
