"""The one place where domain errors become gRPC statuses.

Every status carries a google.rpc.ErrorInfo (reason from the ErrorReason enum)
and, for INVALID_ARGUMENT, a google.rpc.BadRequest naming each bad field. A
configured limit adds a google.rpc.QuotaFailure naming it and its value, and
a google.rpc.RetryInfo when waiting helps.
Anything unexpected becomes INTERNAL, never UNKNOWN, and is logged.
"""

from __future__ import annotations

import functools
import inspect
import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from trialplane.v1 import errors_pb2, trial_pb2

from ..domain import errors as domain
from ..domain.checkpoints import CheckpointState
from ..domain.models import StudyState, TrialState, WorkerState
from ..domain.trial_lifecycle import IllegalTransition

log = logging.getLogger(__name__)

ERROR_DOMAIN = "trialplane.v1"

_CODES: list[tuple[type, grpc.StatusCode]] = [
    (domain.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (domain.NotFound, grpc.StatusCode.NOT_FOUND),
    (domain.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (domain.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (domain.Aborted, grpc.StatusCode.ABORTED),
    (domain.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (domain.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (domain.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (domain.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (domain.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
]


def grpc_code(err: domain.DomainError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(err, cls):
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


# Domain enums in error metadata are spelled as the API spells their values.
_ENUM_PREFIXES: dict[type, str] = {
    TrialState: "TRIAL_STATE_",
    WorkerState: "WORKER_STATE_",
    StudyState: "STUDY_STATE_",
    CheckpointState: "CHECKPOINT_STATE_",
}


def _metadata_value(value) -> str:
    prefix = _ENUM_PREFIXES.get(type(value))
    return prefix + value.value if prefix else str(value)


def _seconds(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def _limit_details(err: domain.LimitExceeded) -> list:
    violation = error_details_pb2.QuotaFailure.Violation(
        subject=err.subject, description=err.message, api_service=err.service, quota_id=err.name,
        quota_value=int(err.limit),
    )
    details: list = [error_details_pb2.QuotaFailure(violations=[violation])]
    if err.retry_after is not None:
        details.append(error_details_pb2.RetryInfo(retry_delay=_seconds(err.retry_after)))
    return details


def _typed_details(err: domain.DomainError) -> list:
    if isinstance(err, domain.LimitExceeded):
        return _limit_details(err)
    if isinstance(err, IllegalTransition):
        return [errors_pb2.IllegalTransitionDetails(
            trial_id=err.trial_id,
            current_state=trial_pb2.TrialState.Value("TRIAL_STATE_" + err.current_state.value),
            requested_state=trial_pb2.TrialState.Value("TRIAL_STATE_" + err.requested_state.value),
            allowed_states=[trial_pb2.TrialState.Value("TRIAL_STATE_" + s.value) for s in err.allowed_states],
        )]
    if isinstance(err, domain.StaleTrialRun):
        return [errors_pb2.StaleTrialRunDetails(
            trial_id=err.trial_id, reported_trial_run_id=err.reported_run_id, current_trial_run_id=err.current_run_id,
        )]
    return []


def _reason_name(err: domain.DomainError) -> str:
    return err.reason if ("ERROR_REASON_" + err.reason) in errors_pb2.ErrorReason.keys() else "INTERNAL"


def error_reason(err: domain.DomainError) -> int:
    """The ErrorReason number of a domain error (INTERNAL for an unknown one)."""
    return errors_pb2.ErrorReason.Value("ERROR_REASON_" + _reason_name(err))


def to_status(err: domain.DomainError) -> grpc.Status:
    code = grpc_code(err)
    reason = _reason_name(err)
    metadata = {k: _metadata_value(v) for k, v in err.metadata.items()}
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))]
    details.extend(_pack(d) for d in _typed_details(err))
    if isinstance(err, domain.InvalidArgument) and err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in err.violations
            ]
        )
        details.append(_pack(bad))
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=err.message, details=details)
    return rpc_status.to_status(status)


def status_name_of(context) -> str:
    """The name of the status an abort or set_code left on a call (OK when
    none), for counting calls by code."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"


async def abort(context: grpc.aio.ServicerContext, err: domain.DomainError):
    status = to_status(err)
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


def abort_blocking(context: grpc.ServicerContext, err: domain.DomainError):
    """abort() from a synchronous handler, which runs on a thread."""
    status = to_status(err)
    context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


def response_too_large(size: int, limit: int) -> domain.DomainError:
    return domain.ResourceExhausted(
        f"the answer would take {size} bytes, more than the {limit} this server sends; ask for less",
        reason="RESPONSE_TOO_LARGE", metadata={"limit_bytes": limit},
    )


def internal_error(method: str, exc: BaseException) -> domain.DomainError:
    log.exception("unexpected error in %s", method, exc_info=exc)
    return domain.DomainError(f"internal error in {method}: {type(exc).__name__}", reason="INTERNAL")


def rpc(fn):
    """Maps what a servicer method raises to a status, for unary and streaming methods."""
    name = fn.__qualname__
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream_wrapper(self, request, context):
            try:
                # Headers go out at once: a client knows the stream is open
                # before the first item, which a follow may wait long for.
                await context.send_initial_metadata(())
                async for item in fn(self, request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except domain.DomainError as err:
                await abort(context, err)
            except Exception as exc:  # noqa: BLE001
                await abort(context, internal_error(name, exc))

        return stream_wrapper

    @functools.wraps(fn)
    async def wrapper(self, request, context):
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except domain.DomainError as err:
            await abort(context, err)
        except Exception as exc:  # noqa: BLE001
            await abort(context, internal_error(name, exc))

    return wrapper
