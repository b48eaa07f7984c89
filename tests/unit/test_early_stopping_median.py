"""The median stopping rule against planted curves and a plain re-computation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trialplane.server.domain.early_stopping.base import Curve, SettingsError
from trialplane.server.domain.early_stopping.median_stop import MedianStop

STEPS = np.arange(1, 21, dtype=np.int64)
# (a, b, c) of a * exp(-b * t) + c: nine reasonable trials and one planted bad one.
GOOD = [(1.0, 0.30, 0.10), (1.2, 0.25, 0.12), (0.9, 0.35, 0.08), (1.1, 0.28, 0.11), (1.15, 0.26, 0.09),
        (1.0, 0.40, 0.15), (0.8, 0.32, 0.10), (1.1, 0.30, 0.13), (1.05, 0.31, 0.07)]
BAD = (1.0, 0.02, 0.80)


def decay(a, b, c, steps=STEPS):
    return a * np.exp(-b * steps.astype(np.float64)) + c


def curve(trial_id, steps, losses, active=True):
    return Curve(trial_id, np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64), active)


def running_average_at(c, step):
    """What the rule documents, computed plainly."""
    values = np.where(np.isnan(c.losses), np.inf, c.losses)
    upto = values[c.steps <= step]
    return float(np.mean(upto)) if len(upto) else float(values[0])


def reference(trial, others, min_trials=3, start_step=4):
    """(should_stop, median) by the rule's definition, from scratch."""
    step = int(trial.steps[-1])
    reached = [o for o in others if len(o.steps) and o.steps[-1] >= step]
    if step < start_step or len(reached) < min_trials:
        return False, None
    median = float(np.median([running_average_at(o, step) for o in reached]))
    best = float(np.min(np.where(np.isnan(trial.losses), np.inf, trial.losses)))
    return best > median, median


def ended_good():
    return [curve(i, STEPS, decay(*p), active=False) for i, p in enumerate(GOOD)]


def test_planted_bad_trial_is_stopped_at_start_step_with_the_median_as_threshold():
    rule = MedianStop({})
    others = ended_good()
    bad = decay(*BAD)
    for k in range(1, len(STEPS) + 1):
        decision = rule.judge(curve(99, STEPS[:k], bad[:k]), others)
        if decision.should_stop:
            break
    assert decision.should_stop and decision.step == 4
    expected = float(np.median([np.mean(decay(*p)[:4]) for p in GOOD]))
    assert decision.threshold == pytest.approx(expected)
    assert decision.value == pytest.approx(bad[3])
    assert decision.rule == "medianstop"
    assert f"best loss {bad[3]:.4g} by step 4 is worse than {expected:.4g}" in decision.reason
    assert "9 other trials" in decision.reason


def test_in_lockstep_the_bad_trial_stops_and_no_good_trial_does():
    rule = MedianStop({})
    params = [*GOOD, BAD]
    full = [decay(*p) for p in params]
    stopped = {}
    for k in range(1, len(STEPS) + 1):
        for tid in range(len(params)):
            if tid in stopped:
                continue
            rule.observe(curve(tid, STEPS[:k], full[tid][:k]))
            decision = rule.decide(tid)
            if decision.should_stop:
                stopped[tid] = decision
    assert list(stopped) == [9]
    # Judged at step 4, every trial had reached it: the median of the nine others.
    assert stopped[9].step == 4
    assert stopped[9].threshold == pytest.approx(float(np.median([np.mean(f[:4]) for f in full[:9]])))


def test_best_trial_is_never_stopped():
    rule = MedianStop({"min_trials_required": "1", "start_step": "1"})
    others = ended_good()
    best = decay(0.5, 0.5, 0.01)
    for k in range(1, len(STEPS) + 1):
        assert not rule.judge(curve(50, STEPS[:k], best[:k]), others).should_stop


def test_too_few_others_or_too_early_is_not_stopped():
    rule = MedianStop({"min_trials_required": "3", "start_step": "4"})
    bad = decay(*BAD)
    two = ended_good()[:2]
    decision = rule.judge(curve(99, STEPS[:6], bad[:6]), two)
    assert not decision.should_stop and decision.threshold is None
    assert decision.reason == "2 other trials reached step 6; min_trials_required is 3"
    early = rule.judge(curve(99, STEPS[:3], bad[:3]), ended_good())
    assert not early.should_stop and early.reason == "step 3 is before start_step 4"
    # Trials that stopped before the step do not count there.
    short = [curve(i, STEPS[:5], decay(*p)[:5], active=False) for i, p in enumerate(GOOD)]
    assert not rule.judge(curve(99, STEPS[:6], bad[:6]), short).should_stop
    assert rule.judge(curve(99, STEPS[:5], bad[:5]), short).should_stop


