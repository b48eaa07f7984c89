"""The resources of the control plane as plain data, free of gRPC and SQL.

Times are integers of microseconds since the Unix epoch (UTC). Hyperparameter
values are Python floats, ints, strings or bools; their Python type is their
declared type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TypeVar

HyperparameterValue = float | int | str | bool

_T = TypeVar("_T")


def shallow_copy(obj: _T) -> _T:
    """copy.copy of one of these dataclasses at a quarter of its cost (no
    reduce protocol); the fields are shared, as with copy.copy."""
    clone = object.__new__(type(obj))
    clone.__dict__.update(obj.__dict__)
    return clone


class StudyState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAILED = "FAILED"


class ObjectiveType(str, enum.Enum):
    MINIMIZE = "MINIMIZE"
    MAXIMIZE = "MAXIMIZE"


class ParameterType(str, enum.Enum):
    DOUBLE = "DOUBLE"
    INT = "INT"
    DISCRETE = "DISCRETE"
    CATEGORICAL = "CATEGORICAL"


class ParameterScale(str, enum.Enum):
    LINEAR = "LINEAR"
    LOG = "LOG"


class TrialState(str, enum.Enum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    STOPPING_CANCELED = "STOPPING_CANCELED"
    STOPPING_KILLED = "STOPPING_KILLED"
    STOPPING_COMPLETED = "STOPPING_COMPLETED"
    STOPPING_ERROR = "STOPPING_ERROR"
    CANCELED = "CANCELED"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    QUEUED = "QUEUED"
    PULLING = "PULLING"
    STARTING = "STARTING"
    RUNNING = "RUNNING"


class EarlyExitReason(str, enum.Enum):
    INVALID_HP = "INVALID_HP"
    INIT_INVALID_HP = "INIT_INVALID_HP"


class SourceInfoType(str, enum.Enum):
    INFERENCE = "INFERENCE"
    FINE_TUNING = "FINE_TUNING"


class WorkerState(str, enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    KILLED = "KILLED"
    ERROR = "ERROR"


@dataclass
class Objective:
    metric_name: str = ""
    type: ObjectiveType | None = None
    goal: float | None = None
    additional_metric_names: list[str] = field(default_factory=list)


@dataclass
class FeasibleSpace:
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass
class ParameterSpec:
    name: str = ""
    type: ParameterType | None = None
    feasible_space: FeasibleSpace = field(default_factory=FeasibleSpace)
    # None reads as LINEAR; kept apart so the study reads back as it was sent.
    scale: ParameterScale | None = None


@dataclass
class AlgorithmSpec:
    name: str = ""
    settings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class MetricDefinition:
    name: str = ""
    regex: str = ""


@dataclass
class CheckpointRetention:
    keep_best: int = 0
    keep_latest: int = 0


@dataclass
class Study:
    name: str = ""
    owner: str = ""
    description: str = ""
    objective: Objective = field(default_factory=Objective)
    parameters: list[ParameterSpec] = field(default_factory=list)
    algorithm: AlgorithmSpec = field(default_factory=AlgorithmSpec)
    early_stopping: AlgorithmSpec = field(default_factory=AlgorithmSpec)
    max_trials: int = 0
    parallel_trials: int = 0
    tags: list[str] = field(default_factory=list)
    metric_definitions: list[MetricDefinition] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    checkpoint_retention: CheckpointRetention = field(default_factory=CheckpointRetention)
    max_failed_trials: int = 0
    # Seconds a RUNNING trial may go without storing a metric; 0: no limit.
    metrics_timeout_seconds: float = 0.0
    id: int = 0
    state: StudyState = StudyState.ACTIVE
    state_message: str = ""
    trial_count: int = 0
    # Points SuggestTrials handed out: the index of the next one.
    suggestion_count: int = 0
    create_time: int = 0
    update_time: int = 0
    version: int = 0


@dataclass
class Resources:
    cpu: float = 0.0
    memory_bytes: int = 0
    gpu_type: str = ""
    gpu_count: int = 0
    ephemeral_storage_bytes: int = 0
    worker_count: int = 0

    @property
    def expected_workers(self) -> int:
        return max(1, self.worker_count)


@dataclass
class SourceInfo:
    checkpoint_uuid: str = ""
    model_id: int = 0
    model_version: int = 0
    type: SourceInfoType | None = None


@dataclass
class Trial:
    study_id: int = 0
    name: str = ""
    hyperparameters: dict[str, HyperparameterValue] = field(default_factory=dict)
    warm_start_checkpoint_uuid: str = ""
    metadata: dict = field(default_factory=dict)
    log_retention_days: int = 0
    max_runtime_seconds: float = 0.0
    retry_max_attempts: int = 0
    resources: Resources = field(default_factory=Resources)
    environment: dict[str, str] = field(default_factory=dict)
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    source_info: SourceInfo | None = None
    # Lifecycle, owned by the transition functions in trial_lifecycle.
    id: int = 0
    state: TrialState = TrialState.QUEUED
    restarts: int = 0
    trial_run_id: int = 1
    start_time: int | None = None
    end_time: int | None = None
    steps_completed: int = 0
    runner_state: str = ""
    early_exit_reason: EarlyExitReason | None = None
    failure_reason: str = ""
    task_ids: list[str] = field(default_factory=list)
    # Seconds spent RUNNING in finished stretches; the current stretch began
    # at running_since.
    running_seconds: float = 0.0
    running_since: int | None = None
    stop_deadline: int | None = None
    runtime_deadline: int | None = None
    create_time: int = 0
    update_time: int = 0
    version: int = 0
    metric_definitions: list[MetricDefinition] = field(default_factory=list)
    # The SuggestTrials caller the trial was made for; "" for CreateTrial.
    client_id: str = ""
    # Kept up to date by metric and checkpoint reports, read-only elsewhere.
    searcher_metric_value: float | None = None
    best_validation: dict | None = None
    latest_validation: dict | None = None
    checkpoint_size: int = 0
    checkpoint_count: int = 0
    # Filled in when a trial is read: {group: {name: summary dict}} and the
    # best checkpoint as a dict.
    summary_metrics: dict = field(default_factory=dict)
    best_checkpoint: dict | None = None

    def wall_clock_seconds(self, now: int) -> float:
        current = (now - self.running_since) / 1e6 if self.running_since is not None else 0.0
        return self.running_seconds + max(0.0, current)


@dataclass
class TrialEvent:
    trial_id: int
    sequence: int
    time: int
    from_state: TrialState
    to_state: TrialState
    trial_run_id: int
    message: str = ""
    details: dict = field(default_factory=dict)


@dataclass
class Worker:
    trial_id: int = 0
    type: str = ""
    tags: list[str] = field(default_factory=list)
    address: str = ""
    rank: int = 0
    slots: int = 0
    id: int = 0
    trial_run_id: int = 0
    state: WorkerState = WorkerState.PENDING
    # What the report that set the state said.
    state_message: str = ""
    last_heartbeat: int | None = None
    create_time: int = 0
    update_time: int = 0
