"""Early stopping as metrics are stored: each study's rule judges its
running trials on their objective metric, and the server stops a trial the
rule rejects through the trial's normal stopping path, with the decision
(rule, step, threshold, value) on the stop event.

After a write that stored validation points, `notice(trial_ids)` schedules
the trials' studies for a look; looks at one study never overlap, and
notices that arrive during a look start one more afterwards. A look brings
the study's curves up to date from storage (so points stored through other
replicas count) and asks the rule about the noticed trials only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..domain import trial_lifecycle as lifecycle
from ..domain.early_stopping import registry
from ..domain.early_stopping.base import Curve, Decision, Rule
from ..domain.errors import DomainError, NotFound
from ..domain.metrics import VALIDATION
from ..domain.models import AlgorithmSpec, ObjectiveType, Study, StudyState
from ..storage.interface import Storage
from .change_feed import ChangeFeed
from .study_trials import StudyTrials, slack_for

log = logging.getLogger("trialplane.server")

SUMMARY_BATCH = 500
ALL_STEPS = (0, 2**62)
MAX_POINTS = 1_000_000
# A study's settings are read again after this long.
STUDY_TTL_SECONDS = 1.0


@dataclass
class StudyWatch:
    study: Study
    rule: Rule
    trials: StudyTrials
    maximize: bool
    read_at: float = 0.0
    # trial -> (point count, last step) of its objective series when last read.
    seen: dict[int, tuple[int, int, bool]] = field(default_factory=dict)
    busy: asyncio.Lock = field(default_factory=asyncio.Lock)


def decision_details(d: Decision, maximize: bool) -> dict:
    """A decision in the objective's own sign, for events and responses."""

    def signed(x: float | None) -> float | None:
        if x is None or math.isnan(x):
            return x
        return -x if maximize else x

    return {"rule": d.rule, "step": d.step, "threshold": signed(d.threshold), "value": signed(d.value)}


def _judged(study_id: int, trial_ids: list[int], trials: StudyTrials) -> list[int]:
    """The trials a check is about: those asked for, each in the study, or
    else every unfinished one."""
    if not trial_ids:
        return sorted(t.id for t in trials.trials.values() if not lifecycle.is_terminal(t.state))
    for tid in trial_ids:
        if tid not in trials.trials:
            raise NotFound("trial", f"{tid} in study {study_id}")
    return trial_ids

# Trials whose study is remembered; past it the map starts again.
MAX_KNOWN_TRIALS = 200_000

