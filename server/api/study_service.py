"""trialplane.v1.StudyService: translates requests to domain calls and back."""

from __future__ import annotations

import math

from trialplane.v1 import study_pb2, study_service_pb2, study_service_pb2_grpc

from ..domain import listing, study_rules, validation
from ..domain.early_stopping import registry as stopping_registry
from ..domain.errors import (
    FailedPrecondition,
    ViolationCollector,
    invalid,
)
from ..domain.models import (
    AlgorithmSpec,
    CheckpointRetention,
    FeasibleSpace,
    MetricDefinition,
    Objective,
    ObjectiveType,
    ParameterScale,
    ParameterSpec,
    ParameterType,
    Study,
    StudyState,
)
from ..domain.search import checks as search_checks
from ..domain.search import registry as search_registry
from ..services import study_control
from ..services.change_feed import ChangeFeed
from ..services.early_stopping import EarlyStopping, decision_details
from ..services.suggestions import Suggestions
from ..storage.interface import Storage
from . import convert
from .errors import rpc
from .trial_service import trial_to_proto

OBJECTIVE_TYPES = convert.EnumMap(study_pb2.ObjectiveType, "OBJECTIVE_TYPE_", ObjectiveType)
PARAMETER_TYPES = convert.EnumMap(study_pb2.ParameterType, "PARAMETER_TYPE_", ParameterType)
SCALES = convert.EnumMap(study_pb2.ParameterScale, "PARAMETER_SCALE_", ParameterScale)
STUDY_STATES = convert.EnumMap(study_pb2.StudyState, "STUDY_STATE_", StudyState)

UPDATABLE = {
    "description", "owner", "tags", "metadata", "max_trials", "parallel_trials", "max_failed_trials",
    "metrics_timeout",
    "metric_definitions", "checkpoint_retention", "algorithm", "early_stopping",
}
# Update paths whose domain attribute has another name.
ATTRIBUTE_OF_PATH = {"metrics_timeout": "metrics_timeout_seconds"}
# Paths that change the search, allowed only while the study is ACTIVE.
SEARCH_PATHS = {"algorithm", "early_stopping"}
MAX_SUGGESTIONS = 100
MAX_CHECKED_TRIALS = 1000


def _opt(message, field: str):
    return getattr(message, field) if message.HasField(field) else None


def study_from_proto(p: study_pb2.Study) -> Study:
    obj = p.objective
    return Study(
        name=p.name,
        owner=p.owner,
        description=p.description,
        objective=Objective(
            metric_name=obj.metric_name,
            type=OBJECTIVE_TYPES.to_domain(obj.type, "study.objective.type"),
            goal=_opt(obj, "goal"),
            additional_metric_names=list(obj.additional_metric_names),
        ),
        parameters=[
            ParameterSpec(
                name=ps.name,
                type=PARAMETER_TYPES.to_domain(ps.type, f"study.parameters[{i}].type"),
                scale=SCALES.to_domain(ps.scale, f"study.parameters[{i}].scale"),
                feasible_space=FeasibleSpace(
                    min=_opt(ps.feasible_space, "min"),
                    max=_opt(ps.feasible_space, "max"),
                    step=_opt(ps.feasible_space, "step"),
                    values=list(ps.feasible_space.values),
                    categories=list(ps.feasible_space.categories),
                ),
            )
            for i, ps in enumerate(p.parameters)
        ],
        algorithm=AlgorithmSpec(p.algorithm.name, [(s.name, s.value) for s in p.algorithm.settings]),
        early_stopping=AlgorithmSpec(p.early_stopping.name, [(s.name, s.value) for s in p.early_stopping.settings]),
        max_trials=p.max_trials,
        parallel_trials=p.parallel_trials,
        tags=list(p.tags),
        metric_definitions=[MetricDefinition(d.name, d.regex) for d in p.metric_definitions],
        metadata=convert.struct_to_dict(p.metadata),
        checkpoint_retention=CheckpointRetention(p.checkpoint_retention.keep_best, p.checkpoint_retention.keep_latest),
        max_failed_trials=p.max_failed_trials,
        metrics_timeout_seconds=convert.duration_seconds(p.metrics_timeout, "study.metrics_timeout"),
    )


