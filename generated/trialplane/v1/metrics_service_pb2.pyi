from google.api import field_behavior_pb2 as _field_behavior_pb2
from trialplane.v1 import errors_pb2 as _errors_pb2
from trialplane.v1 import log_pb2 as _log_pb2
from trialplane.v1 import metrics_pb2 as _metrics_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MetricAxis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_AXIS_UNSPECIFIED: _ClassVar[MetricAxis]
    METRIC_AXIS_STEP: _ClassVar[MetricAxis]
    METRIC_AXIS_WALL_TIME: _ClassVar[MetricAxis]
    METRIC_AXIS_EPOCH_TIME: _ClassVar[MetricAxis]

class DebugEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEBUG_EVENT_KIND_UNSPECIFIED: _ClassVar[DebugEventKind]
    DEBUG_EVENT_KIND_VECTOR: _ClassVar[DebugEventKind]
    DEBUG_EVENT_KIND_PLOT: _ClassVar[DebugEventKind]
    DEBUG_EVENT_KIND_IMAGE: _ClassVar[DebugEventKind]
METRIC_AXIS_UNSPECIFIED: MetricAxis
METRIC_AXIS_STEP: MetricAxis
METRIC_AXIS_WALL_TIME: MetricAxis
METRIC_AXIS_EPOCH_TIME: MetricAxis
DEBUG_EVENT_KIND_UNSPECIFIED: DebugEventKind
DEBUG_EVENT_KIND_VECTOR: DebugEventKind
DEBUG_EVENT_KIND_PLOT: DebugEventKind
DEBUG_EVENT_KIND_IMAGE: DebugEventKind

