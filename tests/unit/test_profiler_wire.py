"""The zero-copy column reader agrees with the protobuf parser on every encoding."""

import random
import struct

import numpy as np
import pytest
from google.protobuf.internal import encoder
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trialplane.server.api.profiler_wire import (
    _varint,
    batch_columns,
    decode_varints,
    parse_stream_request,
)
from trialplane.v1 import profiler_pb2
from trialplane.v1 import profiler_service_pb2 as ps

random.seed(11)
CASES = [
    [1_700_000_000_000_000 + i * 1000 for i in range(1000)],
    list(range(1000)),
    list(range(128)),
    [random.randint(-2**63, 2**63 - 1) for _ in range(500)],
    [0, 0, 0, 300],
    [2**56 - 1, 2**55],
    [300, 1, 300, 1],
    [-1],
    [],
]


@pytest.mark.parametrize("values", CASES, ids=lambda v: f"{len(v)}-values")
def test_decode_varints_matches_protobuf(values):
    encoded = profiler_pb2.TrialProfilerMetricsBatch(timestamps=values).SerializeToString()
    parsed = profiler_pb2.TrialProfilerMetricsBatch.FromString(encoded)
    run = b""
    if values:
        length, start = _varint(encoded, 1)  # after the one-byte tag of field 3
        run = encoded[start:start + length]
    assert decode_varints(run).tolist() == list(parsed.timestamps)


def test_truncated_varint_is_an_error():
    with pytest.raises(ValueError):
        decode_varints(b"\x80\x80")


def test_stream_request_columns_and_unpacked_fallback():
    batch = profiler_pb2.TrialProfilerMetricsBatch(values=[1.5, float("nan"), -2.0], batches=[1, 2, 3], timestamps=[10, 20, 30])
    batch.labels.trial_id = 4
    msg = parse_stream_request(ps.StreamProfilerMetricsRequest(stream_id="s", sequence=9, batch=batch).SerializeToString())
    assert msg.request.sequence == 9 and msg.request.batch.labels.trial_id == 4
    assert msg.columns.values[0] == 1.5 and msg.columns.values[2] == -2.0
    assert msg.columns.batches.tolist() == [1, 2, 3] and msg.columns.timestamps.tolist() == [10, 20, 30]
    # The same columns sent unpacked (one tag per element) are legal protobuf.
    unpacked = b"".join(encoder.TagBytes(2, 0) + encoder._VarintBytes(v) for v in [1, 2, 3])
    unpacked += b"".join(encoder.TagBytes(3, 0) + encoder._VarintBytes(v) for v in [10, 20, 30])
    unpacked += b"".join(encoder.TagBytes(1, 1) + struct.pack("<d", v) for v in [1.5, 2.5, -2.0])
    parsed = profiler_pb2.TrialProfilerMetricsBatch.FromString(unpacked)
    cols = batch_columns(unpacked, parsed)
    assert cols.values.tolist() == [1.5, 2.5, -2.0]
    assert cols.batches.tolist() == [1, 2, 3] and cols.timestamps.tolist() == [10, 20, 30]


# --- unknown fields and every legal encoding, against protobuf's own parse ---

U64 = 2**64 - 1


def varint(n: int, pad: int = 0) -> bytes:
    """n as a varint, with pad extra (legal, over-long) continuation bytes."""
    out = bytearray()
    while True:
        out.append(n & 0x7F)
        n >>= 7
        if not n:
            break
        out[-1] |= 0x80
    pad = min(pad, 10 - len(out))
    if pad > 0:
        out[-1] |= 0x80
        out += b"\x80" * (pad - 1) + b"\x00"
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field: int, payload: bytes) -> bytes:
    return tag(field, 2) + varint(len(payload)) + payload


@st.composite
def unknown_field(draw, known: frozenset, depth: int = 0) -> bytes:
    """One field of any wire type; a group holds further fields, any number goes inside it."""
    wire_type = draw(st.sampled_from([0, 1, 2, 5, 3] if depth < 3 else [0, 1, 2, 5]))
    numbers = st.integers(1, 40) | st.integers(1, 2**29 - 1)
    # A known number with another wire type is an unknown field to protobuf too
    # (or an unpacked element); a known number with LEN would be the known field.
    number = draw(numbers.filter(lambda n: n not in known or wire_type != 2))
    if wire_type == 0:
        return tag(number, 0) + varint(draw(st.integers(0, U64)), draw(st.integers(0, 3)))
    if wire_type == 1:
        return tag(number, 1) + draw(st.binary(min_size=8, max_size=8))
    if wire_type == 5:
        return tag(number, 5) + draw(st.binary(min_size=4, max_size=4))
    if wire_type == 2:
        return length_delimited(number, draw(st.binary(max_size=12)))
    inner = draw(st.lists(unknown_field(frozenset(), depth + 1), max_size=3))
    return tag(number, 3) + b"".join(inner) + tag(number, 4)


def unknowns(known):
    return st.lists(unknown_field(frozenset(known)), max_size=3)


