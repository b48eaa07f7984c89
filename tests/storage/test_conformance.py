"""One suite every storage backend must pass. Add a backend to BACKENDS."""

from __future__ import annotations

import asyncio
import inspect
import math
import random
import re
import sys

import numpy as np
import pytest
from support import postgres
from trialplane.server.domain import listing, study_rules, worker_lifecycle
from trialplane.server.domain import metrics as m
from trialplane.server.domain import trial_lifecycle as lifecycle
from trialplane.server.domain.checkpoints import Checkpoint, CheckpointState
from trialplane.server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    MetricConflict,
    NotFound,
    StaleTrialRun,
    TrialFinished,
)
from trialplane.server.domain.idempotency import RequestIdReused, RequestKey
from trialplane.server.domain.models import (
    MetricDefinition,
    Objective,
    ObjectiveType,
    Resources,
    Study,
    StudyState,
    Trial,
    TrialState,
    Worker,
    WorkerState,
)
from trialplane.server.domain.profiler import Chunk, Labels, MetricType
from trialplane.server.storage.factory import open_storage
from trialplane.server.storage.interface import (
    CheckpointFilter,
    HistoryRead,
    IngestItem,
    Observation,
    Storage,
)


def sqlite_backend(tmp_path):
    return open_storage(str(tmp_path / "conformance.db"), journal=False)


def journaled_sqlite_backend(tmp_path):
    """What `trialplane serve` runs on by default: SQLite behind the report journal."""
    return open_storage(str(tmp_path / "conformance.db"))


def postgres_backend(tmp_path):
    return open_storage(postgres.url_with_schema(postgres.schema_for(str(tmp_path))))


def drop_postgres(tmp_path):
    postgres.drop_schema(postgres.schema_for(str(tmp_path)))


# Each factory, called twice with the same tmp_path, names the same database;
# a cleanup, if any, removes it after the test.
BACKENDS = {"sqlite": sqlite_backend, "sqlite-journaled": journaled_sqlite_backend}
CLEANUPS = {}
if postgres.DSN:
    BACKENDS["postgres"] = postgres_backend
    CLEANUPS["postgres"] = drop_postgres


@pytest.fixture(params=sorted(BACKENDS))
def run(request, tmp_path):
    """Runs a coroutine function against an opened storage on a private event loop."""
    loop = asyncio.new_event_loop()
    storage = BACKENDS[request.param](tmp_path)
    loop.run_until_complete(storage.open())

    def call(fn):
        return loop.run_until_complete(fn(storage))

    yield call
    loop.run_until_complete(storage.close())
    loop.close()
    if request.param in CLEANUPS:
        CLEANUPS[request.param](tmp_path)


@pytest.fixture(params=sorted(BACKENDS))
def replicas(request, tmp_path):
    """Runs a coroutine function against two storages opened on one database,
    standing in for two server replicas.

    With the journal, the first storage opened takes its flock; the second
    finds it held (flock is per open file, so this holds within one process
    as across processes) and stores every metric report directly, as a
    second server process on the same file does. So `a` is the replica that
    acknowledges reports from its journal and `b` the one without; both
    share nothing but the database. `a` is closed last, as the journal's
    owner outlives the replica that joined it.
    """
    loop = asyncio.new_event_loop()
    a = BACKENDS[request.param](tmp_path)
    loop.run_until_complete(a.open())
    b = BACKENDS[request.param](tmp_path)
    loop.run_until_complete(b.open())

    def call(fn):
        return loop.run_until_complete(fn(a, b))

    yield call
    loop.run_until_complete(b.close())
    loop.run_until_complete(a.close())
    loop.close()
    if request.param in CLEANUPS:
        CLEANUPS[request.param](tmp_path)


def page(size=50, order=None, token_after=None):
    p = listing.Page(size=size, order=order or listing.Order(), fingerprint="")
    p.after = token_after
    return p


async def list_all(storage, flt, order, size):
    out, after = [], None
    while True:
        items, after = await storage.list_trials(flt, page(size, order, after))
        out.extend(items)
        if after is None:
            return out


def key(method: str, request_id: str, digest: bytes = b"same", parent: str = "") -> RequestKey:
    return RequestKey(method, parent, request_id, digest)


def test_study_create_unique_and_idempotent(run):
    async def body(s):
        a = await s.create_study(Study(name="a"), key("CreateStudy", "r1"))
        again = await s.create_study(Study(name="a"), key("CreateStudy", "r1"))
        assert again.id == a.id and again.version == 1
        with pytest.raises(RequestIdReused):
            await s.create_study(Study(name="b"), key("CreateStudy", "r1", b"another study"))
        with pytest.raises(AlreadyExists):
            await s.create_study(Study(name="a"))
        assert (await s.get_study_by_name("a")).id == a.id
        with pytest.raises(NotFound):
            await s.get_study(a.id + 100)

    run(body)


def test_trial_round_trip_keeps_types(run):
    async def body(s):
        t = await s.create_trial(
            Trial(name="x", hyperparameters={"f": 1.0, "i": 3, "s": "adam", "b": False}, tags=["t"]),
            None, lambda study: None,
        )
        got = await s.get_trial(t.id)
        assert got.hyperparameters == {"f": 1.0, "i": 3, "s": "adam", "b": False}
        assert type(got.hyperparameters["f"]) is float and type(got.hyperparameters["i"]) is int
        assert got.state == TrialState.QUEUED and got.version == 1 and got.tags == ["t"]

    run(body)


def test_change_trial_appends_numbered_events_and_dedups_request_ids(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda study: None)
        report = lifecycle.StateReport(state=TrialState.RUNNING)
        await s.change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, report), key("ReportTrialState", "req-1"))
        restarted = await s.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "req-2"))
        again = await s.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "req-2"))
        assert restarted.restarts == again.restarts == 1 and again.version == restarted.version
        events = await s.list_trial_events(t.id, 0, 10)
        assert [(e.sequence, e.from_state, e.to_state) for e in events] == [
            (1, TrialState.QUEUED, TrialState.RUNNING),
            (2, TrialState.RUNNING, TrialState.QUEUED),
        ]
        assert [e.sequence for e in await s.list_trial_events(t.id, 0, 10, descending=True)] == [2, 1]
        with pytest.raises(RequestIdReused):
            await s.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "req-2", b"other"))

    run(body)


def test_failed_change_leaves_no_trace_and_neighbours_commit(run):
    async def body(s):
        trials = [await s.create_trial(Trial(name=f"n{i}"), None, lambda study: None) for i in range(20)]

        def change_for(i):
            if i % 2:
                return lambda tr, now: lifecycle.report_state(tr, now, lifecycle.StateReport(state=TrialState.PAUSED))
            return lambda tr, now: lifecycle.report_state(tr, now, lifecycle.StateReport(state=TrialState.RUNNING))

        results = await asyncio.gather(
            *(s.change_trial(t.id, change_for(i)) for i, t in enumerate(trials)), return_exceptions=True
        )
        for i, (t, result) in enumerate(zip(trials, results)):
            stored = await s.get_trial(t.id)
            if i % 2:
                assert isinstance(result, FailedPrecondition)
                assert stored.state == TrialState.QUEUED and stored.version == 1
                assert await s.list_trial_events(t.id, 0, 10) == []
            else:
                assert result.state == TrialState.RUNNING and stored.version == 2

    run(body)


# searcher_metric_value leaves out trials without one; tests/test_metrics_api.py covers it.
@pytest.mark.parametrize("field", sorted(listing.TRIAL_ORDER_FIELDS - {"searcher_metric_value"}))
def test_keyset_pages_match_a_full_sort(run, field):
    rng = random.Random(7)

    async def body(s):
        for _ in range(45):
            t = await s.create_trial(Trial(name=rng.choice(["a", "b", "c"]) + str(rng.randint(0, 3))), None, lambda st: None)
            if rng.random() < 0.5:
                steps = rng.randint(0, 3)
                await s.change_trial(t.id, lambda tr, now, steps=steps: lifecycle.report_state(
                    tr, now, lifecycle.StateReport(state=TrialState.RUNNING, steps_completed=steps)))
        everything = await list_all(s, listing.TrialFilter(), listing.Order(), 1000)
        for desc in (False, True):
            expected = sorted(everything, key=lambda t: (getattr(t, field), t.id), reverse=desc)
            got = await list_all(s, listing.TrialFilter(), listing.Order(field, desc), 4)
            assert [t.id for t in got] == [t.id for t in expected]

    run(body)


def test_ilike_agrees_with_the_reference_matcher(run):
    names = ["test-run", "TEST_RUN", "a%b", "a_b", "axb", "back\\slash", "Ärger", "ärger", "x", "", "100%", "_"]
    patterns = ["%", "test%", "%RUN", "test\\_run", "test_run", "a\\%b", "a_b", "a%", "%\\\\%", "ä%", "_", "\\_",
                "100\\%", "%0%", "x_", "%%"]

    async def body(s):
        for name in names:
            await s.create_trial(Trial(name=name or "placeholder"), None, lambda st: None)
        stored = [t.name for t in await list_all(s, listing.TrialFilter(), listing.Order(), 1000)]
        for pattern in patterns:
            flt = listing.TrialFilter(name_pattern=listing.check_ilike(pattern))
            got = sorted(t.name for t in await list_all(s, flt, listing.Order(), 1000))
            expected = sorted(n for n in stored if listing.ilike_match(pattern, n))
            assert got == expected, pattern

    run(body)


def test_study_trial_count_and_cascade(run):
    async def body(s):
        study = await s.create_study(Study(name="s"))
        t = await s.create_trial(Trial(study_id=study.id), None, lambda st: None)
        await s.register_worker(Worker(trial_id=t.id, type="w"), None, lambda tr: None)
        assert (await s.get_study(study.id)).trial_count == 1
        await s.delete_study(study.id, lambda st: None)
        with pytest.raises(NotFound):
            await s.get_trial(t.id)
        items, _ = await s.list_workers(listing.WorkerFilter(), page())
        assert items == []

    run(body)


def index_plan(seen: list):
    """A plan whose points name their index, recording what it was given."""
    def plan(study, unfinished, room):
        seen.append((study.suggestion_count, sorted(t.id for t in unfinished), room))
        return [{"i": study.suggestion_count + k} for k in range(room)]
    return plan


