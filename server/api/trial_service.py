"""trialplane.v1.TrialService: trials, their transitions and their history."""

from __future__ import annotations

from collections.abc import Callable

from trialplane.v1 import (
    checkpoint_pb2,
    metrics_pb2,
    study_pb2,
    trial_pb2,
    trial_service_pb2,
    trial_service_pb2_grpc,
)

from ..domain import listing, study_rules, validation
from ..domain import metrics as m
from ..domain import principal as who
from ..domain import trial_lifecycle as lifecycle
from ..domain.errors import ViolationCollector, invalid
from ..domain.models import (
    EarlyExitReason,
    MetricDefinition,
    Resources,
    SourceInfo,
    SourceInfoType,
    Study,
    Trial,
    TrialEvent,
    TrialState,
)
from ..services.change_feed import ChangeFeed
from ..services.follow import follow, trials_ended
from ..storage.interface import Storage
from . import convert
from .errors import rpc
from .limits import DEFAULT_LIMITS, BatchLimits

TRIAL_STATES = convert.EnumMap(trial_pb2.TrialState, "TRIAL_STATE_", TrialState)
EARLY_EXIT = convert.EnumMap(trial_pb2.TrialEarlyExitReason, "TRIAL_EARLY_EXIT_REASON_", EarlyExitReason)
SOURCE_TYPES = convert.EnumMap(trial_pb2.TrialSourceInfoType, "TRIAL_SOURCE_INFO_TYPE_", SourceInfoType)

UPDATABLE = {
    "name", "notes", "tags", "metadata", "log_retention_days", "stopping_condition",
    "retry_strategy", "resources", "environment", "metric_definitions",
}
# Update paths whose domain attributes are named differently.
UPDATE_ATTRIBUTES = {"stopping_condition": ["max_runtime_seconds"], "retry_strategy": ["retry_max_attempts"]}
EVENTS_DEFAULT_PAGE = 100


def hyperparameters_from_proto(values) -> dict:
    out = {}
    for name, value in values.items():
        kind = value.WhichOneof("kind")
        out[name] = None if kind is None else getattr(value, kind)
    return out


def hyperparameter_to_proto(value) -> trial_pb2.ParameterValue:
    if isinstance(value, bool):
        return trial_pb2.ParameterValue(bool_value=value)
    if isinstance(value, int):
        return trial_pb2.ParameterValue(int_value=value)
    if isinstance(value, float):
        return trial_pb2.ParameterValue(double_value=value)
    return trial_pb2.ParameterValue(string_value=str(value))


def resources_from_proto(r: trial_pb2.Resources) -> Resources:
    return Resources(
        cpu=r.cpu,
        memory_bytes=r.memory_bytes,
        gpu_type=r.gpu.type,
        gpu_count=r.gpu.count,
        ephemeral_storage_bytes=r.ephemeral_storage_bytes,
        worker_count=r.worker_count,
    )


def resources_to_proto(r: Resources) -> trial_pb2.Resources:
    return trial_pb2.Resources(
        cpu=r.cpu,
        memory_bytes=r.memory_bytes,
        gpu=convert.present(trial_pb2.GpuResources(type=r.gpu_type, count=r.gpu_count)),
        ephemeral_storage_bytes=r.ephemeral_storage_bytes,
        worker_count=r.worker_count,
    )


def trial_from_proto(p: trial_pb2.Trial) -> Trial:
    source = None
    if p.HasField("source_info"):
        s = p.source_info
        source = SourceInfo(s.checkpoint_uuid, s.model_id, s.model_version, SOURCE_TYPES.to_domain(s.type, "trial.source_info.type"))
    return Trial(
        study_id=p.study_id,
        name=p.name,
        hyperparameters=hyperparameters_from_proto(p.hyperparameters),
        warm_start_checkpoint_uuid=p.warm_start_checkpoint_uuid,
        metadata=convert.struct_to_dict(p.metadata),
        log_retention_days=p.log_retention_days,
        max_runtime_seconds=convert.duration_seconds(p.stopping_condition.max_runtime, "trial.stopping_condition.max_runtime"),
        retry_max_attempts=p.retry_strategy.max_attempts,
        resources=resources_from_proto(p.resources),
        environment=dict(p.environment),
        notes=p.notes,
        tags=list(p.tags),
        source_info=source,
        metric_definitions=[MetricDefinition(d.name, d.regex) for d in p.metric_definitions],
    )


