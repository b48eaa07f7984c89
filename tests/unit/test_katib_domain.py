"""Katib's vocabulary on trialplane's search: names, settings, text forms, outcomes."""

from __future__ import annotations

import math

import pytest
from trialplane.server.domain import katib
from trialplane.server.domain.models import (
    FeasibleSpace,
    ObjectiveType,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from trialplane.server.domain.search import registry
from trialplane.server.domain.search.base import Outcome, SettingsError

T = ParameterType


def double(name, low, high, step=None, scale=None):
    return ParameterSpec(name, T.DOUBLE, FeasibleSpace(min=low, max=high, step=step), scale)


def test_every_katib_name_runs_on_a_registered_designer():
    assert set(katib.ALGORITHMS) == {"random", "grid", "tpe", "multivariate-tpe", "cmaes", "sobol", "quasirandom"}
    assert {a.designer for a in katib.ALGORITHMS.values()} == set(registry.names())


def test_settings_translate_to_the_designers_names():
    space = [double("lr", 0.01, 0.11), double("wd", 1e-5, 1e-1, scale=ParameterScale.LOG),
             ParameterSpec("n", T.INT, FeasibleSpace(min=1, max=1001))]
    t = katib.translate("tpe", [("n_EI_candidates", "12"), ("random_state", "3")], space)
    assert (t.designer, t.settings, t.origin) == ("tpe", {"n_ei_candidates": "12", "random_state": "3"},
                                                  {"n_ei_candidates": 0, "random_state": 1})
    assert katib.translate("sobol", [], space).settings == {"sequence": "sobol"}
    assert katib.translate("grid", [("random_state", "9")], space).settings == {}
    # sigma in parameter units over the narrowest range (0.1 here), capped at 1.
    t = katib.translate("cmaes", [("restart_strategy", "IPOP"), ("sigma", "0.02")], space)
    assert t.designer == "cmaes" and math.isclose(float(t.settings["sigma0"]), 0.2) and t.origin == {"sigma0": 1}
    assert float(katib.translate("cmaes", [("sigma", "5")], space).settings["sigma0"]) == 1.0
    # No DOUBLE or INT range to scale by: sigma changes nothing.
    assert katib.translate("cmaes", [("sigma", "5")], [ParameterSpec("c", T.CATEGORICAL, FeasibleSpace(
        categories=["a", "b"]))]).settings == {}


@pytest.mark.parametrize("name,settings,index,words", [
    ("cmaes", [("sigma", "-1")], 0, "greater than 0"),
    ("cmaes", [("random_state", "1"), ("restart_strategy", "often")], 1, "none, ipop, bipop"),
    ("tpe", [("n_ei_candidates", "1"), ("n_EI_candidates", "2")], 1, "sets 'n_ei_candidates'"),
    ("random", [("random_state", "1"), ("random_state", "1")], 1, "given twice"),
    ("sobol", [("sequence", "halton")], 0, "sets sequence"),
])
def test_untranslatable_settings_are_named_by_index(name, settings, index, words):
    with pytest.raises(katib.KatibSettingError) as info:
        katib.translate(name, settings, [double("x", 0, 1)])
    assert info.value.index == index and words in info.value.message


def test_an_unknown_algorithm_is_a_settings_error_of_the_name():
    with pytest.raises(SettingsError) as info:
        katib.translate("bayesianoptimization", [], [])
    assert info.value.setting == "" and "served: cmaes, grid" in info.value.message


def space(*specs, mins=None, steps=None, lists=None):
    n = len(specs)
    return katib.KatibSpace(list(specs), mins or [""] * n, steps or [""] * n, lists or [[]] * n)


def test_text_forms_round_trip_onto_the_designers_grid():
    s = space(double("d", 0.1, 0.5, 0.1), ParameterSpec("n", T.INT, FeasibleSpace(min=0, max=10, step=2)),
              ParameterSpec("b", T.DISCRETE, FeasibleSpace(values=[100.0, 32.0])),
              ParameterSpec("c", T.CATEGORICAL, FeasibleSpace(categories=["x", "y"])), double("u", 0, 1),
              mins=["0.1", "0", "", "", "0"], steps=["0.1", "2", "", "", ""],
              lists=[[], [], ["1e2", "32"], ["x", "y"], []])
    third = 0.1 + 2 * 0.1
    assert third != 0.3
    point = {"d": third, "n": 4, "b": 100.0, "c": "y", "u": 0.1 + 0.2}
    texts = s.format(point)
    assert texts == [("d", "0.3"), ("n", "4"), ("b", "1e2"), ("c", "y"), ("u", "0.30000000000000004")]
    # Read back, each value is the designer's own, float noise included.
    assert {n: s.parse(n, t) for n, t in texts} == point
    assert s.parse("n", "4.0") == 4 and isinstance(s.parse("n", "4.0"), int)
    assert s.parse("b", "100") == 100.0
    # Outside the space but of the right type: read, not refused.
    assert s.parse("c", "z") == "z" and s.parse("u", "7") == 7.0
    assert s.parse("missing", "1") is None
    for name, text in [("d", "a third"), ("n", "2.5"), ("u", "nan"), ("b", "inf")]:
        with pytest.raises(ValueError):
            s.parse(name, text)


def test_outcomes_of_katib_trials():
    C, R = katib.Condition, Outcome
    maximize, minimize = ObjectiveType.MAXIMIZE, ObjectiveType.MINIMIZE

    def read(condition, value=None, objective=maximize, **kw):
        o = katib.outcome(katib.KatibTrial("t", {"x": 1.0}, condition, value), 7, objective, **kw)
        assert o.trial_id == 7 and o.params == {"x": 1.0}
        return o.outcome, o.loss

    assert read(C.SUCCEEDED, 0.9) == (R.COMPLETED, -0.9)
    assert read(C.SUCCEEDED, 0.9, minimize) == (R.COMPLETED, 0.9)
    assert read(C.SUCCEEDED) == (R.FAILED, None)
    for running in (C.CREATED, C.RUNNING, C.UNKNOWN):
        assert read(running) == (R.ACTIVE, None)
        assert read(running, 0.5) == (R.ACTIVE, None)
    for failed in (C.FAILED, C.KILLED, C.METRICSUNAVAILABLE):
        assert read(failed, 0.5) == (R.FAILED, None)
    # Stopped early: a result with its observed value, else its best logged one.
    assert read(C.EARLYSTOPPED, 0.4) == (R.COMPLETED, -0.4)
    assert read(C.EARLYSTOPPED, stored=0.3) == (R.COMPLETED, -0.3)
    assert read(C.EARLYSTOPPED) == (R.FAILED, None)
    # Marked through SetTrialStatus, whatever Katib's condition says.
    assert read(C.FAILED, early_stopped=True, stored=0.2) == (R.COMPLETED, -0.2)
    assert read(C.KILLED, 0.6, minimize, early_stopped=True, stored=0.2) == (R.COMPLETED, 0.6)
    assert read(C.RUNNING, early_stopped=True) == (R.ACTIVE, None)
    assert read(C.FAILED, early_stopped=True) == (R.FAILED, None)


def test_metric_values_as_katib_sends_them():
    assert [katib.read_value(t) for t in ("0.5", "-1e3", " 2 ", "nan", "inf", "unavailable", "")] == [
        0.5, -1000.0, 2.0, None, None, None, None]


def test_the_seed_is_a_function_of_the_name():
    assert katib.seed_of("mnist") == katib.seed_of("mnist") != katib.seed_of("mnist-2")
    assert 0 <= katib.seed_of("x") < 2**64


def test_medianstop_numbers():
    assert katib.early_average([1.0, 2.0, 3.0, 10.0], 3) == 2.0
    assert katib.early_average([5.0], 4) == 5.0
    assert katib.early_average([], 2) is None
    assert katib.median([3.0, 1.0, 2.0]) == 2.0
    assert katib.median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert katib.EARLY_STOPPING_RULES == ("medianstop",)
