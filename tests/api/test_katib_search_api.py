"""Katib's Suggestion and EarlyStopping services (api.v1.beta1), called the
way Katib's controller and metrics collectors call them.

The client is built from tests/api/katib_proto/katib_client.proto, an
independent copy of Katib's definitions (support/katib.py), so these tests
see only what Katib would see on the wire.
"""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import error_of
from support.katib import KatibProto
from support.trials import trial_in
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

# ---------------------------------------------------------------------------
# Katib's client


@pytest.fixture(scope="module")
def proto(tmp_path_factory):
    return KatibProto(tmp_path_factory.mktemp("katib_proto"))


class Katib:
    """Builds Katib's messages and calls Katib's services with them."""

    def __init__(self, channel: grpc.Channel, proto: KatibProto):
        self.p = proto
        self.suggestion = proto.calls(channel, "Suggestion")
        self.stopping = proto.calls(channel, "EarlyStopping")
        self.db = proto.calls(channel, "DBManager")

    def parameter(self, name: str, kind: str, *, min: str = "", max: str = "", step: str = "",
                  values: tuple[str, ...] = (), distribution: str = "DISTRIBUTION_UNSPECIFIED"):
        p = self.p
        return p["ParameterSpec"](
            name=name, parameter_type=p.value("ParameterType", kind),
            feasible_space=p["FeasibleSpace"](min=min, max=max, step=step, list=list(values),
                                              distribution=p.value("Distribution", distribution)))

    def experiment(self, name: str, parameters, algorithm: str, settings=(), *, objective: str = "MAXIMIZE",
                   metric: str = "accuracy", max_trial_count: int = 0, stopping: str = "", stopping_settings=()):
        p = self.p
        return p["Experiment"](name=name, spec=p["ExperimentSpec"](
            parameter_specs=p["ExperimentSpec.ParameterSpecs"](parameters=parameters),
            objective=p["ObjectiveSpec"](type=p.value("ObjectiveType", objective), objective_metric_name=metric),
            algorithm=p["AlgorithmSpec"](algorithm_name=algorithm, algorithm_settings=[
                p["AlgorithmSetting"](name=n, value=v) for n, v in settings]),
            early_stopping=self.stopping_spec(stopping, stopping_settings),
            max_trial_count=max_trial_count,
        ))

    def stopping_spec(self, name: str, settings=()):
        p = self.p
        return p["EarlyStoppingSpec"](algorithm_name=name, algorithm_settings=[
            p["EarlyStoppingSetting"](name=n, value=v) for n, v in settings])

    def trial(self, name: str, assignments: list[tuple[str, str]], condition: str = "RUNNING",
              metrics: dict[str, str] | None = None):
        p = self.p
        return p["Trial"](
            name=name,
            spec=p["TrialSpec"](parameter_assignments=p["TrialSpec.ParameterAssignments"](
                assignments=[p["ParameterAssignment"](name=n, value=v) for n, v in assignments])),
            status=p["TrialStatus"](
                condition=p.value("TrialStatus.TrialConditionType", condition),
                observation=p["Observation"](metrics=[p["Metric"](name=n, value=v) for n, v in (metrics or {}).items()]),
            ),
        )

    def get(self, experiment, trials=(), count: int = 1, total: int | None = None) -> list[list[tuple[str, str]]]:
        """Assignments as (name, value) lists, as Katib reads them."""
        request = self.p["GetSuggestionsRequest"](
            experiment=experiment, trials=list(trials), current_request_number=count,
            total_request_number=(len(trials) + count) if total is None else total)
        reply = self.suggestion["GetSuggestions"](request, timeout=60)
        return [[(a.name, a.value) for a in x.assignments] for x in reply.parameter_assignments]

    def validate(self, experiment):
        request = self.p["ValidateAlgorithmSettingsRequest"](experiment=experiment)
        return self.suggestion["ValidateAlgorithmSettings"](request, timeout=60)

    def rules(self, experiment, trials=()) -> list[tuple[str, str, str, int]]:
        """(name, value, comparison, start_step) of each rule, as a collector reads them."""
        request = self.p["GetEarlyStoppingRulesRequest"](
            experiment=experiment, trials=list(trials), db_manager_address="katib-db-manager.kubeflow:6789")
        reply = self.stopping["GetEarlyStoppingRules"](request, timeout=60)
        comparisons = {v.number: n for n, v in self.p.enum("ComparisonType").values_by_name.items()}
        return [(r.name, r.value, comparisons[r.comparison], r.start_step) for r in reply.early_stopping_rules]

    def set_trial_status(self, trial_name: str):
        return self.stopping["SetTrialStatus"](self.p["SetTrialStatusRequest"](trial_name=trial_name), timeout=60)

    def validate_stopping(self, name: str, settings=()):
        request = self.p["ValidateEarlyStoppingSettingsRequest"](early_stopping=self.stopping_spec(name, settings))
        return self.stopping["ValidateEarlyStoppingSettings"](request, timeout=60)

    def report(self, trial_name: str, metric: str, values: list[str]):
        """A collector's observation log: one value a second."""
        p = self.p
        logs = [p["MetricLog"](time_stamp=f"2026-11-24T10:00:{i:02d}Z", metric=p["Metric"](name=metric, value=v))
                for i, v in enumerate(values)]
        request = p["ReportObservationLogRequest"](trial_name=trial_name, observation_log=p["ObservationLog"](
            metric_logs=logs))
        return self.db["ReportObservationLog"](request, timeout=60)


