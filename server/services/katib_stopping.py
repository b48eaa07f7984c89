"""Katib's EarlyStopping service: medianstop thresholds and early-stop marks.

Katib's metrics collectors stop a running trial once its best objective so
far is worse than a rule's value, from the rule's start_step-th report of
the objective on. For medianstop that value is the median, over the
experiment's succeeded trials, of each one's mean objective over its first
start_step reports. The reports are the observation log trialplane keeps
under the Katib trial name (what Katib's collectors send the DBManager); a
trial whose log holds no number counts with its observed value, and one with
neither does not count. Trials marked early stopped are left out, whatever
condition Katib gives them: they are the ones the rule cut short. With fewer
than min_trials_required counted trials there is no rule yet.

Katib's own medianstop averages the per-trial means under the rule's name;
this one takes their median, as the rule promises. A succeeded trial's log
no longer changes, so its mean is read once (per metric and start_step) and
kept, up to MAX_KEPT means.

SetTrialStatus is what a collector calls after stopping a trial. The trial
name is marked in storage, so every replica's later GetSuggestions and
GetEarlyStoppingRules read it as stopped early, and a trialplane trial of
that name (the newest, as observation logs link to it) is asked to stop
through its normal stop path. Repeats change nothing, and a trial that
ended already is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable

from ..domain import katib
from ..domain import trial_lifecycle as lifecycle
from ..domain.errors import FailedPrecondition
from ..storage.interface import Storage
from .change_feed import ChangeFeed

MAX_KEPT = 100_000
STOP_MESSAGE = "stopped early by Katib's metrics collector (EarlyStopping.SetTrialStatus)"


class KatibStopping:
    def __init__(self, storage: Storage, feed: ChangeFeed, clock: Callable[[], int]):
        self.storage = storage
        self.feed = feed
        self.clock = clock
        self._means: dict[tuple[str, str, int], float] = {}

    async def _mean(self, trial: katib.KatibTrial, metric: str, start_step: int) -> float | None:
        key = (trial.name, metric, start_step)
        mean = self._means.get(key)
        if mean is not None:
            return mean
        logged = await self.storage.get_observations(trial.name, metric, None, None)
        values = [x for x in (katib.read_value(o.value) for o in logged) if x is not None]
        mean = katib.early_average(values, start_step)
        if mean is None:
            return trial.value
        if len(self._means) >= MAX_KEPT:
            self._means.clear()
        self._means[key] = mean
        return mean

    async def median_threshold(self, trials: list[katib.KatibTrial], metric: str, start_step: int,
                               min_trials_required: int) -> float | None:
        """The rule's value, or None while too few trials succeeded."""
        succeeded = [t for t in trials if t.condition == katib.Condition.SUCCEEDED]
        marked = await self.storage.early_stopped([t.name for t in succeeded]) if succeeded else set()
        means = []
        for t in succeeded:
            if t.name in marked:
                continue
            mean = await self._mean(t, metric, start_step)
            if mean is not None:
                means.append(mean)
        if len(means) < max(min_trials_required, 1):
            return None
        return katib.median(means)

    async def set_trial_status(self, trial_name: str) -> None:
        trial_id = await self.storage.mark_early_stopped(trial_name, self.clock())
        if trial_id is None:
            return
        # The stop event says who decided, in the shape trialplane's own early stopping uses.
        details = {"early_stopping": {"rule": "medianstop", "decided_by": "katib", "katib_trial_name": trial_name}}
        try:
            await self.storage.change_trial(
                trial_id, lambda t, now: lifecycle.stop(t, now, grace_seconds=None, message=STOP_MESSAGE,
                                                        details=details))
        except FailedPrecondition:
            return  # it ended before the collector's call arrived
        self.feed.trials.notify(trial_id)
