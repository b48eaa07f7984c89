"""Checking a study's search algorithm and early-stopping rule against its space, as field violations."""

from __future__ import annotations

from ..early_stopping import registry as stopping_registry
from ..errors import ViolationCollector
from ..models import AlgorithmSpec, ParameterSpec
from . import registry
from .base import SettingsError

DEFAULT_ALGORITHM = "random"


def as_dict(v: ViolationCollector, path: str, spec: AlgorithmSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (name, value) in enumerate(spec.settings):
        if not name:
            v.add(f"{path}.settings[{i}].name", "must not be empty")
        elif name in out:
            v.add(f"{path}.settings[{i}].name", f"setting {name!r} is given twice")
        out[name] = value
    return out


def _blame(path: str, spec: AlgorithmSpec, parameters: list[ParameterSpec], parameters_path: str,
           error: SettingsError) -> str:
    """The field a SettingsError is about: a setting, a parameter, or the name."""
    for i, (name, _) in enumerate(spec.settings):
        if name == error.setting:
            return f"{path}.settings[{i}].{'name' if error.unknown else 'value'}"
    for i, p in enumerate(parameters):
        if p.name == error.setting:
            return f"{parameters_path}[{i}]"
    return f"{path}.name"


def check_algorithm(v: ViolationCollector, path: str, spec: AlgorithmSpec, parameters: list[ParameterSpec],
                    parameters_path: str) -> None:
    settings = as_dict(v, path, spec)
    try:
        registry.create(spec.name or DEFAULT_ALGORITHM, parameters, settings, seed=0)
    except SettingsError as exc:
        v.add(_blame(path, spec, parameters, parameters_path, exc), exc.message)


def check_early_stopping(v: ViolationCollector, path: str, spec: AlgorithmSpec) -> None:
    settings = as_dict(v, path, spec)
    if not spec.name:
        if spec.settings:
            v.add(f"{path}.name", "settings need a rule name")
        return
    try:
        stopping_registry.create(spec.name, settings)
    except SettingsError as exc:
        v.add(_blame(path, spec, [], "", exc), exc.message)