def _summaries(t: Trial) -> list[metrics_pb2.MetricSummary]:
    return [
        convert.summary_to_proto(t.id, group, name, t.summary_metrics[group][name])
        for group in sorted(t.summary_metrics) for name in sorted(t.summary_metrics[group])
    ]


def workload_to_proto(w: dict | None) -> metrics_pb2.MetricsWorkload | None:
    if w is None:
        return None
    return metrics_pb2.MetricsWorkload(
        end_time=convert.timestamp(w["end_time"]),
        metrics=metrics_pb2.Metrics(avg_metrics=convert.dict_to_struct(w["metrics"])),
        total_batches=w["total_batches"],
    )


def checkpoint_workload_to_proto(w: dict | None) -> checkpoint_pb2.CheckpointWorkload | None:
    if w is None:
        return None
    return checkpoint_pb2.CheckpointWorkload(
        uuid=w["uuid"],
        end_time=convert.timestamp(w["end_time"]),
        state=checkpoint_pb2.CheckpointState.Value("CHECKPOINT_STATE_" + w["state"]),
        resources=w["resources"],
        total_batches=w["total_batches"],
        metadata=convert.dict_to_struct(w["metadata"]),
    )


def _source_info(t: Trial):
    s = t.source_info
    if s is None:
        return None
    return trial_pb2.TrialSourceInfo(
        checkpoint_uuid=s.checkpoint_uuid, model_id=s.model_id, model_version=s.model_version,
        type=SOURCE_TYPES.to_proto(s.type),
    )


# Top-level fields that cost noticeably to encode, built only when wanted.
_EXPENSIVE = {
    "hyperparameters": lambda t: {k: hyperparameter_to_proto(v) for k, v in t.hyperparameters.items()},
    "metadata": lambda t: convert.dict_to_struct(t.metadata),
    "stopping_condition": lambda t: trial_pb2.StoppingCondition(max_runtime=convert.duration(t.max_runtime_seconds))
    if t.max_runtime_seconds else None,
    "retry_strategy": lambda t: convert.present(trial_pb2.RetryStrategy(max_attempts=t.retry_max_attempts)),
    "resources": lambda t: convert.present(resources_to_proto(t.resources)),
    "source_info": _source_info,
    "metric_definitions": lambda t: [study_pb2.MetricDefinition(name=d.name, regex=d.regex) for d in t.metric_definitions],
    "best_validation": lambda t: workload_to_proto(t.best_validation),
    "latest_validation": lambda t: workload_to_proto(t.latest_validation),
    "best_checkpoint": lambda t: checkpoint_workload_to_proto(t.best_checkpoint),
    "summary_metrics": _summaries,
    "start_time": lambda t: convert.timestamp(t.start_time),
    "end_time": lambda t: convert.timestamp(t.end_time),
    "create_time": lambda t: convert.timestamp(t.create_time),
    "update_time": lambda t: convert.timestamp(t.update_time),
    "stop_deadline": lambda t: convert.timestamp(t.stop_deadline),
}


def trial_to_proto(t: Trial, now: int, fields: set[str] | None = None) -> trial_pb2.Trial:
    """The Trial message; with `fields` (top-level names of a read mask) the
    costly fields outside it are not built."""
    wanted = _EXPENSIVE if fields is None else {k: f for k, f in _EXPENSIVE.items() if k in fields}
    return trial_pb2.Trial(
        id=t.id,
        study_id=t.study_id,
        name=t.name,
        state=TRIAL_STATES.to_proto(t.state),
        restarts=t.restarts,
        trial_run_id=t.trial_run_id,
        steps_completed=t.steps_completed,
        runner_state=t.runner_state,
        wall_clock_seconds=t.wall_clock_seconds(now),
        warm_start_checkpoint_uuid=t.warm_start_checkpoint_uuid,
        log_retention_days=t.log_retention_days,
        early_exit_reason=EARLY_EXIT.to_proto(t.early_exit_reason),
        failure_reason=t.failure_reason,
        environment=t.environment,
        notes=t.notes,
        tags=t.tags,
        task_ids=t.task_ids,
        etag=str(t.version),
        searcher_metric_value=t.searcher_metric_value,
        total_checkpoint_size_bytes=t.checkpoint_size,
        checkpoint_count=t.checkpoint_count,
        client_id=t.client_id,
        **{name: build(t) for name, build in wanted.items()},
    )


