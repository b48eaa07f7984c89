import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trialplane.v1 import checkpoint_pb2 as _checkpoint_pb2
from trialplane.v1 import metrics_pb2 as _metrics_pb2
from trialplane.v1 import study_pb2 as _study_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_ACTIVE: _ClassVar[TrialState]
    TRIAL_STATE_PAUSED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPING_CANCELED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPING_KILLED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPING_COMPLETED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPING_ERROR: _ClassVar[TrialState]
    TRIAL_STATE_CANCELED: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETED: _ClassVar[TrialState]
    TRIAL_STATE_ERROR: _ClassVar[TrialState]
    TRIAL_STATE_QUEUED: _ClassVar[TrialState]
    TRIAL_STATE_PULLING: _ClassVar[TrialState]
    TRIAL_STATE_STARTING: _ClassVar[TrialState]
    TRIAL_STATE_RUNNING: _ClassVar[TrialState]

class TrialEarlyExitReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_EARLY_EXIT_REASON_UNSPECIFIED: _ClassVar[TrialEarlyExitReason]
    TRIAL_EARLY_EXIT_REASON_INVALID_HP: _ClassVar[TrialEarlyExitReason]
    TRIAL_EARLY_EXIT_REASON_INIT_INVALID_HP: _ClassVar[TrialEarlyExitReason]

class TrialSourceInfoType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_SOURCE_INFO_TYPE_UNSPECIFIED: _ClassVar[TrialSourceInfoType]
    TRIAL_SOURCE_INFO_TYPE_INFERENCE: _ClassVar[TrialSourceInfoType]
    TRIAL_SOURCE_INFO_TYPE_FINE_TUNING: _ClassVar[TrialSourceInfoType]
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_ACTIVE: TrialState
TRIAL_STATE_PAUSED: TrialState
TRIAL_STATE_STOPPING_CANCELED: TrialState
TRIAL_STATE_STOPPING_KILLED: TrialState
TRIAL_STATE_STOPPING_COMPLETED: TrialState
TRIAL_STATE_STOPPING_ERROR: TrialState
TRIAL_STATE_CANCELED: TrialState
TRIAL_STATE_COMPLETED: TrialState
TRIAL_STATE_ERROR: TrialState
TRIAL_STATE_QUEUED: TrialState
TRIAL_STATE_PULLING: TrialState
TRIAL_STATE_STARTING: TrialState
TRIAL_STATE_RUNNING: TrialState
TRIAL_EARLY_EXIT_REASON_UNSPECIFIED: TrialEarlyExitReason
TRIAL_EARLY_EXIT_REASON_INVALID_HP: TrialEarlyExitReason
TRIAL_EARLY_EXIT_REASON_INIT_INVALID_HP: TrialEarlyExitReason
TRIAL_SOURCE_INFO_TYPE_UNSPECIFIED: TrialSourceInfoType
TRIAL_SOURCE_INFO_TYPE_INFERENCE: TrialSourceInfoType
TRIAL_SOURCE_INFO_TYPE_FINE_TUNING: TrialSourceInfoType

