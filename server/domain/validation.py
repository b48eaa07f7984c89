"""Checks on what clients send. Each collects every violation before raising."""

from __future__ import annotations

import math
import re
from typing import TypeGuard

from .errors import ViolationCollector, invalid
from .models import (
    HyperparameterValue,
    ParameterScale,
    ParameterSpec,
    ParameterType,
    Study,
    Trial,
    Worker,
)

STUDY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_STUDY_NAME = 128
MAX_TRIAL_NAME = 256
MAX_TEXT = 4096
MAX_NOTES = 65536
MAX_TAG = 128
MAX_TAGS = 64
MAX_REQUEST_ID = 128
MAX_PARAMETERS = 256
MAX_CHOICES = 10_000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def check_text(v: ViolationCollector, path: str, value: str, limit: int = MAX_TEXT) -> None:
    if len(value) > limit:
        v.add(path, f"must be at most {limit} characters (got {len(value)})")


def check_message(v: ViolationCollector, path: str, value: str, limit: int = MAX_TEXT) -> None:
    """Free text a request sets (a reason, an event's message, a
    description): a length limit, and no NUL, which PostgreSQL's text cannot
    hold."""
    check_text(v, path, value, limit)
    if "\x00" in value:
        v.add(path, "must not contain NUL characters")


def check_label(v: ViolationCollector, path: str, value: str, limit: int = MAX_TAG) -> None:
    """A name that is printed and matched on: printable characters only."""
    if len(value) > limit or _CONTROL.search(value):
        v.add(path, f"must be at most {limit} printable characters")


def check_tags(v: ViolationCollector, path: str, tags: list[str]) -> None:
    if len(tags) > MAX_TAGS:
        v.add(path, f"at most {MAX_TAGS} tags")
    for i, tag in enumerate(tags):
        if not tag:
            v.add(f"{path}[{i}]", "must not be empty")
        elif len(tag) > MAX_TAG or _CONTROL.search(tag):
            v.add(f"{path}[{i}]", f"must be at most {MAX_TAG} printable characters")
    if len(set(tags)) != len(tags):
        v.add(path, "must not repeat a tag")


def check_request_id(request_id: str) -> None:
    if len(request_id) > MAX_REQUEST_ID:
        raise invalid("request_id", f"must be at most {MAX_REQUEST_ID} characters")


def check_study_name(v: ViolationCollector, path: str, name: str) -> None:
    if not name:
        v.add(path, "must not be empty")
    elif len(name) > MAX_STUDY_NAME:
        v.add(path, f"must be at most {MAX_STUDY_NAME} characters (got {len(name)})")
    elif not STUDY_NAME_PATTERN.match(name):
        v.add(path, "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'")


