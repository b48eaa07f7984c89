"""ASHA against planted curves, hand-computed rungs and a plain re-computation."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trialplane.server.domain.early_stopping.asha import Asha
from trialplane.server.domain.early_stopping.base import Curve, SettingsError

STEPS = np.arange(1, 31, dtype=np.int64)
GOOD = [(1.0, 0.30, 0.10), (1.2, 0.25, 0.12), (0.9, 0.35, 0.08), (1.1, 0.28, 0.11), (1.15, 0.26, 0.09),
        (1.0, 0.40, 0.15), (0.8, 0.32, 0.10), (1.1, 0.30, 0.13), (1.05, 0.31, 0.07)]
BAD = (1.0, 0.02, 0.80)


def decay(a, b, c, steps=STEPS):
    return a * np.exp(-b * steps.astype(np.float64)) + c


def curve(trial_id, steps, losses, active=True):
    return Curve(trial_id, np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64), active)


def value_at(c, step):
    """The documented reading: last point at or before step, else the first; NaN as +inf."""
    before = np.flatnonzero(c.steps <= step)
    value = float(c.losses[before[-1] if len(before) else 0])
    return math.inf if math.isnan(value) else value


def rung_of(trial, rule):
    """The highest rung step the trial reached, or None."""
    rungs = rule.rung_steps(int(trial.steps[-1]))
    return rungs[-1] if rungs else None


def reference(trial, everyone, rule):
    """(should_stop, cut) by the documented rule, from scratch; everyone includes trial."""
    rung = rung_of(trial, rule)
    if rung is None:
        return False, None
    values = sorted(value_at(c, rung) for c in everyone if len(c.steps) and c.steps[-1] >= rung)
    keep = len(values) // rule.reduction_factor
    if keep == 0:
        return False, None
    return value_at(trial, rung) > values[keep - 1], values[keep - 1]


def test_rungs_follow_min_resource_reduction_factor_and_the_rate():
    assert Asha({}).rung_steps(100) == [1, 3, 9, 27, 81]
    assert Asha({"min_resource": "2", "reduction_factor": "2"}).rung_steps(20) == [2, 4, 8, 16]
    assert Asha({"min_resource": "2", "min_early_stopping_rate": "1"}).rung_steps(60) == [6, 18, 54]
    # Rungs lie strictly below max_resource: a trial at max_resource has had its budget.
    assert Asha({"max_resource": "27"}).rung_steps(100) == [1, 3, 9]


def test_planted_bad_trial_is_stopped_at_the_first_rung_with_the_cut_as_threshold():
    rule = Asha({"min_resource": "2"})  # rungs at 2, 6, 18
    others = [curve(i, STEPS, decay(*p), active=False) for i, p in enumerate(GOOD)]
    bad = decay(*BAD)
    for k in range(1, len(STEPS) + 1):
        decision = rule.judge(curve(99, STEPS[:k], bad[:k]), others)
        if decision.should_stop:
            break
    assert decision.should_stop and decision.step == 2 and k == 2
    at_rung = sorted(float(decay(*p)[1]) for p in GOOD)
    # Ten trials reached the rung: the top 10 // 3 = 3 continue.
    assert decision.threshold == pytest.approx(at_rung[2])
    assert decision.value == pytest.approx(bad[1])
    assert decision.reason == (
        f"loss {bad[1]:.4g} at step 2 is worse than the rung's top-1/3 cut {at_rung[2]:.4g} among 10 trials"
    )


def test_in_lockstep_survivors_divide_by_three_and_the_best_trial_runs_to_the_end():
    rule = Asha({"min_resource": "1", "reduction_factor": "3"})  # rungs at 1, 3, 9, 27
    best = (0.6, 0.35, 0.02)  # below every other curve at every step
    params = [*GOOD, BAD, best]
    full = [decay(*p) for p in params]
    stopped = {}
    for k in range(1, len(STEPS) + 1):
        for tid in range(len(params)):
            if tid not in stopped:
                rule.observe(curve(tid, STEPS[:k], full[tid][:k]))
                decision = rule.decide(tid)
                if decision.should_stop:
                    stopped[tid] = decision
    # Eleven trials at rung 1 keep the three best there; three at rung 3 keep one.
    assert sorted(stopped) == list(range(10))
    first_three = set(np.argsort([f[0] for f in full])[:3].tolist())
    assert first_three >= {10}
    assert {tid for tid, d in stopped.items() if d.step == 3} == first_three - {10}
    assert {tid for tid, d in stopped.items() if d.step == 1} == set(range(11)) - first_three
    assert stopped[9].step == 1


def test_fewer_than_reduction_factor_trials_at_a_rung_is_not_a_cut():
    rule = Asha({"min_resource": "2"})
    decision = rule.judge(curve(1, [1, 2], [5.0, 5.0]), [curve(2, [1, 2], [0.1, 0.1])])
    assert not decision.should_stop and decision.threshold is None and decision.step == 2
    assert decision.reason == "only 2 trials reached the rung at step 2; cutting the top 1/3 needs 3"
    early = rule.judge(curve(1, [1], [5.0]), [curve(2, [1, 2], [0.1, 0.1])])
    assert not early.should_stop and early.reason == "step 1 is before the first rung at step 2"


def test_gaps_read_the_last_point_at_or_before_the_rung():
    rule = Asha({"min_resource": "3", "max_resource": "100"})  # rungs 3, 9, 27, 81
    others = [curve(1, [2, 4, 10], [0.9, 0.5, 0.3]), curve(2, [3, 9], [0.6, 0.2]), curve(3, [5, 10], [0.7, 0.2])]
    # Trial 9 reported 8 then 10: at rung 9 it is read at step 8.
    decision = rule.judge(curve(9, [1, 8, 10], [0.9, 0.8, 0.1]), others)
    assert decision.step == 9 and decision.value == pytest.approx(0.8)
    # Trial 3's first report came after rung 3: there it counts with its first loss.
    # At rung 9: trial 1 reads 0.5 (step 4), trial 2 0.2, trial 3 0.7, trial 9 0.8; one of four continues.
    assert decision.threshold == pytest.approx(0.2) and decision.should_stop
    assert "among 4 trials" in decision.reason
    # Before step 10 arrives the trial has not reached rung 9, and is judged at rung 3.
    at_3 = rule.judge(curve(9, [1, 8], [0.9, 0.8]), others)
    assert at_3.step == 3 and at_3.value == pytest.approx(0.9)
    assert at_3.threshold == pytest.approx(sorted([0.9, 0.6, 0.7, 0.9])[0])


def test_nan_is_worse_than_any_number():
    rule = Asha({"min_resource": "1"})
    others = [curve(i, [1], [v]) for i, v in enumerate([3.0, 4.0, 5.0, math.nan, 6.0])]
    decision = rule.judge(curve(9, [1], [math.nan]), others)
    assert decision.should_stop and math.isnan(decision.value) and decision.threshold == 4.0
    assert decision.reason.startswith("loss nan at step 1 is worse than")
    # Six trials, top two continue: a NaN ranks below 4.0.
    assert not rule.judge(curve(9, [1], [4.0]), others).should_stop


def test_ended_and_unknown_trials_are_not_stopped():
    rule = Asha({})
    others = [curve(i, [1, 3], [0.1, 0.1]) for i in range(5)]
    assert rule.judge(curve(9, [1, 3], [9.0, 9.0], active=False), others).reason == "the trial has ended"
    assert not rule.decide(404).should_stop


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"min_resource": "0"}, "min_resource"),
        ({"reduction_factor": "1"}, "reduction_factor"),
        ({"reduction_factor": "2.5"}, "reduction_factor"),
        ({"min_early_stopping_rate": "-1"}, "min_early_stopping_rate"),
        ({"max_resource": "x"}, "max_resource"),
        ({"max_resource": "9", "min_resource": "3", "min_early_stopping_rate": "1"}, "max_resource"),
        ({"bootstrap_count": "1"}, "bootstrap_count"),
    ],
)
def test_bad_settings_name_the_setting(settings, setting):
    with pytest.raises(SettingsError) as err:
        Asha(settings)
    assert err.value.setting == setting


POINT = st.one_of(st.floats(0, 10, allow_nan=False), st.just(math.nan))
TRIALS = st.lists(
    st.tuples(st.lists(st.integers(1, 40), min_size=1, max_size=10, unique=True).map(sorted),
              st.lists(POINT, min_size=10, max_size=10)),
    min_size=1, max_size=12,
)
RULES = st.fixed_dictionaries({
    "min_resource": st.integers(1, 4).map(str),
    "reduction_factor": st.integers(2, 4).map(str),
    "min_early_stopping_rate": st.integers(0, 1).map(str),
})


@settings(max_examples=80, deadline=None)
@given(TRIALS, RULES)
def test_the_best_trial_at_its_rung_is_never_stopped(trials, rule_settings):
    everyone = [curve(i, s, losses[: len(s)]) for i, (s, losses) in enumerate(trials)]
    rule = Asha(rule_settings)
    for trial in everyone:
        decision = rule.judge(trial, [c for c in everyone if c is not trial])
        rung = rung_of(trial, rule)
        if rung is None:
            assert not decision.should_stop
            continue
        rivals = [value_at(c, rung) for c in everyone if c.steps[-1] >= rung]
        if value_at(trial, rung) <= min(rivals):
            assert not decision.should_stop, decision


@settings(max_examples=60, deadline=None)
@given(TRIALS, RULES, st.randoms(use_true_random=False))
def test_growing_curves_in_any_order_decide_as_the_definition_says(trials, rule_settings, random):
    full = [curve(i, s, losses[: len(s)]) for i, (s, losses) in enumerate(trials)]
    shown = [0] * len(full)
    rule = Asha(rule_settings)
    for _ in range(3 * sum(len(c.steps) for c in full)):
        tid = random.randrange(len(full))
        if shown[tid] and random.random() < 0.1:
            shown[tid] = random.randrange(shown[tid])
        else:
            shown[tid] = min(len(full[tid].steps), shown[tid] + random.randint(1, 3))
        if not shown[tid]:
            rule.forget(tid)
            continue
        rule.observe(curve(tid, full[tid].steps[: shown[tid]], full[tid].losses[: shown[tid]]))
        current = [rule.observed(i) for i in range(len(full)) if rule.observed(i) is not None]
        decision = rule.decide(tid)
        stop, cut = reference(rule.observed(tid), current, rule)
        assert (decision.should_stop, decision.threshold) == (stop, cut)
