from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProfilerMetricType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROFILER_METRIC_TYPE_UNSPECIFIED: _ClassVar[ProfilerMetricType]
    PROFILER_METRIC_TYPE_SYSTEM: _ClassVar[ProfilerMetricType]
    PROFILER_METRIC_TYPE_TIMING: _ClassVar[ProfilerMetricType]
    PROFILER_METRIC_TYPE_MISC: _ClassVar[ProfilerMetricType]
PROFILER_METRIC_TYPE_UNSPECIFIED: ProfilerMetricType
PROFILER_METRIC_TYPE_SYSTEM: ProfilerMetricType
PROFILER_METRIC_TYPE_TIMING: ProfilerMetricType
PROFILER_METRIC_TYPE_MISC: ProfilerMetricType

class TrialProfilerMetricLabels(_message.Message):
    __slots__ = ("trial_id", "name", "agent_id", "gpu_uuid", "metric_type")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    GPU_UUID_FIELD_NUMBER: _ClassVar[int]
    METRIC_TYPE_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    name: str
    agent_id: str
    gpu_uuid: str
    metric_type: ProfilerMetricType
    def __init__(self, trial_id: _Optional[int] = ..., name: _Optional[str] = ..., agent_id: _Optional[str] = ..., gpu_uuid: _Optional[str] = ..., metric_type: _Optional[_Union[ProfilerMetricType, str]] = ...) -> None: ...

class TrialProfilerMetricsBatch(_message.Message):
    __slots__ = ("values", "batches", "timestamps", "labels")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    batches: _containers.RepeatedScalarFieldContainer[int]
    timestamps: _containers.RepeatedScalarFieldContainer[int]
    labels: TrialProfilerMetricLabels
    def __init__(self, values: _Optional[_Iterable[float]] = ..., batches: _Optional[_Iterable[int]] = ..., timestamps: _Optional[_Iterable[int]] = ..., labels: _Optional[_Union[TrialProfilerMetricLabels, _Mapping]] = ...) -> None: ...
