"""TPE: inside the space, warm state that learns incrementally, parallel
workers that never get the same point, infeasible points avoided."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.spaces import doubles, problems, spaces
from trialplane.server.domain.models import (
    FeasibleSpace,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from trialplane.server.domain.search.base import Observed, Outcome, SettingsError
from trialplane.server.domain.search.random_search import RandomSearch
from trialplane.server.domain.search.tpe import TPE

T = ParameterType


def spec(kind, name, scale=None, **fs):
    return ParameterSpec(name, kind, FeasibleSpace(**fs), scale)


XY = [spec(T.DOUBLE, "x", min=-1.0, max=1.0), spec(T.DOUBLE, "y", min=-1.0, max=1.0)]


def quadratic(p):
    return (p["x"] - 0.3) ** 2 + (p["y"] + 0.6) ** 2


def run(designer, objective, budget):
    """Sequential trials: suggest one, report it, repeat; the best loss."""
    best = math.inf
    for i in range(budget):
        (params,) = designer.suggest(1, i)
        loss = objective(params)
        best = min(best, loss)
        designer.update([Observed(i, params, Outcome.COMPLETED, loss)], [])
    return best


@settings(max_examples=40, deadline=None)
@given(spaces(), st.integers(0, 2**32), st.data())
def test_suggestions_pass_the_servers_check_before_and_after_the_model_starts(specs, seed, data):
    designer = TPE(specs, {"n_startup_trials": "4", "n_ei_candidates": "8"}, seed)
    outcomes = st.sampled_from([Outcome.COMPLETED] * 4 + [Outcome.INFEASIBLE, Outcome.FAILED])
    trial = 0
    running: list[Observed] = []
    for _ in range(5):
        for params in designer.suggest(3, trial):
            assert problems(specs, params) == []
            running.append(Observed(trial, params, Outcome.ACTIVE))
            trial += 1
        done, running = running[:2], running[2:]
        finished = []
        for o in done:
            outcome = data.draw(outcomes)
            loss = data.draw(st.floats(-1e6, 1e6)) if outcome == Outcome.COMPLETED else None
            finished.append(Observed(o.trial_id, o.params, outcome, loss))
        designer.update(finished, running)


@settings(max_examples=30, deadline=None)
@given(doubles(stepped=False).filter(lambda s: s.feasible_space.min != s.feasible_space.max),
       spaces(min_size=0, max_size=3), st.integers(0, 2**32), st.booleans())
def test_eight_workers_asking_at_once_never_get_the_same_continuous_point(first, others, seed, liar):
    specs = [first, *others]
    for i, s in enumerate(specs):
        s.name = f"p{i}"
    continuous = [s.name for s in specs if s.type == T.DOUBLE and not s.feasible_space.step
                  and s.feasible_space.min != s.feasible_space.max]
    assert continuous
    designer = TPE(specs, {"n_startup_trials": "5", "constant_liar": str(liar).lower()}, seed)
    # a model built from 20 results, then 8 workers ask one after another
    for i, params in enumerate(RandomSearch(specs, {}, seed + 1).suggest(20, 0)):
        designer.update([Observed(i, params, Outcome.COMPLETED, float(i % 7))], [])
    active: list[Observed] = []
    for w in range(8):
        (params,) = designer.suggest(1, 20 + w)
        active.append(Observed(100 + w, params, Outcome.ACTIVE))
        designer.update([], active)
    for name in continuous:
        values = [o.params[name] for o in active]
        assert len(set(values)) == 8, (name, values)


def test_eight_workers_with_one_batch_call_get_eight_points_too():
    designer = TPE(XY, {"n_startup_trials": "5"}, 3)
    for i, params in enumerate(RandomSearch(XY, {}, 4).suggest(30, 0)):
        designer.update([Observed(i, params, Outcome.COMPLETED, quadratic(params))], [])
    batch = designer.suggest(8, 30)
    assert len({(p["x"], p["y"]) for p in batch}) == 8


def test_constant_liar_spreads_parallel_points_apart():
    def spread(liar):
        designer = TPE(XY, {"n_startup_trials": "5", "constant_liar": liar}, 11)
        for i, params in enumerate(RandomSearch(XY, {}, 12).suggest(40, 0)):
            designer.update([Observed(i, params, Outcome.COMPLETED, quadratic(params))], [])
        points = np.array([[p["x"], p["y"]] for p in designer.suggest(16, 40)])
        gaps = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
        return np.median(gaps[np.triu_indices(16, 1)])

    assert spread("true") > spread("false")


def test_tpe_finds_a_planted_minimum_better_than_random_search():
    seeds = range(5)
    tpe = np.mean([run(TPE(XY, {}, s), quadratic, 80) for s in seeds])
    rand = np.mean([run(RandomSearch(XY, {}, s), quadratic, 80) for s in seeds])
    assert tpe < rand / 3


def test_a_trial_given_again_replaces_what_was_known_and_failed_ones_are_forgotten():
    designer = TPE(XY, {}, 0)
    p = {"x": 0.1, "y": 0.2}
    designer.update([Observed(1, p, Outcome.COMPLETED, 5.0)], [])
    designer.update([Observed(1, p, Outcome.COMPLETED, 1.0)], [])
    assert designer.n_results == 1
    designer.update([Observed(2, p, Outcome.INFEASIBLE), Observed(3, p, Outcome.FAILED)], [])
    assert designer.n_results == 2
    # a trial that ran again (restarted) is running, not a result
    designer.update([], [Observed(1, p, Outcome.ACTIVE)])
    assert designer.n_results == 1
    designer.update([Observed(1, p, Outcome.FAILED)], [])
    assert designer.n_results == 1
    designer.update([Observed(2, {"x": "a", "y": 0.0}, Outcome.COMPLETED, 1.0)], [])
    assert designer.n_results == 0


def test_failed_trials_leave_the_startup_points_those_of_random_search():
    specs = [spec(T.DOUBLE, "lr", ParameterScale.LOG, min=1e-5, max=1.0), spec(T.INT, "n", min=1, max=1000)]
    designer = TPE(specs, {}, 5)
    designer.update([Observed(i, {"lr": 0.1, "n": i}, Outcome.FAILED) for i in range(50)], [])
    assert designer.suggest(6, 50) == RandomSearch(specs, {}, 5).suggest(6, 50)


def test_infeasible_points_count_as_bad():
    # x below 0.5 cannot be trained; above it the loss grows with x
    specs = [spec(T.DOUBLE, "x", min=0.0, max=1.0)]
    designer = TPE(specs, {"n_startup_trials": "5"}, 2)
    for i, params in enumerate(RandomSearch(specs, {}, 3).suggest(40, 0)):
        x = params["x"]
        if x < 0.5:
            designer.update([Observed(i, params, Outcome.INFEASIBLE)], [])
        else:
            designer.update([Observed(i, params, Outcome.COMPLETED, x)], [])
    xs = [designer.suggest(1, 40 + k)[0]["x"] for k in range(20)]
    assert sum(x < 0.5 for x in xs) <= 4
    assert np.median(xs) < 0.75


def test_categories_of_good_results_are_preferred():
    specs = [spec(T.CATEGORICAL, "opt", categories=["sgd", "adam", "lion", "rmsprop"]), XY[0]]

    def loss(p):
        return (0.0 if p["opt"] == "lion" else 1.0) + p["x"] ** 2

    designer = TPE(specs, {}, 9)
    run(designer, loss, 60)
    picks = [designer.suggest(1, 60 + k)[0]["opt"] for k in range(20)]
    assert picks.count("lion") >= 12


@pytest.mark.parametrize("settings_, setting", [
    ({"gamma": "0"}, "gamma"),
    ({"gamma": "1.5"}, "gamma"),
    ({"gamma": "nan"}, "gamma"),
    ({"n_ei_candidates": "0"}, "n_ei_candidates"),
    ({"n_startup_trials": "ten"}, "n_startup_trials"),
    ({"n_startup_trials": "-1"}, "n_startup_trials"),
    ({"prior_weight": "0"}, "prior_weight"),
    ({"max_good": "2.5"}, "max_good"),
    ({"constant_liar": "sometimes"}, "constant_liar"),
    ({"multivariate": "true"}, "multivariate"),
])
def test_bad_settings_name_the_setting(settings_, setting):
    with pytest.raises(SettingsError) as err:
        TPE(XY, settings_, 0)
    assert err.value.setting == setting
    assert err.value.message
