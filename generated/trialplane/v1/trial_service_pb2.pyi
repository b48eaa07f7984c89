import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trialplane.v1 import trial_pb2 as _trial_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateTrialRequest(_message.Message):
    __slots__ = ("trial", "request_id")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    trial: _trial_pb2.Trial
    request_id: str
    def __init__(self, trial: _Optional[_Union[_trial_pb2.Trial, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetTrialRequest(_message.Message):
    __slots__ = ("id", "read_mask")
    ID_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    id: int
    read_mask: _field_mask_pb2.FieldMask
    def __init__(self, id: _Optional[int] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListTrialsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "study_id", "states", "tags", "created_after", "created_before", "name_pattern", "order_by", "read_mask")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NAME_PATTERN_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    study_id: int
    states: _containers.RepeatedScalarFieldContainer[_trial_pb2.TrialState]
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    name_pattern: str
    order_by: str
    read_mask: _field_mask_pb2.FieldMask
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., study_id: _Optional[int] = ..., states: _Optional[_Iterable[_Union[_trial_pb2.TrialState, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., name_pattern: _Optional[str] = ..., order_by: _Optional[str] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListTrialsResponse(_message.Message):
    __slots__ = ("trials", "next_page_token")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[_trial_pb2.Trial]
    next_page_token: str
    def __init__(self, trials: _Optional[_Iterable[_Union[_trial_pb2.Trial, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateTrialRequest(_message.Message):
    __slots__ = ("trial", "update_mask")
    TRIAL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    trial: _trial_pb2.Trial
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, trial: _Optional[_Union[_trial_pb2.Trial, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteTrialRequest(_message.Message):
    __slots__ = ("id", "force", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: int
    force: bool
    etag: str
    def __init__(self, id: _Optional[int] = ..., force: _Optional[bool] = ..., etag: _Optional[str] = ...) -> None: ...

class StopTrialRequest(_message.Message):
    __slots__ = ("id", "grace_period", "message", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    grace_period: _duration_pb2.Duration
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class KillTrialRequest(_message.Message):
    __slots__ = ("id", "message", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class PauseTrialRequest(_message.Message):
    __slots__ = ("id", "message", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ActivateTrialRequest(_message.Message):
    __slots__ = ("id", "message", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestartTrialRequest(_message.Message):
    __slots__ = ("id", "resources", "message", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    resources: _trial_pb2.Resources
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., resources: _Optional[_Union[_trial_pb2.Resources, _Mapping]] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReportTrialStateRequest(_message.Message):
    __slots__ = ("id", "state", "trial_run_id", "message", "failure_reason", "runner_state", "steps_completed", "task_id", "details", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    RUNNER_STATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    state: _trial_pb2.TrialState
    trial_run_id: int
    message: str
    failure_reason: str
    runner_state: str
    steps_completed: int
    task_id: str
    details: _struct_pb2.Struct
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., state: _Optional[_Union[_trial_pb2.TrialState, str]] = ..., trial_run_id: _Optional[int] = ..., message: _Optional[str] = ..., failure_reason: _Optional[str] = ..., runner_state: _Optional[str] = ..., steps_completed: _Optional[int] = ..., task_id: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReportEarlyExitRequest(_message.Message):
    __slots__ = ("id", "early_exit", "trial_run_id", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    EARLY_EXIT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    early_exit: _trial_pb2.TrialEarlyExit
    trial_run_id: int
    request_id: str
    def __init__(self, id: _Optional[int] = ..., early_exit: _Optional[_Union[_trial_pb2.TrialEarlyExit, _Mapping]] = ..., trial_run_id: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class CompleteTrialRequest(_message.Message):
    __slots__ = ("id", "final_metrics", "steps_completed", "trial_run_id", "message", "etag", "request_id")
    class FinalMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    FINAL_METRICS_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    final_metrics: _containers.ScalarMap[str, float]
    steps_completed: int
    trial_run_id: int
    message: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[int] = ..., final_metrics: _Optional[_Mapping[str, float]] = ..., steps_completed: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., message: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListTrialEventsRequest(_message.Message):
    __slots__ = ("trial_id", "page_size", "page_token", "after_sequence", "descending")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    page_size: int
    page_token: str
    after_sequence: int
    descending: bool
    def __init__(self, trial_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., after_sequence: _Optional[int] = ..., descending: _Optional[bool] = ...) -> None: ...

class ListTrialEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_trial_pb2.TrialEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_trial_pb2.TrialEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchTrialEventsRequest(_message.Message):
    __slots__ = ("trial_id", "after_sequence")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    after_sequence: int
    def __init__(self, trial_id: _Optional[int] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchTrialEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _trial_pb2.TrialEvent
    def __init__(self, event: _Optional[_Union[_trial_pb2.TrialEvent, _Mapping]] = ...) -> None: ...
