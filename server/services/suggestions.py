"""SuggestTrials: a warm search algorithm per study, fed with what changed.

Each study's designer lives as long as the server process, so a suggestion
costs the algorithm's step plus the trials that changed since the last one,
not a rebuild from every trial. The point index comes from the study row
(suggestion_count) and the unfinished trials are read inside the write that
creates the new ones, under the study's row lock: replicas take turns per
study, and each designer knows every point handed out before it proposes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..domain import trial_lifecycle as lifecycle
from ..domain.errors import Aborted, FailedPrecondition
from ..domain.models import AlgorithmSpec, Study, StudyState, Trial
from ..domain.search import history, registry
from ..domain.search.base import Designer
from ..domain.search.checks import DEFAULT_ALGORITHM
from ..storage.interface import HistoryRead, Storage, Suggested
from .study_trials import PAGE, StudyTrials, slack_for


@dataclass
class StudySearch:
    spec: AlgorithmSpec
    parameters: list
    designer: Designer
    trials: StudyTrials
    # The designer runs on the storage's threads inside the write.
    lock: threading.Lock = field(default_factory=threading.Lock)


def _settings(spec: AlgorithmSpec) -> dict[str, str]:
    return dict(spec.settings)


class Suggestions:
    def __init__(self, storage: Storage):
        self.storage = storage
        self._searches: dict[int, StudySearch] = {}

    def _search_for(self, study: Study) -> StudySearch:
        current = self._searches.get(study.id)
        if current is not None and current.spec == study.algorithm and current.parameters == study.parameters:
            return current
        designer = registry.create(study.algorithm.name or DEFAULT_ALGORITHM, study.parameters,
                                   _settings(study.algorithm), seed=study.id)
        search = StudySearch(study.algorithm, list(study.parameters), designer,
                              StudyTrials(study.id, slack_for(self.storage)))
        self._searches[study.id] = search
        return search

    async def _catch_up(self, search: StudySearch) -> None:
        if not search.designer.learns:
            return
        changed = await search.trials.catch_up(self.storage)
        # The running set comes whole from the write that suggests.
        ended, _ = history.split(changed)
        if ended:
            with search.lock:
                search.designer.update(ended, [])

    async def suggest(self, study_id: int, client_id: str, count: int, start: bool = False) -> Suggested:
        """start: the new trials are made RUNNING, for a caller that runs
        them itself. A study with a warm search is not read first: the write
        that suggests locks it, and its plan checks the search still fits
        (else the study is read again and the call made once more)."""
        begin = _starter(client_id) if start else None
        try:
            return await self._suggest(study_id, client_id, count, self._searches.get(study_id), begin)
        except _SearchChanged:
            self.forget(study_id)
            return await self._suggest(study_id, client_id, count, None, begin)

    async def _suggest(self, study_id: int, client_id: str, count: int, search: StudySearch | None,
                       start) -> Suggested:
        if search is None:
            study = await self.storage.get_study(study_id)
            if study.state == StudyState.ACTIVE and not study.parameters:
                raise FailedPrecondition(
                    f"study {study_id} has no search space: give it parameters to search",
                    reason="ILLEGAL_TRANSITION", metadata={"study_id": study_id},
                )
            if study.state != StudyState.ACTIVE:
                return await self.storage.suggest_trials(study_id, client_id, count, _nothing)
            search = self._search_for(study)
            await self._catch_up(search)
        elif search.trials.slack_us:
            # Replicas: every call reads the clock slack's worth again,
            # which is better done before the study is locked.
            await self._catch_up(search)
        warm = search

        def plan(locked: Study, unfinished: list[Trial], room: int) -> list[dict]:
            if locked.state != StudyState.ACTIVE:
                return []
            if locked.algorithm is not warm.spec or locked.parameters is not warm.parameters:
                if locked.algorithm != warm.spec or locked.parameters != warm.parameters:
                    raise _SearchChanged()
                # The study's parsed body is kept between writes: from now on
                # the same objects, and the check above is by identity.
                warm.spec, warm.parameters = locked.algorithm, locked.parameters
            with warm.lock:
                if warm.designer.learns:
                    warm.designer.update([], [history.observed(t) for t in unfinished])
                return warm.designer.suggest(room, locked.suggestion_count)

        try:
            return await self.storage.suggest_trials(study_id, client_id, count, plan, start, self._history(warm))
        except _HistoryBehind:
            await self._catch_up(warm)
            return await self.storage.suggest_trials(study_id, client_id, count, plan, start, self._history(warm))

    def _history(self, search: StudySearch) -> HistoryRead | None:
        """Where one process writes, what changed since the last call is
        read inside the suggesting write: one transaction instead of two."""
        if search.trials.slack_us or not search.designer.learns:
            return None

        def learn(page: list[Trial]) -> None:
            ended, _ = history.split(search.trials.absorb(page))
            if ended:
                with search.lock:
                    search.designer.update(ended, [])
            if len(page) >= PAGE:
                raise _HistoryBehind()

        return HistoryRead(search.trials.after(), learn, PAGE)

    def forget(self, study_id: int) -> None:
        self._searches.pop(study_id, None)


class _SearchChanged(Aborted):
    """The study's algorithm or space changed since its search was made; a
    second time in one call it reaches the client as ABORTED."""

    def __init__(self) -> None:
        super().__init__("the algorithm or the space of the study changed meanwhile; retry")


class _HistoryBehind(Aborted):
    """More changed than one suggesting write reads; they are read on their
    own first, and a second time in one call reaches the client as ABORTED."""

    def __init__(self) -> None:
        super().__init__("the study changed too much meanwhile; retry")


def _starter(client_id: str):
    message = f"started by SuggestTrials for {client_id}" if client_id else "started by SuggestTrials"
    return lambda trial, now: lifecycle.start(trial, now, message)


def _nothing(study: Study, unfinished: list[Trial], room: int) -> list[dict]:
    return []
