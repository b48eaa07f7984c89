"""Rows <-> domain objects. Queried fields are columns; the rest is a JSON body."""

from __future__ import annotations

import json
import math

from ...domain.listing import fold
from ...domain.models import (
    AlgorithmSpec,
    CheckpointRetention,
    EarlyExitReason,
    FeasibleSpace,
    MetricDefinition,
    Objective,
    ObjectiveType,
    ParameterScale,
    ParameterSpec,
    ParameterType,
    Resources,
    SourceInfo,
    SourceInfoType,
    Study,
    StudyState,
    Trial,
    TrialEvent,
    TrialState,
    Worker,
    WorkerState,
    shallow_copy,
)
from ...domain.trial_lifecycle import copied
from .statements import Row


def _fields(obj) -> dict:
    """A flat dataclass as a dict of its fields. asdict() copies every
    value deeply, which costs more than the JSON encoding that follows."""
    return dict(vars(obj))


def nan_to_null(x: float | None) -> float | None:
    """A float as stored: NaN is NULL, so every engine reads it back the same way."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def null_to_nan(x) -> float:
    return math.nan if x is None else float(x)


def dumps(value) -> str:
    # allow_nan keeps NaN/Infinity round-tripping through Python's json.
    return json.dumps(value, separators=(",", ":"), allow_nan=True)


def _enum(cls, value):
    return cls(value) if value else None


def _enum_value(value):
    return value.value if value is not None else None


# --- studies ---------------------------------------------------------------

def study_row(s: Study) -> dict:
    body = {
        "description": s.description,
        "objective": {
            "metric_name": s.objective.metric_name,
            "type": _enum_value(s.objective.type),
            "goal": s.objective.goal,
            "additional_metric_names": s.objective.additional_metric_names,
        },
        "parameters": [
            {
                "name": p.name,
                "type": _enum_value(p.type),
                "scale": p.scale.value if p.scale else None,
                "feasible_space": _fields(p.feasible_space),
            }
            for p in s.parameters
        ],
        "algorithm": {"name": s.algorithm.name, "settings": s.algorithm.settings},
        "early_stopping": {"name": s.early_stopping.name, "settings": s.early_stopping.settings},
        "max_trials": s.max_trials,
        "parallel_trials": s.parallel_trials,
        "tags": s.tags,
        "metric_definitions": [_fields(d) for d in s.metric_definitions],
        "metadata": s.metadata,
        "checkpoint_retention": _fields(s.checkpoint_retention),
        "max_failed_trials": s.max_failed_trials,
        "metrics_timeout_seconds": s.metrics_timeout_seconds,
        "state_message": s.state_message,
    }
    return {
        "name": s.name,
        "name_folded": fold(s.name),
        "owner": s.owner,
        "state": s.state.value,
        "trial_count": s.trial_count,
        "suggestion_count": s.suggestion_count,
        "create_time": s.create_time,
        "update_time": s.update_time,
        "version": s.version,
        "body": dumps(body),
    }


# Parsed study bodies by study id, with the body text they were parsed from.
ParsedStudies = dict[int, tuple[str, Study]]
MAX_PARSED_STUDIES = 10_000


def study_from_row(row: Row, parsed: ParsedStudies | None = None) -> Study:
    """parsed: a cache of parsed bodies; a row whose body text is the cached
    one is not parsed again (its columns are still read)."""
    if parsed is not None:
        entry = parsed.get(row["id"])
        if entry is not None and entry[0] == row["body"]:
            s = shallow_copy(entry[1])
            s.name, s.owner, s.state = row["name"], row["owner"], StudyState(row["state"])
            s.trial_count, s.suggestion_count = row["trial_count"], row["suggestion_count"]
            s.create_time, s.update_time, s.version = row["create_time"], row["update_time"], row["version"]
            return s
        s = study_from_row(row)
        if len(parsed) >= MAX_PARSED_STUDIES:
            parsed.clear()
        parsed[row["id"]] = (row["body"], shallow_copy(s))
        return s
    b = json.loads(row["body"])
    obj = b["objective"]
    return Study(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        state=StudyState(row["state"]),
        trial_count=row["trial_count"],
        create_time=row["create_time"],
        update_time=row["update_time"],
        version=row["version"],
        description=b["description"],
        objective=Objective(
            metric_name=obj["metric_name"],
            type=_enum(ObjectiveType, obj["type"]),
            goal=obj["goal"],
            additional_metric_names=obj["additional_metric_names"],
        ),
        parameters=[
            ParameterSpec(
                name=p["name"],
                type=_enum(ParameterType, p["type"]),
                scale=ParameterScale(p["scale"]) if p.get("scale") else None,
                feasible_space=FeasibleSpace(**p["feasible_space"]),
            )
            for p in b["parameters"]
        ],
        algorithm=AlgorithmSpec(b["algorithm"]["name"], [tuple(x) for x in b["algorithm"]["settings"]]),
        early_stopping=AlgorithmSpec(b["early_stopping"]["name"], [tuple(x) for x in b["early_stopping"]["settings"]]),
        max_trials=b["max_trials"],
        parallel_trials=b["parallel_trials"],
        tags=b["tags"],
        metric_definitions=[MetricDefinition(**d) for d in b["metric_definitions"]],
        metadata=b["metadata"],
        checkpoint_retention=CheckpointRetention(**b.get("checkpoint_retention", {})),
        max_failed_trials=b.get("max_failed_trials", 0),
        metrics_timeout_seconds=b.get("metrics_timeout_seconds", 0.0),
        state_message=b.get("state_message", ""),
        suggestion_count=row["suggestion_count"],
    )


# --- trials ----------------------------------------------------------------

def trial_row(t: Trial) -> dict:
    body = {
        "hyperparameters": t.hyperparameters,
        "warm_start_checkpoint_uuid": t.warm_start_checkpoint_uuid,
        "metadata": t.metadata,
        "log_retention_days": t.log_retention_days,
        "max_runtime_seconds": t.max_runtime_seconds,
        "retry_max_attempts": t.retry_max_attempts,
        "resources": _fields(t.resources),
        "environment": t.environment,
        "notes": t.notes,
        "tags": t.tags,
        "source_info": None
        if t.source_info is None
        else {**_fields(t.source_info), "type": _enum_value(t.source_info.type)},
        "runner_state": t.runner_state,
        "early_exit_reason": _enum_value(t.early_exit_reason),
        "failure_reason": t.failure_reason,
        "task_ids": t.task_ids,
        "running_seconds": t.running_seconds,
        "running_since": t.running_since,
        "metric_definitions": [_fields(d) for d in t.metric_definitions],
    }
    return {
        "study_id": t.study_id or None,
        "name": t.name,
        "name_folded": fold(t.name),
        "state": t.state.value,
        "restarts": t.restarts,
        "trial_run_id": t.trial_run_id,
        "steps_completed": t.steps_completed,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "start_time": t.start_time,
        "end_time": t.end_time,
        "stop_deadline": t.stop_deadline,
        "log_retention_days": t.log_retention_days,
        "runtime_deadline": t.runtime_deadline,
        "version": t.version,
        "searcher_metric_value": t.searcher_metric_value,
        "best_validation": None if t.best_validation is None else dumps(t.best_validation),
        "latest_validation": None if t.latest_validation is None else dumps(t.latest_validation),
        "checkpoint_size": t.checkpoint_size,
        "checkpoint_count": t.checkpoint_count,
        "client_id": t.client_id,
        "body": dumps(body),
    }


def with_validation(t: Trial, row: Row) -> None:
    """Sets the validation fields of a trial from its row's columns
    (latest_validation, best_validation, searcher_metric_value)."""
    t.latest_validation = _json_or_none(row["latest_validation"])
    t.best_validation = _json_or_none(row["best_validation"])
    t.searcher_metric_value = row["searcher_metric_value"]


def _json_or_none(text):
    return None if text is None else json.loads(text)


# Parsed trial bodies by trial id, with the body text they were parsed from.
ParsedTrialBodies = dict[int, tuple[str, Trial]]
MAX_PARSED_TRIALS = 4096


def keep_parsed_body(parsed: ParsedTrialBodies, body: str, trial: Trial) -> None:
    """body: the trial's body column as stored."""
    if len(parsed) >= MAX_PARSED_TRIALS:
        parsed.clear()
    kept = copied(trial)
    kept.summary_metrics, kept.best_checkpoint = {}, None
    parsed[trial.id] = (body, kept)


