import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKER_STATE_UNSPECIFIED: _ClassVar[WorkerState]
    WORKER_STATE_PENDING: _ClassVar[WorkerState]
    WORKER_STATE_RUNNING: _ClassVar[WorkerState]
    WORKER_STATE_COMPLETED: _ClassVar[WorkerState]
    WORKER_STATE_KILLED: _ClassVar[WorkerState]
    WORKER_STATE_ERROR: _ClassVar[WorkerState]
WORKER_STATE_UNSPECIFIED: WorkerState
WORKER_STATE_PENDING: WorkerState
WORKER_STATE_RUNNING: WorkerState
WORKER_STATE_COMPLETED: WorkerState
WORKER_STATE_KILLED: WorkerState
WORKER_STATE_ERROR: WorkerState

class Worker(_message.Message):
    __slots__ = ("id", "trial_id", "trial_run_id", "type", "state", "tags", "last_heartbeat_time", "address", "rank", "slots", "create_time", "update_time", "state_message")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    trial_id: int
    trial_run_id: int
    type: str
    state: WorkerState
    tags: _containers.RepeatedScalarFieldContainer[str]
    last_heartbeat_time: _timestamp_pb2.Timestamp
    address: str
    rank: int
    slots: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    state_message: str
    def __init__(self, id: _Optional[int] = ..., trial_id: _Optional[int] = ..., trial_run_id: _Optional[int] = ..., type: _Optional[str] = ..., state: _Optional[_Union[WorkerState, str]] = ..., tags: _Optional[_Iterable[str]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., address: _Optional[str] = ..., rank: _Optional[int] = ..., slots: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_message: _Optional[str] = ...) -> None: ...
