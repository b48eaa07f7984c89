"""What a failed call raises: one exception class per gRPC status code, all
under TrialplaneError, each carrying what the server packed into the status.

The server (server/api/errors.py) sends a google.rpc.Status with an
ErrorInfo (a reason from trialplane.v1.ErrorReason and its metadata), a
BadRequest naming each bad field for INVALID_ARGUMENT, and typed details such
as IllegalTransitionDetails. Callers branch on the class and on `reason`,
never on the message text.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path and what is wrong with it."""

    field: str
    description: str


class TrialplaneError(Exception):
    """A call that failed with a gRPC status.

    code: the grpc.StatusCode; message: the status message, for people;
    reason: the ErrorInfo reason ("RESOURCE_NOT_FOUND"), empty when the
    status had none (a transport failure); metadata: the ErrorInfo metadata;
    field_violations: the BadRequest violations; retry_delay: seconds from a
    RetryInfo, None without one; details: every other detail as a packed Any
    (see detail()).
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: list[FieldViolation] | None = None,
        retry_delay: float | None = None,
        details: list[any_pb2.Any] | None = None,
    ):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field_violations = list(field_violations or [])
        self.retry_delay = retry_delay
        self.details = list(details or [])

    def detail(self, message_type):
        """The detail of that message type (IllegalTransitionDetails ...), unpacked, or None."""
        for packed in self.details:
            if packed.Is(message_type.DESCRIPTOR):
                out = message_type()
                packed.Unpack(out)
                return out
        return None

    def __str__(self) -> str:
        head = self.code.name + (f" ({self.reason})" if self.reason else "")
        text = f"{head}: {self.message}"
        for violation in self.field_violations:
            named = f"{violation.field}: {violation.description}"
            # The server's message usually names every violation already.
            if named not in self.message:
                text += f"; {named}"
        return text


class Cancelled(TrialplaneError):
    code = grpc.StatusCode.CANCELLED


class Unknown(TrialplaneError):
    code = grpc.StatusCode.UNKNOWN


class InvalidArgument(TrialplaneError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(TrialplaneError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(TrialplaneError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TrialplaneError):
    code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TrialplaneError):
    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(TrialplaneError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(TrialplaneError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(TrialplaneError):
    code = grpc.StatusCode.ABORTED


class OutOfRange(TrialplaneError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(TrialplaneError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(TrialplaneError):
    code = grpc.StatusCode.INTERNAL


class Unavailable(TrialplaneError):
    code = grpc.StatusCode.UNAVAILABLE


class DataLoss(TrialplaneError):
    code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(TrialplaneError):
    code = grpc.StatusCode.UNAUTHENTICATED


ERROR_CLASSES: dict[grpc.StatusCode, type[TrialplaneError]] = {
    cls.code: cls
    for cls in [
        Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied,
        ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented, Internal, Unavailable,
        DataLoss, Unauthenticated,
    ]
}


def _unpack(packed: any_pb2.Any, message_type):
    out = message_type()
    packed.Unpack(out)
    return out


def from_rpc_error(err: grpc.RpcError) -> TrialplaneError:
    """The TrialplaneError for what a stub raised, with the status details decoded."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else None) or ""
    reason, metadata = "", {}
    violations: list[FieldViolation] = []
    retry_delay: float | None = None
    others: list[any_pb2.Any] = []
    try:
        status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    except ValueError:
        # A status whose details disagree with the code or message is not
        # ours; keep the plain code and message.
        status = None
    for packed in status.details if status is not None else []:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = _unpack(packed, error_details_pb2.ErrorInfo)
            reason, metadata = info.reason, dict(info.metadata)
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = _unpack(packed, error_details_pb2.BadRequest)
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry_delay = _unpack(packed, error_details_pb2.RetryInfo).retry_delay.ToTimedelta().total_seconds()
        else:
            others.append(packed)
    cls = ERROR_CLASSES.get(code, Unknown)
    return cls(message, code=code, reason=reason, metadata=metadata, field_violations=violations,
               retry_delay=retry_delay, details=others)
