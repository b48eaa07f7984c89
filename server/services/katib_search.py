"""Katib's GetSuggestions on trialplane's designers, kept warm per experiment.

Katib's controller sends every trial of an experiment with each request. A
designer per experiment name lives between requests and is told only what
changed: the trials whose outcome differs from what it was told last, and
the running set whole. It is built anew when the experiment's space,
objective, algorithm or settings change, or when a trial it learned a
result from is missing from a request (an experiment deleted and created
again under the same name). At most MAX_EXPERIMENTS stay warm, the least
recently asked dropped first.

A designer built anew from the trials alone hands out the same points as
the one it replaces for random, grid and quasirandom: the caller gives the
point index (how many points the experiment was handed before), so a
restarted server or another replica continues where the last left off.

Trials marked early stopped (EarlyStopping.SetTrialStatus) are results with
their observed value, or their best logged one when Katib sent none.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from ..domain import katib
from ..domain.models import ObjectiveType
from ..domain.search import registry
from ..domain.search.base import Assignment, Designer, Observed, Outcome
from ..storage.interface import Storage

MAX_EXPERIMENTS = 256


class _Search:
    """One experiment's designer and what it was told."""

    def __init__(self, make: Callable[[], Designer], objective: ObjectiveType):
        self.make = make
        self.objective = objective
        self.lock = asyncio.Lock()
        # Best logged values of trials stopped early: their logs no longer grow.
        self.logged: dict[str, float] = {}
        self._reset()

    def _reset(self) -> None:
        self.designer = self.make()
        self.ids: dict[str, int] = {}
        self.told: dict[str, Observed] = {}

    def step(self, trials: list[katib.KatibTrial], marked: set[str], stored: dict[str, float],
             count: int, index: int) -> list[Assignment]:
        names = {t.name for t in trials}
        if any(o.outcome == Outcome.COMPLETED and name not in names for name, o in self.told.items()):
            self._reset()
        ended: list[Observed] = []
        active: list[Observed] = []
        for t in trials:
            trial_id = self.ids.setdefault(t.name, len(self.ids) + 1)
            o = katib.outcome(t, trial_id, self.objective, early_stopped=t.name in marked, stored=stored.get(t.name))
            if o.outcome == Outcome.ACTIVE:
                active.append(o)
                self.told.pop(t.name, None)
            elif self.told.get(t.name) != o:
                ended.append(o)
                self.told[t.name] = o
        self.designer.update(ended, active)
        return self.designer.suggest(count, index)


def _key(experiment: katib.KatibExperiment, algorithm: katib.Translated) -> tuple:
    return (algorithm.designer, tuple(sorted(algorithm.settings.items())), repr(experiment.parameters),
            experiment.objective)


class KatibSuggestions:
    def __init__(self, storage: Storage, max_experiments: int = MAX_EXPERIMENTS):
        self.storage = storage
        self.max_experiments = max_experiments
        self._searches: collections.OrderedDict[str, tuple[tuple, _Search]] = collections.OrderedDict()

    def designer(self, experiment: katib.KatibExperiment, algorithm: katib.Translated) -> Designer:
        """A fresh designer for the experiment; raises SettingsError."""
        return registry.create(algorithm.designer, experiment.parameters, algorithm.settings,
                               seed=katib.seed_of(experiment.name))

    def _search_for(self, experiment: katib.KatibExperiment, algorithm: katib.Translated) -> _Search:
        key = _key(experiment, algorithm)
        found = self._searches.get(experiment.name)
        if found is not None and found[0] == key:
            self._searches.move_to_end(experiment.name)
            return found[1]
        search = _Search(lambda: self.designer(experiment, algorithm), experiment.objective)
        self._searches[experiment.name] = (key, search)
        self._searches.move_to_end(experiment.name)
        while len(self._searches) > self.max_experiments:
            self._searches.popitem(last=False)
        return search

    async def best_logged(self, trial_name: str, metric: str, objective: ObjectiveType) -> float | None:
        """The best value of metric in the observation log trialplane keeps
        under the trial's name (Katib's default pick for an objective)."""
        values = [v for v in (katib.read_value(o.value) for o in
                              await self.storage.get_observations(trial_name, metric, None, None)) if v is not None]
        if not values:
            return None
        return max(values) if objective == ObjectiveType.MAXIMIZE else min(values)

    async def suggest(self, experiment: katib.KatibExperiment, algorithm: katib.Translated,
                      trials: list[katib.KatibTrial], count: int, index: int) -> list[Assignment]:
        """Up to count new points; fewer once a grid is exhausted."""
        marked = await self.storage.early_stopped([t.name for t in trials]) if trials else set()
        search = self._search_for(experiment, algorithm)
        async with search.lock:
            for t in trials:
                stopped = t.name in marked or t.condition == katib.Condition.EARLYSTOPPED
                if stopped and t.value is None and t.name not in search.logged:
                    best = await self.best_logged(t.name, experiment.metric, experiment.objective)
                    if best is not None:
                        search.logged[t.name] = best
            return await asyncio.to_thread(search.step, trials, marked, dict(search.logged), count, index)
