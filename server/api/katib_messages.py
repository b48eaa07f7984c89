"""Katib's Experiment and Trial messages, read into trialplane's domain.

The Suggestion and EarlyStopping servicers both take an experiment and its
trials, with every number and bound as a string. They are read here, and
each problem is named by its path in Katib's own message
(experiment.spec.parameter_specs.parameters[1].feasible_space.min,
trials[3].spec.parameter_assignments.assignments[0].value ...), so that bad
input answers INVALID_ARGUMENT saying exactly what is wrong.

Fields that do not apply to a parameter's type (a list for an INT, min and
max for a CATEGORICAL) are ignored, as Katib's own services ignore them.
"""

from __future__ import annotations

import re

from trialplane.katib.v1beta1 import api_pb2

from ..domain import katib, validation
from ..domain.errors import ViolationCollector
from ..domain.models import (
    FeasibleSpace,
    ObjectiveType,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from ..domain.search.base import SettingsError

PARAMETERS = "experiment.spec.parameter_specs.parameters"

_TYPES = {
    api_pb2.DOUBLE: ParameterType.DOUBLE,
    api_pb2.INT: ParameterType.INT,
    api_pb2.DISCRETE: ParameterType.DISCRETE,
    api_pb2.CATEGORICAL: ParameterType.CATEGORICAL,
}
_OBJECTIVES = {api_pb2.MINIMIZE: ObjectiveType.MINIMIZE, api_pb2.MAXIMIZE: ObjectiveType.MAXIMIZE}
_SCALES = {api_pb2.DISTRIBUTION_UNSPECIFIED: None, api_pb2.UNIFORM: None, api_pb2.LOG_UNIFORM: ParameterScale.LOG}
_CONDITIONS = {
    number: katib.Condition(name)
    for name, number in api_pb2.TrialStatus.TrialConditionType.items()
}

# trialplane's field names in a parameter's violations, as Katib spells them.
_KATIB_FIELDS = [
    (re.compile(r"\.type$"), ".parameter_type"),
    (re.compile(r"\.feasible_space\.(values|categories)$"), ".feasible_space.list"),
]


def _katib_path(path: str) -> str:
    for pattern, replacement in _KATIB_FIELDS:
        path = pattern.sub(replacement, path)
    return path


def _number(v: ViolationCollector, path: str, text: str, *, required: bool) -> float | None:
    text = text.strip()
    if not text:
        if required:
            v.add(path, "is required (a number as text)")
        return None
    try:
        return float(text)
    except ValueError:
        v.add(path, f"{text!r} is not a number")
        return None


def read_parameters(v: ViolationCollector, specs) -> katib.KatibSpace | None:
    """The search space, or None (with violations) when it cannot be read."""
    parsed: list[ParameterSpec] = []
    lows, steps, lists = [], [], []
    before = len(v.violations)
    if not specs:
        v.add(PARAMETERS, "an experiment needs at least one parameter to search")
    for i, p in enumerate(specs):
        path = f"{PARAMETERS}[{i}]"
        fs = p.feasible_space
        kind = _TYPES.get(p.parameter_type)
        if kind is None:
            v.add(f"{path}.parameter_type", "must be DOUBLE, INT, DISCRETE or CATEGORICAL")
        space = FeasibleSpace()
        scale = None
        if kind in (ParameterType.DOUBLE, ParameterType.INT):
            space.min = _number(v, f"{path}.feasible_space.min", fs.min, required=True)
            space.max = _number(v, f"{path}.feasible_space.max", fs.max, required=True)
            space.step = _number(v, f"{path}.feasible_space.step", fs.step, required=False)
            if fs.distribution not in _SCALES:
                v.add(f"{path}.feasible_space.distribution",
                      "trialplane searches UNIFORM and LOG_UNIFORM distributions only")
            scale = _SCALES.get(fs.distribution)
        elif kind == ParameterType.DISCRETE:
            values = [_number(v, f"{path}.feasible_space.list[{j}]", x, required=True) for j, x in enumerate(fs.list)]
            space.values = [x for x in values if x is not None]
        elif kind == ParameterType.CATEGORICAL:
            space.categories = list(fs.list)
        parsed.append(ParameterSpec(p.name, kind, space, scale))
        lows.append(fs.min)
        steps.append(fs.step)
        lists.append(list(fs.list))
    if len(v.violations) > before:
        return None
    checks = ViolationCollector()
    validation.check_parameters(checks, PARAMETERS, parsed)
    for violation in checks.violations:
        v.add(_katib_path(violation.field), violation.description)
    if checks.violations:
        return None
    return katib.KatibSpace(parsed, lows, steps, lists)


def _settings(v: ViolationCollector, path: str, settings) -> list[tuple[str, str]]:
    out = []
    for i, s in enumerate(settings):
        if not s.name:
            v.add(f"{path}[{i}].name", "must not be empty")
        out.append((s.name, s.value))
    return out


def read_objective(v: ViolationCollector, objective_spec) -> ObjectiveType | None:
    objective = _OBJECTIVES.get(objective_spec.type)
    if objective is None:
        v.add("experiment.spec.objective.type", "must be MINIMIZE or MAXIMIZE")
    if not objective_spec.objective_metric_name:
        v.add("experiment.spec.objective.objective_metric_name", "must not be empty")
    return objective


def read_stopping(v: ViolationCollector, path: str, spec) -> tuple[str, list[tuple[str, str]]]:
    """An EarlyStoppingSpec's rule name and settings."""
    return spec.algorithm_name, _settings(v, f"{path}.algorithm_settings", spec.algorithm_settings)


def read_experiment(v: ViolationCollector, experiment) -> katib.KatibExperiment | None:
    """The experiment as the Suggestion service reads it, or None when it
    has violations (added to v)."""
    before = len(v.violations)
    if not experiment.name:
        v.add("experiment.name", "must not be empty")
    spec = experiment.spec
    objective = read_objective(v, spec.objective)
    space = read_parameters(v, spec.parameter_specs.parameters)
    algorithm_settings = _settings(v, "experiment.spec.algorithm.algorithm_settings", spec.algorithm.algorithm_settings)
    if spec.max_trial_count < 0:
        v.add("experiment.spec.max_trial_count", "must not be negative")
    if len(v.violations) > before or space is None or objective is None:
        return None
    return katib.KatibExperiment(
        name=experiment.name, objective=objective, metric=spec.objective.objective_metric_name, space=space,
        algorithm=spec.algorithm.algorithm_name, algorithm_settings=algorithm_settings,
        max_trial_count=spec.max_trial_count,
    )


def _assignments(v: ViolationCollector, path: str, assignments, space: katib.KatibSpace) -> dict:
    params = {}
    for j, a in enumerate(assignments):
        try:
            value = space.parse(a.name, a.value)
        except ValueError as exc:
            v.add(f"{path}.spec.parameter_assignments.assignments[{j}].value", str(exc))
            continue
        if value is not None:
            params[a.name] = value
    return params


def read_trials(v: ViolationCollector, trials, metric: str, space: katib.KatibSpace | None) -> list[katib.KatibTrial]:
    """Katib's trials with the objective metric's observed value; their
    assignments too when space is given."""
    out = []
    seen: set[str] = set()
    for i, t in enumerate(trials):
        path = f"trials[{i}]"
        if not t.name:
            v.add(f"{path}.name", "must not be empty")
        elif t.name in seen:
            v.add(f"{path}.name", f"trial {t.name!r} is listed twice")
        seen.add(t.name)
        params = {} if space is None else _assignments(v, path, t.spec.parameter_assignments.assignments, space)
        value = None
        for observed in t.status.observation.metrics:
            if observed.name == metric:
                value = katib.read_value(observed.value)
                break
        condition = _CONDITIONS.get(t.status.condition, katib.Condition.UNKNOWN)
        out.append(katib.KatibTrial(t.name, params, condition, value))
    return out


def settings_path(error: SettingsError, path: str, settings: list[tuple[str, str]],
                  origin: dict[str, int] | None = None, parameters: list[ParameterSpec] | None = None) -> str:
    """The field a SettingsError is about: a setting (its name when the name
    is what is wrong, else its value), a parameter the algorithm cannot
    search, or the algorithm name. origin maps a translated setting back to
    the index of Katib's setting it came from."""
    index = error.index if isinstance(error, katib.KatibSettingError) else (origin or {}).get(error.setting)
    if index is None and error.setting:
        index = next((i for i, (name, _) in enumerate(settings) if name == error.setting), None)
    if index is not None:
        return f"{path}.algorithm_settings[{index}].{'name' if error.unknown else 'value'}"
    for i, p in enumerate(parameters or []):
        if error.setting and p.name == error.setting:
            return f"{PARAMETERS}[{i}]"
    return f"{path}.algorithm_name"


def assignments(params_list: list[dict], space: katib.KatibSpace) -> list:
    return [
        api_pb2.GetSuggestionsReply.ParameterAssignments(
            assignments=[api_pb2.ParameterAssignment(name=n, value=text) for n, text in space.format(params)]
        )
        for params in params_list
    ]
