"""The zero-copy column reader agrees with the protobuf parser on every encoding."""

import random
import struct

import pytest
from google.protobuf.internal import encoder

from trialplane.server.api.profiler_wire import _varint, batch_columns, decode_varints, parse_stream_request
from trialplane.v1 import profiler_pb2, profiler_service_pb2 as ps

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
