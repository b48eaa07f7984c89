"""The suggestions service on a real SQLite store: what each study's designer
is told, and when the study's trials are read for it."""

from __future__ import annotations

import asyncio

import pytest
from trialplane.server.domain import metrics as m
from trialplane.server.domain import trial_lifecycle as lifecycle
from trialplane.server.domain.models import (
    AlgorithmSpec,
    EarlyExitReason,
    FeasibleSpace,
    Objective,
    ObjectiveType,
    ParameterSpec,
    ParameterType,
    Study,
    TrialState,
)
from trialplane.server.domain.search.base import Outcome
from trialplane.server.services import study_trials
from trialplane.server.services.suggestions import Suggestions
from trialplane.server.storage.factory import open_storage

SPACE = [ParameterSpec("x", ParameterType.DOUBLE, FeasibleSpace(min=0.0, max=1.0))]


class Recording:
    """Wraps a designer and records what it is told."""

    def __init__(self, inner):
        self.inner = inner
        self.learns = inner.learns
        self.told: list[list[tuple[int, Outcome, float | None]]] = []

    def update(self, completed, active):
        if completed:
            self.told.append([(o.trial_id, o.outcome, o.loss) for o in completed])
        self.inner.update(completed, active)

    def suggest(self, count, index):
        return self.inner.suggest(count, index)


@pytest.fixture
def service(tmp_path):
    loop = asyncio.new_event_loop()
    storage = open_storage(str(tmp_path / "s.db"))
    loop.run_until_complete(storage.open())
    reads: list[int] = []
    history = storage.search_history

    async def counted(*args, **kwargs):
        reads.append(args[0])
        return await history(*args, **kwargs)

    storage.search_history = counted
    yield loop, storage, Suggestions(storage), reads
    loop.run_until_complete(storage.close())
    loop.close()


def make_study(loop, storage, algorithm: str):
    study = Study(name=algorithm, objective=Objective(metric_name="loss", type=ObjectiveType.MAXIMIZE),
                  parameters=SPACE, algorithm=AlgorithmSpec(name=algorithm))
    return loop.run_until_complete(storage.create_study(study))


def tell(loop, storage, trial_id: int, value: float) -> None:
    report = m.ReportDraft(trial_id, 0, m.VALIDATION, 1, 0, {"loss": value})
    loop.run_until_complete(storage.complete_trial(trial_id, report, lambda t, now: lifecycle.complete(t, now)))


def test_a_learning_designer_is_told_each_result_once_from_inside_the_write(service):
    loop, storage, suggestions, reads = service
    study = make_study(loop, storage, "tpe")
    (first,) = loop.run_until_complete(suggestions.suggest(study.id, "w", 1, start=True)).trials
    assert first.state == TrialState.RUNNING
    search = suggestions._searches[study.id]
    recording = search.designer = Recording(search.designer)
    assert reads == [study.id]  # the new search read the study once
    tell(loop, storage, first.id, 0.75)
    (second,) = loop.run_until_complete(suggestions.suggest(study.id, "w", 1, start=True)).trials
    loop.run_until_complete(suggestions.suggest(study.id, "w", 1, start=True))
    # MAXIMIZE: the loss is the value negated.
    assert recording.told == [[(first.id, Outcome.COMPLETED, -0.75)]]
    assert reads == [study.id]
    tell(loop, storage, second.id, 0.5)
    loop.run_until_complete(suggestions.suggest(study.id, "w", 1))
    assert recording.told[1:] == [[(second.id, Outcome.COMPLETED, -0.5)]] and reads == [study.id]


def test_a_trial_that_said_its_point_cannot_be_trained_is_told_as_infeasible_not_as_its_value(service):
    loop, storage, suggestions, reads = service
    study = make_study(loop, storage, "tpe")
    bad_point, good_point = loop.run_until_complete(suggestions.suggest(study.id, "", 2, start=True)).trials
    search = suggestions._searches[study.id]
    recording = search.designer = Recording(search.designer)
    # A value first, then the early exit: the value is not a result of the point.
    loop.run_until_complete(storage.ingest_metrics(m.IngestBatch(
        reports=[m.ReportDraft(bad_point.id, 0, m.VALIDATION, 1, 0, {"loss": 0.9})], report_index=[0])))
    loop.run_until_complete(storage.change_trial(
        bad_point.id, lambda t, now: lifecycle.report_early_exit(t, now, EarlyExitReason.INVALID_HP)))
    ended = loop.run_until_complete(storage.change_trial(
        bad_point.id, lambda t, now: lifecycle.report_state(t, now, lifecycle.StateReport(state=TrialState.COMPLETED))))
    # MAXIMIZE: the searcher metric is the value negated; without the early exit it would be a result.
    assert ended.state == TrialState.COMPLETED and ended.searcher_metric_value == -0.9
    tell(loop, storage, good_point.id, 0.5)
    loop.run_until_complete(suggestions.suggest(study.id, "", 1))
    told = {tid: (outcome, loss) for batch in recording.told for tid, outcome, loss in batch}
    assert told == {bad_point.id: (Outcome.INFEASIBLE, None), good_point.id: (Outcome.COMPLETED, -0.5)}


def test_a_designer_behind_by_a_page_catches_up_on_its_own_read_first(service, monkeypatch):
    loop, storage, suggestions, reads = service
    monkeypatch.setattr("trialplane.server.services.suggestions.PAGE", 3)
    monkeypatch.setattr(study_trials, "PAGE", 3)
    study = make_study(loop, storage, "tpe")
    made = loop.run_until_complete(suggestions.suggest(study.id, "", 5)).trials
    search = suggestions._searches[study.id]
    recording = search.designer = Recording(search.designer)
    for i, t in enumerate(made):
        loop.run_until_complete(storage.change_trial(t.id, lambda tr, now: lifecycle.start(tr, now, "go")))
        tell(loop, storage, t.id, float(i))
    reads.clear()
    assert len(loop.run_until_complete(suggestions.suggest(study.id, "", 1)).trials) == 1
    assert sorted(tid for batch in recording.told for tid, _, _ in batch) == sorted(t.id for t in made)
    assert reads  # the write found a full page and the trials were read on their own


@pytest.mark.parametrize("algorithm", ["random", "quasirandom"])
def test_designers_that_ignore_results_are_told_nothing_and_nothing_is_read(service, algorithm):
    loop, storage, suggestions, reads = service
    study = make_study(loop, storage, algorithm)
    (first,) = loop.run_until_complete(suggestions.suggest(study.id, "w", 1, start=True)).trials
    search = suggestions._searches[study.id]
    recording = search.designer = Recording(search.designer)
    tell(loop, storage, first.id, 0.25)
    loop.run_until_complete(suggestions.suggest(study.id, "w", 1))
    assert recording.told == [] and reads == []
