"""Algorithms by name: a new algorithm is one module registered here."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence

from ..models import ParameterSpec
from .base import Designer, SettingsError

# One module per algorithm; importing it registers the algorithm.
MODULES = ("random_search", "grid", "quasi_random", "tpe", "cma_es")

_ALGORITHMS: dict[str, type[Designer]] = {}


def register(cls: type[Designer]) -> type[Designer]:
    _ALGORITHMS[cls.name] = cls
    return cls


def names() -> list[str]:
    _load()
    return sorted(_ALGORITHMS)


def create(name: str, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int) -> Designer:
    """The designer for a study; SettingsError("", ...) for an unknown name."""
    _load()
    cls = _ALGORITHMS.get(name)
    if cls is None:
        raise SettingsError("", f"unknown algorithm {name!r}; known: {', '.join(sorted(_ALGORITHMS))}")
    return cls(space, settings, seed)


def _load() -> None:
    for module in MODULES:
        importlib.import_module(f"{__package__}.{module}")