def _check_parameter(v: ViolationCollector, path: str, p: ParameterSpec) -> None:
    space = p.feasible_space
    fs = f"{path}.feasible_space"
    if not p.name:
        v.add(f"{path}.name", "must not be empty")
    elif len(p.name) > MAX_TAG or _CONTROL.search(p.name):
        v.add(f"{path}.name", f"must be at most {MAX_TAG} printable characters")
    if p.type is None:
        v.add(f"{path}.type", "must be DOUBLE, INT, DISCRETE or CATEGORICAL")
        return
    if p.type in (ParameterType.DOUBLE, ParameterType.INT):
        if space.min is None:
            v.add(f"{fs}.min", f"is required for a {p.type.value} parameter")
        if space.max is None:
            v.add(f"{fs}.max", f"is required for a {p.type.value} parameter")
        for bound in ("min", "max", "step"):
            value = getattr(space, bound)
            if value is not None and not math.isfinite(value):
                v.add(f"{fs}.{bound}", "must be a finite number")
        if _finite(space.min) and _finite(space.max) and space.min > space.max:
            v.add(f"{fs}.min", f"must not exceed max ({space.min} > {space.max})")
        if space.step is not None and math.isfinite(space.step) and space.step <= 0:
            v.add(f"{fs}.step", "must be greater than 0")
        if p.type == ParameterType.INT:
            for bound in ("min", "max", "step"):
                value = getattr(space, bound)
                if _finite(value) and value != int(value):
                    v.add(f"{fs}.{bound}", "must be a whole number for an INT parameter")
        if space.values or space.categories:
            v.add(fs, f"a {p.type.value} parameter takes min/max/step, not a list")
        if p.scale == ParameterScale.LOG and _finite(space.min) and space.min <= 0:
            v.add(f"{fs}.min", "must be greater than 0 for a LOG scale")
    elif p.type == ParameterType.DISCRETE:
        if not space.values:
            v.add(f"{fs}.values", "a DISCRETE parameter needs a non-empty list of values")
        if any(not math.isfinite(x) for x in space.values):
            v.add(f"{fs}.values", "must all be finite numbers")
        if len(set(space.values)) != len(space.values):
            v.add(f"{fs}.values", "must not repeat a value")
        if len(space.values) > MAX_CHOICES:
            v.add(f"{fs}.values", f"at most {MAX_CHOICES} values")
        if space.categories or space.min is not None or space.max is not None:
            v.add(fs, "a DISCRETE parameter takes only values")
    elif p.type == ParameterType.CATEGORICAL:
        if not space.categories:
            v.add(f"{fs}.categories", "a CATEGORICAL parameter needs a non-empty list of categories")
        if len(set(space.categories)) != len(space.categories):
            v.add(f"{fs}.categories", "must not repeat a category")
        if len(space.categories) > MAX_CHOICES:
            v.add(f"{fs}.categories", f"at most {MAX_CHOICES} categories")
        if space.values or space.min is not None or space.max is not None:
            v.add(fs, "a CATEGORICAL parameter takes only categories")



def check_parameters(v: ViolationCollector, path: str, parameters: list[ParameterSpec]) -> None:
    """A search space: each parameter on its own, then the names together."""
    if len(parameters) > MAX_PARAMETERS:
        v.add(path, f"at most {MAX_PARAMETERS} parameters")
    seen: set[str] = set()
    for i, p in enumerate(parameters):
        _check_parameter(v, f"{path}[{i}]", p)
        if p.name in seen:
            v.add(f"{path}[{i}].name", f"duplicate parameter name {p.name!r}")
        seen.add(p.name)


def _check_metric_definitions(v: ViolationCollector, path: str, definitions) -> None:
    for i, d in enumerate(definitions):
        if not d.name:
            v.add(f"{path}[{i}].name", "must not be empty")
        try:
            compiled = re.compile(d.regex)
        except re.error as exc:
            v.add(f"{path}[{i}].regex", f"does not compile: {exc}")
            continue
        if not d.regex:
            v.add(f"{path}[{i}].regex", "must not be empty")
        elif compiled.groups < 1:
            v.add(f"{path}[{i}].regex", "needs a capture group for the value")


def check_study_limits(v: ViolationCollector, study: Study, prefix: str = "study") -> None:
    if study.checkpoint_retention.keep_best < 0:
        v.add(f"{prefix}.checkpoint_retention.keep_best", "must not be negative")
    if study.checkpoint_retention.keep_latest < 0:
        v.add(f"{prefix}.checkpoint_retention.keep_latest", "must not be negative")
    if study.max_trials < 0:
        v.add(f"{prefix}.max_trials", "must not be negative")
    if study.parallel_trials < 0:
        v.add(f"{prefix}.parallel_trials", "must not be negative")
    if study.max_trials > 0 and study.parallel_trials > study.max_trials:
        v.add(f"{prefix}.parallel_trials", f"must not exceed max_trials ({study.max_trials})")
    if study.max_failed_trials < 0:
        v.add(f"{prefix}.max_failed_trials", "must not be negative")


def check_search(v: ViolationCollector, study: Study, prefix: str = "study") -> None:
    """The algorithm (when one is named or configured) against the space,
    and the early-stopping rule."""
    from .search import checks

    if study.algorithm.name or study.algorithm.settings:
        checks.check_algorithm(v, f"{prefix}.algorithm", study.algorithm, study.parameters, f"{prefix}.parameters")
    checks.check_early_stopping(v, f"{prefix}.early_stopping", study.early_stopping)