def event_to_proto(e: TrialEvent) -> trial_pb2.TrialEvent:
    return trial_pb2.TrialEvent(
        trial_id=e.trial_id,
        sequence=e.sequence,
        time=convert.timestamp(e.time),
        from_state=TRIAL_STATES.to_proto(e.from_state),
        to_state=TRIAL_STATES.to_proto(e.to_state),
        trial_run_id=e.trial_run_id,
        message=e.message,
        details=convert.dict_to_struct(e.details),
    )


def _require_id(value: int, field: str = "id") -> int:
    return convert.require_id(value, field, "trial")


def _signed(fn, principal: str):
    """fn, with the principal that asked for it in its events' details."""

    def change(trial, now):
        made = fn(trial, now)
        for event in made.events:
            event.details.setdefault("principal", principal)
        return made

    return change


# The free-text fields of the transition requests, stored on the trial's
# events (message) or on the trial itself.
_TEXT_FIELDS = ("message", "failure_reason", "runner_state")


def _check_texts(v: ViolationCollector, request) -> None:
    for name in _TEXT_FIELDS:
        value = getattr(request, name, "")
        if value:
            validation.check_message(v, name, value)
    task_id = getattr(request, "task_id", "")
    if task_id:
        # As long as a trial's name: a runner may report its pod's name.
        validation.check_label(v, "task_id", task_id, validation.MAX_TRIAL_NAME)


def _final_report(request: trial_service_pb2.CompleteTrialRequest) -> m.ReportDraft | None:
    """CompleteTrial's final metrics as a validation report, or None when
    it has none; INVALID_ARGUMENT names each bad field."""
    values = dict(request.final_metrics)
    v = ViolationCollector()
    _check_texts(v, request)
    if request.trial_run_id < 0:
        v.add("trial_run_id", "must not be negative")
    if request.steps_completed < 0:
        v.add("steps_completed", "must not be negative")
    if not m.names_ok(values):
        for name in values:
            m.check_name(v, f"final_metrics[{name}]", name, m.MAX_METRIC_NAME)
    v.raise_if_any()
    if not values:
        return None
    return m.ReportDraft(request.id, request.trial_run_id, m.VALIDATION, request.steps_completed, 0, values)


def _signed_by_caller(fn):
    by = who.current()
    return fn if by is who.ANONYMOUS else _signed(fn, by.describe())


