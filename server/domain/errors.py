"""Errors the domain raises; the API layer maps each class to one gRPC code."""

from __future__ import annotations

from dataclasses import dataclass, field


class DomainError(Exception):
    """Base class. `reason` is an ErrorReason value name without its prefix."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict | None = None):
        super().__init__(message)
        self.message = message
        if reason:
            self.reason = reason
        # Values stay as given (domain enums included); the API layer spells
        # them the way the API does.
        self.metadata = dict(metadata or {})


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class InvalidArgument(DomainError):
    reason = "INVALID_FIELD"

    def __init__(self, violations: list[FieldViolation], *, reason: str | None = None):
        self.violations = list(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {summary}", reason=reason)


class MalformedRequest(InvalidArgument):
    """The request is not a message of the method's request type at all."""

    reason = "MALFORMED_REQUEST"

    def __init__(self, message: str):
        self.violations = []
        DomainError.__init__(self, message)


def invalid(field_path: str, description: str, *, reason: str | None = None) -> InvalidArgument:
    return InvalidArgument([FieldViolation(field_path, description)], reason=reason)


class NotFound(DomainError):
    reason = "RESOURCE_NOT_FOUND"

    def __init__(self, resource: str, key: object):
        super().__init__(f"{resource} {key} not found", metadata={"resource": resource, "id": key})


class AlreadyExists(DomainError):
    reason = "RESOURCE_EXISTS"

    def __init__(self, resource: str, key: object):
        super().__init__(f"{resource} {key!r} already exists", metadata={"resource": resource, "key": key})


class MetricConflict(AlreadyExists):
    """A report names a stored step with other values."""

    reason = "METRIC_CONFLICT"

    def __init__(self, message: str, metadata: dict):
        DomainError.__init__(self, message, metadata=metadata)


class FailedPrecondition(DomainError):
    reason = "ILLEGAL_TRANSITION"


class StaleTrialRun(FailedPrecondition):
    """A report names a run that is not the trial's current one."""

    reason = "STALE_TRIAL_RUN"

    def __init__(self, trial_id: int, current_run_id: int, reported_run_id: int):
        super().__init__(
            f"trial {trial_id} is on run {current_run_id}; the report is from run {reported_run_id}",
            metadata={"trial_id": trial_id, "trial_run_id": current_run_id, "reported_run_id": reported_run_id},
        )
        self.trial_id = trial_id
        self.reported_run_id = reported_run_id
        self.current_run_id = current_run_id


class TrialFinished(FailedPrecondition):
    """A write that needs a live trial names one in a terminal state."""

    reason = "ILLEGAL_TRANSITION"

    def __init__(self, trial_id: int, state, takes: str = "no more reports"):
        super().__init__(f"trial {trial_id} is {state.value} and takes {takes}",
                         metadata={"trial_id": trial_id, "state": state})


class Aborted(DomainError):
    """A concurrent change won; the client should re-read and decide again."""

    reason = "ETAG_MISMATCH"


class Unavailable(DomainError):
    """A transient fault that a retry can fix."""

    reason = "STORAGE_UNAVAILABLE"


class ResourceExhausted(DomainError):
    reason = "LIMIT_EXCEEDED"


class LimitExceeded(ResourceExhausted):
    """A configured server limit (docs/operations.md) refused the call.

    name: the limit as ServerConfig calls it; limit: its value; subject:
    what it is counted for (a principal, or "request" for a per-call limit);
    retry_after: seconds after which the same call may pass, None when
    sending it again cannot help (the caller must split it instead)."""

    def __init__(self, message: str, *, name: str, limit: int | float, subject: str = "request",
                 requested: int | None = None, retry_after: float | None = None, service: str = ""):
        metadata: dict = {"limit": limit, "limit_name": name}
        if requested is not None:
            metadata["requested"] = requested
        super().__init__(message, metadata=metadata)
        self.name = name
        self.limit = limit
        self.subject = subject
        self.requested = requested
        self.retry_after = retry_after
        self.service = service


class Unauthenticated(DomainError):
    """No token, or one the server does not accept; `problem` says which."""

    reason = "TOKEN_INVALID"

    def __init__(self, message: str, problem: str):
        super().__init__(message, metadata={"problem": problem})


class PermissionDenied(DomainError):
    """A valid token that does not allow the call."""

    reason = "PERMISSION_DENIED"


@dataclass
class ViolationCollector:
    """Gathers every field violation of a request before raising once."""

    violations: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str) -> None:
        self.violations.append(FieldViolation(field_path, description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)


class Unimplemented(DomainError):
    reason = "NOT_IMPLEMENTED"


def require_etag(resource: str, resource_id: int, version: int, etag: str) -> None:
    """ABORTED when a client's etag no longer matches: someone changed the resource first."""
    if etag and etag != str(version):
        raise Aborted(
            f"{resource} {resource_id} changed since etag {etag} (now {version}); re-read it",
            reason="ETAG_MISMATCH",
            metadata={f"{resource}_id": resource_id, "etag": etag, "current_etag": version},
        )