def test_suggested_trials_take_the_next_indices_within_the_room(run):
    async def body(s):
        study = await s.create_study(Study(name="s", parallel_trials=3, max_trials=5))
        seen: list = []
        first = await s.suggest_trials(study.id, "w1", 2, index_plan(seen))
        assert [t.hyperparameters for t in first.trials] == [{"i": 0}, {"i": 1}]
        assert [(t.name, t.client_id, t.state) for t in first.trials] == [
            ("s-1", "w1", TrialState.QUEUED), ("s-2", "w1", TrialState.QUEUED)]
        assert (first.study.suggestion_count, first.study.trial_count) == (2, 2)
        # The same client gets its unfinished trials back; no plan is asked.
        again = await s.suggest_trials(study.id, "w1", 2, index_plan(seen))
        assert [t.id for t in again.trials] == [t.id for t in first.trials] and len(seen) == 1
        # parallel_trials leaves room for one more.
        other = await s.suggest_trials(study.id, "w2", 5, index_plan(seen))
        assert [t.hyperparameters for t in other.trials] == [{"i": 2}]
        assert seen[-1] == (2, sorted(t.id for t in first.trials), 1)
        assert (await s.suggest_trials(study.id, "", 1, index_plan(seen))).trials == []
        for t in first.trials:
            await s.change_trial(t.id, running())
            await s.change_trial(t.id, lambda tr, now: lifecycle.report_state(
                tr, now, lifecycle.StateReport(state=TrialState.COMPLETED)))
        # max_trials leaves two; a plan that finds fewer points exhausts the space.
        short = await s.suggest_trials(study.id, "", 2, lambda st, unfinished, room: [{"i": 9}])
        assert [t.hyperparameters for t in short.trials] == [{"i": 9}]
        assert short.study.state == StudyState.COMPLETED
        assert short.study.state_message.startswith("search space exhausted")
        assert (await s.suggest_trials(study.id, "", 1, index_plan(seen))).trials == []
        with pytest.raises(NotFound):
            await s.suggest_trials(study.id + 100, "", 1, index_plan(seen))

    run(body)


def test_search_history_pages_by_update_time(run):
    async def body(s):
        study = await s.create_study(Study(name="s"))
        made = (await s.suggest_trials(study.id, "", 3, index_plan([]))).trials
        history = await s.search_history(study.id, None)
        assert [t.id for t in history] == [t.id for t in made]
        changed = await s.change_trial(made[0].id, running())
        after = (history[-1].update_time, history[-1].id)
        assert [t.id for t in await s.search_history(study.id, after)] == [changed.id]
        # The changed trial moved to the end.
        assert [t.id for t in await s.search_history(study.id, None, limit=2)] == [t.id for t in made[1:]]

    run(body)


def test_suggested_trials_can_start_running_and_history_is_read_in_the_write(run):
    async def body(s):
        study = await s.create_study(Study(name="s"))
        learned: list = []
        start = lambda tr, now: lifecycle.start(tr, now, "started for w1")  # noqa: E731
        history = HistoryRead(None, lambda page: learned.append([t.id for t in page]))
        made = (await s.suggest_trials(study.id, "w1", 2, index_plan([]), start, history)).trials
        assert [t.state for t in made] == [TrialState.RUNNING] * 2 and all(t.start_time for t in made)
        assert learned == [[]]
        for t in made:
            stored = await s.get_trial(t.id)
            assert (stored.state, stored.start_time) == (TrialState.RUNNING, t.start_time)
            events = await s.list_trial_events(t.id, 0, 10)
            assert [(e.sequence, e.from_state, e.to_state, e.message) for e in events] == [
                (1, TrialState.QUEUED, TrialState.RUNNING, "started for w1")]
        # The client gets its running trials back as they are.
        again = (await s.suggest_trials(study.id, "w1", 2, index_plan([]), start)).trials
        assert [(t.id, t.version) for t in again] == [(t.id, t.version) for t in made]
        # A history read names the trials changed after its key, oldest change first.
        await s.change_trial(made[1].id, lambda tr, now: lifecycle.report_state(
            tr, now, lifecycle.StateReport(state=TrialState.RUNNING, steps_completed=3)))
        after = (made[0].update_time, made[0].id)
        await s.suggest_trials(study.id, "w2", 1, index_plan([]), None, HistoryRead(
            after, lambda page: learned.append([t.id for t in page])))
        assert learned[-1] == [made[1].id]
        # What learn raises ends the write with nothing written.
        def refuse(page):
            raise FailedPrecondition("no")
        with pytest.raises(FailedPrecondition):
            await s.suggest_trials(study.id, "w3", 1, index_plan([]), None, HistoryRead(None, refuse))
        assert (await s.get_study(study.id)).suggestion_count == 3

    run(body)


def test_complete_trial_stores_the_result_and_ends_the_trial_at_once(run):
    async def body(s):
        study = await s.create_study(Study(name="s", objective=Objective(metric_name="loss", type=ObjectiveType.MINIMIZE),
                                           max_trials=2))
        a, b = (await s.suggest_trials(study.id, "", 2, index_plan([]))).trials
        await s.change_trial(a.id, running(report_steps=7))
        report = m.ReportDraft(a.id, 0, m.VALIDATION, 0, 0, {"loss": 0.25, "acc": 0.75})
        done = await s.complete_trial(a.id, report, lambda tr, now: lifecycle.complete(tr, now), key("CompleteTrial", "c1"))
        assert done.state == TrialState.COMPLETED and done.searcher_metric_value == 0.25
        # Step 0 is the trial's steps_completed.
        assert done.best_validation["total_batches"] == 7 and done.best_validation["metrics"] == {"loss": 0.25, "acc": 0.75}
        assert {(x.group, x.name): (x.summary.last, x.summary.last_step) for x in await s.metric_summaries([a.id])} == {
            ("validation", "loss"): (0.25, 7), ("validation", "acc"): (0.75, 7)}
        events = await s.list_trial_events(a.id, 0, 10)
        assert [e.to_state for e in events] == [TrialState.RUNNING, TrialState.COMPLETED]
        # A retry stores nothing again and returns the trial as it is.
        again = await s.complete_trial(a.id, m.ReportDraft(a.id, 0, m.VALIDATION, 0, 0, {"loss": 0.25, "acc": 0.75}),
                                       lambda tr, now: lifecycle.complete(tr, now), key("CompleteTrial", "c1"))
        assert again.version == done.version and len(await s.list_trial_events(a.id, 0, 10)) == 2
        # A refused report or a refused change leaves no trace.
        with pytest.raises(TrialFinished):
            await s.complete_trial(a.id, m.ReportDraft(a.id, 0, m.VALIDATION, 9, 0, {"loss": 0.1}),
                                   lambda tr, now: lifecycle.complete(tr, now))
        with pytest.raises(StaleTrialRun):
            await s.complete_trial(b.id, m.ReportDraft(b.id, 4, m.VALIDATION, 1, 0, {"loss": 0.5}),
                                   lambda tr, now: lifecycle.complete(tr, now))
        with pytest.raises(Aborted):
            await s.complete_trial(b.id, m.ReportDraft(b.id, 0, m.VALIDATION, 1, 0, {"loss": 0.5}),
                                   lambda tr, now: lifecycle.complete(tr, now, etag="999"))
        assert await s.metric_summaries([b.id]) == [] and (await s.get_trial(b.id)).state == TrialState.QUEUED
        with pytest.raises(NotFound):
            await s.complete_trial(b.id + 100, None, lambda tr, now: lifecycle.complete(tr, now))
        # Without a report the trial ends with what it reported before; the last of max_trials ends the study.
        last = await s.complete_trial(b.id, None, lambda tr, now: lifecycle.complete(tr, now))
        assert last.state == TrialState.COMPLETED and last.searcher_metric_value is None
        assert (await s.get_study(study.id)).state == StudyState.COMPLETED

    run(body)


def test_a_state_change_keeps_what_reports_stored_since_the_last_one(run):
    """Metric and checkpoint reports set columns of the trial without a new
    version: a state change after them must see them, not the trial as the
    change before them left it."""
    async def body(s):
        study = await s.create_study(Study(name="s", objective=Objective(metric_name="loss", type=ObjectiveType.MINIMIZE)))
        (t,) = (await s.suggest_trials(study.id, "", 1, index_plan([]))).trials
        first = await s.change_trial(t.id, running())
        await s.ingest_metrics(m.IngestBatch(reports=[m.ReportDraft(t.id, 1, m.VALIDATION, 5, 0, {"loss": 0.5})],
                                             report_index=[0]))
        await s.report_checkpoint(Checkpoint("k5", t.id, CheckpointState.COMPLETED, steps_completed=5,
                                             resources={"w": 40}))
        steps = lifecycle.StateReport(state=TrialState.RUNNING, steps_completed=6)
        second = await s.change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, steps))
        assert (second.version, second.steps_completed) == (first.version + 1, 6)
        assert second.searcher_metric_value == 0.5 and second.best_validation["metrics"] == {"loss": 0.5}
        assert (second.checkpoint_count, second.checkpoint_size) == (1, 40)
        await s.ingest_metrics(m.IngestBatch(reports=[m.ReportDraft(t.id, 1, m.VALIDATION, 9, 0, {"loss": 0.25})],
                                             report_index=[0]))
        done = await s.change_trial(t.id, lambda tr, now: lifecycle.complete(tr, now))
        stored = await s.get_trial(t.id)
        for trial in (done, stored):
            assert trial.state == TrialState.COMPLETED and trial.steps_completed == 6
            assert trial.searcher_metric_value == 0.25 and trial.latest_validation["total_batches"] == 9
            assert (trial.checkpoint_count, trial.checkpoint_size) == (1, 40)

    run(body)


