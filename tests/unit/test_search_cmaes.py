"""CMA-ES: asynchronous results told to the generation they were asked in,
pending candidates not handed out twice, categories drawn at random."""

import math

import numpy as np
import pytest
from trialplane.server.domain.models import FeasibleSpace, ParameterSpec, ParameterType
from trialplane.server.domain.search.base import Observed, Outcome, SettingsError
from trialplane.server.domain.search.cma_es import WARM_START_MIN, CmaEs
from trialplane.server.domain.search.random_search import RandomSearch
from trialplane.server.domain.search.space import Space

T = ParameterType


def spec(kind, name, scale=None, **fs):
    return ParameterSpec(name, kind, FeasibleSpace(**fs), scale)


XY = [spec(T.DOUBLE, "x", min=-1.0, max=1.0), spec(T.DOUBLE, "y", min=-1.0, max=1.0)]


def quadratic(p):
    return (p["x"] - 0.3) ** 2 + (p["y"] + 0.6) ** 2


def done(trial_id, params, loss=None, outcome=Outcome.COMPLETED):
    return Observed(trial_id, params, outcome, quadratic(params) if loss is None and outcome == Outcome.COMPLETED else loss)


def recording(designer):
    """Wraps the optimizer's tell so a test sees what it was told."""
    told = []
    tell = designer._optimizer.tell

    def spy(solutions):
        told.append(list(solutions))
        tell(solutions)

    designer._optimizer.tell = spy
    return told


def test_results_in_any_order_are_told_with_their_own_candidates():
    designer = CmaEs(XY, {"population_size": "4"}, 1)
    told = recording(designer)
    space = Space(XY)
    first = designer.suggest(6, 0)  # more workers than a generation holds
    assert designer.generation == 0
    # the last four finish first, in reverse order
    designer.update([done(i, first[i]) for i in (5, 4, 3, 2)], [])
    assert designer.generation == 1
    assert len(told) == 1 and len(told[0]) == 4
    for x, loss in told[0]:
        u = np.empty(2)
        u[:] = x
        params = space.decode(u)
        assert params in first[2:]
        assert loss == quadratic(params)
    # generation 0's stragglers arrive after it was told: not told again
    designer.update([done(0, first[0]), done(1, first[1])], [])
    assert len(told) == 1 and designer.generation == 1


def test_failed_candidates_are_replaced_and_infeasible_ones_come_last():
    designer = CmaEs(XY, {"population_size": "4"}, 2)
    told = recording(designer)
    batch = designer.suggest(4, 0)
    designer.update([done(0, batch[0]), done(1, batch[1], outcome=Outcome.FAILED),
                     done(2, batch[2], outcome=Outcome.INFEASIBLE), done(3, batch[3])], [])
    assert designer.generation == 0 and not told
    (extra,) = designer.suggest(1, 4)
    designer.update([done(4, extra)], [])
    assert designer.generation == 1
    losses = [loss for _, loss in told[0]]
    feasible = [quadratic(p) for p in (batch[0], batch[3], extra)]
    assert sorted(losses)[:3] == sorted(feasible)
    assert max(losses) > max(feasible) and math.isfinite(max(losses))


def test_a_trial_it_did_not_suggest_is_not_told():
    designer = CmaEs(XY, {"population_size": "4"}, 3)
    told = recording(designer)
    designer.suggest(4, 0)
    designer.update([done(i, {"x": 0.0, "y": 0.1 * i}) for i in range(4)], [])
    assert not told and designer.generation == 0


def test_pending_candidates_are_not_handed_out_twice():
    # 25 points in all; CMA-ES's candidates round onto them
    specs = [spec(T.INT, "a", min=0, max=4), spec(T.INT, "b", min=0, max=4)]
    designer = CmaEs(specs, {"sigma0": "0.05", "population_size": "8"}, 4)
    batch = designer.suggest(8, 0)
    assert len({(p["a"], p["b"]) for p in batch}) == 8