def study_to_proto(s: Study) -> study_pb2.Study:
    def settings(spec: AlgorithmSpec):
        return [study_pb2.AlgorithmSetting(name=n, value=v) for n, v in spec.settings]

    return study_pb2.Study(
        id=s.id,
        name=s.name,
        owner=s.owner,
        description=s.description,
        objective=convert.present(study_pb2.Objective(
            metric_name=s.objective.metric_name,
            type=OBJECTIVE_TYPES.to_proto(s.objective.type),
            goal=s.objective.goal,
            additional_metric_names=s.objective.additional_metric_names,
        )),
        parameters=[
            study_pb2.ParameterSpec(
                name=p.name,
                type=PARAMETER_TYPES.to_proto(p.type),
                scale=SCALES.to_proto(p.scale),
                feasible_space=convert.present(study_pb2.FeasibleSpace(
                    min=p.feasible_space.min,
                    max=p.feasible_space.max,
                    step=p.feasible_space.step,
                    values=p.feasible_space.values,
                    categories=p.feasible_space.categories,
                )),
            )
            for p in s.parameters
        ],
        algorithm=convert.present(study_pb2.AlgorithmSpec(name=s.algorithm.name, settings=settings(s.algorithm))),
        early_stopping=convert.present(
            study_pb2.EarlyStoppingSpec(name=s.early_stopping.name, settings=settings(s.early_stopping))),
        max_trials=s.max_trials,
        parallel_trials=s.parallel_trials,
        state=STUDY_STATES.to_proto(s.state),
        tags=s.tags,
        metric_definitions=[study_pb2.MetricDefinition(name=d.name, regex=d.regex) for d in s.metric_definitions],
        metadata=convert.dict_to_struct(s.metadata),
        trial_count=s.trial_count,
        create_time=convert.timestamp(s.create_time),
        update_time=convert.timestamp(s.update_time),
        etag=str(s.version),
        checkpoint_retention=convert.present(study_pb2.CheckpointRetention(
            keep_best=s.checkpoint_retention.keep_best, keep_latest=s.checkpoint_retention.keep_latest
        )),
        max_failed_trials=s.max_failed_trials,
        metrics_timeout=convert.duration(s.metrics_timeout_seconds) if s.metrics_timeout_seconds else None,
        state_message=s.state_message,
        suggestion_count=s.suggestion_count,
    )


def _spec_from_proto(p) -> AlgorithmSpec:
    return AlgorithmSpec(p.name, [(s.name, s.value) for s in p.settings])


def _finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


