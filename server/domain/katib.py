"""Katib's algorithm-service vocabulary on trialplane's search and stopping.

Katib's controller names a search algorithm and an early-stopping rule,
sends their settings as strings, and describes each trial by its latest
condition and one observed value per metric. This module says which
trialplane designer serves each Katib algorithm name, turns Katib's settings
into that designer's, reads parameter values from and into Katib's text
forms, and reads a Katib trial as a search outcome. The api layer decodes
the messages into the types here; nothing here knows about gRPC.

Algorithms, Katib's name -> trialplane's designer:
- random -> random (random_state).
- grid -> grid. random_state is accepted and changes nothing: the grid's
  order does not depend on a seed.
- tpe and multivariate-tpe -> tpe, which is multivariate either way.
  n_startup_trials, n_ei_candidates (also under hyperopt's spelling
  n_EI_candidates), gamma, prior_weight and random_state keep their names,
  as do trialplane's own max_good and constant_liar.
- cmaes -> cmaes. Katib's sigma is the initial step in parameter units (as
  the Optuna and goptuna services read it); it becomes sigma0, a step in the
  unit cube, divided by the narrowest range of the DOUBLE and INT parameters
  (in log units on a log scale) and capped at 1. restart_strategy (none,
  ipop or bipop) is accepted, but trialplane's CMA-ES restarts a converged
  run with a new seed and the same population size whatever it says.
  population_size, variant and random_state pass through.
- sobol -> quasirandom with sequence=sobol (scramble, random_state).
- quasirandom, trialplane's own name, with all its settings.
Other Katib algorithms (bayesianoptimization, hyperband, pbt, enas, darts)
are refused by name.

Early stopping serves medianstop only: trialplane's asha and hyperband judge
each trial at its rungs, which Katib's fixed threshold rules cannot carry.
"""

from __future__ import annotations

import enum
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from .models import (
    HyperparameterValue,
    ObjectiveType,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from .search.base import Assignment, Observed, Outcome, SettingsError
from .search.space import Dim, make_dim

EARLY_STOPPING_RULES = ("medianstop",)


# --- algorithms -------------------------------------------------------------

Convert = Callable[[str, Sequence[ParameterSpec]], "tuple[str, str] | None"]


@dataclass(frozen=True)
class KatibAlgorithm:
    designer: str
    # Settings this name implies, in trialplane's names.
    fixed: Mapping[str, str] = field(default_factory=dict)
    # Katib's setting name -> a function of (value, parameters) giving the
    # designer's (name, value), or None to drop the setting.
    convert: Mapping[str, Convert] = field(default_factory=dict)


def _renamed(name: str) -> Convert:
    return lambda value, parameters: (name, value)


def _no_effect(allowed: tuple[str, ...] | None = None) -> Convert:
    def check(value: str, parameters: Sequence[ParameterSpec]) -> None:
        if allowed is not None and value.strip().lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)} (got {value!r})")
        return None

    return check


def _narrowest_range(parameters: Sequence[ParameterSpec]) -> float | None:
    ranges = []
    for p in parameters:
        fs = p.feasible_space
        if p.type not in (ParameterType.DOUBLE, ParameterType.INT) or fs.min is None or fs.max is None:
            continue
        if p.scale == ParameterScale.LOG and fs.min > 0:
            span = math.log(fs.max) - math.log(fs.min)
        else:
            span = fs.max - fs.min
        if span > 0:
            ranges.append(span)
    return min(ranges) if ranges else None


def _sigma(value: str, parameters: Sequence[ParameterSpec]) -> tuple[str, str] | None:
    try:
        sigma = float(value)
    except ValueError:
        raise ValueError(f"must be a number (got {value!r})") from None
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"must be a finite number greater than 0 (got {value!r})")
    span = _narrowest_range(parameters)
    if span is None:
        return None  # no coordinate for a step in parameter units to scale
    return "sigma0", repr(min(sigma / span, 1.0))


_TPE = KatibAlgorithm("tpe", convert={"n_EI_candidates": _renamed("n_ei_candidates")})

