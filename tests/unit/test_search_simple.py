"""Random, grid and quasi-random search: points inside the space, the grid
exactly once, point i a function of (seed, i)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.spaces import grid_size, grid_spaces, problems, spaces
from trialplane.server.domain.models import (
    FeasibleSpace,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from trialplane.server.domain.search.base import SettingsError
from trialplane.server.domain.search.grid import GridSearch
from trialplane.server.domain.search.quasi_random import QuasiRandomSearch
from trialplane.server.domain.search.random_search import RandomSearch

T = ParameterType


def spec(kind, name, scale=None, **fs):
    return ParameterSpec(name, kind, FeasibleSpace(**fs), scale)


MIXED = [
    spec(T.DOUBLE, "lr", ParameterScale.LOG, min=1e-5, max=1e-1),
    spec(T.INT, "layers", min=1, max=8),
    spec(T.DISCRETE, "batch", values=[32.0, 64.0, 128.0]),
    spec(T.CATEGORICAL, "opt", categories=["sgd", "adam"]),
]


@settings(max_examples=60, deadline=None)
@given(spaces(), st.integers(0, 2**40), st.integers(0, 10_000))
def test_random_and_quasirandom_points_pass_the_servers_check(specs, seed, index):
    for cls in (RandomSearch, QuasiRandomSearch):
        for params in cls(specs, {}, seed).suggest(4, index):
            assert problems(specs, params) == []


@pytest.mark.parametrize("cls", [RandomSearch, QuasiRandomSearch])
def test_point_i_depends_on_seed_and_i_only(cls):
    one_call = cls(MIXED, {}, 7).suggest(12, 0)
    other = cls(MIXED, {}, 7)
    piecewise = other.suggest(5, 0) + other.suggest(7, 5)
    assert piecewise == one_call
    # going back (a replica that is behind) gives the same points again
    assert other.suggest(3, 2) == one_call[2:5]
    assert cls(MIXED, {}, 8).suggest(12, 0) != one_call
    assert cls(MIXED, {"random_state": "8"}, 7).suggest(12, 0) == cls(MIXED, {}, 8).suggest(12, 0)


@settings(max_examples=40, deadline=None)
@given(spaces(), st.integers(0, 2**32), st.lists(st.integers(0, 5000), min_size=1, max_size=6),
       st.sampled_from(["sobol", "halton"]))
def test_quasirandom_point_i_equals_across_independent_designers(specs, seed, indexes, sequence):
    a = QuasiRandomSearch(specs, {"sequence": sequence}, seed)
    b = QuasiRandomSearch(specs, {"sequence": sequence}, seed)
    # a walks the indexes in the given order, b asks for each alone, fresh
    for i in indexes:
        assert a.suggest(1, i) == b.suggest(1, i)
        assert QuasiRandomSearch(specs, {"sequence": sequence}, seed).suggest(1, i) == a.suggest(1, i)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.lists(st.tuples(st.integers(0, 200), st.integers(1, 40)), min_size=1, max_size=12))
def test_points_drawn_ahead_are_the_points_drawn_one_by_one(seed, asks):
    """Asks in any order, repeats and jumps included, get what a fresh
    designer gives for each index alone; no two answers share a dict."""
    for cls in (RandomSearch, QuasiRandomSearch):
        walker = cls(MIXED, {}, seed)
        for index, count in asks:
            got = walker.suggest(count, index)
            assert got == [cls(MIXED, {}, seed).suggest(1, index + j)[0] for j in range(count)]
            got[0]["opt"] = "changed"
            assert walker.suggest(1, index) == cls(MIXED, {}, seed).suggest(1, index)


def test_sobol_spreads_the_first_points_over_every_cell():
    # 16 scrambled Sobol points in 2-D put exactly 4 in each quarter of each axis
    specs = [spec(T.DOUBLE, "x", min=0, max=1), spec(T.DOUBLE, "y", min=0, max=1)]
    points = QuasiRandomSearch(specs, {}, 3).suggest(16, 0)
    for name in ("x", "y"):
        assert sorted(int(p[name] * 4) for p in points) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4


@settings(max_examples=60, deadline=None)
@given(grid_spaces(), st.lists(st.integers(1, 37), min_size=1, max_size=20))
def test_grid_covers_the_space_exactly_once_then_is_exhausted(specs, chunks):
    designer = GridSearch(specs, {}, 0)
    total = grid_size(specs)
    assert designer.total == total
    seen = []
    index = 0
    for count in chunks * (total // sum(chunks) + 1):
        got = designer.suggest(count, index)
        assert len(got) == min(count, total - index)
        seen += got
        index += len(got)
        if index == total:
            break
    assert index == total
    for params in seen:
        assert problems(specs, params) == []
    keys = {tuple(p[s.name] for s in specs) for p in seen}
    assert len(keys) == total
    assert designer.suggest(5, total) == []
    assert designer.suggest(1, total + 3) == []


def test_grid_order_is_mixed_radix_with_the_last_parameter_fastest():
    specs = [spec(T.INT, "a", min=0, max=1), spec(T.CATEGORICAL, "b", categories=["x", "y", "z"])]
    got = GridSearch(specs, {}, 0).suggest(10, 0)
    assert got == [{"a": a, "b": b} for a in (0, 1) for b in "xyz"]


def test_grid_refuses_a_double_without_a_step_and_names_it():
    specs = [spec(T.INT, "n", min=0, max=3), spec(T.DOUBLE, "dropout", min=0.0, max=0.5)]
    with pytest.raises(SettingsError) as err:
        GridSearch(specs, {}, 0)
    assert err.value.setting == "dropout"
    assert "'dropout'" in err.value.message and "step" in err.value.message


@pytest.mark.parametrize("cls, settings_, setting", [
    (RandomSearch, {"random_state": "-1"}, "random_state"),
    (RandomSearch, {"random_state": "abc"}, "random_state"),
    (RandomSearch, {"seed": "1"}, "seed"),
    (GridSearch, {"shuffle": "true"}, "shuffle"),
    (QuasiRandomSearch, {"sequence": "lattice"}, "sequence"),
    (QuasiRandomSearch, {"scramble": "maybe"}, "scramble"),
    (QuasiRandomSearch, {"random_state": "1.5"}, "random_state"),
])
def test_bad_settings_name_the_setting(cls, settings_, setting):
    with pytest.raises(SettingsError) as err:
        cls(MIXED[1:], settings_, 0)
    assert err.value.setting == setting
