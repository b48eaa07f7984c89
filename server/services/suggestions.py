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

from ..domain.errors import Aborted, FailedPrecondition
from ..domain.models import AlgorithmSpec, Study, StudyState, Trial
from ..domain.search import history, registry
from ..domain.search.base import Designer
from ..domain.search.checks import DEFAULT_ALGORITHM
from ..storage.interface import Storage, Suggested
from .study_trials import StudyTrials, slack_for


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
        changed = await search.trials.catch_up(self.storage)
        # The running set comes whole from the write that suggests.
        ended, _ = history.split(changed)
        if ended:
            with search.lock:
                search.designer.update(ended, [])

    async def suggest(self, study_id: int, client_id: str, count: int) -> Suggested:
        """A study with a warm search is not read first: the write that
        suggests locks it, and its plan checks the search still fits (else
        the study is read again and the call made once more)."""
        try:
            return await self._suggest(study_id, client_id, count, self._searches.get(study_id))
        except _SearchChanged:
            self.forget(study_id)
            return await self._suggest(study_id, client_id, count, None)

    async def _suggest(self, study_id: int, client_id: str, count: int, search: StudySearch | None) -> Suggested:
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
        warm = search

        def plan(locked: Study, unfinished: list[Trial], room: int) -> list[dict]:
            if locked.state != StudyState.ACTIVE:
                return []
            if locked.algorithm != warm.spec or locked.parameters != warm.parameters:
                raise _SearchChanged()
            with warm.lock:
                warm.designer.update([], [history.observed(t) for t in unfinished])
                return warm.designer.suggest(room, locked.suggestion_count)

        return await self.storage.suggest_trials(study_id, client_id, count, plan)

    def forget(self, study_id: int) -> None:
        self._searches.pop(study_id, None)


class _SearchChanged(Aborted):
    """The study's algorithm or space changed since its search was made; a
    second time in one call it reaches the client as ABORTED."""

    def __init__(self) -> None:
        super().__init__("the algorithm or the space of the study changed meanwhile; retry")


def _nothing(study: Study, unfinished: list[Trial], room: int) -> list[dict]:
    return []
