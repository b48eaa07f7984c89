"""Reading a rule's settings: string values, checked as they are parsed, each
error naming the setting it is about."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .base import SettingsError


def check_known(settings: Mapping[str, str], known: Iterable[str], rule: str) -> None:
    names = sorted(known)
    for setting in settings:
        if setting not in names:
            raise SettingsError(setting, f"unknown setting {setting!r} for {rule}; known: {', '.join(names)}",
                                unknown=True)


def integer(settings: Mapping[str, str], setting: str, default: int, *, minimum: int) -> int:
    """The setting as an int >= minimum, default when it is absent."""
    value = optional_integer(settings, setting, minimum=minimum)
    return default if value is None else value


def optional_integer(settings: Mapping[str, str], setting: str, *, minimum: int) -> int | None:
    text = settings.get(setting)
    if text is None:
        return None
    try:
        value = int(text.strip(), 10)
    except (AttributeError, ValueError):
        raise SettingsError(setting, f"{setting} must be an integer, got {text!r}") from None
    if value < minimum:
        raise SettingsError(setting, f"{setting} must be at least {minimum}, got {value}")
    return value


def required_integer(settings: Mapping[str, str], setting: str, *, minimum: int, rule: str) -> int:
    value = optional_integer(settings, setting, minimum=minimum)
    if value is None:
        raise SettingsError(setting, f"{rule} needs {setting}")
    return value
