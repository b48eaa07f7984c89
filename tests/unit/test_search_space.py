"""The unit-cube encoding every search algorithm shares (server/domain/search/space.py)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.spaces import problems, spaces, valid_space
from trialplane.server.domain.models import (
    FeasibleSpace,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from trialplane.server.domain.search.space import Space

T = ParameterType


def spec(kind, name="p", scale=None, **fs):
    return ParameterSpec(name, kind, FeasibleSpace(**fs), scale)


@settings(max_examples=150, deadline=None)
@given(spaces(), st.data())
def test_every_point_of_the_cube_decodes_to_a_value_the_server_accepts(specs, data):
    assert valid_space(specs)
    space = Space(specs)
    corners = [np.zeros(len(space)), np.ones(len(space))]
    inside = [np.array(data.draw(st.lists(st.floats(0, 1), min_size=len(space), max_size=len(space)))) for _ in range(3)]
    for u in corners + inside:
        params = space.decode(u)
        assert problems(specs, params) == []
        # what a trial reports back lands where it came from: the same grid
        # point or choice, the same continuous value up to rounding
        again = space.encode(params)
        assert again is not None
        back = space.decode(again)
        for dim in space.dims:
            if dim.size is None:
                assert back[dim.name] == pytest.approx(params[dim.name], rel=1e-9, abs=1e-12)
            else:
                assert back[dim.name] == params[dim.name]


def test_log_scale_is_linear_in_the_logarithm():
    space = Space([spec(T.DOUBLE, min=1e-4, max=1.0, scale=ParameterScale.LOG)])
    assert space.decode([0.5])["p"] == pytest.approx(1e-2)
    assert space.decode([0.25])["p"] == pytest.approx(1e-3)
    assert space.encode({"p": 1e-3})[0] == pytest.approx(0.25)
    assert space.decode([0.0])["p"] == 1e-4 and space.decode([1.0])["p"] == 1.0


def test_a_step_grid_gives_each_point_an_equal_cell_and_ends_on_max():
    space = Space([spec(T.DOUBLE, min=0.1, max=0.3, step=0.1)])
    assert [space.decode([u])["p"] for u in (0.0, 0.2, 0.34, 0.5, 0.67, 0.9, 1.0)] == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.3]
    # 0.1 + 2 * 0.1 is 0.30000000000000004, above max; max itself is handed out
    assert space.dims[0].value_at(2) == 0.3
    assert space.encode({"p": 0.2})[0] == pytest.approx(0.5)


def test_int_rounds_to_whole_numbers_on_its_step_and_is_an_int():
    space = Space([spec(T.INT, min=0, max=10, step=5)])
    assert [space.decode([u])["p"] for u in (0.0, 0.4, 0.7, 1.0)] == [0, 5, 10, 10]
    assert all(type(space.decode([u])["p"]) is int for u in (0.0, 0.5, 1.0))
    assert space.dims[0].size == 3


def test_log_int_reaches_both_ends_with_their_share():
    space = Space([spec(T.INT, min=1, max=8, scale=ParameterScale.LOG)])
    values = [space.decode([u])["p"] for u in np.linspace(0, 1, 1001)]
    assert set(values) == set(range(1, 9))
    counts = {v: values.count(v) for v in range(1, 9)}
    # log-uniform over [0.5, 8.5]: 1 takes log(1.5/0.5) of log(17), 8 only log(8.5/7.5)
    assert counts[1] == pytest.approx(1001 * math.log(3) / math.log(17), abs=3)
    assert counts[8] == pytest.approx(1001 * math.log(8.5 / 7.5) / math.log(17), abs=3)


def test_discrete_values_share_the_cube_in_order_and_encode_to_the_nearest():
    space = Space([spec(T.DISCRETE, values=[128.0, 1.0, 4.0, 2.0])])
    assert [space.decode([u])["p"] for u in (0.1, 0.3, 0.6, 0.9)] == [1.0, 2.0, 4.0, 128.0]
    assert space.decode(space.encode({"p": 3.1}))["p"] == 4.0
    assert space.decode(space.encode({"p": 2.9}))["p"] == 2.0
    assert space.decode(space.encode({"p": 1000}))["p"] == 128.0


def test_categories_by_index_and_unknown_values_do_not_encode():
    space = Space([spec(T.CATEGORICAL, categories=["sgd", "adam", "lion"]), spec(T.DOUBLE, "lr", min=0, max=1)])
    assert [space.decode([u, 0.5])["p"] for u in (0.0, 0.4, 0.99)] == ["sgd", "adam", "lion"]
    assert space.encode({"p": "adam", "lr": 0.25}).tolist() == pytest.approx([0.5, 0.25])
    assert space.encode({"p": "rmsprop", "lr": 0.25}) is None
    assert space.encode({"p": "adam"}) is None
    assert space.encode({"p": "adam", "lr": "x"}) is None


def test_keys_do_not_tell_an_int_from_the_same_float():
    space = Space([spec(T.INT, min=0, max=10), spec(T.CATEGORICAL, "c", categories=["a"])])
    assert space.key({"p": 3, "c": "a"}) == space.key({"p": 3.0, "c": "a"})
    assert space.key({"p": 3, "c": "a"}) != space.key({"p": 4, "c": "a"})


def test_a_single_point_range_always_decodes_to_it():
    space = Space([spec(T.DOUBLE, min=2.5, max=2.5), spec(T.INT, "i", min=3, max=3, scale=ParameterScale.LOG)])
    for u in (0.0, 0.5, 1.0):
        assert space.decode([u, u]) == {"p": 2.5, "i": 3}
