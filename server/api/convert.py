"""Conversions shared by the servicers: times, enums, structs and field masks."""

from __future__ import annotations

import hashlib
import math

from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2, timestamp_pb2
from trialplane.v1 import metrics_pb2

from ..domain import validation
from ..domain.errors import FieldViolation, InvalidArgument, invalid
from ..domain.idempotency import RequestKey

US = 1_000_000


def require_id(value: int, field: str, resource: str) -> int:
    """The id a request names, or INVALID_ARGUMENT on field when it is not one."""
    if value <= 0:
        raise invalid(field, f"must be a {resource} id (a positive number)")
    return value


def request_key(request, method: str, parent: str = "") -> RequestKey | None:
    """The scoped request_id of a write with a digest of the rest of the
    request, or None when the client sent no request_id."""
    request_id = request.request_id
    validation.check_request_id(request_id)
    if not request_id:
        return None
    rest = type(request)()
    rest.CopyFrom(request)
    rest.ClearField("request_id")
    digest = hashlib.blake2b(rest.SerializeToString(deterministic=True), digest_size=16).digest()
    return RequestKey(method, parent, request_id, digest)


def timestamp(us: int | None) -> timestamp_pb2.Timestamp | None:
    if us is None:
        return None
    return timestamp_pb2.Timestamp(seconds=us // US, nanos=(us % US) * 1000)


# The range protobuf's Timestamp allows: 0001-01-01 to 9999-12-31 UTC.
TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)


def timestamp_us(ts: timestamp_pb2.Timestamp, field: str) -> int:
    if not 0 <= ts.nanos < 1_000_000_000:
        raise invalid(field, "nanos must be in [0, 1e9)")
    if not TIMESTAMP_SECONDS[0] <= ts.seconds <= TIMESTAMP_SECONDS[1]:
        raise invalid(field, "must be between 0001-01-01 and 9999-12-31 UTC")
    return ts.seconds * US + ts.nanos // 1000


def optional_timestamp_us(message, field: str, path: str) -> int | None:
    return timestamp_us(getattr(message, field), path) if message.HasField(field) else None


def duration_seconds(d: duration_pb2.Duration, field: str) -> float:
    seconds = d.seconds + d.nanos / 1e9
    if seconds < 0 or not math.isfinite(seconds):
        raise invalid(field, "must not be negative")
    return seconds


def duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


class EnumMap:
    """Maps a protobuf enum onto a domain enum by value name (prefix stripped)."""

    def __init__(self, proto_enum, prefix: str, domain_enum):
        self.proto_enum = proto_enum
        self.prefix = prefix
        self.domain_enum = domain_enum
        self._by_number = {}
        for name, number in proto_enum.items():
            short = name[len(prefix):]
            if number and short in domain_enum.__members__:
                self._by_number[number] = domain_enum[short]

    def to_domain(self, number: int, field: str, required: bool = False):
        """None for UNSPECIFIED (unless required); INVALID_ARGUMENT for unknown numbers."""
        if number == 0:
            if required:
                raise invalid(field, "must be set")
            return None
        try:
            return self._by_number[number]
        except KeyError:
            raise invalid(field, f"unknown value {number}") from None

    def to_domain_list(self, numbers, field: str) -> list:
        return [self.to_domain(n, f"{field}[{i}]", required=True) for i, n in enumerate(numbers)]

    def to_proto(self, value) -> int:
        if value is None:
            return 0
        return self.proto_enum.Value(self.prefix + value.value)


def value_to_python(v: struct_pb2.Value):
    kind = v.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(v.struct_value)
    if kind == "list_value":
        return [value_to_python(x) for x in v.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(v, kind)


_NON_FINITE_NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def metric_values(s: struct_pb2.Struct, path: str) -> dict[str, float]:
    """The values of a metrics Struct: numbers, or the strings a JSON client
    sends for non-finite ones; INVALID_ARGUMENT names every other entry."""
    out = {}
    bad = []
    for k, v in s.fields.items():
        kind = v.WhichOneof("kind")
        if kind == "number_value":
            out[k] = v.number_value
        elif kind == "string_value" and v.string_value in _NON_FINITE_NAMES:
            out[k] = _NON_FINITE_NAMES[v.string_value]
        else:
            bad.append(k)
    if bad:
        raise InvalidArgument([
            FieldViolation(f"{path}[{k}]", 'must be a number, "NaN", "Infinity" or "-Infinity"') for k in sorted(bad)
        ])
    return out


def struct_to_dict(s: struct_pb2.Struct) -> dict:
    """Like json_format.MessageToDict, but NaN and infinities survive."""
    out = {}
    for k, v in s.fields.items():
        # Numbers are by far the most common metric value.
        out[k] = v.number_value if v.WhichOneof("kind") == "number_value" else value_to_python(v)
    return out


# Struct numbers must be finite to map to JSON, so the server writes the
# non-finite ones as the strings proto3 JSON uses for doubles.
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else _NON_FINITE[value]
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def present(message):
    """message, or None (the field left unset) when it carries nothing: a
    sub-message the client did not set reads back unset, not empty."""
    return message if message.ByteSize() else None


def dict_to_struct(d: dict | None) -> struct_pb2.Struct | None:
    """A Struct of d, or None (the field left unset) when d is empty.
    Non-finite numbers become "NaN", "Infinity" or "-Infinity"."""
    if not d:
        return None
    s = struct_pb2.Struct()
    s.update(_json_safe(d))
    return s


def summary_to_proto(trial_id: int, group: str, name: str, x) -> metrics_pb2.MetricSummary:
    """The MetricSummary of a domain SeriesSummary."""
    return metrics_pb2.MetricSummary(
        trial_id=trial_id, group=group, name=name, last=x.last, min=x.vmin, max=x.vmax, mean=x.mean,
        count=x.count, recent_mean=x.recent_mean, last_step=max(x.last_step, 0),
        last_time=timestamp(x.last_time) if x.last_time else None,
    )


def check_read_mask(mask: field_mask_pb2.FieldMask, descriptor, field: str = "read_mask") -> None:
    if mask.paths and not mask.IsValidForDescriptor(descriptor):
        raise invalid(field, f"names a field {descriptor.name} does not have: {', '.join(mask.paths)}")


def apply_read_mask(message, mask: field_mask_pb2.FieldMask):
    if not mask.paths:
        return message
    out = type(message)()
    mask.MergeMessage(message, out)
    return out


def update_paths(mask: field_mask_pb2.FieldMask, allowed: set[str]) -> set[str]:
    if not mask.paths:
        raise invalid("update_mask", f"must list the fields to update; allowed: {', '.join(sorted(allowed))}")
    unknown = [p for p in mask.paths if p not in allowed]
    if unknown:
        raise invalid(
            "update_mask",
            f"cannot update {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            " (state changes only through the transition methods)",
        )
    return set(mask.paths)