ALGORITHMS: dict[str, KatibAlgorithm] = {
    "random": KatibAlgorithm("random"),
    "grid": KatibAlgorithm("grid", convert={"random_state": _no_effect()}),
    "tpe": _TPE,
    "multivariate-tpe": _TPE,
    "cmaes": KatibAlgorithm("cmaes", convert={
        "sigma": _sigma,
        "restart_strategy": _no_effect(("none", "ipop", "bipop")),
    }),
    "sobol": KatibAlgorithm("quasirandom", fixed={"sequence": "sobol"}),
    "quasirandom": KatibAlgorithm("quasirandom"),
}


class KatibSettingError(SettingsError):
    """A SettingsError about the index-th of Katib's settings."""

    def __init__(self, index: int, setting: str, message: str, *, unknown: bool = False):
        super().__init__(setting, message, unknown=unknown)
        self.index = index


@dataclass(frozen=True)
class Translated:
    """A Katib algorithm as trialplane runs it."""

    designer: str
    settings: dict[str, str]
    # trialplane setting name -> the index of the Katib setting it came from.
    origin: dict[str, int]


def translate(name: str, settings: Sequence[tuple[str, str]], parameters: Sequence[ParameterSpec]) -> Translated:
    """Raises KatibSettingError for a Katib setting that cannot be
    translated, SettingsError("") for an unknown name; the designer itself
    checks the rest."""
    algorithm = ALGORITHMS.get(name)
    if algorithm is None:
        raise SettingsError("", f"unknown algorithm {name!r}; served: {', '.join(sorted(ALGORITHMS))}")
    out = dict(algorithm.fixed)
    origin: dict[str, int] = {}
    given: set[str] = set()
    for i, (setting, value) in enumerate(settings):
        if setting in given:
            raise KatibSettingError(i, setting, f"setting {setting!r} is given twice", unknown=True)
        given.add(setting)
        if setting in algorithm.fixed:
            raise KatibSettingError(i, setting, f"{name!r} sets {setting} to {algorithm.fixed[setting]} itself",
                                    unknown=True)
        convert = algorithm.convert.get(setting)
        if convert is None:
            target: tuple[str, str] | None = (setting, value)
        else:
            try:
                target = convert(value, parameters)
            except ValueError as exc:
                raise KatibSettingError(i, setting, str(exc)) from None
        if target is None:
            continue
        if target[0] in origin:
            raise KatibSettingError(i, setting, f"sets {target[0]!r}, which another setting sets already",
                                    unknown=True)
        out[target[0]] = target[1]
        origin[target[0]] = i
    return Translated(algorithm.designer, out, origin)


# --- values in Katib's text forms -------------------------------------------


def _decimals(text: str) -> int | None:
    try:
        exponent = Decimal(text.strip()).as_tuple().exponent
    except InvalidOperation:
        return None
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


@dataclass
class KatibParameter:
    spec: ParameterSpec
    dim: Dim
    # Stepped DOUBLE: digits after the point that min + k * step needs.
    decimals: int | None = None
    # DISCRETE: each value as Katib listed it.
    texts: dict[float, str] = field(default_factory=dict)


class KatibSpace:
    """An experiment's parameters, read from and written as Katib's strings.

    Values read are put on the space's own grid (a stepped DOUBLE's "0.3" is
    the 0.30000000000000004 the designer computed as 0.1 + 2 * 0.1), so that
    a point Katib sends back is the point the designer handed out."""

    def __init__(self, specs: Sequence[ParameterSpec], min_texts: Sequence[str], step_texts: Sequence[str],
                 list_texts: Sequence[Sequence[str]]):
        self.specs = list(specs)
        self.parameters: dict[str, KatibParameter] = {}
        for spec, low, step, listed in zip(specs, min_texts, step_texts, list_texts):
            p = KatibParameter(spec, make_dim(spec))
            if spec.type == ParameterType.DOUBLE and spec.feasible_space.step:
                digits = [_decimals(low), _decimals(step)]
                if None not in digits:
                    p.decimals = max(d for d in digits if d is not None)
            if spec.type == ParameterType.DISCRETE:
                p.texts = {float(t): t.strip() for t in listed}
            self.parameters[spec.name] = p

    def parse(self, name: str, text: str) -> HyperparameterValue | None:
        """The value of an assignment; None for a name the space does not
        have. Raises ValueError for text that is no value of the parameter's
        type (a value of the right type outside the space is read as is)."""
        p = self.parameters.get(name)
        if p is None:
            return None
        kind = p.spec.type
        if kind == ParameterType.CATEGORICAL:
            return text
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number ({name} is {kind.value if kind else '?'})") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        value: HyperparameterValue = number
        if kind == ParameterType.INT:
            if not number.is_integer():
                raise ValueError(f"{text!r} is not a whole number ({name} is INT)")
            value = int(number)
        if p.dim.size is not None:
            u = p.dim.encode(value)
            if u is not None:
                value = p.dim.decode(u)
        return value

    def format(self, params: Assignment) -> list[tuple[str, str]]:
        """(name, text) per parameter, in the experiment's order."""
        out = []
        for spec in self.specs:
            p = self.parameters[spec.name]
            value = params[spec.name]
            out.append((spec.name, _text(p, value)))
        return out


