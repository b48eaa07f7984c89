"""api.v1.beta1.EarlyStopping: Katib's early-stopping service, medianstop only.

GetEarlyStoppingRules answers one rule, on the objective metric, once enough
trials succeeded (none before): LESS than the median for a MAXIMIZE
objective, GREATER for MINIMIZE, from start_step on, which is how Katib's
collectors read a rule (services/katib_stopping.py says how the median is
taken). The settings are medianstop's: min_trials_required (default 3) and
start_step (default 4), checked by trialplane's own rule. db_manager_address
is not dialed: the observation logs are trialplane's own.
"""

from __future__ import annotations

from trialplane.katib.v1beta1 import api_pb2, api_pb2_grpc

from ..domain import katib
from ..domain.early_stopping import registry
from ..domain.early_stopping.median_stop import MedianStop
from ..domain.errors import ViolationCollector, invalid
from ..domain.models import ObjectiveType
from ..domain.search.base import SettingsError
from ..services.katib_stopping import KatibStopping
from . import katib_messages as messages
from .errors import rpc

SERVED = ", ".join(katib.EARLY_STOPPING_RULES)


def _rule(v: ViolationCollector, path: str, spec) -> MedianStop | None:
    name, settings = messages.read_stopping(v, path, spec)
    if not name:
        v.add(f"{path}.algorithm_name", f"must name an early-stopping rule; served: {SERVED}")
        return None
    if name not in katib.EARLY_STOPPING_RULES:
        if name in registry.names():
            why = f"trialplane's {name} judges each trial at its rungs, which Katib's threshold rules cannot carry"
        else:
            why = f"unknown early-stopping rule {name!r}"
        v.add(f"{path}.algorithm_name", f"{why}; served: {SERVED}")
        return None
    given: set[str] = set()
    for i, (setting, _) in enumerate(settings):
        if setting in given:
            v.add(f"{path}.algorithm_settings[{i}].name", f"setting {setting!r} is given twice")
        given.add(setting)
    if len(given) < len(settings):
        return None
    try:
        rule = registry.create(name, dict(settings))
    except SettingsError as exc:
        v.add(messages.settings_path(exc, path, settings), exc.message)
        return None
    assert isinstance(rule, MedianStop)
    return rule


class KatibEarlyStoppingServicer(api_pb2_grpc.EarlyStoppingServicer):
    def __init__(self, stopping: KatibStopping):
        self.stopping = stopping

    @rpc
    async def GetEarlyStoppingRules(self, request, context):
        v = ViolationCollector()
        spec = request.experiment.spec
        objective = messages.read_objective(v, spec.objective)
        rule = _rule(v, "experiment.spec.early_stopping", spec.early_stopping)
        metric = spec.objective.objective_metric_name
        trials = messages.read_trials(v, request.trials, metric, None)
        v.raise_if_any()
        assert rule is not None
        threshold = await self.stopping.median_threshold(trials, metric, rule.start_step, rule.min_trials_required)
        if threshold is None:
            return api_pb2.GetEarlyStoppingRulesReply()
        comparison = api_pb2.LESS if objective == ObjectiveType.MAXIMIZE else api_pb2.GREATER
        return api_pb2.GetEarlyStoppingRulesReply(early_stopping_rules=[api_pb2.EarlyStoppingRule(
            name=metric, value=repr(threshold), comparison=comparison, start_step=rule.start_step)])

    @rpc
    async def SetTrialStatus(self, request, context):
        if not request.trial_name:
            raise invalid("trial_name", "must not be empty")
        await self.stopping.set_trial_status(request.trial_name)
        return api_pb2.SetTrialStatusReply()

    @rpc
    async def ValidateEarlyStoppingSettings(self, request, context):
        v = ViolationCollector()
        _rule(v, "early_stopping", request.early_stopping)
        v.raise_if_any()
        return api_pb2.ValidateEarlyStoppingSettingsReply()