def test_studies_end_when_their_trials_do(run):
    async def body(s):
        budget = await s.create_study(Study(name="budget", max_trials=2))
        made = (await s.suggest_trials(budget.id, "", 2, index_plan([]))).trials
        done = lifecycle.StateReport(state=TrialState.COMPLETED)
        failed = lifecycle.StateReport(state=TrialState.ERROR)
        for t in made:
            await s.change_trial(t.id, running())
            assert (await s.get_study(budget.id)).state == StudyState.ACTIVE
            await s.change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, done))
        assert (await s.get_study(budget.id)).state == StudyState.COMPLETED
        fragile = await s.create_study(Study(name="fragile", max_failed_trials=1))
        (t,) = (await s.suggest_trials(fragile.id, "", 1, index_plan([]))).trials
        await s.change_trial(t.id, running())
        await s.change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, failed))
        ended = await s.get_study(fragile.id)
        assert (ended.state, ended.state_message) == (StudyState.FAILED, "max_failed_trials reached: 1 trials ended in ERROR")

    run(body)


def test_metrics_overdue_finds_running_trials_silent_past_their_study_timeout(run):
    async def body(s):
        study = await s.create_study(Study(name="s", metrics_timeout_seconds=60))
        other = await s.create_study(Study(name="no-timeout"))
        quiet, talking = (await s.suggest_trials(study.id, "", 2, index_plan([]))).trials
        (untimed,) = (await s.suggest_trials(other.id, "", 1, index_plan([]))).trials
        started = [await s.change_trial(t.id, running()) for t in (quiet, talking, untimed)]
        start = max(t.start_time for t in started)
        await s.ingest_metrics(m.IngestBatch(reports=[m.ReportDraft(talking.id, 1, "training", 1, start + 50_000_000,
                                                                    {"loss": 1.0})], report_index=[0]))
        assert await s.metrics_overdue(start + 59_000_000) == []
        assert await s.metrics_overdue(start + 70_000_000) == [(quiet.id, 60.0)]
        assert await s.metrics_overdue(start + 200_000_000) == [(quiet.id, 60.0), (talking.id, 60.0)]
        assert await s.metrics_overdue(start + 200_000_000, limit=1) == [(quiet.id, 60.0)]

    run(body)


def test_two_replicas_suggesting_at_once_never_share_an_index(replicas):
    async def body(a, b):
        study = await a.create_study(Study(name="s", parallel_trials=20))
        results = await asyncio.gather(*(
            (a if i % 2 else b).suggest_trials(study.id, f"w{i}", 2, index_plan([])) for i in range(12)
        ))
        indices = sorted(t.hyperparameters["i"] for r in results for t in r.trials)
        assert indices == list(range(20))
        assert (await b.get_study(study.id)).suggestion_count == 20

    replicas(body)


def test_trials_due_by_deadline(run):
    async def body(s):
        a = await s.create_trial(Trial(), None, lambda st: None)
        await s.create_trial(Trial(), None, lambda st: None)
        await s.change_trial(a.id, lambda tr, now: lifecycle.report_state(tr, now, lifecycle.StateReport(state=TrialState.RUNNING)))
        stopped = await s.change_trial(a.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=10))
        assert await s.trials_due(stopped.stop_deadline - 1) == []
        assert await s.trials_due(stopped.stop_deadline) == [a.id]

    run(body)


def test_concurrent_creates_are_all_kept(run):
    async def body(s):
        created = await asyncio.gather(*(s.create_trial(Trial(name=f"c{i}"), key("CreateTrial", f"r{i}"), lambda st: None) for i in range(300)))
        assert len({t.id for t in created}) == 300
        assert len(await list_all(s, listing.TrialFilter(), listing.Order(), 1000)) == 300

    run(body)


def running(report_steps: int = 0):
    report = lifecycle.StateReport(state=TrialState.RUNNING, steps_completed=report_steps)
    return lambda tr, now: lifecycle.report_state(tr, now, report)


def test_studies_list_update_and_delete(run):
    async def body(s):
        a = await s.create_study(Study(name="alpha", owner="ann", tags=["x"]))
        b = await s.create_study(Study(name="Beta", owner="bob", tags=["x", "y"]))
        c = await s.create_study(Study(name="gamma", owner="ann"))
        everything, after = await s.list_studies(listing.StudyFilter(), page())
        assert [st.id for st in everything] == [a.id, b.id, c.id] and after is None
        first, after = await s.list_studies(listing.StudyFilter(), page(2))
        rest, end = await s.list_studies(listing.StudyFilter(), page(2, token_after=after))
        assert [st.id for st in first + rest] == [a.id, b.id, c.id] and end is None
        owned, _ = await s.list_studies(listing.StudyFilter(owner="ann"), page())
        assert [st.id for st in owned] == [a.id, c.id]
        tagged, _ = await s.list_studies(listing.StudyFilter(tags=["y"]), page())
        assert [st.id for st in tagged] == [b.id]
        named, _ = await s.list_studies(listing.StudyFilter(name_pattern=listing.check_ilike("beta")), page())
        assert [st.id for st in named] == [b.id]
        newest, _ = await s.list_studies(listing.StudyFilter(), page(order=listing.Order("name", True)))
        assert [st.name for st in newest] == ["gamma", "alpha", "Beta"]

        def finish(st):
            st.description, st.state, st.tags = "done", StudyState.COMPLETED, ["z"]
            return st

        updated = await s.update_study(a.id, finish)
        assert (updated.description, updated.state, updated.tags, updated.version) == ("done", StudyState.COMPLETED, ["z"], 2)
        got = await s.get_study(a.id)
        assert got.version == 2 and got.tags == ["z"] and got.update_time >= got.create_time
        done, _ = await s.list_studies(listing.StudyFilter(states=[StudyState.COMPLETED.value]), page())
        assert [st.id for st in done] == [a.id]
        with pytest.raises(NotFound):
            await s.update_study(a.id + 100, finish)

        # A completed study takes no trials: admit runs inside the write.
        with pytest.raises(FailedPrecondition):
            await s.create_trial(Trial(study_id=a.id), None, study_rules.check_accepts_trials)
        await s.create_trial(Trial(study_id=b.id), None, study_rules.check_accepts_trials)
        with pytest.raises(FailedPrecondition):
            await s.delete_study(b.id, lambda st: study_rules.check_deletable(st, force=False))
        assert (await s.get_study(b.id)).trial_count == 1
        deleted = await s.delete_study(b.id, lambda st: study_rules.check_deletable(st, force=True))
        assert deleted.id == b.id
        with pytest.raises(NotFound):
            await s.get_study_by_name("Beta")
        with pytest.raises(NotFound):
            await s.delete_study(b.id, lambda st: None)

    run(body)


def test_trials_listed_by_filter_and_deleted_when_finished(run):
    async def body(s):
        study = await s.create_study(Study(name="s", max_trials=2))
        admit = study_rules.check_accepts_trials
        t1 = await s.create_trial(Trial(study_id=study.id, name="one", tags=["a"]), key("CreateTrial", "c1", parent="s"), admit)
        again = await s.create_trial(Trial(study_id=study.id, name="one", tags=["a"]), key("CreateTrial", "c1", parent="s"), admit)
        assert again.id == t1.id
        t2 = await s.create_trial(Trial(study_id=study.id), None, admit)
        assert t2.name == f"trial-{t2.id}"
        with pytest.raises(FailedPrecondition):  # max_trials
            await s.create_trial(Trial(study_id=study.id), None, admit)
        loose = await s.create_trial(Trial(name="loose"), None, lambda st: None)
        with pytest.raises(NotFound):
            await s.create_trial(Trial(study_id=study.id + 100), None, admit)

        of_study, _ = await s.list_trials(listing.TrialFilter(study_id=study.id), page())
        assert [t.id for t in of_study] == [t1.id, t2.id]
        tagged, _ = await s.list_trials(listing.TrialFilter(tags=["a"]), page())
        assert [t.id for t in tagged] == [t1.id]
        await s.change_trial(t2.id, running(5))
        busy, _ = await s.list_trials(listing.TrialFilter(states=[TrialState.RUNNING.value]), page())
        assert [t.id for t in busy] == [t2.id] and busy[0].steps_completed == 5

        with pytest.raises(FailedPrecondition):
            await s.delete_trial(t2.id, lambda tr: lifecycle.ensure_deletable(tr, force=False))
        assert (await s.get_trial(t2.id)).state == TrialState.RUNNING
        await s.change_trial(t1.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=None))
        assert (await s.get_trial(t1.id)).state == TrialState.CANCELED
        gone = await s.delete_trial(t1.id, lambda tr: lifecycle.ensure_deletable(tr, force=False))
        assert gone.id == t1.id and gone.state == TrialState.CANCELED
        with pytest.raises(NotFound):
            await s.get_trial(t1.id)
        with pytest.raises(NotFound):
            await s.list_trial_events(t1.id, 0, 10)
        assert (await s.get_study(study.id)).trial_count == 1
        await s.delete_trial(loose.id, lambda tr: lifecycle.ensure_deletable(tr, force=True))
        remaining = await list_all(s, listing.TrialFilter(), listing.Order(), 100)
        assert [t.id for t in remaining] == [t2.id]

    run(body)


