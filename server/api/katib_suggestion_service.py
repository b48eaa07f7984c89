"""api.v1.beta1.Suggestion: Katib's algorithm service on trialplane's designers.

Katib's controller calls GetSuggestions with the experiment, all its trials
and how many new assignments it wants; it takes a reply with fewer as a
failed sync and asks again later. trialplane answers with fewer only when a
grid is exhausted: what is left, then none, as Katib's Chocolate grid
service did (the Optuna grid that replaced it hands out points again
instead). Like Katib's grid, ValidateAlgorithmSettings refuses a
max_trial_count larger than the grid, so a validated experiment does not
run out.

The point index handed to the designer is the number of assignments the
experiment was given before this call (total_request_number minus
current_request_number, as Katib counts them), and at least the number of
trials sent: a retried call gets the points it would have got, and
deterministic algorithms never hand out a point twice. Algorithm names and
settings are translated as server/domain/katib.py says.
"""

from __future__ import annotations

from trialplane.katib.v1beta1 import api_pb2, api_pb2_grpc

from ..domain import katib
from ..domain.errors import ViolationCollector
from ..domain.search.base import SettingsError
from ..domain.search.grid import GridSearch
from ..services.katib_search import KatibSuggestions
from . import katib_messages as messages
from .errors import rpc

ALGORITHM = "experiment.spec.algorithm"
# Assignments one call may ask for.
MAX_REQUEST = 10_000


def _experiment(v: ViolationCollector, request) -> katib.KatibExperiment | None:
    experiment = messages.read_experiment(v, request.experiment)
    if experiment is not None and not experiment.algorithm:
        v.add(f"{ALGORITHM}.algorithm_name", f"must name an algorithm; served: {', '.join(sorted(katib.ALGORITHMS))}")
    return experiment


def _translate(v: ViolationCollector, experiment: katib.KatibExperiment) -> katib.Translated | None:
    try:
        return katib.translate(experiment.algorithm, experiment.algorithm_settings, experiment.parameters)
    except SettingsError as exc:
        v.add(messages.settings_path(exc, ALGORITHM, experiment.algorithm_settings), exc.message)
        return None


def _settings_violation(v: ViolationCollector, experiment: katib.KatibExperiment, algorithm: katib.Translated,
                        exc: SettingsError) -> None:
    path = messages.settings_path(exc, ALGORITHM, experiment.algorithm_settings, algorithm.origin,
                                  experiment.parameters)
    v.add(path, exc.message)


class KatibSuggestionServicer(api_pb2_grpc.SuggestionServicer):
    def __init__(self, suggestions: KatibSuggestions):
        self.suggestions = suggestions

    @rpc
    async def GetSuggestions(self, request, context):
        v = ViolationCollector()
        count = request.current_request_number
        if not 0 <= count <= MAX_REQUEST:
            v.add("current_request_number", f"must be between 0 and {MAX_REQUEST}")
        if request.total_request_number < 0:
            v.add("total_request_number", "must not be negative")
        experiment = _experiment(v, request)
        algorithm = _translate(v, experiment) if experiment is not None and experiment.algorithm else None
        trials = messages.read_trials(v, request.trials, experiment.metric, experiment.space) if experiment else []
        v.raise_if_any()
        assert experiment is not None and algorithm is not None
        index = len(trials)
        if request.total_request_number >= count:
            index = max(index, request.total_request_number - count)
        try:
            points = await self.suggestions.suggest(experiment, algorithm, trials, count, index) if count else []
        except SettingsError as exc:
            _settings_violation(v, experiment, algorithm, exc)
            v.raise_if_any()
            raise
        return api_pb2.GetSuggestionsReply(parameter_assignments=messages.assignments(points, experiment.space))

    @rpc
    async def ValidateAlgorithmSettings(self, request, context):
        v = ViolationCollector()
        experiment = _experiment(v, request)
        algorithm = _translate(v, experiment) if experiment is not None and experiment.algorithm else None
        v.raise_if_any()
        assert experiment is not None and algorithm is not None
        try:
            designer = self.suggestions.designer(experiment, algorithm)
        except SettingsError as exc:
            _settings_violation(v, experiment, algorithm, exc)
            v.raise_if_any()
            raise
        if isinstance(designer, GridSearch) and experiment.max_trial_count > designer.total:
            v.add("experiment.spec.max_trial_count",
                  f"the grid has {designer.total} points, fewer than max_trial_count {experiment.max_trial_count}")
        v.raise_if_any()
        return api_pb2.ValidateAlgorithmSettingsReply()
