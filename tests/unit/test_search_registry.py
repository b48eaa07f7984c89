"""Every algorithm, found by name: inside the space for any space, settings
checked before anything is searched, unknown names refused."""

import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.spaces import grid_spaces, problems, spaces
from trialplane.server.domain.models import FeasibleSpace, ParameterSpec, ParameterType
from trialplane.server.domain.search import registry
from trialplane.server.domain.search.base import Observed, Outcome, SettingsError

ALGORITHMS = ["cmaes", "grid", "quasirandom", "random", "tpe"]
# Settings that make the model-based ones use their model within a few trials.
QUICK = {"tpe": {"n_startup_trials": "3"}, "cmaes": {"population_size": "4"}}
T = ParameterType
SPACE = [ParameterSpec("n", T.INT, FeasibleSpace(min=1, max=9)),
         ParameterSpec("opt", T.CATEGORICAL, FeasibleSpace(categories=["sgd", "adam"]))]


def test_every_module_registers_the_algorithm_of_its_name():
    assert registry.names() == ALGORITHMS
    for module in registry.MODULES:
        importlib.import_module(f"trialplane.server.domain.search.{module}")
    for name in ALGORITHMS:
        assert registry.create(name, SPACE, {}, 0).name == name


def test_an_unknown_algorithm_is_a_settings_error_on_the_name():
    with pytest.raises(SettingsError) as err:
        registry.create("bayesianoptimization", SPACE, {}, 0)
    assert err.value.setting == ""
    assert "bayesianoptimization" in err.value.message and "tpe" in err.value.message


@pytest.mark.parametrize("name", ALGORITHMS)
def test_an_unknown_setting_is_named_and_the_known_ones_listed(name):
    with pytest.raises(SettingsError) as err:
        registry.create(name, SPACE, {"no_such_setting": "1"}, 0)
    assert err.value.setting == "no_such_setting"
    cls = type(registry.create(name, SPACE, {}, 0))
    for known in cls.settings_help:
        assert known in err.value.message


@pytest.mark.parametrize("name", [n for n in ALGORITHMS if n != "grid"])
def test_random_state_must_be_a_non_negative_integer(name):
    for bad in ("x", "-3", "1e400", "0.5"):
        with pytest.raises(SettingsError) as err:
            registry.create(name, SPACE, {"random_state": bad}, 0)
        assert err.value.setting == "random_state"
    registry.create(name, SPACE, {"random_state": "12"}, 0)


def _drive(specs, name, seed, data):
    designer = registry.create(name, specs, QUICK.get(name, {}), seed)
    trial = 0
    running: list[Observed] = []
    for _ in range(4):
        got = designer.suggest(3, trial)
        for params in got:
            assert problems(specs, params) == []
            running.append(Observed(trial, params, Outcome.ACTIVE))
            trial += 1
        finished = []
        for o in running[:3]:
            outcome = data.draw(st.sampled_from([Outcome.COMPLETED, Outcome.COMPLETED, Outcome.INFEASIBLE, Outcome.FAILED]))
            loss = data.draw(st.floats(-1e9, 1e9)) if outcome == Outcome.COMPLETED else None
            finished.append(Observed(o.trial_id, o.params, outcome, loss))
        running = running[3:]
        designer.update(finished, running)


@settings(max_examples=40, deadline=None)
@given(spaces(), st.sampled_from([n for n in ALGORITHMS if n != "grid"]), st.integers(0, 2**40), st.data())
def test_every_algorithm_suggests_only_what_the_server_accepts(specs, name, seed, data):
    _drive(specs, name, seed, data)


@settings(max_examples=20, deadline=None)
@given(grid_spaces(), st.data())
def test_grid_suggests_only_what_the_server_accepts(specs, data):
    _drive(specs, "grid", 0, data)