def test_trial_events_page_both_ways(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        for _ in range(3):
            await s.change_trial(t.id, running())
            await s.change_trial(t.id, lambda tr, now: lifecycle.pause(tr, now))
            await s.change_trial(t.id, lambda tr, now: lifecycle.activate(tr, now))
        events = await s.list_trial_events(t.id, 0, 100)
        assert [e.sequence for e in events] == list(range(1, 10))
        assert events[0].from_state == TrialState.QUEUED and events[-1].to_state == TrialState.QUEUED
        assert all(e.trial_id == t.id and e.trial_run_id == 1 and e.time > 0 for e in events)
        assert [e.sequence for e in await s.list_trial_events(t.id, 3, 2)] == [4, 5]
        assert [e.sequence for e in await s.list_trial_events(t.id, 0, 3, descending=True)] == [9, 8, 7]
        assert [e.sequence for e in await s.list_trial_events(t.id, 0, 3, descending=True, before_sequence=5)] == [4, 3, 2]
        assert [e.sequence for e in await s.list_trial_events(t.id, 2, 10, before_sequence=5)] == [3, 4]
        assert (await s.get_trial(t.id)).version == 10

    run(body)


def test_runtime_deadline_is_due(run):
    async def body(s):
        t = await s.create_trial(Trial(max_runtime_seconds=60), None, lambda st: None)
        started = await s.change_trial(t.id, running())
        assert started.runtime_deadline == started.start_time + 60_000_000
        assert await s.trials_due(started.runtime_deadline - 1) == []
        assert await s.trials_due(started.runtime_deadline) == [t.id]
        expired = await s.change_trial(t.id, lambda tr, now: lifecycle.expire(tr, now + 60_000_000))
        assert expired.state == TrialState.STOPPING_CANCELED and expired.runtime_deadline is None
        assert await s.trials_due(expired.stop_deadline - 1) == []
        assert await s.trials_due(expired.stop_deadline, limit=1) == [t.id]

    run(body)


def test_workers_register_change_list_and_go_silent(run):
    async def body(s):
        admit = worker_lifecycle.admit_registration
        t = await s.create_trial(Trial(resources=Resources(worker_count=2)), None, lambda st: None)
        other = await s.create_trial(Trial(), None, lambda st: None)
        w0 = await s.register_worker(Worker(trial_id=t.id, type="gpu", rank=0, address="h0"), key("RegisterWorker", "w0"), admit)
        again = await s.register_worker(Worker(trial_id=t.id, type="gpu", rank=0, address="h0"), key("RegisterWorker", "w0"), admit)
        assert again.id == w0.id and w0.trial_run_id == 1 and w0.state == WorkerState.PENDING
        with pytest.raises(RequestIdReused):
            await s.register_worker(Worker(trial_id=t.id, rank=1), key("RegisterWorker", "w0", b"other"), admit)
        with pytest.raises(AlreadyExists):  # rank 0 is held by a live worker
            await s.register_worker(Worker(trial_id=t.id, rank=0), None, admit)
        w1 = await s.register_worker(Worker(trial_id=t.id, type="gpu", rank=1, address="h1", tags=["b"]), None, admit)
        wx = await s.register_worker(Worker(trial_id=other.id, rank=0), None, admit)
        with pytest.raises(NotFound):
            await s.register_worker(Worker(trial_id=other.id + 100), None, admit)
        got = await s.get_worker(w1.id)
        assert (got.address, got.rank, got.tags, got.trial_id) == ("h1", 1, ["b"], t.id)
        assert got.last_heartbeat == got.create_time > 0
        assert [w.id for w in await s.run_workers(t.id, 1)] == [w0.id, w1.id]
        assert await s.run_workers(t.id, 2) == []
        with pytest.raises(NotFound):
            await s.run_workers(other.id + 100, 1)

        started = await s.change_worker(w0.id, lambda w, now: worker_lifecycle.report_state(w, now, WorkerState.RUNNING))
        assert started.state == WorkerState.RUNNING and started.last_heartbeat >= w0.last_heartbeat
        with pytest.raises(FailedPrecondition):
            await s.change_worker(w0.id, lambda w, now: worker_lifecycle.report_state(w, now, WorkerState.PENDING))
        of_t, _ = await s.list_workers(listing.WorkerFilter(trial_id=t.id), page())
        assert [w.id for w in of_t] == [w0.id, w1.id]
        live, _ = await s.list_workers(listing.WorkerFilter(states=[WorkerState.RUNNING.value]), page())
        assert [w.id for w in live] == [w0.id]
        first, after = await s.list_workers(listing.WorkerFilter(), page(2))
        rest, end = await s.list_workers(listing.WorkerFilter(), page(2, token_after=after))
        assert [w.id for w in first + rest] == [w0.id, w1.id, wx.id] and end is None
        with pytest.raises(NotFound):
            await s.list_workers(listing.WorkerFilter(trial_id=other.id + 100), page())

        # A queued trial is not watched; a running one whose workers are all
        # quiet since a time is silent, and one heartbeat makes it heard.
        quiet = max(started.last_heartbeat, w1.last_heartbeat)
        assert await s.silent_trials(quiet) == []
        await s.change_trial(t.id, running())
        assert await s.silent_trials(quiet) == [t.id]
        beat = await s.change_worker(w1.id, lambda w, now: worker_lifecycle.heartbeat(w, now))
        assert beat.last_heartbeat > quiet
        assert await s.silent_trials(quiet) == []
        assert await s.silent_trials(beat.last_heartbeat) == [t.id]

        removed = await s.delete_worker(w1.id)
        assert removed.id == w1.id
        with pytest.raises(NotFound):
            await s.get_worker(w1.id)
        with pytest.raises(NotFound):
            await s.delete_worker(w1.id)
        # Rank 1 is free again; a finished trial takes no workers.
        await s.register_worker(Worker(trial_id=t.id, rank=1), None, admit)
        await s.change_trial(other.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=None))
        with pytest.raises(FailedPrecondition):
            await s.register_worker(Worker(trial_id=other.id, rank=1), None, admit)

    run(body)


T0 = 1_700_000_000_000_000  # microseconds, 2023
DAY = 86_400_000_000


def profiler_item(sequence: int, labels: Labels, values, first_batch: int, first_ts: int) -> IngestItem:
    n = len(values)
    chunk = Chunk(np.array(values, dtype=np.float64), np.arange(first_batch, first_batch + n, dtype=np.int64),
                  np.arange(first_ts, first_ts + n * 1000, 1000, dtype=np.int64))
    return IngestItem(sequence, labels, chunk.summary(), chunk.to_bytes())


