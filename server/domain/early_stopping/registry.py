"""Early-stopping rules by name: a new rule is one module registered here."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from .base import Rule, SettingsError

# One module per rule; importing it registers the rule.
MODULES = ("median_stop", "asha", "hyperband")

_RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    _RULES[cls.name] = cls
    return cls


def names() -> list[str]:
    _load()
    return sorted(_RULES)


def create(name: str, settings: Mapping[str, str]) -> Rule:
    """The rule for a study; SettingsError("", ...) for an unknown name."""
    _load()
    cls = _RULES.get(name)
    if cls is None:
        raise SettingsError("", f"unknown early-stopping rule {name!r}; known: {', '.join(sorted(_RULES))}")
    return cls(settings)


def _load() -> None:
    for module in MODULES:
        importlib.import_module(f"{__package__}.{module}")