class EarlyStopping:
    def __init__(self, storage: Storage, feed: ChangeFeed):
        self.storage = storage
        self.feed = feed
        self._watches: dict[int, StudyWatch] = {}
        self._study_of: dict[int, int] = {}
        self._pending: dict[int, set[int]] = {}
        # Studies without a rule, and when that was read: most validation
        # reports belong to one, and cost no study read then.
        self._no_rule: dict[int, float] = {}
        self._tasks: set[asyncio.Task] = set()
        # Decisions this process acted on (tests and logs).
        self.stopped: list[Decision] = []

    # --- what the servicers call ------------------------------------------

    def know(self, trials: Iterable[tuple[int, int]]) -> None:
        """(trial id, study id) of trials just made here: their validation
        reports then cost no read of the trial to find its study."""
        if len(self._study_of) > MAX_KNOWN_TRIALS:
            self._study_of.clear()
        self._study_of.update(trials)

    def notice(self, trial_ids: Iterable[int]) -> None:
        """Trials whose validation metrics were just stored."""
        ids = set(trial_ids)
        if ids:
            task = asyncio.get_running_loop().create_task(self._route(ids))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def check(self, study_id: int, trial_ids: list[int]) -> tuple[Study, list[Decision]]:
        """The rule's verdict on trials of a study (every unfinished one when
        trial_ids is empty), without acting on it. NotFound for a trial that
        is not in the study."""
        watch = await self._watch(study_id)
        if watch is None:
            study = await self.storage.get_study(study_id)
            trials = StudyTrials(study_id, slack_for(self.storage))
            await trials.catch_up(self.storage)
            why = ("the study has no early-stopping rule" if not study.early_stopping.name
                   else f"the study is {study.state.value}: its trials are not judged")
            return study, [Decision(t, False, study.early_stopping.name, reason=why)
                           for t in _judged(study_id, trial_ids, trials)]
        async with watch.busy:
            await self._refresh(watch)
            return watch.study, [watch.rule.decide(t) for t in _judged(study_id, trial_ids, watch.trials)]

    def forget(self, study_id: int) -> None:
        """The study changed here: read it again at its next look."""
        self._watches.pop(study_id, None)
        self._no_rule.pop(study_id, None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- the looks ---------------------------------------------------------

    async def _route(self, trial_ids: set[int]) -> None:
        by_study: dict[int, set[int]] = {}
        for tid in trial_ids:
            study_id = self._study_of.get(tid)
            if study_id is None:
                try:
                    study_id = (await self.storage.get_trial(tid)).study_id
                except NotFound:
                    continue
                self.know([(tid, study_id)])
            if study_id:
                by_study.setdefault(study_id, set()).add(tid)
        for study_id, ids in by_study.items():
            await self._look(study_id, ids)

    async def _look(self, study_id: int, trial_ids: set[int]) -> None:
        pending = self._pending.setdefault(study_id, set())
        first = not pending
        pending.update(trial_ids)
        if not first:
            return  # a look that is waiting or running takes these too
        try:
            watch = await self._watch(study_id)
            if watch is None:
                return
            async with watch.busy:
                while self._pending.get(study_id):
                    ids, self._pending[study_id] = self._pending[study_id], set()
                    await self._refresh(watch)
                    await self._stop_rejected(watch, ids)
        except Exception:  # noqa: BLE001 - a failed look must not stop ingest
            log.exception("early stopping of study %s failed", study_id)
        finally:
            self._pending.pop(study_id, None)

    async def _watch(self, study_id: int) -> StudyWatch | None:
        watch = self._watches.get(study_id)
        now = time.monotonic()
        if watch is not None and now - watch.read_at < STUDY_TTL_SECONDS:
            return watch if watch.study.state == StudyState.ACTIVE else None
        if now - self._no_rule.get(study_id, -STUDY_TTL_SECONDS) < STUDY_TTL_SECONDS:
            return None
        study = await self.storage.get_study(study_id)
        if not study.early_stopping.name:
            self._watches.pop(study_id, None)
            self._no_rule[study_id] = now
            return None
        self._no_rule.pop(study_id, None)
        if watch is None or watch.study.early_stopping != study.early_stopping \
                or watch.study.objective != study.objective:
            watch = StudyWatch(study, self._rule(study.early_stopping), StudyTrials(study_id, slack_for(self.storage)),
                               study.objective.type == ObjectiveType.MAXIMIZE)
            self._watches[study_id] = watch
        watch.study = study
        watch.read_at = time.monotonic()
        return watch if study.state == StudyState.ACTIVE else None

    @staticmethod
    def _rule(spec: AlgorithmSpec) -> Rule:
        return registry.create(spec.name, dict(spec.settings))

    async def _refresh(self, watch: StudyWatch) -> None:
        """Brings the rule's curves up to what storage holds now."""
        await watch.trials.catch_up(self.storage)
        ids = sorted(watch.trials.trials)
        metric = watch.study.objective.metric_name
        for lo in range(0, len(ids), SUMMARY_BATCH):
            summaries = await self.storage.metric_summaries(ids[lo:lo + SUMMARY_BATCH], VALIDATION, [metric])
            for s in summaries:
                trial = watch.trials.trials[s.trial_id]
                active = not lifecycle.is_terminal(trial.state)
                key = (s.summary.count, s.summary.last_step, active)
                if watch.seen.get(s.trial_id) == key:
                    continue
                points = await self.storage.metric_points(s.series_id, *ALL_STEPS, False, None, MAX_POINTS)
                losses = np.asarray(points.values, dtype=np.float64)
                watch.rule.observe(Curve(s.trial_id, np.asarray(points.steps, dtype=np.int64),
                                         -losses if watch.maximize else losses, active))
                watch.seen[s.trial_id] = key

    async def _stop_rejected(self, watch: StudyWatch, trial_ids: set[int]) -> None:
        for tid in sorted(trial_ids):
            trial = watch.trials.trials.get(tid)
            if trial is None or trial.state not in lifecycle.ACTIVE:
                continue
            decision = watch.rule.decide(tid)
            if not decision.should_stop:
                continue
            details = {"early_stopping": decision_details(decision, watch.maximize)}
            message = f"early stopping ({decision.rule}): {decision.reason}"
            def stop(t, now, message=message, details=details):
                return lifecycle.stop(t, now, grace_seconds=None, message=message, details=details)

            try:
                await self.storage.change_trial(tid, stop)
            except DomainError as exc:
                log.info("early stopping of trial %s not applied: %s", tid, exc)
                continue
            self.feed.trials.notify(tid)
            self.stopped.append(decision)
            log.info("trial %s stopped early: %s", tid, decision.reason)
