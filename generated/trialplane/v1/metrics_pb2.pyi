import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metrics(_message.Message):
    __slots__ = ("avg_metrics",)
    AVG_METRICS_FIELD_NUMBER: _ClassVar[int]
    avg_metrics: _struct_pb2.Struct
    def __init__(self, avg_metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class TrialMetrics(_message.Message):
    __slots__ = ("trial_id", "trial_run_id", "steps_completed", "report_time", "metrics")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    trial_run_id: int
    steps_completed: int
    report_time: _timestamp_pb2.Timestamp
    metrics: Metrics
    def __init__(self, trial_id: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., steps_completed: _Optional[int] = ..., report_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class MetricsWorkload(_message.Message):
    __slots__ = ("end_time", "metrics", "total_batches")
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    end_time: _timestamp_pb2.Timestamp
    metrics: Metrics
    total_batches: int
    def __init__(self, end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., total_batches: _Optional[int] = ...) -> None: ...

class MetricSummary(_message.Message):
    __slots__ = ("trial_id", "group", "name", "last", "min", "max", "mean", "count", "recent_mean", "last_step", "last_time")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RECENT_MEAN_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    group: str
    name: str
    last: float
    min: float
    max: float
    mean: float
    count: int
    recent_mean: float
    last_step: int
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, trial_id: _Optional[int] = ..., group: _Optional[str] = ..., name: _Optional[str] = ..., last: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., mean: _Optional[float] = ..., count: _Optional[int] = ..., recent_mean: _Optional[float] = ..., last_step: _Optional[int] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ScalarEvent(_message.Message):
    __slots__ = ("metric", "variant", "iteration", "value")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    metric: str
    variant: str
    iteration: int
    value: float
    def __init__(self, metric: _Optional[str] = ..., variant: _Optional[str] = ..., iteration: _Optional[int] = ..., value: _Optional[float] = ...) -> None: ...

class VectorEvent(_message.Message):
    __slots__ = ("metric", "variant", "iteration", "values")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    metric: str
    variant: str
    iteration: int
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, metric: _Optional[str] = ..., variant: _Optional[str] = ..., iteration: _Optional[int] = ..., values: _Optional[_Iterable[float]] = ...) -> None: ...

class PlotEvent(_message.Message):
    __slots__ = ("metric", "variant", "iteration", "plot_json")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    PLOT_JSON_FIELD_NUMBER: _ClassVar[int]
    metric: str
    variant: str
    iteration: int
    plot_json: str
    def __init__(self, metric: _Optional[str] = ..., variant: _Optional[str] = ..., iteration: _Optional[int] = ..., plot_json: _Optional[str] = ...) -> None: ...

class ImageEvent(_message.Message):
    __slots__ = ("metric", "variant", "iteration", "url", "key")
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VARIANT_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    metric: str
    variant: str
    iteration: int
    url: str
    key: str
    def __init__(self, metric: _Optional[str] = ..., variant: _Optional[str] = ..., iteration: _Optional[int] = ..., url: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class TrialEventItem(_message.Message):
    __slots__ = ("trial_id", "time", "scalar", "vector", "plot", "image")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SCALAR_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    PLOT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    time: _timestamp_pb2.Timestamp
    scalar: ScalarEvent
    vector: VectorEvent
    plot: PlotEvent
    image: ImageEvent
    def __init__(self, trial_id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scalar: _Optional[_Union[ScalarEvent, _Mapping]] = ..., vector: _Optional[_Union[VectorEvent, _Mapping]] = ..., plot: _Optional[_Union[PlotEvent, _Mapping]] = ..., image: _Optional[_Union[ImageEvent, _Mapping]] = ...) -> None: ...

class MetricBucket(_message.Message):
    __slots__ = ("first_step", "last_step", "first", "last", "min", "max", "count", "first_time", "last_time")
    FIRST_STEP_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    first_step: int
    last_step: int
    first: float
    last: float
    min: float
    max: float
    count: int
    first_time: _timestamp_pb2.Timestamp
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, first_step: _Optional[int] = ..., last_step: _Optional[int] = ..., first: _Optional[float] = ..., last: _Optional[float] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., count: _Optional[int] = ..., first_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
