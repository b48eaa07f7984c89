"""Unit tests of the domain layer: no server, no database."""

import pytest
from trialplane.server.domain import listing
from trialplane.server.domain import trial_lifecycle as lifecycle
from trialplane.server.domain.errors import Aborted, FailedPrecondition, InvalidArgument
from trialplane.server.domain.models import Trial, TrialState

S = TrialState


def test_ilike_reference_semantics():
    assert listing.ilike_match("%test-run%", "FOOtest-runBAR")
    assert listing.ilike_match("\\%test_run", "%test9run")
    assert not listing.ilike_match("\\%test_run", "FOOtest_run")
    assert not listing.ilike_match("\\%test_run", "%test__run")
    assert listing.ilike_match("test\\_run", "test_run")
    assert not listing.ilike_match("test\\_run", "testXrun")
    assert listing.ilike_match("ABC", "abc")
    with pytest.raises(InvalidArgument):
        listing.check_ilike("oops\\")


def test_page_tokens_round_trip_and_reject_other_queries():
    order = listing.Order("name", True)
    first = listing.make_page("", 10, order, {"study_id": 1})
    token = listing.encode_token(first, ("abc", 42))
    again = listing.make_page(token, 10, order, {"study_id": 1})
    assert again.after == ("abc", 42)
    with pytest.raises(InvalidArgument) as err:
        listing.make_page(token, 10, order, {"study_id": 2})
    assert err.value.reason == "INVALID_PAGE_TOKEN"
    with pytest.raises(InvalidArgument):
        listing.make_page(token, 10, listing.Order("name"), {"study_id": 1})


def test_page_size_rules():
    assert listing.page_size(0) == listing.DEFAULT_PAGE_SIZE
    assert listing.page_size(10**6) == listing.MAX_PAGE_SIZE
    with pytest.raises(InvalidArgument):
        listing.page_size(-1)


def test_wall_clock_counts_only_running_time():
    t = Trial(id=1)
    now = 1_000_000_000
    t = lifecycle.report_state(t, now, lifecycle.StateReport(state=S.RUNNING)).trial
    t = lifecycle.pause(t, now + 5_000_000).trial
    assert t.wall_clock_seconds(now + 100_000_000) == pytest.approx(5.0)
    t = lifecycle.activate(t, now + 50_000_000).trial
    t = lifecycle.report_state(t, now + 60_000_000, lifecycle.StateReport(state=S.RUNNING)).trial
    assert t.wall_clock_seconds(now + 62_000_000) == pytest.approx(7.0)
    assert t.start_time == now


def test_terminal_states_never_change():
    for terminal in (S.CANCELED, S.COMPLETED, S.ERROR):
        t = Trial(id=1, state=terminal)
        for target in S:
            if target != terminal:
                assert not lifecycle.reported_transition_allowed(terminal, target)
        for op in (lifecycle.pause, lifecycle.activate, lifecycle.restart, lifecycle.kill):
            with pytest.raises(FailedPrecondition):
                op(t, 0)


def test_etag_and_stale_run_checks():
    t = Trial(id=3, version=4, state=S.RUNNING, trial_run_id=2)
    with pytest.raises(Aborted):
        lifecycle.stop(t, 0, grace_seconds=1, etag="3")
    with pytest.raises(FailedPrecondition) as err:
        lifecycle.report_state(t, 0, lifecycle.StateReport(state=S.COMPLETED, trial_run_id=1))
    assert err.value.reason == "STALE_TRIAL_RUN"
    assert lifecycle.stop(t, 0, grace_seconds=1, etag="4").trial.state == S.STOPPING_CANCELED