@st.composite
def column(draw, field: int, values: list, is_double: bool) -> list[bytes]:
    """A repeated column as one or more packed runs or unpacked elements, in order."""
    pieces, i = [], 0
    while i < len(values):
        n = draw(st.integers(1, len(values) - i))
        part, i = values[i:i + n], i + n
        if is_double:
            encoded = [struct.pack("<d", v) for v in part]
        else:
            pad = draw(st.integers(0, 2))
            encoded = [varint(v & U64, pad) for v in part]
        if draw(st.booleans()):
            pieces.append(length_delimited(field, b"".join(encoded)))
        else:
            pieces.extend(tag(field, 1 if is_double else 0) + e for e in encoded)
    return pieces


def interleave(draw, *sequences) -> list:
    """The pieces of every sequence, each sequence in its own order."""
    queues = [list(s) for s in sequences if s]
    out = []
    while queues:
        q = queues[draw(st.integers(0, len(queues) - 1))]
        out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


@st.composite
def labels_bytes(draw) -> bytes:
    pieces = [
        tag(1, 0) + varint(draw(st.integers(0, 2**40))),
        length_delimited(2, draw(st.text(max_size=5)).encode()),
        tag(5, 0) + varint(draw(st.integers(0, 3))),
    ]
    return b"".join(interleave(draw, pieces, draw(unknowns({1, 2, 3, 4, 5}))))


@st.composite
def stream_request_bytes(draw) -> bytes:
    n = draw(st.integers(0, 12))
    ints = st.integers(-2**63, 2**63 - 1)
    batch_pieces = interleave(
        draw,
        draw(column(1, draw(st.lists(st.floats(), min_size=n, max_size=n)), True)),
        draw(column(2, draw(st.lists(ints, min_size=n, max_size=n)), False)),
        draw(column(3, draw(st.lists(ints, min_size=n, max_size=n)), False)),
        [length_delimited(4, draw(labels_bytes())) for _ in range(draw(st.integers(0, 2)))],
        draw(unknowns({1, 2, 3, 4})),
    )
    # A message field sent in several parts is merged, repeated fields appended.
    cuts = sorted(draw(st.lists(st.integers(0, len(batch_pieces)), max_size=2)))
    bounds = [0, *cuts, len(batch_pieces)]
    batch_parts = [length_delimited(3, b"".join(batch_pieces[a:b])) for a, b in zip(bounds, bounds[1:])]
    if not draw(st.booleans()):
        batch_parts = batch_parts[1:] if n == 0 else batch_parts
    top = [length_delimited(1, draw(st.text(max_size=4)).encode()), tag(2, 0) + varint(draw(st.integers(0, U64)))]
    return b"".join(interleave(draw, top, batch_parts, draw(unknowns({1, 2, 3}))))


def assert_same_as_protobuf(raw: bytes) -> None:
    try:
        expected = ps.StreamProfilerMetricsRequest.FromString(raw)
    except Exception:  # noqa: BLE001 - protobuf refuses it: so must the parser
        with pytest.raises((DecodeError, ValueError)):
            parse_stream_request(raw)
        return
    got = parse_stream_request(raw)
    assert got.request == expected
    if not expected.HasField("batch"):
        assert got.columns is None
        return
    b = expected.batch
    assert np.array_equal(got.columns.values, np.array(b.values, dtype=np.float64), equal_nan=True)
    assert got.columns.batches.tolist() == list(b.batches)
    assert got.columns.timestamps.tolist() == list(b.timestamps)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_request_bytes())
def test_columns_match_protobuf_with_unknown_fields_of_every_wire_type(raw):
    assert_same_as_protobuf(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream_request_bytes(), st.data())
def test_truncated_or_corrupted_bytes_fail_as_protobuf_does(raw, data):
    cut = data.draw(st.integers(0, len(raw)))
    assert_same_as_protobuf(raw[:cut])
    if raw:
        at = data.draw(st.integers(0, len(raw) - 1))
        assert_same_as_protobuf(raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:])


@pytest.mark.parametrize("raw", [
    tag(9, 3) + tag(9, 4),  # an empty group
    tag(9, 3) + tag(10, 3) + tag(3, 2) + b"\x00" + tag(10, 4) + tag(9, 4),  # nested, holding a "batch" tag
])
def test_groups_are_skipped(raw):
    batch = profiler_pb2.TrialProfilerMetricsBatch(values=[1.0, 2.0], batches=[1, 2], timestamps=[5, 6])
    inner = raw + batch.SerializeToString() + raw
    msg = parse_stream_request(raw + length_delimited(3, inner) + tag(2, 0) + varint(7) + raw)
    assert msg.request.sequence == 7
    assert msg.columns.values.tolist() == [1.0, 2.0] and msg.columns.timestamps.tolist() == [5, 6]


@pytest.mark.parametrize("raw", [
    tag(9, 4),  # END_GROUP without a start
    tag(9, 3) + tag(8, 4),  # END_GROUP of another field
    tag(9, 3),  # a group never closed
    tag(9, 6) + b"\x00",
    tag(9, 7) + b"\x00",
    tag(2, 0) + b"\xff",  # truncated varint
    length_delimited(3, b"")[:-1] + b"\x05",  # length past the end
])
def test_malformed_bytes_are_refused(raw):
    with pytest.raises(DecodeError):
        ps.StreamProfilerMetricsRequest.FromString(raw)
    with pytest.raises((DecodeError, ValueError)):
        parse_stream_request(raw)
