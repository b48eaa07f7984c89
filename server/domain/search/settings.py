"""Reading an algorithm's settings: strings in, typed values out, and a
SettingsError naming the setting for anything that is not right.

Every designer builds a `Settings` in its __init__ first, so a study with an
unknown setting or a bad value is refused before anything is searched; the
server turns the error into a field violation on that setting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .base import SettingsError

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
# numpy seeds must be non-negative; a study's seed may be any int.
_SEED_SPACE = 1 << 64


class Settings:
    """The settings one algorithm was given, checked against the ones it takes."""

    def __init__(self, algorithm: str, given: Mapping[str, str], known: Mapping[str, str]):
        self.given = {str(k): str(v).strip() for k, v in given.items()}
        for name in sorted(self.given):
            if name not in known:
                takes = ", ".join(sorted(known)) or "no settings"
                raise SettingsError(name, f"unknown setting for {algorithm!r}; it takes: {takes}", unknown=True)

    def _raw(self, name: str) -> str | None:
        value = self.given.get(name)
        return value if value else None

    def integer(self, name: str, default: int, low: int | None = None, high: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            try:
                number = float(raw)
            except ValueError:
                raise SettingsError(name, f"must be a whole number (got {raw!r})") from None
            if not number.is_integer():
                raise SettingsError(name, f"must be a whole number (got {raw!r})") from None
            value = int(number)
        _check_range(name, value, low, high)
        return value

    def number(self, name: str, default: float, low: float | None = None, high: float | None = None,
               *, low_open: bool = False) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number (got {raw!r})") from None
        if not math.isfinite(value):
            raise SettingsError(name, f"must be a finite number (got {raw!r})")
        if low_open and low is not None and value <= low:
            raise SettingsError(name, f"must be greater than {low:g} (got {raw})")
        _check_range(name, value, low, high)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(name, f"must be true or false (got {raw!r})")

    def choice(self, name: str, default: str, options: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in options:
            raise SettingsError(name, f"must be one of {', '.join(options)} (got {raw!r})")
        return raw.lower()

    def seed(self, study_seed: int, name: str = "random_state") -> int:
        """random_state when given (a non-negative integer), else the study's seed."""
        value = self.integer(name, -1, low=0)
        return value if value >= 0 else study_seed % _SEED_SPACE


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise SettingsError(name, f"must be at least {low:g} (got {value:g})")
    if high is not None and value > high:
        raise SettingsError(name, f"must be at most {high:g} (got {value:g})")


def point_rng(seed: int, i: int) -> np.random.Generator:
    """The generator for the i-th point of a study: a pure function of (seed, i),
    so any process that knows i draws the same point."""
    return np.random.default_rng([seed % _SEED_SPACE, i % _SEED_SPACE])
