"""The early-stopping contract's shared parts: how judge() keeps a rule's
index in step with the curves it is given, how curves are read, and how
settings are parsed."""

import math

import numpy as np
import pytest
from trialplane.server.domain.early_stopping import reading
from trialplane.server.domain.early_stopping.base import (
    Curve,
    Decision,
    Rule,
    SettingsError,
)
from trialplane.server.domain.early_stopping.settings import (
    check_known,
    integer,
    optional_integer,
    required_integer,
)


def curve(trial_id, steps, losses, active=True):
    return Curve(trial_id, np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64), active)


class Recorder(Rule):
    """A rule that only records what its index was told."""

    name = "recorder"

    def __init__(self):
        super().__init__({})
        self.calls = []

    def _update(self, trial_id, previous, current):
        self.calls.append((trial_id, previous, current))

    def decide(self, trial_id):
        return Decision(trial_id, False, self.name, reason=f"{len(self._curves)} known")


def test_judge_passes_each_curve_once_and_skips_the_same_object():
    rule = Recorder()
    a, b, c = curve(1, [1], [0.5]), curve(2, [1], [0.6]), curve(3, [1], [0.7])
    rule.judge(a, [b, c])
    assert [(tid, prev, cur) for tid, prev, cur in rule.calls] == [(2, None, b), (3, None, c), (1, None, a)]
    rule.calls.clear()
    a2 = curve(1, [1, 2], [0.5, 0.4])
    decision = rule.judge(a2, [b, c])
    assert rule.calls == [(1, a, a2)]
    assert decision.reason == "3 known"


def test_judge_forgets_trials_no_longer_given():
    rule = Recorder()
    a, b, c = curve(1, [1], [0.5]), curve(2, [1], [0.6]), curve(3, [1], [0.7])
    rule.judge(a, [b, c])
    rule.calls.clear()
    rule.judge(a, [c])
    assert rule.calls == [(2, b, None)]
    assert rule.observed(2) is None and rule.observed(3) is c


def test_judge_prefers_the_trial_over_a_stale_copy_among_others():
    rule = Recorder()
    old, new = curve(1, [1], [0.5]), curve(1, [1, 2], [0.5, 0.4])
    rule.judge(new, [old, curve(2, [1], [0.6])])
    assert rule.observed(1) is new


def test_a_curve_is_read_at_its_last_point_at_or_before_a_step():
    steps = [2, 5, 9]
    assert reading.index_at(steps, 5) == 1
    assert reading.index_at(steps, 8) == 1  # a gap: 6..8 read at step 5
    assert reading.index_at(steps, 100) == 2
    assert reading.index_at(steps, 1) == 0  # before the first report: its first point
    assert reading.indices_at(np.array(steps), np.array([1, 2, 6, 9, 10])).tolist() == [0, 0, 1, 2, 2]


def test_nan_ranks_worst_and_taints_running_averages():
    assert reading.ranked(np.array([1.0, math.nan])).tolist() == [1.0, math.inf]
    assert reading.rank(math.nan) == math.inf and reading.rank(0.5) == 0.5
    assert reading.running_averages(np.array([1.0, 3.0, math.nan, 2.0])).tolist() == [1.0, 2.0, math.inf, math.inf]
    assert reading.running_averages(np.array([-math.inf, math.inf])).tolist() == [-math.inf, math.inf]


def test_settings_are_parsed_and_errors_name_the_setting():
    settings = {"a": " 7 ", "b": "x", "c": "0"}
    assert integer(settings, "a", 1, minimum=1) == 7
    assert integer(settings, "missing", 3, minimum=1) == 3
    assert optional_integer(settings, "missing", minimum=1) is None
    with pytest.raises(SettingsError) as err:
        integer(settings, "b", 1, minimum=1)
    assert err.value.setting == "b" and "integer" in err.value.message
    with pytest.raises(SettingsError) as err:
        integer(settings, "c", 1, minimum=1)
    assert err.value.setting == "c" and "at least 1" in err.value.message
    with pytest.raises(SettingsError) as err:
        required_integer(settings, "missing", minimum=1, rule="r")
    assert err.value.setting == "missing"
    with pytest.raises(SettingsError) as err:
        check_known({"a": "1", "zz": "2"}, ["a", "b"], "r")
    assert err.value.setting == "zz" and "known: a, b" in err.value.message and err.value.unknown
    with pytest.raises(SettingsError) as err:
        integer({"a": "2.5"}, "a", 1, minimum=1)
    assert err.value.setting == "a"