class ReportMetricsRequest(_message.Message):
    __slots__ = ("metrics", "group", "request_id")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    metrics: _metrics_pb2.TrialMetrics
    group: str
    request_id: str
    def __init__(self, metrics: _Optional[_Union[_metrics_pb2.TrialMetrics, _Mapping]] = ..., group: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ReportMetricsResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class AddEventsRequest(_message.Message):
    __slots__ = ("reports", "events", "logs", "request_id")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[ReportMetricsRequest]
    events: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.TrialEventItem]
    logs: _containers.RepeatedCompositeFieldContainer[_log_pb2.TaskLog]
    request_id: str
    def __init__(self, reports: _Optional[_Iterable[_Union[ReportMetricsRequest, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[_metrics_pb2.TrialEventItem, _Mapping]]] = ..., logs: _Optional[_Iterable[_Union[_log_pb2.TaskLog, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("index", "list", "reason", "error_reason")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    index: int
    list: str
    reason: str
    error_reason: _errors_pb2.ErrorReason
    def __init__(self, index: _Optional[int] = ..., list: _Optional[str] = ..., reason: _Optional[str] = ..., error_reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ...) -> None: ...

class AddEventsResponse(_message.Message):
    __slots__ = ("added", "errors")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    added: int
    errors: _containers.RepeatedCompositeFieldContainer[ItemError]
    def __init__(self, added: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[ItemError, _Mapping]]] = ...) -> None: ...

class ReportMetricColumnsRequest(_message.Message):
    __slots__ = ("trial_id", "trial_run_id", "blocks", "request_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    trial_run_id: int
    blocks: _containers.RepeatedCompositeFieldContainer[MetricColumns]
    request_id: str
    def __init__(self, trial_id: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., blocks: _Optional[_Iterable[_Union[MetricColumns, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class MetricColumns(_message.Message):
    __slots__ = ("group", "names", "steps", "report_times", "values", "missing_indices")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REPORT_TIMES_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MISSING_INDICES_FIELD_NUMBER: _ClassVar[int]
    group: str
    names: _containers.RepeatedScalarFieldContainer[str]
    steps: _containers.RepeatedScalarFieldContainer[int]
    report_times: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    missing_indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, group: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., steps: _Optional[_Iterable[int]] = ..., report_times: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., missing_indices: _Optional[_Iterable[int]] = ...) -> None: ...

class RejectedMetricRow(_message.Message):
    __slots__ = ("block_index", "row_index", "step", "reason", "error_reason")
    BLOCK_INDEX_FIELD_NUMBER: _ClassVar[int]
    ROW_INDEX_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    block_index: int
    row_index: int
    step: int
    reason: str
    error_reason: _errors_pb2.ErrorReason
    def __init__(self, block_index: _Optional[int] = ..., row_index: _Optional[int] = ..., step: _Optional[int] = ..., reason: _Optional[str] = ..., error_reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ...) -> None: ...

class ReportMetricColumnsResponse(_message.Message):
    __slots__ = ("rows_stored", "points_stored", "rows_repeated", "rows_rejected", "rejected_rows")
    ROWS_STORED_FIELD_NUMBER: _ClassVar[int]
    POINTS_STORED_FIELD_NUMBER: _ClassVar[int]
    ROWS_REPEATED_FIELD_NUMBER: _ClassVar[int]
    ROWS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    rows_stored: int
    points_stored: int
    rows_repeated: int
    rows_rejected: int
    rejected_rows: _containers.RepeatedCompositeFieldContainer[RejectedMetricRow]
    def __init__(self, rows_stored: _Optional[int] = ..., points_stored: _Optional[int] = ..., rows_repeated: _Optional[int] = ..., rows_rejected: _Optional[int] = ..., rejected_rows: _Optional[_Iterable[_Union[RejectedMetricRow, _Mapping]]] = ...) -> None: ...

class ListMetricNamesRequest(_message.Message):
    __slots__ = ("trial_ids", "page_size", "page_token")
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trial_ids: _containers.RepeatedScalarFieldContainer[int]
    page_size: int
    page_token: str
    def __init__(self, trial_ids: _Optional[_Iterable[int]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMetricNamesResponse(_message.Message):
    __slots__ = ("metrics", "next_page_token")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.MetricSummary]
    next_page_token: str
    def __init__(self, metrics: _Optional[_Iterable[_Union[_metrics_pb2.MetricSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetMetricHistoryRequest(_message.Message):
    __slots__ = ("trial_ids", "group", "names", "start_step", "end_step", "buckets", "axis", "page_size", "page_token", "include_archived")
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    END_STEP_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    AXIS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    trial_ids: _containers.RepeatedScalarFieldContainer[int]
    group: str
    names: _containers.RepeatedScalarFieldContainer[str]
    start_step: int
    end_step: int
    buckets: int
    axis: MetricAxis
    page_size: int
    page_token: str
    include_archived: bool
    def __init__(self, trial_ids: _Optional[_Iterable[int]] = ..., group: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ..., start_step: _Optional[int] = ..., end_step: _Optional[int] = ..., buckets: _Optional[int] = ..., axis: _Optional[_Union[MetricAxis, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_archived: _Optional[bool] = ...) -> None: ...

class MetricSeries(_message.Message):
    __slots__ = ("trial_id", "group", "name", "steps", "values", "times", "trial_run_ids", "archived", "buckets")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    group: str
    name: str
    steps: _containers.RepeatedScalarFieldContainer[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    times: _containers.RepeatedScalarFieldContainer[int]
    trial_run_ids: _containers.RepeatedScalarFieldContainer[int]
    archived: _containers.RepeatedScalarFieldContainer[bool]
    buckets: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.MetricBucket]
    def __init__(self, trial_id: _Optional[int] = ..., group: _Optional[str] = ..., name: _Optional[str] = ..., steps: _Optional[_Iterable[int]] = ..., values: _Optional[_Iterable[float]] = ..., times: _Optional[_Iterable[int]] = ..., trial_run_ids: _Optional[_Iterable[int]] = ..., archived: _Optional[_Iterable[bool]] = ..., buckets: _Optional[_Iterable[_Union[_metrics_pb2.MetricBucket, _Mapping]]] = ...) -> None: ...

class GetMetricHistoryResponse(_message.Message):
    __slots__ = ("series", "next_page_token")
    SERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[MetricSeries]
    next_page_token: str
    def __init__(self, series: _Optional[_Iterable[_Union[MetricSeries, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetLatestMetricsRequest(_message.Message):
    __slots__ = ("trial_ids", "group", "page_size", "page_token")
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trial_ids: _containers.RepeatedScalarFieldContainer[int]
    group: str
    page_size: int
    page_token: str
    def __init__(self, trial_ids: _Optional[_Iterable[int]] = ..., group: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetLatestMetricsResponse(_message.Message):
    __slots__ = ("summaries", "next_page_token")
    SUMMARIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    summaries: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.MetricSummary]
    next_page_token: str
    def __init__(self, summaries: _Optional[_Iterable[_Union[_metrics_pb2.MetricSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchMetricsRequest(_message.Message):
    __slots__ = ("trial_id", "names", "after_step")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    AFTER_STEP_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    names: _containers.RepeatedScalarFieldContainer[str]
    after_step: int
    def __init__(self, trial_id: _Optional[int] = ..., names: _Optional[_Iterable[str]] = ..., after_step: _Optional[int] = ...) -> None: ...

class WatchMetricsResponse(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedCompositeFieldContainer[MetricSeries]
    def __init__(self, series: _Optional[_Iterable[_Union[MetricSeries, _Mapping]]] = ...) -> None: ...

class ListDebugEventsRequest(_message.Message):
    __slots__ = ("trial_id", "kinds", "metric", "page_size", "page_token")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    kinds: _containers.RepeatedScalarFieldContainer[DebugEventKind]
    metric: str
    page_size: int
    page_token: str
    def __init__(self, trial_id: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[DebugEventKind, str]]] = ..., metric: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDebugEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[_metrics_pb2.TrialEventItem]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[_metrics_pb2.TrialEventItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
