"""Hyperband's brackets, and the registry that finds every rule by name."""

import collections
import itertools
import math

import numpy as np
import pytest
from trialplane.server.domain.early_stopping import registry
from trialplane.server.domain.early_stopping.asha import Asha
from trialplane.server.domain.early_stopping.base import Curve, SettingsError
from trialplane.server.domain.early_stopping.hyperband import Hyperband, mix
from trialplane.server.domain.early_stopping.median_stop import MedianStop


def curve(trial_id, steps, losses, active=True):
    return Curve(trial_id, np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64), active)


def ids_in(rule, bracket, count):
    found = [tid for tid in range(10_000) if rule.bracket_of(tid) == bracket]
    return found[:count]


def test_brackets_and_their_weights_are_hyperbands():
    rule = Hyperband({"max_resource": "81"})
    assert [b.first for b in rule.brackets] == [1, 3, 9, 27, 81]
    # Hyperband's starting trial counts for R = 81, eta = 3 (Li et al., table 1).
    assert rule.weights == [81, 34, 15, 8, 5]
    other = Hyperband({"min_resource": "2", "max_resource": "100", "reduction_factor": "2"})
    assert [b.first for b in other.brackets] == [2, 4, 8, 16, 32, 64]


def test_bracket_of_a_trial_is_a_fixed_function_of_its_id():
    rule = Hyperband({"max_resource": "81"})
    # Pinned: a change here moves running trials to other brackets after an upgrade.
    assert mix(0) == 0xE220A8397B1DCDAF  # splitmix64's first output for seed 0
    assert [rule.bracket_of(tid) for tid in range(10)] == [1, 1, 4, 0, 1, 0, 2, 0, 1, 3]
    again = Hyperband({"max_resource": "81", "reduction_factor": "3"})
    assert all(again.bracket_of(tid) == rule.bracket_of(tid) for tid in range(2000))
    assert 0 <= rule.bracket_of(-5) < 5 and 0 <= rule.bracket_of(2**70) < 5


def test_brackets_are_filled_in_proportion_to_their_weights():
    rule = Hyperband({"max_resource": "81"})
    total = 143 * 100
    counts = collections.Counter(rule.bracket_of(tid) for tid in range(total))
    for bracket, weight in enumerate(rule.weights):
        assert counts[bracket] == pytest.approx(weight * 100, rel=0.1)
    # Consecutive ids do not come in runs of one bracket.
    run = max(len(list(g)) for _, g in itertools.groupby(rule.bracket_of(t) for t in range(total)))
    assert run < 30


def test_a_trial_is_judged_against_its_own_bracket_only():
    rule = Hyperband({"max_resource": "81"})
    zero, one = ids_in(rule, 0, 7), ids_in(rule, 1, 20)
    bad, peers = zero[0], zero[1:]
    others = [curve(tid, [1, 2], [0.5 + 0.01 * i, 0.4]) for i, tid in enumerate(peers)]
    # Far better trials in bracket 1 have no say in bracket 0.
    others += [curve(tid, [1, 3], [0.01, 0.01]) for tid in one]
    decision = rule.judge(curve(bad, [1], [0.9]), others)
    assert decision.should_stop and decision.step == 1
    assert decision.threshold == pytest.approx(0.51)  # top 7 // 3 = 2 of bracket 0's losses at step 1
    assert decision.reason == "loss 0.9 at step 1 is worse than the rung's top-1/3 cut 0.51 among 7 trials of bracket 0"
    good = rule.judge(curve(bad, [1], [0.505]), others)
    assert not good.should_stop


def test_a_brackets_first_rung_is_min_resource_times_its_rate():
    rule = Hyperband({"max_resource": "81"})
    two = ids_in(rule, 2, 10)
    others = [curve(tid, [3, 9], [0.1, 0.1]) for tid in two[1:]]
    early = rule.judge(curve(two[0], [3], [5.0]), others)
    assert not early.should_stop and early.reason == "step 3 is before the first rung at step 9"
    late = rule.judge(curve(two[0], [3, 9], [5.0, 5.0]), others)
    assert late.should_stop and late.step == 9 and "of bracket 2" in late.reason


def test_the_last_bracket_runs_its_trials_to_the_end():
    rule = Hyperband({"max_resource": "81"})
    last = ids_in(rule, 4, 10)
    others = [curve(tid, [1, 27, 81], [0.1, 0.1, 0.1]) for tid in last[1:]]
    decision = rule.judge(curve(last[0], [1, 27, 81, 90], [9.0, 9.0, 9.0, math.nan]), others)
    assert not decision.should_stop
    assert decision.reason == "no rung of bracket 4 lies below max_resource 81; its trials run to the end"


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({}, "max_resource"),
        ({"max_resource": "1"}, "max_resource"),
        ({"max_resource": "9", "min_resource": "9"}, "max_resource"),
        ({"max_resource": "81", "reduction_factor": "1"}, "reduction_factor"),
        ({"max_resource": "81", "min_resource": "-3"}, "min_resource"),
        ({"max_resource": "81", "min_early_stopping_rate": "1"}, "min_early_stopping_rate"),
    ],
)
def test_bad_settings_name_the_setting(settings, setting):
    with pytest.raises(SettingsError) as err:
        Hyperband(settings)
    assert err.value.setting == setting


def test_the_registry_finds_every_rule_by_name():
    assert registry.names() == ["asha", "hyperband", "medianstop"]
    assert isinstance(registry.create("medianstop", {"start_step": "2"}), MedianStop)
    assert isinstance(registry.create("asha", {}), Asha)
    assert isinstance(registry.create("hyperband", {"max_resource": "27"}), Hyperband)
    with pytest.raises(SettingsError) as err:
        registry.create("median", {})
    assert err.value.setting == "" and "known: asha, hyperband, medianstop" in err.value.message
    with pytest.raises(SettingsError) as err:
        registry.create("asha", {"reduction_factor": "x"})
    assert err.value.setting == "reduction_factor"
    for name in registry.names():
        cls = type(registry.create(name, {"max_resource": "27"} if name == "hyperband" else {}))
        assert cls.name == name and cls.settings_help