def test_profiler_streams_store_once_and_read_back(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        gpu = Labels(t.id, "gpu_util", "agent-1", "GPU-0", MetricType.SYSTEM)
        cpu = Labels(t.id, "cpu_util", "agent-1", "", MetricType.SYSTEM)
        first = await s.ingest_profiler("stream-1", [
            profiler_item(1, gpu, [1.0, 5.0, 3.0], 0, T0),
            profiler_item(2, gpu, [2.0, 9.0], 3, T0 + 3000),
            profiler_item(3, cpu, [0.5], 0, T0),
        ])
        assert (first.acknowledged_sequence, first.stored_samples, first.duplicates, first.rejected) == (3, 6, 0, [])
        assert await s.profiler_stream_position("stream-1") == 3
        assert await s.profiler_stream_position("never-used") == 0
        # A resend of stored sequences is a duplicate; a sequence skipped and
        # sent after a later one was settled is rejected, never stored.
        resent = await s.ingest_profiler("stream-1", [profiler_item(2, gpu, [2.0, 9.0], 3, T0 + 3000),
                                                      profiler_item(5, gpu, [4.0], 5, T0 + 5000)])
        assert (resent.acknowledged_sequence, resent.stored_samples, resent.duplicates) == (5, 1, 1)
        late = await s.ingest_profiler("stream-1", [profiler_item(4, gpu, [7.0], 9, T0 + 9000)])
        assert late.acknowledged_sequence == 5 and late.stored_samples == 0 and [r[0] for r in late.rejected] == [4]
        unknown = await s.ingest_profiler("stream-1", [profiler_item(6, Labels(t.id + 100, "x"), [1.0], 0, T0)])
        assert [r[0] for r in unknown.rejected] == [6] and unknown.acknowledged_sequence == 6

        # Without a stream, a request key makes the resend safe.
        k = key("ReportProfilerBatch", "p1")
        once = await s.ingest_profiler("", [profiler_item(0, cpu, [0.25, 0.75], 1, T0 + 1000)], k)
        twice = await s.ingest_profiler("", [profiler_item(0, cpu, [0.25, 0.75], 1, T0 + 1000)], k)
        assert once.stored_samples == twice.stored_samples == 2
        with pytest.raises(RequestIdReused):
            await s.ingest_profiler("", [profiler_item(0, cpu, [1.0], 1, T0)], key("ReportProfilerBatch", "p1", b"other"))

        series = await s.list_profiler_series(t.id)
        assert [x.labels for x in series] == [cpu, gpu]
        c, g = series
        assert (c.sample_count, c.chunk_count, c.first_ts, c.last_ts, c.first_batch, c.last_batch) == (3, 2, T0, T0 + 2000, 0, 2)
        assert (g.sample_count, g.chunk_count, g.first_ts, g.last_ts, g.first_batch, g.last_batch) == (6, 3, T0, T0 + 5000, 0, 5)
        after_cpu = await s.list_profiler_series(t.id, after=(cpu.name, cpu.agent_id, cpu.gpu_uuid, cpu.metric_type.value))
        assert [x.series_id for x in after_cpu] == [g.series_id]
        assert [x.series_id for x in await s.list_profiler_series(t.id, limit=1)] == [c.series_id]
        with pytest.raises(NotFound):
            await s.list_profiler_series(t.id + 100)
        assert (await s.find_profiler_series(gpu)).series_id == g.series_id
        with pytest.raises(NotFound):
            await s.find_profiler_series(Labels(t.id, "gpu_util", "agent-2", "GPU-0", MetricType.SYSTEM))

        table = await s.profiler_summaries(g.series_id, T0, T0 + 10_000, 0, 100)
        assert table.count.tolist() == [3, 2, 1] and table.vmax.tolist() == [5.0, 9.0, 4.0]
        assert table.vmin.tolist() == [1.0, 2.0, 4.0] and table.vlast.tolist() == [3.0, 9.0, 4.0]
        assert table.first_ts.tolist() == [T0, T0 + 3000, T0 + 5000]
        ids = table.chunk_id.tolist()
        # Ranges select overlapping chunks; the cursor continues after (first_ts, id).
        assert (await s.profiler_summaries(g.series_id, T0 + 3500, T0 + 10_000, 0, 100)).chunk_id.tolist() == ids[1:]
        assert (await s.profiler_summaries(g.series_id, T0, T0 + 10_000, 0, 2)).chunk_id.tolist() == ids[:1]
        assert (await s.profiler_summaries(g.series_id, T0, T0 + 10_000, 0, 100, after=(T0, ids[0]))).chunk_id.tolist() == ids[1:]
        chunks = await s.profiler_chunks(ids[:2])
        assert sorted(chunks) == ids[:2]
        assert chunks[ids[0]].values.tolist() == [1.0, 5.0, 3.0] and chunks[ids[1]].batches.tolist() == [3, 4]
        assert chunks[ids[1]].timestamps.tolist() == [T0 + 3000, T0 + 4000]
        assert await s.profiler_chunks([]) == {}
        tail = await s.profiler_chunks_after(g.series_id, ids[0], 0, 10)
        assert [cid for cid, _ in tail] == ids[1:] and tail[-1][1].values.tolist() == [4.0]
        assert [cid for cid, _ in await s.profiler_chunks_after(g.series_id, 0, T0 + 4500, 10)] == ids[2:]
        assert [cid for cid, _ in await s.profiler_chunks_after(g.series_id, 0, 0, 1)] == ids[:1]

    run(body)


def test_profiler_and_logs_expire_by_trial_retention(run):
    async def body(s):
        short = await s.create_trial(Trial(log_retention_days=1), None, lambda st: None)
        default = await s.create_trial(Trial(), None, lambda st: None)
        forever = await s.create_trial(Trial(log_retention_days=-1), None, lambda st: None)
        for t in (short, default, forever):
            labels = Labels(t.id, "util")
            await s.ingest_profiler("", [profiler_item(0, labels, [1.0], 0, T0), profiler_item(0, labels, [2.0], 1, T0 + 3 * DAY)])
            await s.ingest_metrics(m.IngestBatch(
                logs=[m.LogDraft(t.id, T0, "INFO", "w0", "stdout", 0, "old"),
                      m.LogDraft(t.id, T0 + 3 * DAY, "INFO", "w0", "stdout", 0, "new")],
                log_index=[0, 1]))
        now = T0 + 3 * DAY + 1000
        # short keeps 1 day; default keeps default_days (2); forever keeps all.
        assert await s.delete_expired_profiler(now, 2, 1) == 1
        assert await s.delete_expired_profiler(now, 2, 100) == 1
        assert await s.delete_expired_profiler(now, 2, 100) == 0
        counts = {t.id: [x.sample_count for x in await s.list_profiler_series(t.id)] for t in (short, default, forever)}
        assert counts == {short.id: [1], default.id: [1], forever.id: [2]}
        (kept,) = await s.list_profiler_series(short.id)
        assert (kept.chunk_count, kept.first_ts, kept.first_batch) == (1, T0 + 3 * DAY, 1)
        assert await s.delete_expired_logs(now, 2, 1) == 1
        assert await s.delete_expired_logs(now, 2, 100) == 1
        assert await s.delete_expired_logs(now, 2, 100) == 0
        for t, expected in ((short, ["new"]), (default, ["new"]), (forever, ["old", "new"])):
            assert [r.message for r in await s.list_logs(t.id, False, [], "", None, 100)] == expected
        # default_days 0 or less keeps what trials do not limit themselves.
        assert await s.delete_expired_logs(T0 + 100 * DAY, 0, 100) == 1  # only short's line

    run(body)


def report(trial_id: int, step: int, values: dict, group: str = "training", run: int = 0, request_id: str = "") -> m.ReportDraft:
    return m.ReportDraft(trial_id, run, group, step, T0 + step, values, request_id)


def test_a_report_racing_a_batch_for_its_step_is_never_acknowledged_and_then_lost(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        await s.report_metrics(report(t.id, 1, {"loss": 9.0}))
        for step in range(100, 1100, 100):
            batch = m.IngestBatch(reports=[report(t.id, n, {"loss": 1.0}) for n in range(step, step + 50)],
                                  report_index=list(range(50)))
            writing = asyncio.ensure_future(s.ingest_metrics(batch))
            await asyncio.sleep(0)
            try:
                acknowledged = await s.report_metrics(report(t.id, step, {"loss": 2.0}))
            except MetricConflict:
                acknowledged = False
            outcome = await writing
            series = await s.metric_series_id(t.id, "training", "loss")
            points = await s.metric_points(series, step, step, False, None, 10)
            # Whichever came first holds the step; an acknowledged report is the one stored.
            assert points.values.tolist() == ([2.0] if acknowledged else [1.0]), (step, acknowledged, outcome.errors)

    run(body)


def test_report_metrics_stores_once_and_refuses_what_it_must(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        assert await s.report_metrics(report(t.id, 1, {"loss": 0.5})) is True
        assert await s.report_metrics(report(t.id, 1, {"loss": 0.5})) is False
        with pytest.raises(MetricConflict):
            await s.report_metrics(report(t.id, 1, {"loss": 0.4}))
        assert await s.report_metrics(report(t.id, 2, {"loss": 0.25}, request_id="r2")) is True
        assert await s.report_metrics(report(t.id, 2, {"loss": 0.25}, request_id="r2")) is False
        with pytest.raises(RequestIdReused):
            await s.report_metrics(report(t.id, 3, {"loss": 0.1}, request_id="r2"))
        with pytest.raises(NotFound):
            await s.report_metrics(report(t.id + 100, 1, {"loss": 0.5}))
        with pytest.raises(StaleTrialRun):
            await s.report_metrics(report(t.id, 3, {"loss": 0.5}, run=2))
        (summary,) = await s.metric_summaries([t.id])
        assert (summary.trial_id, summary.group, summary.name) == (t.id, "training", "loss")
        assert (summary.summary.count, summary.summary.last, summary.summary.vmin) == (2, 0.25, 0.25)
        sid = await s.metric_series_id(t.id, "training", "loss")
        points = await s.metric_points(sid, 0, 100, False, None, 100)
        assert points.steps.tolist() == [1, 2] and points.values.tolist() == [0.5, 0.25] and points.runs.tolist() == [1, 1]
        assert points.times.tolist() == [T0 + 1, T0 + 2]
        await s.change_trial(t.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=None))
        with pytest.raises(TrialFinished):
            await s.report_metrics(report(t.id, 9, {"loss": 0.5}))
        assert len(await s.metric_points(sid, 0, 100, True, None, 100)) == 2

    run(body)


def test_ingest_batches_points_events_and_logs(run):
    async def body(s):
        t = await s.create_trial(Trial(metric_definitions=[MetricDefinition("acc", r"step (?P<step>\d+) acc=(?P<value>[0-9.]+)")]),
                                 None, lambda st: None)
        other = await s.create_trial(Trial(), None, lambda st: None)
        batch = m.IngestBatch(
            reports=[report(t.id, 1, {"loss": 1.0, "lr": 0.1}), report(t.id + 100, 1, {"loss": 1.0})],
            report_index=[0, 1],
            points=[m.PointDraft(t.id, "training", "grad", step, 0, T0 + step, float(step)) for step in range(3)],
            point_index=[("points", i) for i in range(3)],
            debug_events=[
                m.DebugEventDraft(t.id, "PLOT", "confusion", "val", 1, T0, {"x": [1, 2]}),
                m.DebugEventDraft(t.id, "IMAGE", "samples", "a", 2, T0 + 1, {"url": "s3://b/i.png"}),
                m.DebugEventDraft(other.id, "VECTOR", "v", "", 0, T0, {}),
            ],
            event_index=[0, 1, 2],
            logs=[m.LogDraft(t.id, T0 + i, level, worker, "stdout", rank, msg) for i, (level, worker, rank, msg) in enumerate([
                ("INFO", "w0", 0, "start"), ("WARNING", "w1", 1, "slow"), ("INFO", "w0", 0, "step 7 acc=0.75"),
                ("ERROR", "w1", 1, "boom")])],
            log_index=[0, 1, 2, 3],
        )
        k = key("IngestMetrics", "b1")
        outcome = await s.ingest_metrics(batch, k)
        assert [(name, index, type(err)) for name, index, err in outcome.errors] == [("reports", 1, NotFound)]
        # 1 report, 3 points, 3 debug events, 4 log lines.
        assert (outcome.added, outcome.duplicates, outcome.log_points, outcome.report_created) == (11, 0, 1, [True, False])
        again = await s.ingest_metrics(batch, k)
        assert (again.added, again.log_points, again.report_created) == (11, 1, [True, False])
        with pytest.raises(RequestIdReused):
            await s.ingest_metrics(m.IngestBatch(), key("IngestMetrics", "b1", b"other"))
        # Points are keyed by step and run: a resend without a key is a duplicate.
        resent = await s.ingest_metrics(m.IngestBatch(points=batch.points[:2], point_index=batch.point_index[:2]))
        assert (resent.added, resent.duplicates) == (0, 2)
        # all_or_nothing: one refused item refuses the batch.
        with pytest.raises(NotFound):
            await s.ingest_metrics(m.IngestBatch(reports=[report(t.id, 5, {"loss": 0.1}), report(t.id + 100, 5, {"x": 1.0})],
                                                 report_index=[0, 1], all_or_nothing=True))
        assert await s.metric_series_id(t.id, "training", "nothing") is None

        summaries = await s.metric_summaries([t.id])
        assert [(x.group, x.name, x.summary.count) for x in summaries] == [
            ("logs", "acc", 1), ("training", "grad", 3), ("training", "loss", 1), ("training", "lr", 1)]
        assert [x.name for x in await s.metric_summaries([t.id], "training", ["loss", "grad"])] == ["grad", "loss"]
        assert [x.name for x in await s.metric_summaries([t.id], after=(t.id, "training", "grad"), limit=1)] == ["loss"]
        with pytest.raises(NotFound):
            await s.metric_summaries([t.id, t.id + 100])
        acc = await s.metric_points(await s.metric_series_id(t.id, "logs", "acc"), 0, 100, False, None, 10)
        assert acc.steps.tolist() == [7] and acc.values.tolist() == [0.75]
        grad = await s.metric_series_id(t.id, "training", "grad")
        assert (await s.metric_points(grad, 1, 2, False, None, 10)).steps.tolist() == [1, 2]
        assert (await s.metric_points(grad, 0, 9, False, (0, 1), 1)).steps.tolist() == [1]

        events = await s.debug_events(t.id, [], "", 0, 10)
        assert [(e.kind, e.metric, e.variant, e.iteration, e.payload) for e in events] == [
            ("PLOT", "confusion", "val", 1, {"x": [1, 2]}), ("IMAGE", "samples", "a", 2, {"url": "s3://b/i.png"})]
        assert [e.metric for e in await s.debug_events(t.id, ["IMAGE"], "", 0, 10)] == ["samples"]
        assert [e.metric for e in await s.debug_events(t.id, [], "confusion", 0, 10)] == ["confusion"]
        assert [e.metric for e in await s.debug_events(t.id, [], "", events[0].id, 10)] == ["samples"]
        assert len(await s.debug_events(t.id, [], "", 0, 1)) == 1
        with pytest.raises(NotFound):
            await s.debug_events(t.id + 100, [], "", 0, 10)

        head = await s.list_logs(t.id, False, [], "", None, 10)
        assert [(r.message, r.level, r.worker, r.rank, r.stream) for r in head][:2] == [
            ("start", "INFO", "w0", 0, "stdout"), ("slow", "WARNING", "w1", 1, "stdout")]
        assert [r.time for r in head] == [T0, T0 + 1, T0 + 2, T0 + 3]
        tail = await s.list_logs(t.id, True, [], "", None, 2)
        assert [r.message for r in tail] == ["boom", "step 7 acc=0.75"]
        assert [r.message for r in await s.list_logs(t.id, True, [], "", tail[-1].id, 10)] == ["slow", "start"]
        assert [r.message for r in await s.list_logs(t.id, False, [], "", head[1].id, 10)] == ["step 7 acc=0.75", "boom"]
        assert [r.message for r in await s.list_logs(t.id, False, ["WARNING", "ERROR"], "", None, 10)] == ["slow", "boom"]
        assert [r.message for r in await s.list_logs(t.id, False, [], "w0", None, 10)] == ["start", "step 7 acc=0.75"]
        assert await s.list_logs(other.id, False, [], "", None, 10) == []
        with pytest.raises(NotFound):
            await s.list_logs(t.id + 100, False, [], "", None, 10)

    run(body)


def columns(names: list[str], steps: list[int], rows: list[list[float]], group: str = "training",
            missing: list[tuple[int, int]] = ()) -> m.MetricColumns:
    present = None
    if missing:
        present = np.ones((len(steps), len(names)), dtype=bool)
        for row, column in missing:
            present[row, column] = False
    return m.MetricColumns(group, names, np.array(steps, dtype=np.int64),
                           np.array([T0 + step for step in steps], dtype=np.int64),
                           np.array(rows, dtype=np.float64).reshape(len(steps), len(names)), present)


def test_metric_columns_store_each_row_as_its_report(run):
    async def body(s):
        study = await s.create_study(Study(name="cols", objective=Objective("val_loss", ObjectiveType.MINIMIZE)))
        t = await s.create_trial(Trial(study_id=study.id), None, lambda st: None)
        assert await s.report_metrics(report(t.id, 2, {"loss": 0.2, "acc": 0.8})) is True
        batch = m.ColumnBatch(t.id, 0, [
            columns(["loss", "acc"], [1, 2, 3, 4], [[0.1, 0.9], [0.2, 0.8], [0.3, math.nan], [0.0, 0.0]],
                    missing=[(3, 0), (3, 1)]),
            columns(["loss"], [3, 5, 2], [[0.3], [0.5], [0.25]]),
            columns(["val_loss", "val_acc"], [3, 4], [[0.7, 0.1], [0.6, 0.0]], group="validation", missing=[(1, 1)]),
        ])
        k = key("ReportMetricColumns", "c1", parent=f"trial {t.id}")
        out = await s.report_metric_columns(batch, k)
        # Step 2 of the first block repeats the stored report; in the second
        # block step 3 has other names than the row before it and step 2
        # other values than the stored one.
        assert (out.rows_stored, out.points_stored, out.rows_repeated, out.rows_rejected) == (6, 8, 1, 2)
        assert [(r.block, r.row, r.step, type(r.error)) for r in out.rejected] == [
            (1, 0, 3, MetricConflict), (1, 2, 2, MetricConflict)]
        again = await s.report_metric_columns(batch, k)
        assert (again.rows_stored, again.points_stored, again.rows_repeated, again.rows_rejected) == (6, 8, 1, 2)
        assert [(r.block, r.row, r.step, r.error.reason) for r in again.rejected] == [
            (1, 0, 3, "METRIC_CONFLICT"), (1, 2, 2, "METRIC_CONFLICT")]
        with pytest.raises(RequestIdReused):
            await s.report_metric_columns(m.ColumnBatch(t.id, 0, []), key("ReportMetricColumns", "c1", b"other",
                                                                          parent=f"trial {t.id}"))
        resent = await s.report_metric_columns(batch)
        assert (resent.rows_stored, resent.rows_repeated, resent.rows_rejected) == (0, 7, 2)
        loss = await s.metric_points(await s.metric_series_id(t.id, "training", "loss"), 0, 100, False, None, 100)
        assert loss.steps.tolist() == [1, 2, 3, 5] and loss.values.tolist() == [0.1, 0.2, 0.3, 0.5]
        assert loss.times.tolist() == [T0 + 1, T0 + 2, T0 + 3, T0 + 5]
        acc = await s.metric_points(await s.metric_series_id(t.id, "training", "acc"), 0, 100, False, None, 100)
        assert acc.steps.tolist() == [1, 2, 3] and acc.values.tolist()[:2] == [0.9, 0.8] and math.isnan(acc.values[2])
        # A row is its report: the empty row at step 4 took the step, and
        # the rows read back as retries of themselves.
        assert await s.report_metrics(report(t.id, 4, {})) is False
        assert await s.report_metrics(report(t.id, 5, {"loss": 0.5})) is False
        assert await s.report_metrics(report(t.id, 4, {"val_loss": 0.6}, group="validation")) is False
        with pytest.raises(MetricConflict):
            await s.report_metrics(report(t.id, 3, {"loss": 0.3}))
        trial = await s.get_trial(t.id)
        assert trial.latest_validation["total_batches"] == 4 and trial.latest_validation["metrics"] == {"val_loss": 0.6}
        assert trial.best_validation["total_batches"] == 4 and trial.searcher_metric_value == 0.6
        summaries = {x.name: x.summary for x in await s.metric_summaries([t.id])}
        assert (summaries["loss"].count, summaries["acc"].count, summaries["val_acc"].count) == (4, 3, 1)

        with pytest.raises(NotFound):
            await s.report_metric_columns(m.ColumnBatch(t.id + 100, 0, [columns(["x"], [1], [[1.0]])]))
        with pytest.raises(StaleTrialRun):
            await s.report_metric_columns(m.ColumnBatch(t.id, 2, [columns(["x"], [1], [[1.0]])]))
        # Run 2: its first row archives what run 1 reported past its step.
        await s.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now))
        out = await s.report_metric_columns(m.ColumnBatch(t.id, 2, [columns(["loss"], [2, 6], [[-2.0], [-6.0]])]))
        assert (out.rows_stored, out.rows_repeated, out.rows_rejected) == (2, 0, 0)
        live = await s.metric_points(await s.metric_series_id(t.id, "training", "loss"), 0, 100, False, None, 100)
        assert live.steps.tolist() == [1, 2, 2, 6] and live.runs.tolist() == [1, 1, 2, 2]
        summaries = {x.name: x.summary for x in await s.metric_summaries([t.id])}
        assert (summaries["loss"].count, summaries["loss"].last, summaries["acc"].count) == (4, -6.0, 2)
        await s.change_trial(t.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=None))
        with pytest.raises(TrialFinished):
            await s.report_metric_columns(m.ColumnBatch(t.id, 0, [columns(["x"], [9], [[1.0]])]))

    run(body)


