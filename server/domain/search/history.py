"""Trials as a search algorithm sees them."""

from __future__ import annotations

from collections.abc import Iterable

from ..models import EarlyExitReason, Trial
from ..trial_lifecycle import TERMINAL
from .base import Observed, Outcome

_INFEASIBLE = {EarlyExitReason.INVALID_HP, EarlyExitReason.INIT_INVALID_HP}


def observed(trial: Trial) -> Observed:
    """A trial's outcome for the search. A trial that ended with a searcher
    metric is a result whichever way it ended (one stopped early was still
    measured); one that said its point cannot be trained is infeasible."""
    if trial.early_exit_reason in _INFEASIBLE:
        return Observed(trial.id, trial.hyperparameters, Outcome.INFEASIBLE)
    if trial.state not in TERMINAL:
        return Observed(trial.id, trial.hyperparameters, Outcome.ACTIVE)
    if trial.searcher_metric_value is not None:
        return Observed(trial.id, trial.hyperparameters, Outcome.COMPLETED, trial.searcher_metric_value)
    return Observed(trial.id, trial.hyperparameters, Outcome.FAILED)


def split(trials: Iterable[Trial]) -> tuple[list[Observed], list[Observed]]:
    """(ended, active) in the shape Designer.update takes."""
    ended: list[Observed] = []
    active: list[Observed] = []
    for t in trials:
        o = observed(t)
        (active if o.outcome == Outcome.ACTIVE else ended).append(o)
    return ended, active
