from google.api import field_behavior_pb2 as _field_behavior_pb2
from trialplane.v1 import log_pb2 as _log_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AddLogsRequest(_message.Message):
    __slots__ = ("logs", "request_id")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[_log_pb2.TaskLog]
    request_id: str
    def __init__(self, logs: _Optional[_Iterable[_Union[_log_pb2.TaskLog, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class AddLogsResponse(_message.Message):
    __slots__ = ("added", "metric_points")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    METRIC_POINTS_FIELD_NUMBER: _ClassVar[int]
    added: int
    metric_points: int
    def __init__(self, added: _Optional[int] = ..., metric_points: _Optional[int] = ...) -> None: ...

class ListLogsRequest(_message.Message):
    __slots__ = ("trial_id", "from_tail", "page_size", "page_token", "levels", "worker")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_TAIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    from_tail: bool
    page_size: int
    page_token: str
    levels: _containers.RepeatedScalarFieldContainer[_log_pb2.LogLevel]
    worker: str
    def __init__(self, trial_id: _Optional[int] = ..., from_tail: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., levels: _Optional[_Iterable[_Union[_log_pb2.LogLevel, str]]] = ..., worker: _Optional[str] = ...) -> None: ...

class ListLogsResponse(_message.Message):
    __slots__ = ("logs", "next_page_token")
    LOGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[_log_pb2.TaskLog]
    next_page_token: str
    def __init__(self, logs: _Optional[_Iterable[_Union[_log_pb2.TaskLog, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchLogsRequest(_message.Message):
    __slots__ = ("trial_id", "after_id")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    after_id: int
    def __init__(self, trial_id: _Optional[int] = ..., after_id: _Optional[int] = ...) -> None: ...

class WatchLogsResponse(_message.Message):
    __slots__ = ("logs",)
    LOGS_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[_log_pb2.TaskLog]
    def __init__(self, logs: _Optional[_Iterable[_Union[_log_pb2.TaskLog, _Mapping]]] = ...) -> None: ...

class DownloadLogsRequest(_message.Message):
    __slots__ = ("trial_id", "format")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    format: str
    def __init__(self, trial_id: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class DownloadLogsResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...