class ParameterValue(_message.Message):
    __slots__ = ("double_value", "int_value", "string_value", "bool_value")
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    double_value: float
    int_value: int
    string_value: str
    bool_value: bool
    def __init__(self, double_value: _Optional[float] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class GpuResources(_message.Message):
    __slots__ = ("type", "count")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    type: str
    count: int
    def __init__(self, type: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpu", "memory_bytes", "gpu", "ephemeral_storage_bytes", "worker_count")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    EPHEMERAL_STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WORKER_COUNT_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory_bytes: int
    gpu: GpuResources
    ephemeral_storage_bytes: int
    worker_count: int
    def __init__(self, cpu: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., gpu: _Optional[_Union[GpuResources, _Mapping]] = ..., ephemeral_storage_bytes: _Optional[int] = ..., worker_count: _Optional[int] = ...) -> None: ...

class StoppingCondition(_message.Message):
    __slots__ = ("max_runtime",)
    MAX_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    max_runtime: _duration_pb2.Duration
    def __init__(self, max_runtime: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RetryStrategy(_message.Message):
    __slots__ = ("max_attempts",)
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    def __init__(self, max_attempts: _Optional[int] = ...) -> None: ...

class TrialSourceInfo(_message.Message):
    __slots__ = ("checkpoint_uuid", "model_id", "model_version", "type")
    CHECKPOINT_UUID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    checkpoint_uuid: str
    model_id: int
    model_version: int
    type: TrialSourceInfoType
    def __init__(self, checkpoint_uuid: _Optional[str] = ..., model_id: _Optional[int] = ..., model_version: _Optional[int] = ..., type: _Optional[_Union[TrialSourceInfoType, str]] = ...) -> None: ...

class TrialEarlyExit(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: TrialEarlyExitReason
    def __init__(self, reason: _Optional[_Union[TrialEarlyExitReason, str]] = ...) -> None: ...

class RendezvousInfo(_message.Message):
    __slots__ = ("addresses", "rank", "slots", "trial_run_id")
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    addresses: _containers.RepeatedScalarFieldContainer[str]
    rank: int
    slots: _containers.RepeatedScalarFieldContainer[int]
    trial_run_id: int
    def __init__(self, addresses: _Optional[_Iterable[str]] = ..., rank: _Optional[int] = ..., slots: _Optional[_Iterable[int]] = ..., trial_run_id: _Optional[int] = ...) -> None: ...

class TrialEvent(_message.Message):
    __slots__ = ("trial_id", "sequence", "time", "from_state", "to_state", "trial_run_id", "message", "details")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    sequence: int
    time: _timestamp_pb2.Timestamp
    from_state: TrialState
    to_state: TrialState
    trial_run_id: int
    message: str
    details: _struct_pb2.Struct
    def __init__(self, trial_id: _Optional[int] = ..., sequence: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., from_state: _Optional[_Union[TrialState, str]] = ..., to_state: _Optional[_Union[TrialState, str]] = ..., trial_run_id: _Optional[int] = ..., message: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("id", "study_id", "name", "hyperparameters", "state", "restarts", "trial_run_id", "start_time", "end_time", "steps_completed", "best_validation", "latest_validation", "best_checkpoint", "runner_state", "wall_clock_seconds", "warm_start_checkpoint_uuid", "total_checkpoint_size_bytes", "checkpoint_count", "summary_metrics", "searcher_metric_value", "metadata", "log_retention_days", "early_exit_reason", "failure_reason", "stopping_condition", "retry_strategy", "resources", "environment", "notes", "tags", "source_info", "task_ids", "create_time", "update_time", "etag", "stop_deadline", "metric_definitions", "client_id")
    class HyperparametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: ParameterValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[ParameterValue, _Mapping]] = ...) -> None: ...
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    BEST_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    LATEST_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    BEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    RUNNER_STATE_FIELD_NUMBER: _ClassVar[int]
    WALL_CLOCK_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARM_START_CHECKPOINT_UUID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CHECKPOINT_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_METRICS_FIELD_NUMBER: _ClassVar[int]
    SEARCHER_METRIC_VALUE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    LOG_RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    EARLY_EXIT_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    STOPPING_CONDITION_FIELD_NUMBER: _ClassVar[int]
    RETRY_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_INFO_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    STOP_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    METRIC_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    study_id: int
    name: str
    hyperparameters: _containers.MessageMap[str, ParameterValue]
    state: TrialState
    restarts: int
    trial_run_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    steps_completed: int
    best_validation: _metrics_pb2.MetricsWorkload
    latest_validation: _metrics_pb2.MetricsWorkload
    best_checkpoint: _checkpoint_pb2.CheckpointWorkload
    runner_state: str
    wall_clock_seconds: float
    warm_start_checkpoint_uuid: str
    total_checkpoint_size_bytes: int
    checkpoint_count: int
    summary_metrics: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.MetricSummary]
    searcher_metric_value: float
    metadata: _struct_pb2.Struct
    log_retention_days: int
    early_exit_reason: TrialEarlyExitReason
    failure_reason: str
    stopping_condition: StoppingCondition
    retry_strategy: RetryStrategy
    resources: Resources
    environment: _containers.ScalarMap[str, str]
    notes: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    source_info: TrialSourceInfo
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    stop_deadline: _timestamp_pb2.Timestamp
    metric_definitions: _containers.RepeatedCompositeFieldContainer[_study_pb2.MetricDefinition]
    client_id: str
    def __init__(self, id: _Optional[int] = ..., study_id: _Optional[int] = ..., name: _Optional[str] = ..., hyperparameters: _Optional[_Mapping[str, ParameterValue]] = ..., state: _Optional[_Union[TrialState, str]] = ..., restarts: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., steps_completed: _Optional[int] = ..., best_validation: _Optional[_Union[_metrics_pb2.MetricsWorkload, _Mapping]] = ..., latest_validation: _Optional[_Union[_metrics_pb2.MetricsWorkload, _Mapping]] = ..., best_checkpoint: _Optional[_Union[_checkpoint_pb2.CheckpointWorkload, _Mapping]] = ..., runner_state: _Optional[str] = ..., wall_clock_seconds: _Optional[float] = ..., warm_start_checkpoint_uuid: _Optional[str] = ..., total_checkpoint_size_bytes: _Optional[int] = ..., checkpoint_count: _Optional[int] = ..., summary_metrics: _Optional[_Iterable[_Union[_metrics_pb2.MetricSummary, _Mapping]]] = ..., searcher_metric_value: _Optional[float] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., log_retention_days: _Optional[int] = ..., early_exit_reason: _Optional[_Union[TrialEarlyExitReason, str]] = ..., failure_reason: _Optional[str] = ..., stopping_condition: _Optional[_Union[StoppingCondition, _Mapping]] = ..., retry_strategy: _Optional[_Union[RetryStrategy, _Mapping]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., environment: _Optional[_Mapping[str, str]] = ..., notes: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., source_info: _Optional[_Union[TrialSourceInfo, _Mapping]] = ..., task_ids: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., stop_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metric_definitions: _Optional[_Iterable[_Union[_study_pb2.MetricDefinition, _Mapping]]] = ..., client_id: _Optional[str] = ...) -> None: ...