@pytest.fixture
def kc(client, proto):
    return Katib(client.channel, proto)


def mixed_space(k: Katib):
    """Every parameter type Katib has, with the forms its strings take."""
    return [
        k.parameter("lr", "DOUBLE", min="0.0001", max="0.1", distribution="LOG_UNIFORM"),
        k.parameter("momentum", "DOUBLE", min="0.5", max="0.99"),
        k.parameter("dropout", "DOUBLE", min="0.1", max="0.5", step="0.1"),
        k.parameter("layers", "INT", min="1", max="8"),
        k.parameter("units", "INT", min="32", max="256", step="32"),
        k.parameter("batch", "DISCRETE", values=("16", "32", "64.5", "1e2")),
        k.parameter("optimizer", "CATEGORICAL", values=("sgd", "adam", "ftrl")),
    ]


def grid_space(k: Katib):
    """A space grid search can enumerate: 3 * 2 * 2 * 2 = 24 points."""
    return [
        k.parameter("dropout", "DOUBLE", min="0.1", max="0.3", step="0.1"),
        k.parameter("units", "INT", min="32", max="64", step="32"),
        k.parameter("batch", "DISCRETE", values=("16", "64.5")),
        k.parameter("optimizer", "CATEGORICAL", values=("sgd", "adam")),
    ]


def check_in_space(assignment: list[tuple[str, str]], parameters, proto: KatibProto) -> None:
    """Every parameter once, each value Katib's text for a value of its type inside its space."""
    kinds = {v.number: name for name, v in proto.enum("ParameterType").values_by_name.items()}
    assert [n for n, _ in assignment] == [p.name for p in parameters]
    for (name, text), p in zip(assignment, parameters):
        kind, fs = kinds[p.parameter_type], p.feasible_space
        if kind in ("DISCRETE", "CATEGORICAL"):
            assert text in fs.list, (name, text)
            continue
        value = Decimal(text)
        assert Decimal(fs.min) <= value <= Decimal(fs.max), (name, text)
        if kind == "INT":
            assert text.lstrip("-").isdigit(), (name, text)
        if fs.step or kind == "INT":
            k = (value - Decimal(fs.min)) / Decimal(fs.step or "1")
            # On the grid exactly, written without float noise (0.3, not 0.30000000000000004).
            assert k == k.to_integral_value(), (name, text)


def objective(assignment: list[tuple[str, str]]) -> float:
    """A made-up accuracy, best at momentum 0.9 with two layers."""
    values = dict(assignment)
    return 1.0 - (float(values.get("momentum", "0.5")) - 0.9) ** 2 - 0.01 * (int(values.get("layers", "2")) - 2) ** 2


# ---------------------------------------------------------------------------
# The wire contract