def test_gaps_are_read_at_the_last_point_at_or_before_the_step():
    rule = MedianStop({"min_trials_required": "3", "start_step": "1"})
    # Others report irregularly; at step 6 their running averages take in only points <= 6.
    others = [
        curve(1, [1, 5, 9], [1.0, 0.4, 0.1]),  # average at 6: 0.7
        curve(2, [2, 3, 10], [0.8, 0.6, 0.1]),  # 0.7
        curve(3, [1, 6, 7], [0.5, 0.3, 0.2]),  # 0.4
        curve(4, [8, 12], [0.45, 0.3]),  # reached 6 with no point before it: its first, 0.45
        curve(5, [1, 2], [0.1, 0.1]),  # has not reached 6
    ]
    decision = rule.judge(curve(9, [3, 6], [0.9, 0.6]), others)
    assert decision.step == 6
    assert decision.threshold == pytest.approx(np.median([0.7, 0.7, 0.4, 0.45]))
    assert decision.value == pytest.approx(0.6) and decision.should_stop
    assert "4 other trials" in decision.reason
    better = rule.judge(curve(9, [3, 6], [0.9, 0.5]), others)
    assert not better.should_stop and better.threshold == pytest.approx(0.575)


def test_nan_is_worse_than_any_number():
    rule = MedianStop({"min_trials_required": "2", "start_step": "1"})
    others = [curve(1, [1, 2], [5.0, 4.0]), curve(2, [1, 2], [6.0, 5.0]), curve(3, [1, 2], [math.nan, math.nan])]
    diverged = rule.judge(curve(9, [1, 2], [math.nan, math.nan]), others)
    # The NaN trial among the others ranks +inf, so the median is 5.5 (4.5, 5.5, inf).
    assert diverged.should_stop and diverged.threshold == pytest.approx(5.5)
    assert math.isnan(diverged.value) and "best loss nan" in diverged.reason
    # A single NaN point does not hide the trial's best finite loss.
    assert not rule.judge(curve(9, [1, 2], [math.nan, 3.0]), others).should_stop


def test_ended_and_unknown_trials_are_not_stopped():
    rule = MedianStop({"min_trials_required": "1", "start_step": "1"})
    others = ended_good()
    done = rule.judge(curve(99, STEPS, decay(*BAD), active=False), others)
    assert not done.should_stop and done.reason == "the trial has ended"
    assert not rule.decide(12345).should_stop


def test_a_rewritten_curve_replaces_the_old_one():
    rule = MedianStop({"min_trials_required": "2", "start_step": "1"})
    a, b = curve(1, [1, 2, 3], [1.0, 1.0, 1.0]), curve(2, [1, 2, 3], [2.0, 2.0, 2.0])
    probe = curve(9, [1, 2, 3], [1.6, 1.6, 1.6])
    assert rule.judge(probe, [a, b]).threshold == pytest.approx(1.5)
    # Trial 1 rolled back to step 1 and re-reported worse losses.
    a2 = curve(1, [1, 2, 3], [1.0, 3.0, 3.0])
    decision = rule.judge(probe, [a2, b])
    assert decision.threshold == pytest.approx((7 / 3 + 2.0) / 2)
    assert not decision.should_stop
    fresh = MedianStop({"min_trials_required": "2", "start_step": "1"}).judge(probe, [a2, b])
    assert fresh == decision


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"min_trials_required": "0"}, "min_trials_required"),
        ({"min_trials_required": "three"}, "min_trials_required"),
        ({"start_step": "0"}, "start_step"),
        ({"start_step": "1.5"}, "start_step"),
        ({"grace_period": "3"}, "grace_period"),
    ],
)
def test_bad_settings_name_the_setting(settings, setting):
    with pytest.raises(SettingsError) as err:
        MedianStop(settings)
    assert err.value.setting == setting


def test_defaults_are_katibs():
    rule = MedianStop({})
    assert (rule.min_trials_required, rule.start_step) == (3, 4)


def curves_strategy():
    point = st.one_of(st.floats(0, 10, allow_nan=False), st.just(math.nan))
    trial = st.tuples(
        st.lists(st.integers(1, 30), min_size=1, max_size=12, unique=True).map(sorted),
        st.lists(point, min_size=12, max_size=12),
    )
    return st.lists(trial, min_size=2, max_size=9)


@settings(max_examples=60, deadline=None)
@given(curves_strategy(), st.randoms(use_true_random=False), st.integers(1, 3), st.integers(1, 6))
def test_growing_curves_in_any_order_decide_as_the_definition_says(trials, random, min_trials, start_step):
    """Curves grow one or more points at a time in a random interleaving, with
    a rollback now and then; every decision matches the definition computed
    from scratch, whatever the order the index saw things in."""
    full = [curve(i, s, losses[: len(s)]) for i, (s, losses) in enumerate(trials)]
    shown = [0] * len(full)
    rule = MedianStop({"min_trials_required": str(min_trials), "start_step": str(start_step)})
    for _ in range(3 * sum(len(c.steps) for c in full)):
        tid = random.randrange(len(full))
        if shown[tid] and random.random() < 0.1:
            shown[tid] = random.randrange(shown[tid])  # rollback to an earlier point
        else:
            shown[tid] = min(len(full[tid].steps), shown[tid] + random.randint(1, 3))
        if not shown[tid]:
            rule.forget(tid)
            continue
        now = curve(tid, full[tid].steps[: shown[tid]], full[tid].losses[: shown[tid]])
        rule.observe(now)
        current = [rule.observed(i) for i in range(len(full)) if rule.observed(i) is not None]
        decision = rule.decide(tid)
        stop, median = reference(now, [c for c in current if c.trial_id != tid], min_trials, start_step)
        assert decision.should_stop == stop
        assert decision.threshold == pytest.approx(median)
