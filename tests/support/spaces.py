"""Hypothesis strategies for study spaces the server accepts, and the
server's own check of an assignment against them, for the search tests."""

from __future__ import annotations

from hypothesis import strategies as st
from trialplane.server.domain.errors import ViolationCollector
from trialplane.server.domain.models import (
    FeasibleSpace,
    ParameterScale,
    ParameterSpec,
    ParameterType,
    Study,
)
from trialplane.server.domain.validation import _check_parameter, check_hyperparameters

T = ParameterType
DECLARED_TYPE = {T.DOUBLE: float, T.INT: int, T.DISCRETE: float, T.CATEGORICAL: str}


@st.composite
def doubles(draw, stepped: bool | None = None) -> ParameterSpec:
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-6, 1e3))
    else:
        low = draw(st.floats(-1e6, 1e6))
    span = draw(st.one_of(st.just(0.0), st.floats(1e-6, 1e6)))
    high = low + span
    step = None
    if stepped or (stepped is None and draw(st.booleans())):
        # a grid of 1 to about 60 points, the step not dividing the span evenly as often as it does
        step = draw(st.one_of(st.floats(max(span, 1e-6) / 60, max(span, 1e-6) * 1.5), st.sampled_from([0.1, 0.25, 1.0])))
        if span / step > 1e5:
            step = max(span, 1e-6) / 10
    return ParameterSpec("", T.DOUBLE, FeasibleSpace(min=low, max=high, step=step),
                         ParameterScale.LOG if log else draw(st.sampled_from([None, ParameterScale.LINEAR])))


@st.composite
def ints(draw) -> ParameterSpec:
    log = draw(st.booleans())
    low = draw(st.integers(1, 1000) if log else st.integers(-1000, 1000))
    high = low + draw(st.integers(0, 2000))
    step = draw(st.one_of(st.none(), st.integers(1, 50)))
    return ParameterSpec("", T.INT, FeasibleSpace(min=float(low), max=float(high), step=None if step is None else float(step)),
                         ParameterScale.LOG if log else None)


def discretes() -> st.SearchStrategy[ParameterSpec]:
    values = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8, unique=True)
    return values.map(lambda vs: ParameterSpec("", T.DISCRETE, FeasibleSpace(values=vs)))


def categoricals() -> st.SearchStrategy[ParameterSpec]:
    cats = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6, unique=True)
    return cats.map(lambda cs: ParameterSpec("", T.CATEGORICAL, FeasibleSpace(categories=cs)))


def _named(specs: list[ParameterSpec]) -> list[ParameterSpec]:
    for i, s in enumerate(specs):
        s.name = f"p{i}"
    return specs


def spaces(min_size: int = 1, max_size: int = 5) -> st.SearchStrategy[list[ParameterSpec]]:
    """Any mix of the four types, log scales and steps."""
    one = st.one_of(doubles(), ints(), discretes(), categoricals())
    return st.lists(one, min_size=min_size, max_size=max_size).map(_named)


def grid_spaces(max_points: int = 400) -> st.SearchStrategy[list[ParameterSpec]]:
    """Spaces grid search can enumerate, small enough to enumerate in a test."""
    one = st.one_of(doubles(stepped=True), ints(), discretes(), categoricals())
    return st.lists(one, min_size=1, max_size=4).map(_named).filter(lambda s: grid_size(s) <= max_points)


def grid_size(specs: list[ParameterSpec]) -> int:
    """The number of grid points, counted without the code under test."""
    total = 1
    for s in specs:
        fs = s.feasible_space
        if s.type == T.CATEGORICAL:
            total *= len(fs.categories)
        elif s.type == T.DISCRETE:
            total *= len(fs.values)
        else:
            assert fs.min is not None and fs.max is not None
            step = fs.step or 1.0
            k = 0
            # points min + k * step up to max, with a rounding error's slack at the end
            while fs.min + (k + 1) * step <= fs.max + 1e-9 * step:
                k += 1
                if k > 100_000:
                    break
            total *= k + 1
    return total


def problems(specs: list[ParameterSpec], params: dict) -> list[str]:
    """What the server says is wrong with params for a study of specs, and
    any value not of its parameter's declared Python type."""
    v = ViolationCollector()
    check_hyperparameters(v, Study(name="s", parameters=specs), params)
    out = [f"{x.field}: {x.description}" for x in v.violations]
    for s in specs:
        value = params.get(s.name)
        assert s.type is not None
        if type(value) is not DECLARED_TYPE[s.type]:
            out.append(f"{s.name}: {value!r} is a {type(value).__name__}, not {DECLARED_TYPE[s.type].__name__}")
    return out


def valid_space(specs: list[ParameterSpec]) -> bool:
    v = ViolationCollector()
    for i, s in enumerate(specs):
        _check_parameter(v, f"p[{i}]", s)
    return not v.violations
