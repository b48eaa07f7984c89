import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trialplane.v1 import study_pb2 as _study_pb2
from trialplane.v1 import trial_pb2 as _trial_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateStudyRequest(_message.Message):
    __slots__ = ("study", "request_id")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    study: _study_pb2.Study
    request_id: str
    def __init__(self, study: _Optional[_Union[_study_pb2.Study, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("id", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "name_pattern", "states", "tags", "created_after", "created_before", "owner", "order_by", "read_mask")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    NAME_PATTERN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    name_pattern: str
    states: _containers.RepeatedScalarFieldContainer[_study_pb2.StudyState]
    tags: _containers.RepeatedScalarFieldContainer[str]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    owner: str
    order_by: str
    read_mask: _field_mask_pb2.FieldMask
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., name_pattern: _Optional[str] = ..., states: _Optional[_Iterable[_Union[_study_pb2.StudyState, str]]] = ..., tags: _Optional[_Iterable[str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[str] = ..., order_by: _Optional[str] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies", "next_page_token")
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[_study_pb2.Study]
    next_page_token: str
    def __init__(self, studies: _Optional[_Iterable[_Union[_study_pb2.Study, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateStudyRequest(_message.Message):
    __slots__ = ("study", "update_mask")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    study: _study_pb2.Study
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, study: _Optional[_Union[_study_pb2.Study, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteStudyRequest(_message.Message):
    __slots__ = ("id", "force", "etag")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    id: int
    force: bool
    etag: str
    def __init__(self, id: _Optional[int] = ..., force: _Optional[bool] = ..., etag: _Optional[str] = ...) -> None: ...

class SuggestTrialsRequest(_message.Message):
    __slots__ = ("study_id", "count", "client_id", "start")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    study_id: int
    count: int
    client_id: str
    start: bool
    def __init__(self, study_id: _Optional[int] = ..., count: _Optional[int] = ..., client_id: _Optional[str] = ..., start: _Optional[bool] = ...) -> None: ...

class SuggestTrialsResponse(_message.Message):
    __slots__ = ("trials", "study_done")
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    STUDY_DONE_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[_trial_pb2.Trial]
    study_done: bool
    def __init__(self, trials: _Optional[_Iterable[_Union[_trial_pb2.Trial, _Mapping]]] = ..., study_done: _Optional[bool] = ...) -> None: ...

class CheckEarlyStoppingRequest(_message.Message):
    __slots__ = ("study_id", "trial_ids")
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    TRIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    study_id: int
    trial_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, study_id: _Optional[int] = ..., trial_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class EarlyStoppingDecision(_message.Message):
    __slots__ = ("trial_id", "should_stop", "reason", "rule", "step", "threshold", "value")
    TRIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    trial_id: int
    should_stop: bool
    reason: str
    rule: str
    step: int
    threshold: float
    value: float
    def __init__(self, trial_id: _Optional[int] = ..., should_stop: _Optional[bool] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ..., step: _Optional[int] = ..., threshold: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class CheckEarlyStoppingResponse(_message.Message):
    __slots__ = ("decisions",)
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    decisions: _containers.RepeatedCompositeFieldContainer[EarlyStoppingDecision]
    def __init__(self, decisions: _Optional[_Iterable[_Union[EarlyStoppingDecision, _Mapping]]] = ...) -> None: ...

class StopStudyRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CompleteStudyRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ValidateAlgorithmSettingsRequest(_message.Message):
    __slots__ = ("algorithm", "early_stopping", "parameters")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    algorithm: _study_pb2.AlgorithmSpec
    early_stopping: _study_pb2.EarlyStoppingSpec
    parameters: _containers.RepeatedCompositeFieldContainer[_study_pb2.ParameterSpec]
    def __init__(self, algorithm: _Optional[_Union[_study_pb2.AlgorithmSpec, _Mapping]] = ..., early_stopping: _Optional[_Union[_study_pb2.EarlyStoppingSpec, _Mapping]] = ..., parameters: _Optional[_Iterable[_Union[_study_pb2.ParameterSpec, _Mapping]]] = ...) -> None: ...

class ValidateAlgorithmSettingsResponse(_message.Message):
    __slots__ = ("algorithms", "early_stopping_rules")
    ALGORITHMS_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_RULES_FIELD_NUMBER: _ClassVar[int]
    algorithms: _containers.RepeatedScalarFieldContainer[str]
    early_stopping_rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, algorithms: _Optional[_Iterable[str]] = ..., early_stopping_rules: _Optional[_Iterable[str]] = ...) -> None: ...