def test_points_bucket_exactly_and_a_new_run_archives_what_it_replaces(run):
    async def body(s):
        t = await s.create_trial(Trial(), None, lambda st: None)
        for step in range(100):
            await s.report_metrics(report(t.id, step, {"v": float(step)}))
        sid = await s.metric_series_id(t.id, "training", "v")
        buckets = await s.metric_buckets(sid, 0, 99, 4, False, False)
        assert [(b.count, b.first_step, b.last_step, b.vmin, b.vmax, b.first, b.last) for b in buckets] == [
            (25, 25 * i, 25 * i + 24, 25.0 * i, 25.0 * i + 24, 25.0 * i, 25.0 * i + 24) for i in range(4)]
        by_time = await s.metric_buckets(sid, 0, 99, 2, True, False)
        assert [(b.count, b.first_time, b.last_time) for b in by_time] == [(50, T0, T0 + 49), (50, T0 + 50, T0 + 99)]
        assert sum(b.count for b in await s.metric_buckets(sid, 10, 19, 100, False, False)) == 10
        page1 = await s.metric_points(sid, 0, 99, False, None, 60)
        page2 = await s.metric_points(sid, 0, 99, False, (int(page1.steps[-1]), int(page1.runs[-1])), 60)
        assert page1.steps.tolist() + page2.steps.tolist() == list(range(100))

        # Run 2 reports step 50: what run 1 reported after it is archived.
        await s.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now))
        assert await s.report_metrics(report(t.id, 50, {"v": -1.0})) is True
        live = await s.metric_points(sid, 0, 99, False, None, 1000)
        assert live.steps.tolist() == [*range(51), 50] and live.runs.tolist() == [1] * 51 + [2]
        everything = await s.metric_points(sid, 0, 99, True, None, 1000)
        assert len(everything) == 101 and everything.archived.sum() == 49
        assert sum(b.count for b in await s.metric_buckets(sid, 0, 99, 4, False, False)) == 52
        assert sum(b.count for b in await s.metric_buckets(sid, 0, 99, 4, False, True)) == 101
        (summary,) = await s.metric_summaries([t.id])
        assert (summary.summary.count, summary.summary.vmax, summary.summary.last) == (52, 50.0, -1.0)

    run(body)


def test_katib_observations_by_trial_name(run):
    async def body(s):
        t = await s.create_trial(Trial(name="katib-trial"), None, lambda st: None)
        await s.report_observations("katib-trial", [("acc", T0 + 2, 0.5, "0.5"), ("loss", T0 + 1, None, "nan?"),
                                                    ("acc", T0 + 3, 0.75, "0.75")])
        await s.report_observations("no-such-trial", [("acc", T0, 1.0, "1")])
        assert await s.get_observations("katib-trial", "", None, None) == [
            Observation("loss", T0 + 1, "nan?"), Observation("acc", T0 + 2, "0.5"), Observation("acc", T0 + 3, "0.75")]
        assert await s.get_observations("katib-trial", "acc", T0 + 3, None) == [Observation("acc", T0 + 3, "0.75")]
        assert await s.get_observations("katib-trial", "acc", None, T0 + 2) == [Observation("acc", T0 + 2, "0.5")]
        assert await s.get_observations("no-such-trial", "acc", None, None) == [Observation("acc", T0, "1")]
        assert [x.name for x in await s.metric_summaries([t.id], "katib")] == ["acc", "loss"]
        assert await s.delete_observations("katib-trial") == 2
        assert await s.get_observations("katib-trial", "", None, None) == []
        assert await s.delete_observations("katib-trial") == 0
        assert await s.get_observations("no-such-trial", "", None, None) == [Observation("acc", T0, "1")]

    run(body)



