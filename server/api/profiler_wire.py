"""Zero-copy access to the columns of a profiler batch on the wire.

Proto3 sends `repeated double values` as one packed run of little-endian
float64s and the int64 columns as packed varints. Reading them through the
parsed message would build a Python object per sample; instead the servicer
receives the raw request bytes, finds the packed runs and hands them to numpy.
Unpacked encodings (legal, but no mainstream client emits them) fall back to
the parsed message. The bytes pass protobuf's own parse first; unknown fields
of every wire type, groups among them, are skipped as protobuf skips them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from trialplane.v1 import profiler_pb2, profiler_service_pb2

# Wire types; 6 and 7 are not defined and make a message malformed.
_VARINT, _I64, _LEN, _START_GROUP, _END_GROUP, _I32 = range(6)


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    try:
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
    except IndexError:
        raise ValueError("truncated varint") from None


def _skip(buf: bytes | memoryview, pos: int, wire_type: int, field: int) -> int:
    """The position after one field's value, skipped as protobuf skips an unknown field.

    A group (the deprecated wire form of a message field) runs to the
    END_GROUP tag of its own field number and may hold groups itself."""
    if wire_type == _VARINT:
        pos = _varint(buf, pos)[1]
    elif wire_type == _I64:
        pos += 8
    elif wire_type == _LEN:
        length, pos = _varint(buf, pos)
        pos += length
    elif wire_type == _I32:
        pos += 4
    elif wire_type == _START_GROUP:
        open_groups = [field]
        while open_groups:
            key, pos = _varint(buf, pos)
            wire_type, field = key & 7, key >> 3
            if wire_type == _START_GROUP:
                open_groups.append(field)
            elif wire_type == _END_GROUP:
                if open_groups.pop() != field:
                    raise ValueError("END_GROUP tag does not match its START_GROUP")
            else:
                pos = _skip(buf, pos, wire_type, field)
    else:
        raise ValueError(f"invalid wire type {wire_type}")
    if pos > len(buf):
        raise ValueError("truncated field")
    return pos


_U = np.uint64


def _compress_groups(x: np.ndarray) -> np.ndarray:
    """Packs the low 7 bits of each byte of uint64 x into one 56-bit number."""
    x = x & _U(0x7F7F7F7F7F7F7F7F)
    x = (x & _U(0x007F007F007F007F)) | ((x & _U(0x7F007F007F007F00)) >> _U(1))
    x = (x & _U(0x00003FFF00003FFF)) | ((x & _U(0x3FFF00003FFF0000)) >> _U(2))
    return (x & _U(0x000000000FFFFFFF)) | ((x & _U(0x0FFFFFFF00000000)) >> _U(4))


def _uniform_width(b: np.ndarray) -> int:
    """The common byte length of every varint in b, or 0 when lengths differ.

    Timestamps in microseconds all take 8 bytes and batch counters mostly
    share one length, so this fast path covers the usual batch."""
    ends = b < 0x80
    width = int(np.argmax(ends)) + 1
    if b.size % width or np.count_nonzero(ends) != b.size // width:
        return 0
    return width if ends[width - 1::width].all() else 0


def decode_varints(run: memoryview | bytes) -> np.ndarray:
    """Decodes a packed run of int64 varints into an int64 array, vectorized."""
    b = np.frombuffer(run, dtype=np.uint8)
    if b.size == 0:
        return np.zeros(0, dtype=np.int64)
    if b[-1] >= 0x80:
        raise ValueError("truncated varint")
    width = _uniform_width(b)
    if width == 8:
        return _compress_groups(b.view("<u8")).astype(np.int64)
    if 0 < width < 8:
        padded = np.zeros((b.size // width, 8), dtype=np.uint8)
        padded[:, :width] = b.reshape(-1, width)
        return _compress_groups(padded.view("<u8").ravel()).astype(np.int64)
    ends = np.flatnonzero(b < 0x80)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise ValueError("varint longer than 10 bytes")
    group_start = np.repeat(starts, lengths)
    shifts = ((np.arange(b.size) - group_start) * 7).astype(np.uint64)
    parts = (b & 0x7F).astype(np.uint64) << shifts
    return np.add.reduceat(parts, starts).view(np.int64)


@dataclass
class Columns:
    values: np.ndarray  # float64
    batches: np.ndarray  # int64
    timestamps: np.ndarray  # int64


def _columns_from_message(batch: profiler_pb2.TrialProfilerMetricsBatch) -> Columns:
    return Columns(
        np.array(batch.values, dtype=np.float64),
        np.array(batch.batches, dtype=np.int64),
        np.array(batch.timestamps, dtype=np.int64),
    )


def batch_columns(raw: bytes | memoryview, batch: profiler_pb2.TrialProfilerMetricsBatch) -> Columns:
    """Columns of an encoded TrialProfilerMetricsBatch (raw) whose parse is batch."""
    runs: dict[int, list] = {1: [], 2: [], 3: []}
    pos, end = 0, len(raw)
    while pos < end:
        key, pos = _varint(raw, pos)
        field, wire_type = key >> 3, key & 7
        if field in runs:
            if wire_type != _LEN:
                return _columns_from_message(batch)
            length, pos = _varint(raw, pos)
            runs[field].append(raw[pos:pos + length])
            pos += length
        else:
            pos = _skip(raw, pos, wire_type, field)

    def joined(field):
        parts = runs[field]
        return parts[0] if len(parts) == 1 else b"".join(bytes(p) for p in parts)

    values = np.frombuffer(joined(1), dtype="<f8") if runs[1] else np.zeros(0)
    return Columns(values, decode_varints(joined(2)), decode_varints(joined(3)))


@dataclass
class StreamMessage:
    request: profiler_service_pb2.StreamProfilerMetricsRequest | None
    columns: Columns | None

    def take(self) -> tuple[profiler_service_pb2.StreamProfilerMetricsRequest, Columns | None]:
        """The request and its columns, leaving this message empty."""
        request, columns = self.request, self.columns
        self.request = self.columns = None
        return request, columns


def parse_stream_request(raw: bytes) -> StreamMessage:
    """The request deserializer of StreamProfilerMetrics."""
    request = profiler_service_pb2.StreamProfilerMetricsRequest.FromString(raw)
    columns = None
    if request.HasField("batch"):
        view = memoryview(raw)
        pos, end = 0, len(raw)
        batch_raw: list = []
        while pos < end:
            key, pos = _varint(raw, pos)
            if key == (3 << 3 | _LEN):
                length, pos = _varint(raw, pos)
                batch_raw.append(view[pos:pos + length])
                pos += length
            else:
                pos = _skip(raw, pos, key & 7, key >> 3)
        raw_batch = batch_raw[0] if len(batch_raw) == 1 else b"".join(bytes(p) for p in batch_raw)
        columns = batch_columns(raw_batch, request.batch)
    return StreamMessage(request, columns)