def reflection_call(channel, **request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (response,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10)
    return response


def _messages(file_proto) -> dict:
    """Every message of a file by its full name (nested ones dotted), with its fields."""
    out = {}

    def walk(prefix, messages):
        for m in messages:
            out[prefix + m.name] = sorted(
                (f.name, f.number, f.type, f.label, f.type_name) for f in m.field)
            walk(prefix + m.name + ".", m.nested_type)

    walk("", file_proto.message_type)
    return out


def _enums(file_proto) -> dict:
    out = {e.name: sorted((v.name, v.number) for v in e.value) for e in file_proto.enum_type}
    for m in file_proto.message_type:
        out.update({f"{m.name}.{e.name}": sorted((v.name, v.number) for v in e.value) for e in m.enum_type})
    return out


def _methods(file_proto, service: str) -> list:
    (found,) = [s for s in file_proto.service if s.name == service]
    return sorted((m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming) for m in found.method)


def test_reflection_and_health_know_the_algorithm_services(client):
    response = reflection_call(client.channel, list_services="")
    assert {"api.v1.beta1.Suggestion", "api.v1.beta1.EarlyStopping"} <= {
        s.name for s in response.list_services_response.service}
    health = health_pb2_grpc.HealthStub(client.channel)
    for service in ("api.v1.beta1.Suggestion", "api.v1.beta1.EarlyStopping"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_served_messages_are_katibs_field_for_field(client, proto):
    response = reflection_call(client.channel, file_containing_symbol="api.v1.beta1.Suggestion")
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in response.file_descriptor_response.file_descriptor_proto]
    (served,) = [f for f in files if any(s.name == "Suggestion" for s in f.service)]
    assert served.package == "api.v1.beta1"
    ours, katibs = _messages(served), _messages(proto.file)
    # trialplane leaves out Katib's NAS configuration (field 7 of ExperimentSpec) and its messages.
    nas = {"NasConfig", "NasConfig.Operations", "GraphConfig", "Operation", "Operation.ParameterSpecs"}
    assert set(ours) == set(katibs) - nas
    katibs["ExperimentSpec"] = [f for f in katibs["ExperimentSpec"] if f[0] != "nas_config"]
    for name in ours:
        assert ours[name] == katibs[name], name
    assert _enums(served) == _enums(proto.file)
    for service in ("DBManager", "Suggestion", "EarlyStopping"):
        assert _methods(served, service) == _methods(proto.file, service)


# ---------------------------------------------------------------------------
# Suggestions inside the space


@pytest.mark.parametrize("algorithm,settings", [
    ("random", [("random_state", "7")]),
    ("tpe", [("n_startup_trials", "5"), ("n_ei_candidates", "16")]),
    ("multivariate-tpe", [("n_startup_trials", "5")]),
    ("cmaes", [("sigma", "0.05"), ("restart_strategy", "ipop")]),
    ("sobol", []),
    ("quasirandom", [("sequence", "halton")]),
])
def test_every_algorithm_stays_inside_the_space_as_results_come_in(kc, proto, algorithm, settings):
    parameters = mixed_space(kc)
    experiment = kc.experiment(f"inside-{algorithm}", parameters, algorithm, settings)
    trials = []
    for round_ in range(4):
        got = kc.get(experiment, trials, count=6)
        assert len(got) == 6
        for assignment in got:
            check_in_space(assignment, parameters, proto)
        # The round's trials finish (all but one, which keeps running) and go back in.
        for i, assignment in enumerate(got):
            done = i < 5
            trials.append(kc.trial(f"inside-{algorithm}-{round_}-{i}", assignment,
                                   "SUCCEEDED" if done else "RUNNING",
                                   {"accuracy": repr(objective(assignment))} if done else None))


def test_grid_stays_inside_the_space(kc, proto):
    parameters = grid_space(kc)
    experiment = kc.experiment("grid-inside", parameters, "grid")
    got = kc.get(experiment, count=24)
    for assignment in got:
        check_in_space(assignment, parameters, proto)
    assert {tuple(v for _, v in a) for a in got} == {
        (d, u, b, o) for d in ("0.1", "0.2", "0.3") for u in ("32", "64") for b in ("16", "64.5")
        for o in ("sgd", "adam")}


def test_values_come_back_in_katibs_text_forms(kc):
    parameters = [
        kc.parameter("dropout", "DOUBLE", min="0.1", max="0.5", step="0.1"),
        kc.parameter("tiny", "DOUBLE", min="1e-3", max="5e-3", step="1e-3"),
        kc.parameter("units", "INT", min="-2", max="2"),
        kc.parameter("batch", "DISCRETE", values=("1e2", "32", "64.50")),
    ]
    got = kc.get(kc.experiment("text-forms", parameters, "grid"), count=1000)
    assert len(got) == 5 * 5 * 5 * 3
    values = {name: sorted({v for a in got for n, v in a if n == name}) for name in ("dropout", "tiny", "units", "batch")}
    assert values["dropout"] == ["0.1", "0.2", "0.3", "0.4", "0.5"]
    assert values["tiny"] == ["0.001", "0.002", "0.003", "0.004", "0.005"]
    assert values["units"] == ["-1", "-2", "0", "1", "2"]
    # DISCRETE values are the list's own strings.
    assert values["batch"] == ["1e2", "32", "64.50"]


# ---------------------------------------------------------------------------
# Each point once


def test_grid_hands_out_each_point_once_across_calls_then_what_is_left_then_nothing(kc):
    experiment = kc.experiment("grid-once", grid_space(kc), "grid")
    seen, trials = [], []
    for count in (5, 5, 5, 5):
        got = kc.get(experiment, trials, count=count)
        assert len(got) == count
        seen += got
        trials += [kc.trial(f"grid-once-{len(trials) + i}", a, "SUCCEEDED", {"accuracy": "0.5"})
                   for i, a in enumerate(got)]
    # 20 handed out, 4 left: asking for 5 gives those 4 ...
    last = kc.get(experiment, trials, count=5)
    assert len(last) == 4
    seen += last
    trials += [kc.trial(f"grid-once-{len(trials) + i}", a, "RUNNING") for i, a in enumerate(last)]
    # ... and from then on none at all, which is how Katib's grid said "no more".
    assert kc.get(experiment, trials, count=3) == []
    points = [tuple(v for _, v in a) for a in seen]
    assert len(points) == len(set(points)) == 24


def test_the_index_is_what_katib_counted_even_with_trials_it_left_out(kc):
    # Katib does not send trials whose metrics are unavailable; total_request_number
    # still counts the assignments it was given, so the grid moves on.
    experiment = kc.experiment("grid-counted", grid_space(kc), "grid")
    first = kc.get(experiment, [], count=3, total=3)
    later = kc.get(experiment, [kc.trial("grid-counted-0", first[0], "SUCCEEDED", {"accuracy": "1"})],
                   count=3, total=6)
    assert not {tuple(v for _, v in a) for a in first} & {tuple(v for _, v in a) for a in later}


@pytest.mark.parametrize("algorithm", ["random", "sobol", "grid", "tpe", "cmaes"])
def test_growing_trial_lists_never_repeat_a_point(kc, algorithm):
    space = grid_space(kc) if algorithm == "grid" else mixed_space(kc)
    experiment = kc.experiment(f"growing-{algorithm}", space, algorithm,
                               [("n_startup_trials", "4")] if algorithm == "tpe" else [])
    seen, trials = [], []
    for round_ in range(6):
        got = kc.get(experiment, trials, count=3)
        assert len(got) == 3
        seen += got
        for i, assignment in enumerate(got):
            # Some finish, some fail, some keep running: every one keeps its point.
            condition = ("SUCCEEDED", "FAILED", "RUNNING")[i]
            metrics = {"accuracy": repr(objective(assignment))} if condition == "SUCCEEDED" else None
            trials.append(kc.trial(f"growing-{algorithm}-{round_}-{i}", assignment, condition, metrics))
    points = [tuple(a) for a in seen]
    assert len(set(points)) == len(points) == 18


@pytest.mark.parametrize("algorithm", ["random", "sobol", "grid"])
def test_a_retried_call_gets_the_same_points(kc, algorithm):
    # The controller asks again when it could not store the answer: the same
    # request means the same points, nothing skipped.
    space = grid_space(kc) if algorithm == "grid" else mixed_space(kc)
    experiment = kc.experiment(f"retry-{algorithm}", space, algorithm)
    trials = [kc.trial("retry-0", kc.get(experiment, [], count=1)[0], "SUCCEEDED", {"accuracy": "0.7"})]
    once = kc.get(experiment, trials, count=4)
    assert kc.get(experiment, trials, count=4) == once


def test_tpe_gives_eight_running_trials_distinct_points(kc):
    parameters = mixed_space(kc)
    experiment = kc.experiment("tpe-parallel", parameters, "tpe", [("n_startup_trials", "5")])
    trials = []
    for round_ in range(3):
        for i, assignment in enumerate(kc.get(experiment, trials, count=5)):
            trials.append(kc.trial(f"tpe-parallel-{round_}-{i}", assignment, "SUCCEEDED",
                                   {"accuracy": repr(objective(assignment))}))
    # Eight workers ask one at a time while the others run (constant liar) ...
    running = []
    for i in range(8):
        (assignment,) = kc.get(experiment, trials + running, count=1)
        running.append(kc.trial(f"tpe-parallel-run-{i}", assignment))
    points = {tuple((a.name, a.value) for a in t.spec.parameter_assignments.assignments) for t in running}
    assert len(points) == 8
    # ... and eight at once, with those eight running.
    batch = kc.get(experiment, trials + running, count=8)
    assert len({tuple(a) for a in batch}) == 8
    assert not {tuple(a) for a in batch} & points
    finished = {tuple((a.name, a.value) for a in t.spec.parameter_assignments.assignments) for t in trials}
    assert not {tuple(a) for a in batch} & finished


@pytest.mark.parametrize("goal", ["MAXIMIZE", "MINIMIZE"])
def test_tpe_follows_the_objective_direction(kc, goal):
    # accuracy = x: a maximizing TPE moves to high x, a minimizing one to low x.
    parameters = [kc.parameter("x", "DOUBLE", min="0", max="1")]
    experiment = kc.experiment(f"direction-{goal}", parameters, "tpe", [("n_startup_trials", "10")],
                               objective=goal)
    trials = []
    for round_ in range(6):
        for i, assignment in enumerate(kc.get(experiment, trials, count=5)):
            trials.append(kc.trial(f"direction-{round_}-{i}", assignment, "SUCCEEDED",
                                   {"accuracy": assignment[0][1]}))
    late = [float(t.spec.parameter_assignments.assignments[0].value) for t in trials[15:]]
    mean = sum(late) / len(late)
    assert (mean > 0.7) if goal == "MAXIMIZE" else (mean < 0.3), late


def test_failed_and_unmeasured_trials_are_no_results(kc):
    # Only results move TPE: the same results with failed, killed and
    # unmeasured trials beside them give the same points.
    parameters = [kc.parameter("x", "DOUBLE", min="0", max="1")]
    settings = [("n_startup_trials", "3"), ("random_state", "11")]
    base = [kc.trial(f"r-{i}", [("x", x)], "SUCCEEDED", {"accuracy": x}) for i, x in enumerate(("0.1", "0.5", "0.9", "0.7"))]
    noise = [kc.trial("f-0", [("x", "0.2")], "FAILED"), kc.trial("f-1", [("x", "0.3")], "KILLED"),
             kc.trial("f-2", [("x", "0.4")], "METRICSUNAVAILABLE"),
             kc.trial("f-3", [("x", "0.6")], "SUCCEEDED", {"loss": "0.1"}),
             kc.trial("f-4", [("x", "0.8")], "SUCCEEDED", {"accuracy": "unavailable"})]
    plain = kc.get(kc.experiment("results-plain", parameters, "tpe", settings), base, count=3, total=12)
    noisy = kc.get(kc.experiment("results-noisy", parameters, "tpe", settings), base + noise, count=3, total=12)
    assert plain == noisy


# ---------------------------------------------------------------------------
# Validation


KATIB_SETTINGS = [
    ("random", [("random_state", "7")]),
    ("grid", [("random_state", "3")]),
    ("tpe", [("n_startup_trials", "5"), ("n_ei_candidates", "24"), ("random_state", "1"), ("gamma", "0.25"),
             ("prior_weight", "1.5")]),
    ("tpe", [("n_EI_candidates", "12")]),
    ("multivariate-tpe", [("n_startup_trials", "5"), ("random_state", "2")]),
    ("cmaes", [("sigma", "0.2"), ("restart_strategy", "bipop"), ("random_state", "5")]),
    ("cmaes", [("restart_strategy", "None")]),
    ("sobol", []),
]


@pytest.mark.parametrize("algorithm,settings", KATIB_SETTINGS)
def test_katibs_algorithms_and_settings_are_valid(kc, algorithm, settings):
    space = grid_space(kc) if algorithm == "grid" else mixed_space(kc)
    assert kc.validate(kc.experiment("valid", space, algorithm, settings)).ByteSize() == 0
    assert len(kc.get(kc.experiment(f"valid-{algorithm}", space, algorithm, settings), count=2)) == 2


BAD_ALGORITHMS = [
    ("bayesianoptimization", [], "experiment.spec.algorithm.algorithm_name", "unknown algorithm"),
    ("hyperband", [], "experiment.spec.algorithm.algorithm_name", "unknown algorithm"),
    ("enas", [], "experiment.spec.algorithm.algorithm_name", "unknown algorithm"),
    ("", [], "experiment.spec.algorithm.algorithm_name", "must name an algorithm"),
    ("tpe", [("n_startup_trials", "5"), ("learning_rate", "1")],
     "experiment.spec.algorithm.algorithm_settings[1].name", "unknown setting"),
    ("tpe", [("n_startup_trials", "-1")], "experiment.spec.algorithm.algorithm_settings[0].value", "at least 0"),
    ("tpe", [("gamma", "2")], "experiment.spec.algorithm.algorithm_settings[0].value", "at most 1"),
    ("tpe", [("n_ei_candidates", "8"), ("n_EI_candidates", "8")],
     "experiment.spec.algorithm.algorithm_settings[1].name", "n_ei_candidates"),
    ("random", [("random_state", "seven")], "experiment.spec.algorithm.algorithm_settings[0].value", "whole number"),
    ("random", [("random_state", "1"), ("random_state", "2")],
     "experiment.spec.algorithm.algorithm_settings[1].name", "given twice"),
    ("cmaes", [("sigma", "0")], "experiment.spec.algorithm.algorithm_settings[0].value", "greater than 0"),
    ("cmaes", [("restart_strategy", "sometimes")], "experiment.spec.algorithm.algorithm_settings[0].value",
     "none, ipop, bipop"),
    ("sobol", [("sequence", "halton")], "experiment.spec.algorithm.algorithm_settings[0].name", "sets sequence"),
    ("grid", [], "experiment.spec.parameter_specs.parameters[0]", "needs a step"),
]


@pytest.mark.parametrize("algorithm,settings,field,words", BAD_ALGORITHMS)
def test_bad_algorithms_and_settings_are_invalid_arguments(kc, algorithm, settings, field, words):
    experiment = kc.experiment("bad-settings", mixed_space(kc), algorithm, settings)
    for call in (lambda: kc.validate(experiment), lambda: kc.get(experiment, count=1)):
        err = error_of(call)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert field in err.violations, err.violations
        assert words in err.violations[field]
    # The server keeps serving.
    assert len(kc.get(kc.experiment("after-bad", mixed_space(kc), "random"), count=1)) == 1


def test_a_grid_smaller_than_max_trial_count_is_invalid(kc):
    err = error_of(kc.validate, kc.experiment("grid-small", grid_space(kc), "grid", max_trial_count=25))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "24 points" in err.violations["experiment.spec.max_trial_count"]
    assert kc.validate(kc.experiment("grid-small", grid_space(kc), "grid", max_trial_count=24)).ByteSize() == 0


def test_bad_experiments_and_trials_name_the_field(kc):
    k = kc
    cases = [
        ([k.parameter("x", "UNKNOWN_TYPE")], "experiment.spec.parameter_specs.parameters[0].parameter_type"),
        ([k.parameter("x", "DOUBLE", min="zero", max="1")], "experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        ([k.parameter("x", "DOUBLE", min="0")], "experiment.spec.parameter_specs.parameters[0].feasible_space.max"),
        ([k.parameter("x", "DOUBLE", min="2", max="1")], "experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        ([k.parameter("x", "INT", min="0.5", max="3")], "experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        ([k.parameter("x", "DOUBLE", min="0", max="1", step="-1")],
         "experiment.spec.parameter_specs.parameters[0].feasible_space.step"),
        ([k.parameter("x", "DOUBLE", min="0", max="1", distribution="NORMAL")],
         "experiment.spec.parameter_specs.parameters[0].feasible_space.distribution"),
        ([k.parameter("x", "DOUBLE", min="0", max="1", distribution="LOG_UNIFORM")],
         "experiment.spec.parameter_specs.parameters[0].feasible_space.min"),
        ([k.parameter("x", "DISCRETE", values=("1", "two"))],
         "experiment.spec.parameter_specs.parameters[0].feasible_space.list[1]"),
        ([k.parameter("x", "DISCRETE", values=("1", "1.0"))],
         "experiment.spec.parameter_specs.parameters[0].feasible_space.list"),
        ([k.parameter("x", "CATEGORICAL")], "experiment.spec.parameter_specs.parameters[0].feasible_space.list"),
        ([k.parameter("x", "INT", min="0", max="3"), k.parameter("x", "INT", min="0", max="3")],
         "experiment.spec.parameter_specs.parameters[1].name"),
        ([], "experiment.spec.parameter_specs.parameters"),
    ]
    for parameters, field in cases:
        experiment = k.experiment("bad", parameters, "random")
        for call in (lambda e=experiment: k.validate(e), lambda e=experiment: k.get(e)):
            err = error_of(call)
            assert err.code == grpc.StatusCode.INVALID_ARGUMENT, field
            assert field in err.violations, (field, err.violations)

    good = [k.parameter("x", "DOUBLE", min="0", max="1"), k.parameter("n", "INT", min="0", max="3")]
    err = error_of(k.get, k.experiment("", good, "random", objective="UNKNOWN", metric=""))
    assert {"experiment.name", "experiment.spec.objective.type",
            "experiment.spec.objective.objective_metric_name"} <= set(err.violations)

    experiment = k.experiment("bad-trials", good, "random")
    trials = [k.trial("t", [("x", "0.5"), ("n", "1")]), k.trial("t", [("x", "0.5"), ("n", "1")]),
              k.trial("u", [("x", "half"), ("n", "2.5")]), k.trial("", [])]
    err = error_of(k.get, experiment, trials, 1)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(err.violations) == {
        "trials[1].name", "trials[2].spec.parameter_assignments.assignments[0].value",
        "trials[2].spec.parameter_assignments.assignments[1].value", "trials[3].name"}
    err = error_of(k.get, experiment, [], -1)
    assert "current_request_number" in err.violations
    # The server keeps serving, and an empty request is an empty answer.
    assert k.get(experiment, [], 0) == []
    assert len(k.get(experiment, [], 2)) == 2


def test_values_outside_the_space_or_not_in_it_are_read_not_refused(kc):
    # A trial from before the space changed: readable values are taken as they are.
    parameters = [kc.parameter("x", "DOUBLE", min="0", max="1"), kc.parameter("c", "CATEGORICAL", values=("a", "b"))]
    experiment = kc.experiment("old-trials", parameters, "tpe", [("n_startup_trials", "2")])
    trials = [kc.trial("old-0", [("x", "7"), ("c", "zzz")], "SUCCEEDED", {"accuracy": "0.9"}),
              kc.trial("old-1", [("x", "0.5"), ("c", "a")], "SUCCEEDED", {"accuracy": "0.4"}),
              kc.trial("old-2", [("x", "0.25")], "SUCCEEDED", {"accuracy": "0.4"})]
    for assignment in kc.get(experiment, trials, count=3):
        x, c = dict(assignment)["x"], dict(assignment)["c"]
        assert 0 <= float(x) <= 1 and c in ("a", "b")



# ---------------------------------------------------------------------------
# Early stopping: medianstop


def stopping_experiment(k: Katib, settings=(), objective: str = "MAXIMIZE", name: str = "median"):
    return k.experiment(name, [k.parameter("x", "DOUBLE", min="0", max="1")], "random",
                        stopping="medianstop", stopping_settings=settings, objective=objective)


def planted(k: Katib, prefix: str) -> list:
    """Succeeded trials whose means over their first three reports are 0.5,
    0.25, 1.0, 0.75 (two reports only) and 0.875 (no log: its observation),
    beside trials that must not count."""
    logs = {
        f"{prefix}-a": ["0.25", "0.5", "0.75", "1.0"],
        f"{prefix}-b": ["0.125", "0.25", "0.375", "0.99"],
        f"{prefix}-c": ["1", "1", "1", "0"],
        f"{prefix}-d": ["0.5", "unavailable", "1.0"],
        f"{prefix}-running": ["0.01", "0.01", "0.01"],
        f"{prefix}-failed": ["0.02", "0.02", "0.02"],
        f"{prefix}-early": ["0.03", "0.03", "0.03"],
    }
    for trial_name, values in logs.items():
        k.report(trial_name, "accuracy", values)
        k.report(trial_name, "loss", ["9", "9", "9"])
    point = [("x", "0.5")]
    return [
        k.trial(f"{prefix}-a", point, "SUCCEEDED", {"accuracy": "1.0"}),
        k.trial(f"{prefix}-b", point, "SUCCEEDED", {"accuracy": "0.99"}),
        k.trial(f"{prefix}-c", point, "SUCCEEDED", {"accuracy": "1"}),
        k.trial(f"{prefix}-d", point, "SUCCEEDED", {"accuracy": "1.0"}),
        k.trial(f"{prefix}-e", point, "SUCCEEDED", {"accuracy": "0.875"}),
        k.trial(f"{prefix}-running", point, "RUNNING"),
        k.trial(f"{prefix}-failed", point, "FAILED"),
        k.trial(f"{prefix}-early", point, "EARLYSTOPPED", {"accuracy": "0.03"}),
        k.trial(f"{prefix}-unmeasured", point, "SUCCEEDED"),
    ]


def test_medianstop_rules_reflect_the_planted_trials(kc):
    trials = planted(kc, "planted")
    settings = [("min_trials_required", "5"), ("start_step", "3")]
    # The median of 0.25, 0.5, 0.75, 0.875 and 1.0 (their mean would be 0.675).
    assert kc.rules(stopping_experiment(kc, settings), trials) == [("accuracy", "0.75", "LESS", 3)]
    # Minimizing, a trial is stopped above the median instead.
    assert kc.rules(stopping_experiment(kc, settings, "MINIMIZE"), trials) == [("accuracy", "0.75", "GREATER", 3)]
    # One report each: 0.25, 0.125, 1, 0.5 and 0.875.
    assert kc.rules(stopping_experiment(kc, [("min_trials_required", "5"), ("start_step", "1")]), trials) == [
        ("accuracy", "0.5", "LESS", 1)]
    # Katib's defaults: three trials at least, start_step 4 (means 0.435, 0.625, 0.75, 0.75, 0.875).
    assert kc.rules(stopping_experiment(kc), trials) == [("accuracy", "0.75", "LESS", 4)]


def test_medianstop_has_no_rule_until_enough_trials_succeeded(kc):
    trials = planted(kc, "few")
    settings = [("min_trials_required", "6"), ("start_step", "3")]
    assert kc.rules(stopping_experiment(kc, settings), trials) == []
    assert kc.rules(stopping_experiment(kc, settings), []) == []
    kc.report("few-f", "accuracy", ["0.0625", "0.0625", "0.0625"])
    trials.append(kc.trial("few-f", [("x", "0.1")], "SUCCEEDED", {"accuracy": "0.0625"}))
    # 0.0625, 0.25, 0.5, 0.75, 0.875, 1.0
    assert kc.rules(stopping_experiment(kc, settings), trials) == [("accuracy", "0.625", "LESS", 3)]


def test_set_trial_status_marks_the_trial_for_the_rules(kc):
    trials = planted(kc, "marked")
    settings = [("min_trials_required", "4"), ("start_step", "3")]
    assert kc.rules(stopping_experiment(kc, settings), trials) == [("accuracy", "0.75", "LESS", 3)]
    # A collector stopped marked-c early: it no longer counts, whatever Katib says of it.
    assert kc.set_trial_status("marked-c").ByteSize() == 0
    assert kc.rules(stopping_experiment(kc, settings), trials) == [("accuracy", "0.625", "LESS", 3)]
    kc.set_trial_status("marked-a")
    assert kc.rules(stopping_experiment(kc, settings), trials) == []


def test_set_trial_status_stops_the_trialplane_trial_once(kc, client):
    trial = trial_in(client, trial_pb2.TRIAL_STATE_RUNNING, name="katib-stop-me")
    before = list(client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events)
    kc.set_trial_status("katib-stop-me")
    stopped = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert stopped.state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    events = list(client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events)
    (new,) = events[len(before):]
    assert new.to_state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    assert "Katib" in new.message and "SetTrialStatus" in new.message
    assert dict(new.details["early_stopping"]) == {
        "rule": "medianstop", "decided_by": "katib", "katib_trial_name": "katib-stop-me"}
    # Again: nothing more happens.
    kc.set_trial_status("katib-stop-me")
    again = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert again.state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    assert len(client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events) == len(events)


def test_set_trial_status_leaves_an_ended_trial_and_takes_unknown_names(kc, client):
    done = trial_in(client, trial_pb2.TRIAL_STATE_COMPLETED, name="katib-done")
    kc.set_trial_status("katib-done")
    assert client.trials.GetTrial(ts.GetTrialRequest(id=done.id)).state == trial_pb2.TRIAL_STATE_COMPLETED
    kc.set_trial_status("katib-never-seen")
    kc.set_trial_status("katib-never-seen")
    err = error_of(kc.set_trial_status, "")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "trial_name" in err.violations


def test_trials_marked_early_stopped_are_results_for_suggestions(kc):
    # The same history three ways: trial x as Katib's SUCCEEDED with its value;
    # as FAILED (what Katib shows once a collector killed it) but marked
    # through SetTrialStatus, its value then read from its log; as FAILED unmarked.
    parameters = [kc.parameter("x", "DOUBLE", min="0", max="1")]
    settings = [("n_startup_trials", "3"), ("random_state", "5")]
    base = [kc.trial(f"es-{i}", [("x", x)], "SUCCEEDED", {"accuracy": x}) for i, x in enumerate(("0.1", "0.4", "0.6"))]

    def suggest(name, last):
        return kc.get(kc.experiment(name, parameters, "tpe", settings), base + [last], count=4, total=10)

    kc.report("es-logged", "accuracy", ["0.3", "0.95", "0.5"])
    kc.set_trial_status("es-logged")
    kc.report("es-unmarked", "accuracy", ["0.3", "0.95", "0.5"])
    reference = suggest("es-reference", kc.trial("es-value", [("x", "0.9")], "SUCCEEDED", {"accuracy": "0.95"}))
    assert suggest("es-marked", kc.trial("es-logged", [("x", "0.9")], "FAILED")) == reference
    assert suggest("es-condition", kc.trial("es-cond", [("x", "0.9")], "EARLYSTOPPED", {"accuracy": "0.95"})) == reference
    assert suggest("es-failed", kc.trial("es-unmarked", [("x", "0.9")], "FAILED")) != reference


def test_early_stopping_settings(kc):
    for settings in ([], [("min_trials_required", "1")], [("start_step", "10"), ("min_trials_required", "2")]):
        assert kc.validate_stopping("medianstop", settings).ByteSize() == 0
    bad = [
        ("", [], "early_stopping.algorithm_name", "must name"),
        ("patience", [], "early_stopping.algorithm_name", "unknown early-stopping rule 'patience'"),
        ("asha", [], "early_stopping.algorithm_name", "cannot carry"),
        ("medianstop", [("burn_in", "3")], "early_stopping.algorithm_settings[0].name", "unknown setting"),
        ("medianstop", [("min_trials_required", "0")], "early_stopping.algorithm_settings[0].value", "at least 1"),
        ("medianstop", [("start_step", "four")], "early_stopping.algorithm_settings[0].value", "integer"),
        ("medianstop", [("start_step", "2"), ("start_step", "3")], "early_stopping.algorithm_settings[1].name",
         "given twice"),
        ("medianstop", [("", "3")], "early_stopping.algorithm_settings[0].name", "must not be empty"),
    ]
    for name, settings, field, words in bad:
        err = error_of(kc.validate_stopping, name, settings)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert words in err.violations[field], err.violations
        # GetEarlyStoppingRules checks the experiment's the same way.
        err = error_of(kc.rules, stopping_experiment(kc, settings) if name == "medianstop" else kc.experiment(
            "bad-rule", [kc.parameter("x", "DOUBLE", min="0", max="1")], "random", stopping=name))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"experiment.spec.{field}" in err.violations
    err = error_of(kc.rules, stopping_experiment(kc, objective="UNKNOWN"), [kc.trial("", [])])
    assert {"experiment.spec.objective.type", "trials[0].name"} <= set(err.violations)
    # The server keeps serving.
    assert kc.rules(stopping_experiment(kc), []) == []