class TrialServicer(trial_service_pb2_grpc.TrialServiceServicer):
    def __init__(self, storage: Storage, clock, feed: ChangeFeed, limits: BatchLimits = DEFAULT_LIMITS):
        self.storage = storage
        self.clock = clock
        self.limits = limits
        # Wakes WatchTrialEvents streams when this server changed their trial.
        self.feed = feed
        # Told (trial id, study id) of each trial made here.
        self.on_created: Callable[[list[tuple[int, int]]], None] = lambda made: None
        # Told the trials whose validation metrics a call stored.
        self.on_validation: Callable[[list[int]], None] = lambda trial_ids: None

    def _out(self, trial: Trial, mask=None) -> trial_pb2.Trial:
        if mask is None or not mask.paths:
            return trial_to_proto(trial, self.clock())
        fields = {path.split(".", 1)[0] for path in mask.paths}
        return convert.apply_read_mask(trial_to_proto(trial, self.clock(), fields), mask)

    async def _change(self, trial_id: int, fn, key=None) -> trial_pb2.Trial:
        trial = await self.storage.change_trial(_require_id(trial_id), _signed_by_caller(fn), key)
        self.feed.trials.notify(trial_id)
        return self._out(trial)

    async def _transition(self, request, fn, method: str) -> trial_pb2.Trial:
        """A transition request: its request_id is scoped to the method and the trial."""
        trial_id = _require_id(request.id)
        v = ViolationCollector()
        _check_texts(v, request)
        v.raise_if_any()
        return await self._change(trial_id, fn, convert.request_key(request, method, f"trial {trial_id}"))

    @rpc
    async def CreateTrial(self, request, context):
        trial = trial_from_proto(request.trial)
        key = convert.request_key(request, "CreateTrial", f"study {trial.study_id}" if trial.study_id > 0 else "")
        if trial.study_id < 0:
            raise invalid("trial.study_id", "must be a study id or 0")

        def admit(study: Study | None) -> None:
            validation.validate_new_trial(trial, study)
            if study is not None:
                study_rules.check_accepts_trials(study)

        made = await self.storage.create_trial(trial, key, admit)
        self.on_created([(made.id, made.study_id)])
        return self._out(made)

    @rpc
    async def GetTrial(self, request, context):
        convert.check_read_mask(request.read_mask, trial_pb2.Trial.DESCRIPTOR)
        trial = await self.storage.get_trial(_require_id(request.id))
        return self._out(trial, request.read_mask)

    @rpc
    async def ListTrials(self, request, context):
        convert.check_read_mask(request.read_mask, trial_pb2.Trial.DESCRIPTOR)
        if request.study_id < 0:
            raise invalid("study_id", "must be a study id or 0")
        flt = listing.TrialFilter(
            study_id=request.study_id,
            states=[s.value for s in TRIAL_STATES.to_domain_list(request.states, "states")],
            tags=list(request.tags),
            created_after=convert.optional_timestamp_us(request, "created_after", "created_after"),
            created_before=convert.optional_timestamp_us(request, "created_before", "created_before"),
            name_pattern=listing.check_ilike(request.name_pattern),
        )
        order = listing.parse_trial_order(request.order_by)
        page = listing.make_page(request.page_token, listing.page_size(request.page_size), order, vars(flt))
        trials, last_key = await self.storage.list_trials(flt, page)
        return trial_service_pb2.ListTrialsResponse(
            trials=[self._out(t, request.read_mask) for t in trials],
            next_page_token=listing.encode_token(page, last_key) if last_key else "",
        )

    @rpc
    async def UpdateTrial(self, request, context):
        paths = convert.update_paths(request.update_mask, UPDATABLE)
        incoming = trial_from_proto(request.trial)
        attrs = [a for path in sorted(paths) for a in UPDATE_ATTRIBUTES.get(path, [path])]
        return await self._change(
            request.trial.id, lambda t, now: lifecycle.update_fields(t, incoming, attrs, request.trial.etag)
        )

    @rpc
    async def DeleteTrial(self, request, context):
        trial = await self.storage.delete_trial(
            _require_id(request.id), lambda t: lifecycle.ensure_deletable(t, request.force, request.etag)
        )
        self.feed.trials.notify(request.id)
        return self._out(trial)

    @rpc
    async def StopTrial(self, request, context):
        grace = None
        if request.HasField("grace_period"):
            grace = convert.duration_seconds(request.grace_period, "grace_period")
        return await self._transition(
            request,
            lambda t, now: lifecycle.stop(t, now, grace_seconds=grace, message=request.message, etag=request.etag),
            "StopTrial",
        )

    @rpc
    async def KillTrial(self, request, context):
        return await self._transition(
            request, lambda t, now: lifecycle.kill(t, now, message=request.message, etag=request.etag), "KillTrial"
        )

    @rpc
    async def PauseTrial(self, request, context):
        return await self._transition(
            request, lambda t, now: lifecycle.pause(t, now, message=request.message, etag=request.etag), "PauseTrial"
        )

    @rpc
    async def ActivateTrial(self, request, context):
        return await self._transition(
            request, lambda t, now: lifecycle.activate(t, now, message=request.message, etag=request.etag), "ActivateTrial"
        )

    @rpc
    async def RestartTrial(self, request, context):
        resources = None
        if request.HasField("resources"):
            resources = resources_from_proto(request.resources)
            probe = Trial(resources=resources)
            v = ViolationCollector()
            validation.check_resources(v, "resources", probe)
            v.raise_if_any()
        return await self._transition(
            request,
            lambda t, now: lifecycle.restart(t, now, resources=resources, message=request.message, etag=request.etag),
            "RestartTrial",
        )

    @rpc
    async def ReportTrialState(self, request, context):
        state = TRIAL_STATES.to_domain(request.state, "state", required=True)
        if request.trial_run_id < 0:
            raise invalid("trial_run_id", "must not be negative")
        if request.steps_completed < 0:
            raise invalid("steps_completed", "must not be negative")
        report = lifecycle.StateReport(
            state=state,
            trial_run_id=request.trial_run_id,
            message=request.message,
            failure_reason=request.failure_reason,
            runner_state=request.runner_state,
            steps_completed=request.steps_completed,
            task_id=request.task_id,
            details=convert.struct_to_dict(request.details),
            etag=request.etag,
        )
        return await self._transition(request, lambda t, now: lifecycle.report_state(t, now, report), "ReportTrialState")

    @rpc
    async def ReportEarlyExit(self, request, context):
        reason = EARLY_EXIT.to_domain(request.early_exit.reason, "early_exit.reason", required=True)
        return await self._transition(
            request,
            lambda t, now: lifecycle.report_early_exit(t, now, reason, request.trial_run_id),
            "ReportEarlyExit",
        )

    @rpc
    async def CompleteTrial(self, request, context):
        trial_id = _require_id(request.id)
        key = convert.request_key(request, "CompleteTrial", f"trial {trial_id}")
        report = _final_report(request)
        if report is not None and len(report.metrics) > self.limits.max_points:
            self.limits.points(len(report.metrics), "CompleteTrial", service="trialplane.v1.TrialService")

        def change(t, now):
            return lifecycle.complete(t, now, trial_run_id=request.trial_run_id, steps_completed=request.steps_completed,
                                      message=request.message, etag=request.etag)

        trial = await self.storage.complete_trial(trial_id, report, _signed_by_caller(change), key)
        self.feed.trials.notify(trial_id)
        if report is not None:
            self.feed.metrics.notify()
            self.on_validation([trial_id])
        return self._out(trial)

    @rpc
    async def ListTrialEvents(self, request, context):
        trial_id = _require_id(request.trial_id, "trial_id")
        if request.after_sequence < 0:
            raise invalid("after_sequence", "must not be negative")
        size = listing.page_size(request.page_size, default=EVENTS_DEFAULT_PAGE)
        order = listing.Order("sequence", request.descending)
        page = listing.make_page(request.page_token, size, order, {"trial_id": trial_id, "after": request.after_sequence})
        after, before = request.after_sequence, 0
        if page.after is not None:
            if request.descending:
                before = page.after[0]
            else:
                after = page.after[0]
        events = await self.storage.list_trial_events(trial_id, after, size + 1, request.descending, before)
        token = ""
        if len(events) > size:
            events = events[:size]
            token = listing.encode_token(page, (events[-1].sequence, events[-1].sequence))
        return trial_service_pb2.ListTrialEventsResponse(events=[event_to_proto(e) for e in events], next_page_token=token)

    @rpc
    async def WatchTrialEvents(self, request, context):
        trial_id = _require_id(request.trial_id, "trial_id")
        cursor = request.after_sequence

        async def read() -> list[TrialEvent]:
            nonlocal cursor
            events = await self.storage.list_trial_events(trial_id, cursor, 500)
            if events:
                cursor = events[-1].sequence
            return events

        async for events in follow(read, trials_ended(self.storage, [trial_id]), self.feed.trials.of(trial_id)):
            for e in events:
                yield trial_service_pb2.WatchTrialEventsResponse(event=event_to_proto(e))