def test_categories_are_random_and_a_categorical_space_is_searched_at_random():
    specs = [spec(T.CATEGORICAL, "opt", categories=["sgd", "adam", "lion"])]
    assert CmaEs(specs, {}, 5).suggest(10, 3) == RandomSearch(specs, {}, 5).suggest(10, 3)
    mixed = [*XY, specs[0]]
    picks = [p["opt"] for p in CmaEs(mixed, {}, 5).suggest(30, 0)]
    assert set(picks) == {"sgd", "adam", "lion"}


@pytest.mark.parametrize("variant", ["cma", "sep"])
def test_cmaes_finds_a_planted_minimum_better_than_random_search(variant):
    def run(designer):
        best, trial = math.inf, 0
        running: list[Observed] = []
        while trial < 120:
            while len(running) < 4:
                (params,) = designer.suggest(1, trial)
                running.append(Observed(trial, params, Outcome.ACTIVE))
                trial += 1
            finished, running = running[0], running[1:]
            loss = quadratic(finished.params)
            best = min(best, loss)
            designer.update([done(finished.trial_id, finished.params, loss)], running)
        return best

    cma = np.mean([run(CmaEs(XY, {"variant": variant}, s)) for s in range(4)])
    rand = np.mean([run(RandomSearch(XY, {}, s)) for s in range(4)])
    assert cma < rand / 3


@pytest.mark.parametrize("settings_, setting", [
    ({"sigma0": "0"}, "sigma0"),
    ({"sigma0": "2"}, "sigma0"),
    ({"sigma0": "big"}, "sigma0"),
    ({"population_size": "3"}, "population_size"),
    ({"population_size": "many"}, "population_size"),
    ({"variant": "ipop"}, "variant"),
    ({"restart": "ipop"}, "restart"),
])
def test_bad_settings_name_the_setting(settings_, setting):
    with pytest.raises(SettingsError) as err:
        CmaEs(XY, settings_, 0)
    assert err.value.setting == setting


def test_after_a_restart_the_old_runs_candidates_are_not_told_to_the_new_one():
    designer = CmaEs(XY, {"population_size": "4"}, 6)
    first = designer.suggest(6, 0)
    designer._optimizer.should_stop = lambda: True
    designer.update([done(i, first[i]) for i in range(4)], [])
    # a new optimizer, counting generations from 0 again
    assert designer._restarts == 1 and designer.generation == 0
    told = recording(designer)
    designer.update([done(4, first[4]), done(5, first[5])], [])
    fresh = designer.suggest(4, 6)
    designer.update([done(6 + i, p) for i, p in enumerate(fresh[:2])], [])
    assert designer._told and len(designer._told) == 2 and not told
    designer.update([done(8 + i, p) for i, p in enumerate(fresh[2:])], [])
    assert len(told) == 1 and designer.generation == 1


def test_history_it_did_not_ask_for_warm_starts_it_near_the_best_results():
    # A server restart: the new designer is told the study's history first.
    rng = np.random.default_rng(0)
    history = [{"x": float(x), "y": float(y)} for x, y in rng.uniform(-1, 1, size=(60, 2))]
    designer = CmaEs(XY, {"population_size": "6"}, 7)
    designer.update([done(i, p) for i, p in enumerate(history)], [])
    batch = designer.suggest(6, 60)
    assert designer.warm_started
    cold = CmaEs(XY, {"population_size": "6"}, 7).suggest(6, 60)
    assert np.mean([quadratic(p) for p in batch]) < np.mean([quadratic(p) for p in cold]) / 2
    # Its own candidates are then told as usual, a generation at a time.
    told = recording(designer)
    designer.update([done(100 + i, p) for i, p in enumerate(batch)], [])
    assert len(told) == 1 and designer.generation == 1


def test_too_little_history_or_history_after_asking_leaves_it_cold():
    few = CmaEs(XY, {"population_size": "4"}, 8)
    few.update([done(i, {"x": 0.3, "y": -0.6 + 0.01 * i}) for i in range(WARM_START_MIN - 1)], [])
    few.suggest(4, 0)
    asked = CmaEs(XY, {"population_size": "4"}, 8)
    asked.suggest(4, 0)
    asked.update([done(i, {"x": 0.3, "y": -0.6 + 0.01 * i}) for i in range(30)], [])
    asked.suggest(4, 4)
    assert not few.warm_started and not asked.warm_started