def validate_study(study: Study) -> None:
    v = ViolationCollector()
    check_study_name(v, "study.name", study.name)
    check_message(v, "study.owner", study.owner, MAX_TAG)
    check_message(v, "study.description", study.description)
    obj = study.objective
    if not obj.metric_name:
        v.add("study.objective.metric_name", "must not be empty")
    if obj.type is None:
        v.add("study.objective.type", "must be MINIMIZE or MAXIMIZE")
    if obj.goal is not None and not math.isfinite(obj.goal):
        v.add("study.objective.goal", "must be a finite number")
    if len(set(obj.additional_metric_names)) != len(obj.additional_metric_names):
        v.add("study.objective.additional_metric_names", "must not repeat a name")
    check_parameters(v, "study.parameters", study.parameters)
    check_study_limits(v, study)
    check_tags(v, "study.tags", study.tags)
    _check_metric_definitions(v, "study.metric_definitions", study.metric_definitions)
    if not v.violations:
        check_search(v, study)
    v.raise_if_any()


def validate_study_update(study: Study, paths: set[str]) -> None:
    """study: the study as it would be stored; paths: the fields the update
    sets (only those are held to checks that stored values may predate)."""
    v = ViolationCollector()
    for name, limit in (("owner", MAX_TAG), ("description", MAX_TEXT)):
        check = check_message if name in paths else check_text
        check(v, f"study.{name}", getattr(study, name), limit)
    check_study_limits(v, study)
    check_tags(v, "study.tags", study.tags)
    if "metric_definitions" in paths:
        _check_metric_definitions(v, "study.metric_definitions", study.metric_definitions)
    if paths & {"algorithm", "early_stopping"}:
        check_search(v, study)
    v.raise_if_any()


def _value_matches(spec: ParameterSpec, value: HyperparameterValue) -> str | None:
    """Returns why value does not fit spec, or None when it does."""
    space = spec.feasible_space
    if spec.type is None:
        return None  # the study was refused for it already
    if spec.type == ParameterType.CATEGORICAL:
        if not isinstance(value, str):
            return "must be a string_value for a CATEGORICAL parameter"
        if value not in space.categories:
            return f"{value!r} is not one of the categories"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number for a {spec.type.value} parameter"
    if not math.isfinite(value):
        return "must be a finite number"
    if spec.type == ParameterType.INT:
        if isinstance(value, float) and value != int(value):
            return "must be a whole number for an INT parameter"
    if spec.type == ParameterType.DISCRETE:
        if float(value) not in space.values:
            return f"{value} is not one of the allowed values"
        return None
    if space.min is not None and value < space.min:
        return f"{value} is below min {space.min}"
    if space.max is not None and value > space.max:
        return f"{value} is above max {space.max}"
    if space.step is not None and space.min is not None:
        return _off_step(spec.type, value, space.min, space.step, space.max)
    return None


# How far a DOUBLE may sit from min + k * step, relative to the magnitudes
# involved: 0.1 + 2 * 0.1 is 0.30000000000000004, and 0.3 must pass.
STEP_TOLERANCE = 1e-9


def _off_step(kind: ParameterType, value: float, low: float, step: float, high: float | None) -> str | None:
    """Why value is not min + k * step for a whole k >= 0, or None when it is."""
    if kind == ParameterType.INT:
        value, low, step = int(value), int(low), int(step)
        k = (value - low) // step
        if (value - low) % step == 0:
            return None
    else:
        k = math.floor((value - low) / step)
        for candidate in (k, k + 1):
            if abs(value - (low + candidate * step)) <= STEP_TOLERANCE * max(abs(value), abs(low), step):
                return None
    below, above = low + k * step, low + (k + 1) * step
    nearest = (f"the nearest allowed values are {_number(below)} and {_number(above)}"
               if high is None or above <= high else f"the nearest allowed value is {_number(below)}")
    return f"{value} is not min {low} plus a multiple of step {step}: {nearest}"


def _number(x: float) -> str:
    """A grid value as a reader expects it (0.30000000000000004 reads 0.3)."""
    return f"{x:.12g}"


