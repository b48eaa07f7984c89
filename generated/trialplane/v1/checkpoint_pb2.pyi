import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CheckpointState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKPOINT_STATE_UNSPECIFIED: _ClassVar[CheckpointState]
    CHECKPOINT_STATE_ACTIVE: _ClassVar[CheckpointState]
    CHECKPOINT_STATE_COMPLETED: _ClassVar[CheckpointState]
    CHECKPOINT_STATE_ERROR: _ClassVar[CheckpointState]
    CHECKPOINT_STATE_PARTIALLY_DELETED: _ClassVar[CheckpointState]
    CHECKPOINT_STATE_DELETED: _ClassVar[CheckpointState]
CHECKPOINT_STATE_UNSPECIFIED: CheckpointState
CHECKPOINT_STATE_ACTIVE: CheckpointState
CHECKPOINT_STATE_COMPLETED: CheckpointState
CHECKPOINT_STATE_ERROR: CheckpointState
CHECKPOINT_STATE_PARTIALLY_DELETED: CheckpointState
CHECKPOINT_STATE_DELETED: CheckpointState

class CheckpointWorkload(_message.Message):
    __slots__ = ("uuid", "end_time", "state", "resources", "total_batches", "metadata")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    end_time: _timestamp_pb2.Timestamp
    state: CheckpointState
    resources: _containers.ScalarMap[str, int]
    total_batches: int
    metadata: _struct_pb2.Struct
    def __init__(self, uuid: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[CheckpointState, str]] = ..., resources: _Optional[_Mapping[str, int]] = ..., total_batches: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("uuid", "trial_id", "trial_run_id", "state", "resources", "steps_completed", "metadata", "storage_uri", "size_bytes", "create_time", "end_time", "validation_metrics")
    class ResourcesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    UUID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STEPS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    STORAGE_URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_METRICS_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    trial_id: int
    trial_run_id: int
    state: CheckpointState
    resources: _containers.ScalarMap[str, int]
    steps_completed: int
    metadata: _struct_pb2.Struct
    storage_uri: str
    size_bytes: int
    create_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    validation_metrics: _struct_pb2.Struct
    def __init__(self, uuid: _Optional[str] = ..., trial_id: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., state: _Optional[_Union[CheckpointState, str]] = ..., resources: _Optional[_Mapping[str, int]] = ..., steps_completed: _Optional[int] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., storage_uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., validation_metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
