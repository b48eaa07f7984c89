"""Python values to and from the API's messages: enum names, times,
durations, hyperparameters and messages given as dicts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.protobuf.message import Message
from trialplane.v1 import trial_pb2


def enum_value(enum_type, prefix: str, value: int | str) -> int:
    """An enum number from a number or a name, with or without the prefix and
    in any case: "running", "RUNNING" and "TRIAL_STATE_RUNNING" are the same."""
    if isinstance(value, int):
        return value
    name = value.strip().upper().replace("-", "_")
    if not name.startswith(prefix):
        name = prefix + name
    try:
        return enum_type.Value(name)
    except ValueError:
        choices = ", ".join(n.removeprefix(prefix).lower() for n in enum_type.keys() if not n.endswith("_UNSPECIFIED"))
        raise ValueError(f"unknown {prefix.rstrip('_').lower().replace('_', ' ')} {value!r}; one of {choices}") from None


def enum_values(enum_type, prefix: str, values: Iterable[int | str] | int | str | None) -> list[int]:
    if values is None:
        return []
    if isinstance(values, (int, str)):
        values = [values]
    return [enum_value(enum_type, prefix, v) for v in values]


def enum_name(enum_type, prefix: str, number: int) -> str:
    """The short name of an enum number: "RUNNING" for TRIAL_STATE_RUNNING."""
    try:
        return enum_type.Name(number).removeprefix(prefix)
    except ValueError:
        return str(number)


def timestamp(value: dt.datetime | timestamp_pb2.Timestamp | None) -> timestamp_pb2.Timestamp | None:
    if value is None or isinstance(value, timestamp_pb2.Timestamp):
        return value
    if value.tzinfo is None:
        value = value.astimezone()
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(dt.timezone.utc))
    return out


def duration(value: float | dt.timedelta | duration_pb2.Duration | None) -> duration_pb2.Duration | None:
    """A Duration from seconds or a timedelta."""
    if value is None or isinstance(value, duration_pb2.Duration):
        return value
    out = duration_pb2.Duration()
    if isinstance(value, dt.timedelta):
        out.FromTimedelta(value)
    else:
        out.FromNanoseconds(round(value * 1e9))
    return out


def parameter_value(value: Any) -> trial_pb2.ParameterValue:
    """A ParameterValue of the Python value's kind (bool, int, float or str)."""
    if isinstance(value, trial_pb2.ParameterValue):
        return value
    if isinstance(value, bool):
        return trial_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return trial_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return trial_pb2.ParameterValue(double_value=value)
    if isinstance(value, str):
        return trial_pb2.ParameterValue(string_value=value)
    if isinstance(value, Mapping):
        return parse_dict(value, trial_pb2.ParameterValue)
    raise TypeError(f"a hyperparameter is a bool, int, float or str, not {type(value).__name__}")


def python_value(value: trial_pb2.ParameterValue) -> bool | int | float | str | None:
    """The Python value a ParameterValue holds."""
    kind = value.WhichOneof("kind")
    return getattr(value, kind) if kind else None


def parse_dict(value: Mapping[str, Any], message_type: type[Message]) -> Message:
    """json_format.ParseDict, with what does not parse as a ValueError of one line."""
    try:
        return json_format.ParseDict(value, message_type())
    except json_format.ParseError as err:
        raise ValueError(str(err).splitlines()[0]) from None


def message_from(value: Message | Mapping[str, Any], message_type: type[Message]) -> Message:
    """A message of message_type from itself or from a dict in the proto3 JSON
    shape (the shape grpcurl takes; field names as in the .proto or in
    lowerCamelCase)."""
    if isinstance(value, message_type):
        return value
    if isinstance(value, Message):
        raise TypeError(f"expected a {message_type.DESCRIPTOR.full_name}, got a {value.DESCRIPTOR.full_name}")
    return parse_dict(value, message_type)


def load_document(path: str | Path) -> Any:
    """The contents of a YAML or JSON file (by its suffix; YAML reads JSON
    too). What does not parse is a ValueError of one line."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON: {err}") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"not valid YAML: {str(err).splitlines()[0]}") from None