def trial_from_row(row: Row, parsed: ParsedTrialBodies | None = None) -> Trial:
    """parsed: a cache of parsed bodies; a row whose body text is the cached
    one is not parsed again (its other columns are always read: metric and
    checkpoint reports change them). Each call returns a trial with
    containers of its own."""
    if parsed is None:
        return _with_columns(_from_body(json.loads(row["body"])), row)
    body = row["body"]
    entry = parsed.get(row["id"])
    if entry is not None and entry[0] == body:
        return _with_columns(copied(entry[1]), row)
    trial = _with_columns(_from_body(json.loads(body)), row)
    keep_parsed_body(parsed, body, trial)
    return trial


def _from_body(b: dict) -> Trial:
    src = b["source_info"]
    return Trial(
        hyperparameters=b["hyperparameters"],
        warm_start_checkpoint_uuid=b["warm_start_checkpoint_uuid"],
        metadata=b["metadata"],
        log_retention_days=b["log_retention_days"],
        max_runtime_seconds=b["max_runtime_seconds"],
        retry_max_attempts=b["retry_max_attempts"],
        resources=Resources(**b["resources"]),
        environment=b["environment"],
        notes=b["notes"],
        tags=b["tags"],
        source_info=None if src is None else SourceInfo(**{**src, "type": _enum(SourceInfoType, src["type"])}),
        runner_state=b["runner_state"],
        early_exit_reason=_enum(EarlyExitReason, b["early_exit_reason"]),
        failure_reason=b["failure_reason"],
        task_ids=b["task_ids"],
        running_seconds=b["running_seconds"],
        running_since=b["running_since"],
        metric_definitions=[MetricDefinition(**d) for d in b.get("metric_definitions", [])],
    )