def test_katib_early_stop_marks(run):
    async def body(s):
        older = await s.create_trial(Trial(name="katib-stopped"), None, lambda st: None)
        newer = await s.create_trial(Trial(name="katib-stopped"), None, lambda st: None)
        assert older.id < newer.id
        assert await s.early_stopped(["katib-stopped", "katib-free"]) == set()
        # The newest trial of the name is the one observations link to.
        assert await s.mark_early_stopped("katib-stopped", T0) == newer.id
        assert await s.mark_early_stopped("katib-stopped", T0 + 5) == newer.id
        assert await s.mark_early_stopped("no-such-trial", T0) is None
        assert await s.early_stopped(["katib-stopped", "katib-free", "no-such-trial"]) == {
            "katib-stopped", "no-such-trial"}
        many = [f"katib-{i}" for i in range(1200)]
        for name in many[::100]:
            await s.mark_early_stopped(name, T0)
        assert await s.early_stopped(many + many[:3]) == set(many[::100])
        assert await s.early_stopped([]) == set()
        # Deleting a name's observations forgets its mark too.
        await s.report_observations("no-such-trial", [("acc", T0, 1.0, "1")])
        assert await s.delete_observations("no-such-trial") == 1
        assert await s.early_stopped(["no-such-trial", "katib-stopped"]) == {"katib-stopped"}
        await s.delete_observations("katib-stopped")
        assert await s.early_stopped(["katib-stopped"]) == set()

    run(body)

def test_tokens_are_kept_by_hash_listed_newest_first_and_revoked_once(run):
    from trialplane.server.domain.tokens import Token, TokenKind, new_secret

    def token(name, **fields):
        secret, secret_hash = new_secret()
        return secret, Token(name=name, kind=fields.pop("kind", TokenKind.USER), secret_hash=secret_hash,
                             create_time=T0, **fields)

    async def body(s):
        assert not await s.any_token()
        _, first = token("admin", scopes=frozenset({"admin"}))
        made = await s.create_token(first, only_if_none=True)
        assert await s.any_token()
        assert made is not None and made.id > 0
        # A second first token is not made: one exists.
        assert await s.create_token(token("again")[1], only_if_none=True) is None
        _, scoped = token("ci", kind=TokenKind.SERVICE, scopes=frozenset({"read", "write"}),
                          study_ids=frozenset({3, 5}), expire_time=T0 + 10)
        scoped = await s.create_token(scoped)
        _, run_token = token("trial 9 run 2", kind=TokenKind.TRIAL_RUN, trial_id=9, trial_run_id=2)
        run_token = await s.create_token(run_token)
        found = await s.token_by_hash(scoped.secret_hash)
        assert found == scoped and found.study_ids == frozenset({3, 5}) and found.scopes == frozenset({"read", "write"})
        assert await s.token_by_hash(b"\0" * 32) is None
        assert (await s.get_token(run_token.id)).trial_run_id == 2
        with pytest.raises(NotFound):
            await s.get_token(10**9)

        async def names(include_inactive, include_trial_run, now=T0):
            page = listing.Page(size=1, order=listing.Order("id", descending=True), fingerprint="")
            out = []
            while True:
                items, after = await s.list_tokens(page, include_inactive, include_trial_run, now)
                out += [t.name for t in items]
                if after is None:
                    return out
                page.after = after

        assert await names(False, False) == ["ci", "admin"]
        assert await names(False, True) == ["trial 9 run 2", "ci", "admin"]
        assert await names(False, False, now=T0 + 10) == ["admin"]  # ci expired
        # A trial-run token made with the first one goes when it does.
        _, child = token("trial 9 run 3", kind=TokenKind.TRIAL_RUN, trial_id=9, trial_run_id=3, parent_id=first.id)
        child = await s.create_token(child)
        revoked, with_it = await s.revoke_token(first.id, T0 + 1)
        assert (revoked.revoke_time, with_it) == (T0 + 1, [child.id])
        assert (await s.token_by_hash(child.secret_hash)).revoke_time == T0 + 1
        again, none = await s.revoke_token(first.id, T0 + 2)
        assert (again.revoke_time, none) == (T0 + 1, [])
        assert await names(False, False) == ["ci"]
        assert await names(True, True, now=T0 + 10) == ["trial 9 run 3", "trial 9 run 2", "ci", "admin"]
        with pytest.raises(NotFound):
            await s.revoke_token(10**9, T0)

    run(body)


def test_checkpoints_report_list_delete_and_retain(run):
    CS = CheckpointState

    async def body(s):
        study = await s.create_study(Study(name="ck", objective=Objective("loss", ObjectiveType.MINIMIZE)))
        t = await s.create_trial(Trial(study_id=study.id), None, lambda st: None)
        await s.change_trial(t.id, running())
        for step, loss in ((10, 0.3), (20, 0.1), (30, 0.2)):
            await s.report_metrics(report(t.id, step, {"loss": loss}, group=m.VALIDATION))
        trial = await s.get_trial(t.id)
        assert trial.searcher_metric_value == 0.1 and trial.summary_metrics["validation"]["loss"].count == 3

        started = await s.report_checkpoint(Checkpoint("c10", t.id, CS.ACTIVE, steps_completed=10, resources={"a": 5}))
        assert started.state == CS.ACTIVE and started.trial_run_id == 1 and started.end_time is None
        with pytest.raises(FailedPrecondition):  # still being written
            await s.delete_checkpoints(["c10"], False)
        done = await s.report_checkpoint(Checkpoint("c10", t.id, CS.COMPLETED, resources={"a": 5, "b": 7}, storage_uri="s3://x/c10"))
        assert (done.state, done.steps_completed, done.size_bytes, done.objective) == (CS.COMPLETED, 10, 12, 0.3)
        assert done.validation_metrics == {"loss": 0.3} and done.end_time is not None
        for uuid, step in (("c20", 20), ("c30", 30)):
            await s.report_checkpoint(Checkpoint(uuid, t.id, CS.COMPLETED, steps_completed=step, resources={"a": 1}))
        with pytest.raises(FailedPrecondition):  # COMPLETED -> ACTIVE
            await s.report_checkpoint(Checkpoint("c20", t.id, CS.ACTIVE))
        with pytest.raises(NotFound):
            await s.report_checkpoint(Checkpoint("c99", t.id + 100, CS.COMPLETED))
        got = await s.get_checkpoint("c20")
        assert (got.trial_id, got.steps_completed, got.objective, got.resources) == (t.id, 20, 0.1, {"a": 1})
        with pytest.raises(NotFound):
            await s.get_checkpoint("nope")
        trial = await s.get_trial(t.id)
        assert (trial.checkpoint_count, trial.checkpoint_size) == (3, 14) and trial.best_checkpoint["uuid"] == "c20"

        by_steps = listing.Order("steps_completed", True)
        newest = await s.list_checkpoints(CheckpointFilter(trial_id=t.id), page(2, by_steps))
        assert [c.uuid for c in newest.items] == ["c30", "c20"]
        rest = await s.list_checkpoints(CheckpointFilter(trial_id=t.id), page(2, by_steps, newest.after))
        assert [c.uuid for c in rest.items] == ["c10"] and rest.after is None
        in_study = await s.list_checkpoints(CheckpointFilter(study_id=study.id, min_steps=15), page(10, listing.Order("create_time")))
        assert [c.uuid for c in in_study.items] == ["c20", "c30"]
        by_loss = await s.list_checkpoints(CheckpointFilter(), page(10, listing.Order("metric:loss")))
        assert [c.uuid for c in by_loss.items] == ["c20", "c30", "c10"]
        deleted = await s.list_checkpoints(CheckpointFilter(trial_id=t.id, states=[CS.DELETED.value]), page(10, listing.Order("create_time")))
        assert deleted.items == []

        tagged = await s.update_checkpoint_metadata("c10", {"note": "first"})
        assert tagged.metadata == {"note": "first"} and (await s.get_checkpoint("c10")).metadata == {"note": "first"}
        with pytest.raises(NotFound):
            await s.update_checkpoint_metadata("nope", {})

        # Keep the best (c20) and the latest (c30): c10 goes.
        proposed = await s.apply_checkpoint_retention(study.id, 1, 1, True)
        assert [c.uuid for c in proposed] == ["c10"] and (await s.get_checkpoint("c10")).state == CS.COMPLETED
        marked = await s.apply_checkpoint_retention(study.id, 1, 1, False)
        assert [(c.uuid, c.state) for c in marked] == [("c10", CS.PARTIALLY_DELETED)]
        assert (await s.get_checkpoint("c10")).state == CS.PARTIALLY_DELETED
        assert await s.apply_checkpoint_retention(study.id, 1, 1, False) == []
        with pytest.raises(NotFound):
            await s.apply_checkpoint_retention(study.id + 100, 1, 1, True)
        with pytest.raises(FailedPrecondition):  # not marked yet
            await s.delete_checkpoints(["c30"], True)
        with pytest.raises(NotFound):
            await s.delete_checkpoints(["c30", "nope"], False)
        assert (await s.get_checkpoint("c30")).state == CS.COMPLETED
        gone = await s.delete_checkpoints(["c10"], True)
        assert [(c.uuid, c.state, c.resources) for c in gone] == [("c10", CS.DELETED, {})]
        trial = await s.get_trial(t.id)
        assert (trial.checkpoint_count, trial.checkpoint_size) == (2, 2)
        assert [c.state for c in await s.delete_checkpoints(["c30"], False)] == [CS.PARTIALLY_DELETED]

        finished = await s.create_trial(Trial(), None, lambda st: None)
        await s.change_trial(finished.id, lambda tr, now: lifecycle.stop(tr, now, grace_seconds=None))
        with pytest.raises(TrialFinished):
            await s.report_checkpoint(Checkpoint("late", finished.id, CS.COMPLETED))

    run(body)