def _text(p: KatibParameter, value: HyperparameterValue) -> str:
    if isinstance(value, str):
        return value
    if p.spec.type == ParameterType.INT:
        return str(int(value))
    if p.spec.type == ParameterType.DISCRETE:
        return p.texts.get(float(value), repr(float(value)))
    if p.decimals is not None and p.decimals <= 15:
        return f"{float(value):.{p.decimals}f}"
    return repr(float(value))


# --- experiments --------------------------------------------------------------


@dataclass
class KatibExperiment:
    """What the Suggestion service reads of a Katib Experiment."""

    name: str
    objective: ObjectiveType
    metric: str
    space: KatibSpace
    algorithm: str = ""
    algorithm_settings: list[tuple[str, str]] = field(default_factory=list)
    max_trial_count: int = 0

    @property
    def parameters(self) -> list[ParameterSpec]:
        return self.space.specs


def seed_of(experiment_name: str) -> int:
    """A designer seed every replica derives alike from the experiment's name."""
    return int.from_bytes(hashlib.blake2b(experiment_name.encode(), digest_size=8).digest(), "big")


# --- trials -------------------------------------------------------------------


class Condition(str, enum.Enum):
    """A Katib trial's latest condition, as Katib names it."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    KILLED = "KILLED"
    FAILED = "FAILED"
    METRICSUNAVAILABLE = "METRICSUNAVAILABLE"
    EARLYSTOPPED = "EARLYSTOPPED"
    UNKNOWN = "UNKNOWN"


# Still going (UNKNOWN included: nothing says its point is free again).
_ACTIVE = {Condition.CREATED, Condition.RUNNING, Condition.UNKNOWN}


@dataclass(frozen=True)
class KatibTrial:
    name: str
    params: Assignment
    condition: Condition
    # The objective metric's observed value, None when Katib sent no number.
    value: float | None = None


def read_value(text: str) -> float | None:
    """A metric value Katib sent as text; None unless it is a finite number."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def as_loss(value: float, objective: ObjectiveType) -> float:
    return -value if objective == ObjectiveType.MAXIMIZE else value


def outcome(trial: KatibTrial, trial_id: int, objective: ObjectiveType, *, early_stopped: bool = False,
            stored: float | None = None) -> Observed:
    """The trial as a designer sees it. A trial stopped early (by its
    condition, or marked through SetTrialStatus) is a result with its value,
    the observed one or else `stored` (its best logged value); succeeded
    trials are results; running ones hold their point; the rest failed."""
    early = early_stopped or trial.condition == Condition.EARLYSTOPPED
    value = trial.value
    if early and value is None:
        value = stored
    if (early or trial.condition == Condition.SUCCEEDED) and value is not None:
        return Observed(trial_id, trial.params, Outcome.COMPLETED, as_loss(value, objective))
    if trial.condition in _ACTIVE:
        return Observed(trial_id, trial.params, Outcome.ACTIVE)
    return Observed(trial_id, trial.params, Outcome.FAILED)


# --- medianstop -----------------------------------------------------------------


def early_average(values: Sequence[float], start_step: int) -> float | None:
    """The mean of a trial's first start_step values (all of them when it has
    fewer), None when it has none."""
    first = list(values[:start_step])
    return sum(first) / len(first) if first else None


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
