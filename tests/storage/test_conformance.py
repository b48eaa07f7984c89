"""One suite every storage backend must pass. Add a backend to BACKENDS."""

from __future__ import annotations

import asyncio
import random

import pytest
from trialplane.server.domain import listing
from trialplane.server.domain import trial_lifecycle as lifecycle
from trialplane.server.domain.errors import AlreadyExists, FailedPrecondition, NotFound
from trialplane.server.domain.idempotency import RequestIdReused, RequestKey
from trialplane.server.domain.models import Study, Trial, TrialState, Worker
from trialplane.server.storage.sqlite.store import SqliteStorage


def sqlite_backend(tmp_path):
    return SqliteStorage(str(tmp_path / "conformance.db"))


BACKENDS = {"sqlite": sqlite_backend}


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