class StudyServicer(study_service_pb2_grpc.StudyServiceServicer):
    def __init__(self, storage: Storage, feed: ChangeFeed, clock, early_stopping: EarlyStopping):
        self.storage = storage
        self.feed = feed
        self.clock = clock
        self.suggestions = Suggestions(storage)
        self.early_stopping = early_stopping

    @rpc
    async def CreateStudy(self, request, context):
        key = convert.request_key(request, "CreateStudy")
        study = study_from_proto(request.study)
        validation.validate_study(study)
        return study_to_proto(await self.storage.create_study(study, key))

    @rpc
    async def GetStudy(self, request, context):
        if request.id:
            return study_to_proto(await self.storage.get_study(request.id))
        if request.name:
            return study_to_proto(await self.storage.get_study_by_name(request.name))
        raise invalid("id", "set id or name")

    @rpc
    async def ListStudies(self, request, context):
        convert.check_read_mask(request.read_mask, study_pb2.Study.DESCRIPTOR)
        flt = listing.StudyFilter(
            states=[s.value for s in STUDY_STATES.to_domain_list(request.states, "states")],
            tags=list(request.tags),
            created_after=convert.optional_timestamp_us(request, "created_after", "created_after"),
            created_before=convert.optional_timestamp_us(request, "created_before", "created_before"),
            name_pattern=listing.check_ilike(request.name_pattern),
            owner=request.owner,
        )
        order = listing.parse_order_by(request.order_by, listing.STUDY_ORDER_FIELDS)
        page = listing.make_page(request.page_token, listing.page_size(request.page_size), order, vars(flt))
        studies, last_key = await self.storage.list_studies(flt, page)
        return study_service_pb2.ListStudiesResponse(
            studies=[convert.apply_read_mask(study_to_proto(s), request.read_mask) for s in studies],
            next_page_token=listing.encode_token(page, last_key) if last_key else "",
        )

    @rpc
    async def UpdateStudy(self, request, context):
        paths = convert.update_paths(request.update_mask, UPDATABLE)
        if not request.study.id:
            raise invalid("study.id", "must name the study to update")
        incoming = study_from_proto(request.study)
        etag = request.study.etag

        def apply(current: Study) -> Study:
            study_rules.check_etag(current, etag)
            if paths & SEARCH_PATHS and current.state != StudyState.ACTIVE:
                raise FailedPrecondition(
                    f"study {current.id} is {current.state.value}: its search can no longer change",
                    reason="ILLEGAL_TRANSITION", metadata={"study_id": current.id, "state": current.state},
                )
            for path in paths:
                attribute = ATTRIBUTE_OF_PATH.get(path, path)
                setattr(current, attribute, getattr(incoming, attribute))
            validation.validate_study_update(current, paths)
            return current

        updated = await self.storage.update_study(request.study.id, apply)
        self.early_stopping.forget(updated.id)
        return study_to_proto(updated)

    @rpc
    async def DeleteStudy(self, request, context):
        def check(study: Study) -> None:
            study_rules.check_deletable(study, request.force, request.etag)

        deleted = await self.storage.delete_study(convert.require_id(request.id, "id", "study"), check)
        # Its warm search and early-stopping state go with it.
        self.suggestions.forget(deleted.id)
        self.early_stopping.forget(deleted.id)
        return study_to_proto(deleted)

    @rpc
    async def SuggestTrials(self, request, context):
        study_id = convert.require_id(request.study_id, "study_id", "study")
        v = ViolationCollector()
        if request.count < 0 or request.count > MAX_SUGGESTIONS:
            v.add("count", f"must be 0 to {MAX_SUGGESTIONS}")
        validation.check_label(v, "client_id", request.client_id)
        v.raise_if_any()
        suggested = await self.suggestions.suggest(study_id, request.client_id, request.count or 1, request.start)
        self.early_stopping.know((t.id, t.study_id) for t in suggested.trials)
        now = self.clock()
        return study_service_pb2.SuggestTrialsResponse(
            trials=[trial_to_proto(t, now) for t in suggested.trials],
            study_done=suggested.study.state != StudyState.ACTIVE,
        )

    @rpc
    async def StopStudy(self, request, context):
        study_id = convert.require_id(request.id, "id", "study")
        v = ViolationCollector()
        validation.check_message(v, "reason", request.reason)
        v.raise_if_any()
        return study_to_proto(await study_control.stop_study(self.storage, self.feed, study_id, request.reason))

    @rpc
    async def CompleteStudy(self, request, context):
        study_id = convert.require_id(request.id, "id", "study")
        v = ViolationCollector()
        validation.check_message(v, "reason", request.reason)
        v.raise_if_any()
        return study_to_proto(await study_control.complete_study(self.storage, study_id, request.reason))

    @rpc
    async def ValidateAlgorithmSettings(self, request, context):
        probe = study_from_proto(study_pb2.Study(parameters=request.parameters))
        v = ViolationCollector()
        # The space as CreateStudy checks it; an algorithm is only tried on a valid one.
        validation.check_parameters(v, "parameters", probe.parameters)
        if not v.violations:
            search_checks.check_algorithm(v, "algorithm", _spec_from_proto(request.algorithm), probe.parameters,
                                            "parameters")
        search_checks.check_early_stopping(v, "early_stopping", _spec_from_proto(request.early_stopping))
        v.raise_if_any()
        return study_service_pb2.ValidateAlgorithmSettingsResponse(
            algorithms=search_registry.names(), early_stopping_rules=stopping_registry.names())

    @rpc
    async def CheckEarlyStopping(self, request, context):
        study_id = convert.require_id(request.study_id, "study_id", "study")
        if len(request.trial_ids) > MAX_CHECKED_TRIALS:
            raise invalid("trial_ids", f"at most {MAX_CHECKED_TRIALS} trials per call (got {len(request.trial_ids)})")
        if any(i <= 0 for i in request.trial_ids):
            raise invalid("trial_ids", "must be trial ids")
        study, decisions = await self.early_stopping.check(study_id, list(dict.fromkeys(request.trial_ids)))
        maximize = study.objective.type == ObjectiveType.MAXIMIZE
        out = []
        for d in decisions:
            details = decision_details(d, maximize)
            out.append(study_service_pb2.EarlyStoppingDecision(
                trial_id=d.trial_id, should_stop=d.should_stop, reason=d.reason, rule=d.rule, step=d.step,
                threshold=_finite_or_none(details["threshold"]), value=_finite_or_none(details["value"])))
        return study_service_pb2.CheckEarlyStoppingResponse(decisions=out)
