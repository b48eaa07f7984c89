"""The parts of the limits that need no server: whom a stream is counted
for, and how a limit becomes a status."""

from __future__ import annotations

from google.rpc import error_details_pb2
from grpc_status import rpc_status
from trialplane.server.api.errors import to_status
from trialplane.server.api.limits import BatchLimits, peer_host
from trialplane.server.config import ServerConfig
from trialplane.server.domain.errors import LimitExceeded


def test_peer_hosts():
    assert peer_host("ipv4:10.0.0.5:5123") == "10.0.0.5"
    assert peer_host("ipv6:[::1]:5123") == "::1"
    assert peer_host("ipv6:%5B2001:db8::7%5D:443") == "2001:db8::7"
    assert peer_host("unix:/tmp/trialplane.sock") == "unix"
    assert peer_host("") == "unknown"


def test_batch_limits_are_capped_to_the_built_in_maxima():
    limits = BatchLimits.from_config(ServerConfig(max_batch_points=10**9, max_batch_items=0, max_batch_samples=7))
    assert (limits.max_points, limits.max_items, limits.max_samples) == (1_000_000, 1, 7)


def unpacked(status, message_type):
    for packed in rpc_status.from_call(_Call(status)).details:
        if packed.Is(message_type.DESCRIPTOR):
            out = message_type()
            packed.Unpack(out)
            return out
    return None


class _Call:
    def __init__(self, status):
        self._status = status

    def code(self):
        return self._status.code

    def details(self):
        return self._status.details

    def trailing_metadata(self):
        return self._status.trailing_metadata


def test_a_limit_carries_quota_failure_and_retry_info():
    err = LimitExceeded("too many", name="max_streams_per_principal", limit=8, subject="user:3", retry_after=2.5,
                        service="trialplane.v1.LogService")
    status = to_status(err)
    info = unpacked(status, error_details_pb2.ErrorInfo)
    assert (info.reason, dict(info.metadata)) == ("LIMIT_EXCEEDED", {"limit": "8", "limit_name": "max_streams_per_principal"})
    (violation,) = unpacked(status, error_details_pb2.QuotaFailure).violations
    assert (violation.subject, violation.quota_id, violation.quota_value, violation.api_service) == (
        "user:3", "max_streams_per_principal", 8, "trialplane.v1.LogService")
    assert unpacked(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().total_seconds() == 2.5
    batch = to_status(LimitExceeded("split it", name="max_batch_items", limit=5, requested=6))
    assert unpacked(batch, error_details_pb2.RetryInfo) is None
    assert dict(unpacked(batch, error_details_pb2.ErrorInfo).metadata)["requested"] == "6"
