from google.api import field_behavior_pb2 as _field_behavior_pb2
from trialplane.v1 import profiler_pb2 as _profiler_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StreamProfilerMetricsRequest(_message.Message):
    __slots__ = ("stream_id", "sequence", "batch")
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    stream_id: str
    sequence: int
    batch: _profiler_pb2.TrialProfilerMetricsBatch
    def __init__(self, stream_id: _Optional[str] = ..., sequence: _Optional[int] = ..., batch: _Optional[_Union[_profiler_pb2.TrialProfilerMetricsBatch, _Mapping]] = ...) -> None: ...

class StreamProfilerMetricsResponse(_message.Message):
    __slots__ = ("acknowledged_sequence", "rejected_sequence", "rejected_reason")
    ACKNOWLEDGED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    REJECTED_REASON_FIELD_NUMBER: _ClassVar[int]
    acknowledged_sequence: int
    rejected_sequence: int
    rejected_reason: str
    def __init__(self, acknowledged_sequence: _Optional[int] = ..., rejected_sequence: _Optional[int] = ..., rejected_reason: _Optional[str] = ...) -> None: ...

class ReportProfilerMetricsRequest(_message.Message):
    __slots__ = ("batch", "request_id")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch: _profiler_pb2.TrialProfilerMetricsBatch
    request_id: str
    def __init__(self, batch: _Optional[_Union[_profiler_pb2.TrialProfilerMetricsBatch, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReportProfilerMetricsResponse(_message.Message):
    __slots__ = ("samples_stored",)
    SAMPLES_STORED_FIELD_NUMBER: _ClassVar[int]
    samples_stored: int
    def __init__(self, samples_stored: _Optional[int] = ...) -> None: ...

class ListProfilerSeriesRequest(_message.Message):
    __slots__ = ("trial_id", "page_size", "page_token")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    page_size: int
    page_token: str
    def __init__(self, trial_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ProfilerSeries(_message.Message):
    __slots__ = ("labels", "sample_count", "first_timestamp", "last_timestamp", "first_batch", "last_batch")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    LAST_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FIRST_BATCH_FIELD_NUMBER: _ClassVar[int]
    LAST_BATCH_FIELD_NUMBER: _ClassVar[int]
    labels: _profiler_pb2.TrialProfilerMetricLabels
    sample_count: int
    first_timestamp: int
    last_timestamp: int
    first_batch: int
    last_batch: int
    def __init__(self, labels: _Optional[_Union[_profiler_pb2.TrialProfilerMetricLabels, _Mapping]] = ..., sample_count: _Optional[int] = ..., first_timestamp: _Optional[int] = ..., last_timestamp: _Optional[int] = ..., first_batch: _Optional[int] = ..., last_batch: _Optional[int] = ...) -> None: ...

class ListProfilerSeriesResponse(_message.Message):
    __slots__ = ("series", "next_page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[ProfilerSeries]
    next_page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[ProfilerSeries, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetProfilerSamplesRequest(_message.Message):
    __slots__ = ("series", "start_timestamp", "end_timestamp", "start_batch", "end_batch", "buckets", "page_size", "page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    START_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    END_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    START_BATCH_FIELD_NUMBER: _ClassVar[int]
    END_BATCH_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[_profiler_pb2.TrialProfilerMetricLabels]
    start_timestamp: int
    end_timestamp: int
    start_batch: int
    end_batch: int
    buckets: int
    page_size: int
    page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[_profiler_pb2.TrialProfilerMetricLabels, _Mapping]]] = ..., start_timestamp: _Optional[int] = ..., end_timestamp: _Optional[int] = ..., start_batch: _Optional[int] = ..., end_batch: _Optional[int] = ..., buckets: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ProfilerBucket(_message.Message):
    __slots__ = ("start_timestamp", "end_timestamp", "min", "max", "last", "count")
    START_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    END_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    start_timestamp: int
    end_timestamp: int
    min: float
    max: float
    last: float
    count: int
    def __init__(self, start_timestamp: _Optional[int] = ..., end_timestamp: _Optional[int] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., last: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class ProfilerSamples(_message.Message):
    __slots__ = ("labels", "samples", "buckets")
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    labels: _profiler_pb2.TrialProfilerMetricLabels
    samples: _profiler_pb2.TrialProfilerMetricsBatch
    buckets: _containers.RepeatedCompositeFieldContainer[ProfilerBucket]
    def __init__(self, labels: _Optional[_Union[_profiler_pb2.TrialProfilerMetricLabels, _Mapping]] = ..., samples: _Optional[_Union[_profiler_pb2.TrialProfilerMetricsBatch, _Mapping]] = ..., buckets: _Optional[_Iterable[_Union[ProfilerBucket, _Mapping]]] = ...) -> None: ...

class GetProfilerSamplesResponse(_message.Message):
    __slots__ = ("series", "next_page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[ProfilerSamples]
    next_page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[ProfilerSamples, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchProfilerSamplesRequest(_message.Message):
    __slots__ = ("series", "after_timestamp")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    AFTER_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[_profiler_pb2.TrialProfilerMetricLabels]
    after_timestamp: int
    def __init__(self, series: _Optional[_Iterable[_Union[_profiler_pb2.TrialProfilerMetricLabels, _Mapping]]] = ..., after_timestamp: _Optional[int] = ...) -> None: ...

class WatchProfilerSamplesResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: _profiler_pb2.TrialProfilerMetricsBatch
    def __init__(self, batch: _Optional[_Union[_profiler_pb2.TrialProfilerMetricsBatch, _Mapping]] = ...) -> None: ...
