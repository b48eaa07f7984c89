"""The status of a failed call, decoded with its details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict
    violations: dict
    # Every other detail of the status, as packed Any messages.
    details: list

    def detail(self, message_type):
        """The detail of that type, unpacked, or None."""
        for packed in self.details:
            if packed.Is(message_type.DESCRIPTOR):
                out = message_type()
                packed.Unpack(out)
                return out
        return None


def error_of(call_fn, *args, **kwargs) -> ErrorDetails:
    """Calls a stub method that must fail and returns its decoded status."""
    with pytest.raises(grpc.RpcError) as info:
        call_fn(*args, **kwargs)
    err = info.value
    status = rpc_status.from_call(err)
    reason, metadata, violations, others = "", {}, {}, []
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                ei = error_details_pb2.ErrorInfo()
                detail.Unpack(ei)
                reason, metadata = ei.reason, dict(ei.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                violations = {v.field: v.description for v in br.field_violations}
            else:
                others.append(detail)
    return ErrorDetails(err.code(), err.details(), reason, metadata, violations, others)