def _with_columns(t: Trial, row: Row) -> Trial:
    """t with the fields the trial's row keeps in columns of their own."""
    t.id = row["id"]
    t.study_id = row["study_id"] or 0
    t.name = row["name"]
    t.state = TrialState(row["state"])
    t.restarts = row["restarts"]
    t.trial_run_id = row["trial_run_id"]
    t.steps_completed = row["steps_completed"]
    t.create_time = row["create_time"]
    t.update_time = row["update_time"]
    t.start_time = row["start_time"]
    t.end_time = row["end_time"]
    t.stop_deadline = row["stop_deadline"]
    t.runtime_deadline = row["runtime_deadline"]
    t.version = row["version"]
    t.searcher_metric_value = row["searcher_metric_value"]
    t.best_validation = _json_or_none(row["best_validation"])
    t.latest_validation = _json_or_none(row["latest_validation"])
    t.checkpoint_size = row["checkpoint_size"]
    t.checkpoint_count = row["checkpoint_count"]
    t.client_id = row["client_id"]
    return t


def event_from_row(row: Row) -> TrialEvent:
    return TrialEvent(
        trial_id=row["trial_id"],
        sequence=row["sequence"],
        time=row["time"],
        from_state=TrialState(row["from_state"]),
        to_state=TrialState(row["to_state"]),
        trial_run_id=row["trial_run_id"],
        message=row["message"],
        details=json.loads(row["details"]),
    )


# --- workers ---------------------------------------------------------------

def worker_row(w: Worker) -> dict:
    return {
        "trial_id": w.trial_id,
        "trial_run_id": w.trial_run_id,
        "type": w.type,
        "state": w.state.value,
        "state_message": w.state_message,
        "rank": w.rank,
        "slots": w.slots,
        "address": w.address,
        "tags": dumps(w.tags),
        "last_heartbeat": w.last_heartbeat,
        "create_time": w.create_time,
        "update_time": w.update_time,
    }


def worker_from_row(row: Row) -> Worker:
    return Worker(
        id=row["id"],
        trial_id=row["trial_id"],
        trial_run_id=row["trial_run_id"],
        type=row["type"],
        state=WorkerState(row["state"]),
        state_message=row["state_message"],
        rank=row["rank"],
        slots=row["slots"],
        address=row["address"],
        tags=json.loads(row["tags"]),
        last_heartbeat=row["last_heartbeat"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


