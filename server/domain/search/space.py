"""A study's space as the unit cube, and back.

Every algorithm searches [0, 1]^d, one coordinate per parameter, and turns a
point into an assignment with `Space.decode`, which only ever returns values
the server's own check (validation._value_matches) accepts: a float for
DOUBLE and DISCRETE, an int for INT, a str for CATEGORICAL, on the step grid
and inside [min, max]. `Space.encode` maps an assignment the other way, so
the results of past trials land where the algorithm would have put them.

One coordinate per parameter, by kind:
- DOUBLE, linear, no step: min + u * (max - min).
- DOUBLE or INT, linear, with a step (INT: step 1 when none is given): the
  n points of the grid min + k * step share [0, 1] in n equal cells, so a
  uniform u picks each point equally often.
- DOUBLE or INT on a LOG scale: u is linear in log(value); a step (always
  there for INT) then rounds to the nearest grid point. The range reaches
  half a step past each end, so the end points are not half as likely.
- DISCRETE: the values in ascending order, each with an equal cell (the
  position in that order, not the value itself: an uneven list such as
  1, 2, 4, 128 would otherwise give most of the cube to its widest gap).
  A value that is not in the list encodes as the nearest one.
- CATEGORICAL: the categories in declared order, each with an equal cell.

`Dim.size` is the number of values a coordinate can take (None for an
unstepped DOUBLE), `Dim.value_at(k)` the k-th of them and `Dim.cell(u)` the
k of a coordinate; grid search enumerates with these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..models import HyperparameterValue, ParameterScale, ParameterSpec, ParameterType
from .base import Assignment


@dataclass
class Dim:
    """One parameter's coordinate. kind is "linear" (unstepped DOUBLE), "log"
    (unstepped LOG DOUBLE), "grid" (stepped linear DOUBLE, linear INT),
    "loggrid" (stepped LOG DOUBLE, LOG INT), "discrete" or "categorical"."""

    name: str
    type: ParameterType
    kind: str
    low: float = 0.0
    high: float = 0.0
    step: float = 0.0
    # Grid kinds: how many grid points; discrete/categorical: how many choices.
    count: int = 0
    # discrete: the values, ascending; categorical: the categories, declared order.
    choices: tuple = ()
    # log kinds: the ends of the coordinate in log(value).
    log_low: float = 0.0
    log_high: float = 0.0
    _index: dict = field(default_factory=dict, repr=False, compare=False)
    _sorted: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "categorical":
            self._index = {c: i for i, c in enumerate(self.choices)}
        elif self.kind == "discrete":
            self._sorted = np.asarray(self.choices, dtype=float)

    @property
    def is_categorical(self) -> bool:
        return self.kind == "categorical"

    @property
    def size(self) -> int | None:
        """How many distinct values the coordinate can take; None when unbounded."""
        return None if self.kind in ("linear", "log") else self.count

    def value_at(self, k: int) -> HyperparameterValue:
        """The k-th of the `size` values (ascending; categories as declared)."""
        if self.kind in ("discrete", "categorical"):
            value = self.choices[k]
            return str(value) if self.kind == "categorical" else float(value)
        return self._grid_value(k)

    def cell(self, u: float) -> int:
        """Which of the `size` equal cells of [0, 1] holds u (grid, discrete, categorical)."""
        return min(int(u * self.count), self.count - 1) if u > 0 else 0

    def decode(self, u: float) -> HyperparameterValue:
        u = min(max(float(u), 0.0), 1.0)
        if self.kind == "linear":
            return min(max(self.low + u * (self.high - self.low), self.low), self.high)
        if self.kind == "log":
            if u in (0.0, 1.0):
                return self.low if u == 0.0 else self.high
            x = math.exp(self.log_low + u * (self.log_high - self.log_low))
            return min(max(x, self.low), self.high)
        if self.kind == "loggrid":
            x = math.exp(self.log_low + u * (self.log_high - self.log_low))
            k = round((x - self.low) / self.step)
            return self._grid_value(min(max(k, 0), self.count - 1))
        return self.value_at(self.cell(u))

    def encode(self, value: HyperparameterValue) -> float | None:
        """u for value, or None when value cannot be a value of this parameter."""
        if self.kind == "categorical":
            if not isinstance(value, str) or value not in self._index:
                return None
            return (self._index[value] + 0.5) / self.count
        if isinstance(value, (bool, str)) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        x = float(value)
        if self.kind == "discrete":
            i = int(np.searchsorted(self._sorted, x))
            if i == self.count or (i > 0 and x - self._sorted[i - 1] <= self._sorted[i] - x):
                i -= 1
            return (i + 0.5) / self.count
        if self.kind == "linear":
            span = self.high - self.low
            return 0.5 if span <= 0 else _clip01((x - self.low) / span)
        if self.kind == "grid":
            k = min(max(round((x - self.low) / self.step), 0), self.count - 1)
            return (k + 0.5) / self.count
        # log kinds
        span = self.log_high - self.log_low
        if x <= 0:
            return 0.0
        return 0.5 if span <= 0 else _clip01((math.log(x) - self.log_low) / span)

    def _grid_value(self, k: int) -> HyperparameterValue:
        if self.type == ParameterType.INT:
            return int(self.low) + k * int(self.step)
        # low + k * step can land a rounding error past max; max itself is then
        # the grid point within the server's step tolerance.
        return min(self.low + k * self.step, self.high)


def _clip01(u: float) -> float:
    return min(max(u, 0.0), 1.0)


def _grid_count(low: float, high: float, step: float, whole: bool) -> int:
    if whole:
        return (int(high) - int(low)) // int(step) + 1
    # Tolerate max sitting a rounding error short of its grid point. The
    # difference high - low loses digits when both are large beside step, so
    # the next point is also checked as the grid computes it.
    n = int(math.floor((high - low) / step + 1e-9))
    while low + (n + 1) * step <= high + 1e-9 * step:
        n += 1
    return n + 1


def make_dim(spec: ParameterSpec) -> Dim:
    fs = spec.feasible_space
    if spec.type == ParameterType.CATEGORICAL:
        return Dim(spec.name, spec.type, "categorical", count=len(fs.categories), choices=tuple(fs.categories))
    if spec.type == ParameterType.DISCRETE:
        values = tuple(sorted(float(v) for v in fs.values))
        return Dim(spec.name, spec.type, "discrete", count=len(values), choices=values)
    if spec.type not in (ParameterType.DOUBLE, ParameterType.INT) or fs.min is None or fs.max is None:
        raise ValueError(f"parameter {spec.name!r} has no type or bounds")
    low, high = float(fs.min), float(fs.max)
    whole = spec.type == ParameterType.INT
    step = float(fs.step) if fs.step else (1.0 if whole else 0.0)
    log = spec.scale == ParameterScale.LOG
    if not step:
        if log:
            return Dim(spec.name, spec.type, "log", low, high, log_low=math.log(low), log_high=math.log(high))
        return Dim(spec.name, spec.type, "linear", low, high)
    count = _grid_count(low, high, step, whole)
    if not log:
        return Dim(spec.name, spec.type, "grid", low, high, step, count)
    last = low + (count - 1) * step
    # Half a step past each end (while that stays positive), so that u spreads
    # evenly over the cells of the end points too.
    lo = low - step / 2 if low - step / 2 > 0 else low
    return Dim(spec.name, spec.type, "loggrid", low, high, step, count,
               log_low=math.log(lo), log_high=math.log(last + step / 2))


class Space:
    """The unit cube of a study's parameters, in the order the study lists them."""

    def __init__(self, specs: Sequence[ParameterSpec]):
        self.dims = [make_dim(s) for s in specs]
        self.names = [d.name for d in self.dims]
        # Coordinates searched as numbers (everything but CATEGORICAL).
        self.numeric = [i for i, d in enumerate(self.dims) if not d.is_categorical]
        self.categorical = [i for i, d in enumerate(self.dims) if d.is_categorical]

    def __len__(self) -> int:
        return len(self.dims)

    def decode(self, u: Sequence[float] | np.ndarray) -> Assignment:
        return {d.name: d.decode(x) for d, x in zip(self.dims, u)}

    def encode(self, params: Mapping[str, HyperparameterValue]) -> np.ndarray | None:
        """The point of an assignment, or None when a parameter is missing or
        its value cannot belong to the space (such a trial teaches nothing)."""
        out = np.empty(len(self.dims))
        for i, d in enumerate(self.dims):
            if d.name not in params:
                return None
            u = d.encode(params[d.name])
            if u is None:
                return None
            out[i] = u
        return out

    def key(self, params: Mapping[str, HyperparameterValue]) -> tuple:
        """A hashable form of an assignment over this space's parameters, the
        same for 3 and 3.0 (a value may come back from storage as either)."""
        return tuple(_normal(params.get(d.name), d) for d in self.dims)


def _normal(value: object, dim: Dim) -> object:
    if dim.is_categorical or isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return float(value)