def check_hyperparameters(v: ViolationCollector, study: Study | None, hyperparameters: dict) -> None:
    for name, value in hyperparameters.items():
        path = f"trial.hyperparameters[{name}]"
        if not name:
            v.add("trial.hyperparameters", "names must not be empty")
        if value is None:
            v.add(path, "must hold a value")
        elif isinstance(value, float) and not math.isfinite(value):
            v.add(path, "must be a finite number")
    if study is None or not study.parameters:
        return
    specs = {p.name: p for p in study.parameters}
    for name in specs:
        if name not in hyperparameters:
            v.add(f"trial.hyperparameters[{name}]", f"is required by study {study.name!r}")
    for name, value in hyperparameters.items():
        spec = specs.get(name)
        if spec is None:
            v.add(f"trial.hyperparameters[{name}]", f"is not a parameter of study {study.name!r}")
        elif value is not None:
            problem = _value_matches(spec, value)
            if problem:
                v.add(f"trial.hyperparameters[{name}]", problem)


def check_metric_definitions(v: ViolationCollector, path: str, definitions) -> None:
    _check_metric_definitions(v, path, definitions)


def check_trial_fields(v: ViolationCollector, trial: Trial, changed: set[str] | None = None) -> None:
    """changed: the fields an update sets (None: a new trial, all of them);
    only those are held to checks that stored values may predate."""
    _check_metric_definitions(v, "trial.metric_definitions", trial.metric_definitions)
    if len(trial.name) > MAX_TRIAL_NAME:
        v.add("trial.name", f"must be at most {MAX_TRIAL_NAME} characters (got {len(trial.name)})")
    elif _CONTROL.search(trial.name):
        v.add("trial.name", "must not contain control characters")
    (check_message if changed is None or "notes" in changed else check_text)(v, "trial.notes", trial.notes, MAX_NOTES)
    check_tags(v, "trial.tags", trial.tags)
    if trial.log_retention_days < -1:
        v.add("trial.log_retention_days", "must be -1 (forever), 0 (server default) or a number of days")
    if trial.max_runtime_seconds < 0 or not math.isfinite(trial.max_runtime_seconds):
        v.add("trial.stopping_condition.max_runtime", "must be a non-negative duration")
    if not 0 <= trial.retry_max_attempts <= 100:
        v.add("trial.retry_strategy.max_attempts", "must be between 0 and 100")
    check_resources(v, "trial.resources", trial)
    for key in trial.environment:
        if not key or "=" in key or _CONTROL.search(key):
            v.add(f"trial.environment[{key}]", "is not a valid environment variable name")


def check_resources(v: ViolationCollector, path: str, trial: Trial) -> None:
    r = trial.resources
    if not math.isfinite(r.cpu) or r.cpu < 0:
        v.add(f"{path}.cpu", "must be a non-negative number")
    if r.memory_bytes < 0:
        v.add(f"{path}.memory_bytes", "must not be negative")
    if r.gpu_count < 0:
        v.add(f"{path}.gpu.count", "must not be negative")
    if r.ephemeral_storage_bytes < 0:
        v.add(f"{path}.ephemeral_storage_bytes", "must not be negative")
    if not 0 <= r.worker_count <= 10_000:
        v.add(f"{path}.worker_count", "must be between 0 and 10000")


def validate_new_trial(trial: Trial, study: Study | None) -> None:
    v = ViolationCollector()
    check_trial_fields(v, trial)
    check_hyperparameters(v, study, trial.hyperparameters)
    v.raise_if_any()


def validate_new_worker(worker: Worker) -> None:
    v = ViolationCollector()
    if worker.trial_id <= 0:
        v.add("worker.trial_id", "must name a trial")
    if not worker.type:
        v.add("worker.type", "must not be empty")
    check_text(v, "worker.type", worker.type, MAX_TAG)
    check_text(v, "worker.address", worker.address, 512)
    if worker.rank < 0:
        v.add("worker.rank", "must not be negative")
    if worker.slots < 0:
        v.add("worker.slots", "must not be negative")
    check_tags(v, "worker.tags", worker.tags)
    v.raise_if_any()
