import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ObjectiveType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBJECTIVE_TYPE_UNSPECIFIED: _ClassVar[ObjectiveType]
    OBJECTIVE_TYPE_MINIMIZE: _ClassVar[ObjectiveType]
    OBJECTIVE_TYPE_MAXIMIZE: _ClassVar[ObjectiveType]

class ParameterType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_TYPE_UNSPECIFIED: _ClassVar[ParameterType]
    PARAMETER_TYPE_DOUBLE: _ClassVar[ParameterType]
    PARAMETER_TYPE_INT: _ClassVar[ParameterType]
    PARAMETER_TYPE_DISCRETE: _ClassVar[ParameterType]
    PARAMETER_TYPE_CATEGORICAL: _ClassVar[ParameterType]

class ParameterScale(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PARAMETER_SCALE_UNSPECIFIED: _ClassVar[ParameterScale]
    PARAMETER_SCALE_LINEAR: _ClassVar[ParameterScale]
    PARAMETER_SCALE_LOG: _ClassVar[ParameterScale]

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_STATE_ACTIVE: _ClassVar[StudyState]
    STUDY_STATE_COMPLETED: _ClassVar[StudyState]
    STUDY_STATE_STOPPED: _ClassVar[StudyState]
    STUDY_STATE_FAILED: _ClassVar[StudyState]
OBJECTIVE_TYPE_UNSPECIFIED: ObjectiveType
OBJECTIVE_TYPE_MINIMIZE: ObjectiveType
OBJECTIVE_TYPE_MAXIMIZE: ObjectiveType
PARAMETER_TYPE_UNSPECIFIED: ParameterType
PARAMETER_TYPE_DOUBLE: ParameterType
PARAMETER_TYPE_INT: ParameterType
PARAMETER_TYPE_DISCRETE: ParameterType
PARAMETER_TYPE_CATEGORICAL: ParameterType
PARAMETER_SCALE_UNSPECIFIED: ParameterScale
PARAMETER_SCALE_LINEAR: ParameterScale
PARAMETER_SCALE_LOG: ParameterScale
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_STATE_ACTIVE: StudyState
STUDY_STATE_COMPLETED: StudyState
STUDY_STATE_STOPPED: StudyState
STUDY_STATE_FAILED: StudyState

class Objective(_message.Message):
    __slots__ = ("metric_name", "type", "goal", "additional_metric_names")
    METRIC_NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    GOAL_FIELD_NUMBER: _ClassVar[int]
    ADDITIONAL_METRIC_NAMES_FIELD_NUMBER: _ClassVar[int]
    metric_name: str
    type: ObjectiveType
    goal: float
    additional_metric_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, metric_name: _Optional[str] = ..., type: _Optional[_Union[ObjectiveType, str]] = ..., goal: _Optional[float] = ..., additional_metric_names: _Optional[_Iterable[str]] = ...) -> None: ...

class FeasibleSpace(_message.Message):
    __slots__ = ("min", "max", "step", "values", "categories")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    step: float
    values: _containers.RepeatedScalarFieldContainer[float]
    categories: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., step: _Optional[float] = ..., values: _Optional[_Iterable[float]] = ..., categories: _Optional[_Iterable[str]] = ...) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ("name", "type", "feasible_space", "scale")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FEASIBLE_SPACE_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: ParameterType
    feasible_space: FeasibleSpace
    scale: ParameterScale
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[ParameterType, str]] = ..., feasible_space: _Optional[_Union[FeasibleSpace, _Mapping]] = ..., scale: _Optional[_Union[ParameterScale, str]] = ...) -> None: ...

class AlgorithmSetting(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class AlgorithmSpec(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _containers.RepeatedCompositeFieldContainer[AlgorithmSetting]
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Iterable[_Union[AlgorithmSetting, _Mapping]]] = ...) -> None: ...

class EarlyStoppingSpec(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _containers.RepeatedCompositeFieldContainer[AlgorithmSetting]
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Iterable[_Union[AlgorithmSetting, _Mapping]]] = ...) -> None: ...

class MetricDefinition(_message.Message):
    __slots__ = ("name", "regex")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    regex: str
    def __init__(self, name: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class CheckpointRetention(_message.Message):
    __slots__ = ("keep_best", "keep_latest")
    KEEP_BEST_FIELD_NUMBER: _ClassVar[int]
    KEEP_LATEST_FIELD_NUMBER: _ClassVar[int]
    keep_best: int
    keep_latest: int
    def __init__(self, keep_best: _Optional[int] = ..., keep_latest: _Optional[int] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("id", "name", "owner", "description", "objective", "parameters", "algorithm", "early_stopping", "max_trials", "parallel_trials", "state", "tags", "metric_definitions", "metadata", "trial_count", "create_time", "update_time", "etag", "checkpoint_retention", "max_failed_trials", "state_message", "suggestion_count", "metrics_timeout")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    MAX_TRIALS_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_TRIALS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METRIC_DEFINITIONS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_RETENTION_FIELD_NUMBER: _ClassVar[int]
    MAX_FAILED_TRIALS_FIELD_NUMBER: _ClassVar[int]
    STATE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    METRICS_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    owner: str
    description: str
    objective: Objective
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    algorithm: AlgorithmSpec
    early_stopping: EarlyStoppingSpec
    max_trials: int
    parallel_trials: int
    state: StudyState
    tags: _containers.RepeatedScalarFieldContainer[str]
    metric_definitions: _containers.RepeatedCompositeFieldContainer[MetricDefinition]
    metadata: _struct_pb2.Struct
    trial_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    etag: str
    checkpoint_retention: CheckpointRetention
    max_failed_trials: int
    state_message: str
    suggestion_count: int
    metrics_timeout: _duration_pb2.Duration
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., owner: _Optional[str] = ..., description: _Optional[str] = ..., objective: _Optional[_Union[Objective, _Mapping]] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., algorithm: _Optional[_Union[AlgorithmSpec, _Mapping]] = ..., early_stopping: _Optional[_Union[EarlyStoppingSpec, _Mapping]] = ..., max_trials: _Optional[int] = ..., parallel_trials: _Optional[int] = ..., state: _Optional[_Union[StudyState, str]] = ..., tags: _Optional[_Iterable[str]] = ..., metric_definitions: _Optional[_Iterable[_Union[MetricDefinition, _Mapping]]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., trial_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., checkpoint_retention: _Optional[_Union[CheckpointRetention, _Mapping]] = ..., max_failed_trials: _Optional[int] = ..., state_message: _Optional[str] = ..., suggestion_count: _Optional[int] = ..., metrics_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
