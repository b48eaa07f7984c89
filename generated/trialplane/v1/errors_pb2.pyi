from trialplane.v1 import trial_pb2 as _trial_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_FIELD: _ClassVar[ErrorReason]
    ERROR_REASON_RESOURCE_NOT_FOUND: _ClassVar[ErrorReason]
    ERROR_REASON_RESOURCE_EXISTS: _ClassVar[ErrorReason]
    ERROR_REASON_ILLEGAL_TRANSITION: _ClassVar[ErrorReason]
    ERROR_REASON_ETAG_MISMATCH: _ClassVar[ErrorReason]
    ERROR_REASON_STALE_TRIAL_RUN: _ClassVar[ErrorReason]
    ERROR_REASON_RESOURCE_IN_USE: _ClassVar[ErrorReason]
    ERROR_REASON_STUDY_FULL: _ClassVar[ErrorReason]
    ERROR_REASON_INVALID_PAGE_TOKEN: _ClassVar[ErrorReason]
    ERROR_REASON_RENDEZVOUS_INCOMPLETE: _ClassVar[ErrorReason]
    ERROR_REASON_STORAGE_UNAVAILABLE: _ClassVar[ErrorReason]
    ERROR_REASON_INTERNAL: _ClassVar[ErrorReason]
    ERROR_REASON_CONCURRENT_MODIFICATION: _ClassVar[ErrorReason]
    ERROR_REASON_LIMIT_EXCEEDED: _ClassVar[ErrorReason]
    ERROR_REASON_REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    ERROR_REASON_METRIC_CONFLICT: _ClassVar[ErrorReason]
    ERROR_REASON_NOT_IMPLEMENTED: _ClassVar[ErrorReason]
    ERROR_REASON_MALFORMED_REQUEST: _ClassVar[ErrorReason]
    ERROR_REASON_RESPONSE_TOO_LARGE: _ClassVar[ErrorReason]
    ERROR_REASON_TOKEN_INVALID: _ClassVar[ErrorReason]
    ERROR_REASON_PERMISSION_DENIED: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
ERROR_REASON_INVALID_FIELD: ErrorReason
ERROR_REASON_RESOURCE_NOT_FOUND: ErrorReason
ERROR_REASON_RESOURCE_EXISTS: ErrorReason
ERROR_REASON_ILLEGAL_TRANSITION: ErrorReason
ERROR_REASON_ETAG_MISMATCH: ErrorReason
ERROR_REASON_STALE_TRIAL_RUN: ErrorReason
ERROR_REASON_RESOURCE_IN_USE: ErrorReason
ERROR_REASON_STUDY_FULL: ErrorReason
ERROR_REASON_INVALID_PAGE_TOKEN: ErrorReason
ERROR_REASON_RENDEZVOUS_INCOMPLETE: ErrorReason
ERROR_REASON_STORAGE_UNAVAILABLE: ErrorReason
ERROR_REASON_INTERNAL: ErrorReason
ERROR_REASON_CONCURRENT_MODIFICATION: ErrorReason
ERROR_REASON_LIMIT_EXCEEDED: ErrorReason
ERROR_REASON_REQUEST_ID_REUSED: ErrorReason
ERROR_REASON_METRIC_CONFLICT: ErrorReason
ERROR_REASON_NOT_IMPLEMENTED: ErrorReason
ERROR_REASON_MALFORMED_REQUEST: ErrorReason
ERROR_REASON_RESPONSE_TOO_LARGE: ErrorReason
ERROR_REASON_TOKEN_INVALID: ErrorReason
ERROR_REASON_PERMISSION_DENIED: ErrorReason

class IllegalTransitionDetails(_message.Message):
    __slots__ = ("trial_id", "current_state", "requested_state", "allowed_states")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STATE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_STATE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_STATES_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    current_state: _trial_pb2.TrialState
    requested_state: _trial_pb2.TrialState
    allowed_states: _containers.RepeatedScalarFieldContainer[_trial_pb2.TrialState]
    def __init__(self, trial_id: _Optional[int] = ..., current_state: _Optional[_Union[_trial_pb2.TrialState, str]] = ..., requested_state: _Optional[_Union[_trial_pb2.TrialState, str]] = ..., allowed_states: _Optional[_Iterable[_Union[_trial_pb2.TrialState, str]]] = ...) -> None: ...

class StaleTrialRunDetails(_message.Message):
    __slots__ = ("trial_id", "reported_trial_run_id", "current_trial_run_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    reported_trial_run_id: int
    current_trial_run_id: int
    def __init__(self, trial_id: _Optional[int] = ..., reported_trial_run_id: _Optional[int] = ..., current_trial_run_id: _Optional[int] = ...) -> None: ...
