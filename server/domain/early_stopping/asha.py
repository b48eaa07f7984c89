"""Asynchronous successive halving (ASHA; Optuna's SuccessiveHalvingPruner).

Rungs sit at min_resource * reduction_factor ** (min_early_stopping_rate + k)
steps, below max_resource when it is set; a trial continues past a rung only
while its loss there is in the top 1/reduction_factor of the losses recorded
at that rung by every trial that reached it. rungs.py says how a trial is
judged, and reading.py how its curve is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from .base import Curve, Decision, Rule, SettingsError
from .registry import register
from .rungs import Rungs
from .settings import check_known, integer, optional_integer


@register
class Asha(Rule):
    name = "asha"
    settings_help: ClassVar[Mapping[str, str]] = {
        "min_resource": "steps to the first rung, before min_early_stopping_rate (default 1)",
        "max_resource": "steps of a full trial; rungs lie below it (default: no limit)",
        "reduction_factor": "1/reduction_factor of the trials at a rung continue (default 3)",
        "min_early_stopping_rate": "the first rung is at min_resource * reduction_factor ** this (default 0)",
    }

    def __init__(self, settings: Mapping[str, str]):
        super().__init__(settings)
        check_known(settings, self.settings_help, self.name)
        self.min_resource = integer(settings, "min_resource", 1, minimum=1)
        self.max_resource = optional_integer(settings, "max_resource", minimum=1)
        self.reduction_factor = integer(settings, "reduction_factor", 3, minimum=2)
        self.min_early_stopping_rate = integer(settings, "min_early_stopping_rate", 0, minimum=0)
        self._rungs = Rungs(self.min_resource, self.reduction_factor, self.min_early_stopping_rate, self.max_resource)
        if not self._rungs.has_rungs():
            raise SettingsError(
                "max_resource",
                f"max_resource {self.max_resource} leaves no rung: the first is at step {self._rungs.first}",
            )

    def rung_steps(self, up_to: int) -> list[int]:
        """The rung steps at or below a step."""
        return [self._rungs.step(k) for k in range(self._rungs.count(up_to))]

    def _update(self, trial_id: int, previous: Curve | None, current: Curve | None) -> None:
        self._rungs.update(trial_id, current)

    def decide(self, trial_id: int) -> Decision:
        curve = self._curves.get(trial_id)
        if curve is None:
            return Decision(trial_id, False, self.name, reason="no points reported yet")
        if not curve.active:
            return Decision(trial_id, False, self.name, reason="the trial has ended")
        return self._rungs.decide(curve, self.name)