# --- two replicas on one database ---------------------------------------------


def test_a_write_through_one_replica_is_read_through_the_other(replicas):
    async def body(a, b):
        study = await a.create_study(Study(name="shared", tags=["t"]))
        assert (await b.get_study_by_name("shared")).id == study.id
        t = await b.create_trial(Trial(study_id=study.id, name="x"), None, study_rules.check_accepts_trials)
        assert (await a.get_study(study.id)).trial_count == 1
        await a.change_trial(t.id, running(3))
        assert (await b.get_trial(t.id)).state == TrialState.RUNNING
        w = await b.register_worker(Worker(trial_id=t.id), None, worker_lifecycle.admit_registration)
        assert [x.id for x in await a.run_workers(t.id, 1)] == [w.id]
        # b stores reports directly: a sees them at once. a may acknowledge
        # from its journal: once a has answered a read, b sees them too.
        assert await b.report_metrics(report(t.id, 1, {"loss": 1.0})) is True
        assert (await a.get_trial(t.id)).summary_metrics["training"]["loss"].count == 1
        assert await a.report_metrics(report(t.id, 2, {"loss": 0.5})) is True
        assert await a.metric_series_id(t.id, "training", "loss") is not None
        (summary,) = await b.metric_summaries([t.id])
        assert (summary.summary.count, summary.summary.last) == (2, 0.5)
        # Either replica recognizes a retry of what the other stored.
        assert await a.report_metrics(report(t.id, 1, {"loss": 1.0})) is False
        assert await b.report_metrics(report(t.id, 2, {"loss": 0.5})) is False
        with pytest.raises(MetricConflict):
            await b.report_metrics(report(t.id, 2, {"loss": 0.4}))
        with pytest.raises(MetricConflict):
            await a.report_metrics(report(t.id, 1, {"loss": 0.4}))
        await a.report_checkpoint(Checkpoint("c", t.id, CheckpointState.COMPLETED, steps_completed=2))
        assert (await b.get_checkpoint("c")).steps_completed == 2
        done = lifecycle.StateReport(state=TrialState.COMPLETED)
        await b.change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, done))
        for replica in (a, b):
            with pytest.raises(TrialFinished):
                await replica.report_metrics(report(t.id, 3, {"loss": 0.1}))

    replicas(body)


def test_racing_transitions_through_two_replicas_have_one_winner(replicas):
    async def body(a, b):
        trials = [await a.create_trial(Trial(name=f"r{i}"), None, lambda st: None) for i in range(30)]
        for t in trials:
            await b.change_trial(t.id, running())
        # Pause and early-completion exclude each other: from PAUSED no
        # STOPPING_COMPLETED, from STOPPING_COMPLETED no pause.
        finish = lifecycle.StateReport(state=TrialState.STOPPING_COMPLETED)
        results = await asyncio.gather(*(
            call
            for i, t in enumerate(trials)
            for call in (
                (a if i % 2 else b).change_trial(t.id, lambda tr, now: lifecycle.pause(tr, now)),
                (b if i % 2 else a).change_trial(t.id, lambda tr, now: lifecycle.report_state(tr, now, finish)),
            )
        ), return_exceptions=True)
        for i, t in enumerate(trials):
            pause, stop = results[2 * i], results[2 * i + 1]
            outcomes = [r for r in (pause, stop) if not isinstance(r, BaseException)]
            assert len(outcomes) == 1, (pause, stop)
            assert all(isinstance(r, FailedPrecondition) for r in (pause, stop) if isinstance(r, BaseException))
            stored = await b.get_trial(t.id)
            assert stored.state == outcomes[0].state and stored.version == 3
            events = await a.list_trial_events(t.id, 0, 10)
            assert [e.sequence for e in events] == [1, 2]
            assert events[1].to_state == stored.state

        # Many compatible transitions on one trial from both: every event
        # numbered once, none lost.
        t = await b.create_trial(Trial(), None, lambda st: None)
        await a.change_trial(t.id, running())
        steps = [lifecycle.StateReport(state=TrialState.RUNNING, steps_completed=n) for n in range(1, 41)]
        await asyncio.gather(*(
            (a if n % 2 else b).change_trial(t.id, lambda tr, now, r=r: lifecycle.report_state(tr, now, r))
            for n, r in enumerate(steps)
        ))
        final = await a.get_trial(t.id)
        assert final.steps_completed == 40 and final.version == 2 + 40
        assert [e.sequence for e in await b.list_trial_events(t.id, 0, 100)] == [1]

    replicas(body)


def test_request_keys_hold_across_replicas(replicas):
    async def body(a, b):
        first = await a.create_study(Study(name="k"), key("CreateStudy", "s1"))
        assert (await b.create_study(Study(name="k"), key("CreateStudy", "s1"))).id == first.id
        with pytest.raises(RequestIdReused):
            await b.create_study(Study(name="other"), key("CreateStudy", "s1", b"other"))
        t = await b.create_trial(Trial(study_id=first.id), key("CreateTrial", "t1", parent="k"), lambda st: None)
        assert (await a.create_trial(Trial(study_id=first.id), key("CreateTrial", "t1", parent="k"), lambda st: None)).id == t.id
        assert (await a.get_study(first.id)).trial_count == 1
        restarted = await a.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "x1"))
        again = await b.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "x1"))
        assert again.restarts == restarted.restarts == 1 and again.version == restarted.version
        with pytest.raises(RequestIdReused):
            await b.change_trial(t.id, lambda tr, now: lifecycle.restart(tr, now), key("RestartTrial", "x1", b"other"))
        assert len(await b.list_trial_events(t.id, 0, 10)) == 1
        w = await a.register_worker(Worker(trial_id=t.id), key("RegisterWorker", "w1"), lambda tr: None)
        assert (await b.register_worker(Worker(trial_id=t.id), key("RegisterWorker", "w1"), lambda tr: None)).id == w.id
        batch = m.IngestBatch(reports=[report(t.id, 1, {"x": 1.0})], report_index=[0])
        stored = await b.ingest_metrics(batch, key("IngestMetrics", "i1"))
        replay = await a.ingest_metrics(m.IngestBatch(reports=[report(t.id, 1, {"x": 1.0})], report_index=[0]), key("IngestMetrics", "i1"))
        assert stored.report_created == replay.report_created == [True] and replay.added == 1
        with pytest.raises(RequestIdReused):
            await a.ingest_metrics(m.IngestBatch(), key("IngestMetrics", "i1", b"other"))
        labels = Labels(t.id, "util")
        p1 = await a.ingest_profiler("", [profiler_item(0, labels, [1.0, 2.0], 0, T0)], key("ReportProfilerBatch", "p1"))
        p2 = await b.ingest_profiler("", [profiler_item(0, labels, [1.0, 2.0], 0, T0)], key("ReportProfilerBatch", "p1"))
        assert p1.stored_samples == p2.stored_samples == 2
        with pytest.raises(RequestIdReused):
            await b.ingest_profiler("", [], key("ReportProfilerBatch", "p1", b"other"))
        assert (await a.find_profiler_series(labels)).sample_count == 2
        cols = m.ColumnBatch(t.id, 0, [m.MetricColumns("eval", ["y"], np.array([1, 2]), np.zeros(2, dtype=np.int64),
                                                        np.array([[1.0], [2.0]]))])
        told = await asyncio.gather(*(s.report_metric_columns(cols, key("ReportMetricColumns", "m1")) for s in (a, b, a, b)))
        assert {(o.rows_stored, o.rows_repeated, o.rows_rejected) for o in told} == {(2, 0, 0)}
        (y,) = await b.metric_summaries([t.id], "eval", ["y"])
        assert y.summary.count == 2
        # Concurrent first uses of one key through both: one write, one answer.
        created = await asyncio.gather(*(
            s.create_trial(Trial(name="raced"), key("CreateTrial", "race"), lambda st: None) for s in (a, b, a, b)))
        assert len({c.id for c in created}) == 1

    replicas(body)


def test_profiler_resends_across_replicas_are_duplicates(replicas):
    async def body(a, b):
        t = await a.create_trial(Trial(), None, lambda st: None)
        labels = Labels(t.id, "gpu", "agent", "GPU-0", MetricType.SYSTEM)
        sent = [profiler_item(seq, labels, [float(seq)] * 3, 3 * seq, T0 + 3000 * seq) for seq in range(1, 7)]
        first = await a.ingest_profiler("s", sent[:3])
        assert (first.acknowledged_sequence, first.stored_samples) == (3, 9)
        # The stream reconnects to the other replica and resends from 2.
        resent = await b.ingest_profiler("s", sent[1:5])
        assert (resent.acknowledged_sequence, resent.stored_samples, resent.duplicates, resent.rejected) == (5, 6, 2, [])
        assert await a.profiler_stream_position("s") == 5
        # Both replicas get the same resend at once: stored once in all.
        racing = await asyncio.gather(a.ingest_profiler("s", sent[3:]), b.ingest_profiler("s", sent[3:]))
        # 4 and 5 are duplicates for both; 6 is stored by one and a duplicate for the other.
        assert sum(r.stored_samples for r in racing) == 3 and sum(r.duplicates for r in racing) == 2 + 2 + 1
        assert all(r.acknowledged_sequence == 6 for r in racing)
        (series,) = await b.list_profiler_series(t.id)
        assert (series.sample_count, series.chunk_count) == (18, 6)
        table = await a.profiler_summaries(series.series_id, T0, T0 + 10**9, 0, 10**9)
        assert table.first_batch.tolist() == [3, 6, 9, 12, 15, 18]

    replicas(body)


def test_every_storage_method_is_called_by_this_suite():
    methods = set(Storage.__abstractmethods__) | {"report_metrics"}
    assert len(methods) > 40
    source = inspect.getsource(sys.modules[__name__])
    # open and close are called by the fixtures.
    missing = sorted(name for name in methods if not re.search(rf"\.{name}\(", source))
    assert missing == [], f"storage methods without a conformance test: {missing}"
