"""SuggestTrials, the study lifecycle and algorithm settings through a real server."""

from __future__ import annotations

import itertools

import grpc
import pytest
from google.protobuf import field_mask_pb2
from support import create_study, error_of, make_study
from support.trials import S, report
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import study_pb2, trial_pb2
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import trial_service_pb2 as ts

ACTIVE = study_pb2.STUDY_STATE_ACTIVE
COMPLETED = study_pb2.STUDY_STATE_COMPLETED


def algorithm(name: str, **settings) -> study_pb2.AlgorithmSpec:
    return study_pb2.AlgorithmSpec(
        name=name, settings=[study_pb2.AlgorithmSetting(name=k, value=str(v)) for k, v in settings.items()])


def suggest(client, study_id: int, count: int = 1, client_id: str = "") -> ss.SuggestTrialsResponse:
    return client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study_id, count=count, client_id=client_id))


def study_of(client, study_id: int) -> study_pb2.Study:
    return client.studies.GetStudy(ss.GetStudyRequest(id=study_id))


def hp(trial: trial_pb2.Trial) -> dict:
    out = {}
    for name, value in trial.hyperparameters.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind)
    return out


def validate(client, trial_id: int, value: float) -> None:
    metrics = mp.Metrics()
    metrics.avg_metrics.update({"val_loss": value})
    client.metrics.ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=1, metrics=metrics), group="validation"))


def finish(client, trial_id: int, loss: float | None = None, state=S.TRIAL_STATE_COMPLETED) -> None:
    report(client, trial_id, S.TRIAL_STATE_RUNNING)
    if loss is not None:
        validate(client, trial_id, loss)
    report(client, trial_id, state)


GRID_SPACE = [
    study_pb2.ParameterSpec(name="layers", type=study_pb2.PARAMETER_TYPE_INT,
                            feasible_space=study_pb2.FeasibleSpace(min=1, max=3)),
    study_pb2.ParameterSpec(name="optimizer", type=study_pb2.PARAMETER_TYPE_CATEGORICAL,
                            feasible_space=study_pb2.FeasibleSpace(categories=["sgd", "adam"])),
]


def grid_study(client, name="grid", **fields) -> study_pb2.Study:
    study = make_study(name, algorithm=algorithm("grid"), **fields)
    del study.parameters[:]
    study.parameters.extend(GRID_SPACE)
    return client.studies.CreateStudy(ss.CreateStudyRequest(study=study))


def test_suggestions_are_queued_trials_inside_the_space(client):
    study = create_study(client, "rand", algorithm=algorithm("random", random_state=7))
    got = suggest(client, study.id, 5)
    assert not got.study_done and len(got.trials) == 5
    names = [t.name for t in got.trials]
    assert names == [f"rand-{i}" for i in range(1, 6)]
    for t in got.trials:
        assert t.state == S.TRIAL_STATE_QUEUED and t.study_id == study.id
        values = hp(t)
        assert 1e-4 <= values["lr"] <= 0.1
        assert values["layers"] in range(1, 9) and isinstance(values["layers"], int)
        assert values["optimizer"] in ("sgd", "adam")
    assert len({t.hyperparameters["lr"].double_value for t in got.trials}) == 5
    after = study_of(client, study.id)
    assert (after.trial_count, after.suggestion_count) == (5, 5)
    # The same trials read back through TrialService.
    listed = client.trials.ListTrials(ts.ListTrialsRequest(study_id=study.id)).trials
    assert sorted(t.id for t in listed) == sorted(t.id for t in got.trials)


def test_a_client_id_repeat_returns_its_unfinished_trials_instead_of_new_ones(client):
    study = create_study(client, "retry")
    first = suggest(client, study.id, 2, client_id="worker-1")
    again = suggest(client, study.id, 2, client_id="worker-1")
    assert [t.id for t in again.trials] == [t.id for t in first.trials]
    assert all(t.client_id == "worker-1" for t in again.trials)
    other = suggest(client, study.id, 1, client_id="worker-2")
    assert other.trials[0].id not in {t.id for t in first.trials}
    assert study_of(client, study.id).trial_count == 3
    # Once one of worker-1's trials ends, a repeat tops up with a new one.
    finish(client, first.trials[0].id, 0.5)
    topped = suggest(client, study.id, 2, client_id="worker-1")
    assert topped.trials[0].id == first.trials[1].id
    assert topped.trials[1].id not in {t.id for t in first.trials} | {other.trials[0].id}


def test_parallel_trials_caps_what_is_handed_out(client):
    study = create_study(client, "capped", parallel_trials=2)
    assert len(suggest(client, study.id, 5).trials) == 2
    full = suggest(client, study.id, 1)
    assert full.trials == [] and not full.study_done
    first = client.trials.ListTrials(ts.ListTrialsRequest(study_id=study.id)).trials[0]
    finish(client, first.id, 0.3)
    assert len(suggest(client, study.id, 5).trials) == 1


def test_grid_hands_out_every_point_once_then_completes_the_study(client):
    study = grid_study(client)
    got = [*suggest(client, study.id, 4).trials, *suggest(client, study.id, 10).trials]
    points = sorted((hp(t)["layers"], hp(t)["optimizer"]) for t in got)
    assert points == sorted(itertools.product([1, 2, 3], ["adam", "sgd"]))
    done = study_of(client, study.id)
    assert done.state == COMPLETED and done.state_message.startswith("search space exhausted")
    assert suggest(client, study.id, 1).study_done
    late = trial_pb2.Trial(study_id=study.id)
    late.hyperparameters["layers"].int_value = 1
    late.hyperparameters["optimizer"].string_value = "sgd"
    err = error_of(client.trials.CreateTrial, ts.CreateTrialRequest(trial=late))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")


def test_reaching_the_goal_completes_the_study(client):
    study = create_study(client, "goal", objective=study_pb2.Objective(
        metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE, goal=0.1))
    a, b = suggest(client, study.id, 2).trials
    report(client, a.id, S.TRIAL_STATE_RUNNING)
    validate(client, a.id, 0.4)
    assert study_of(client, study.id).state == ACTIVE
    validate_step = mp.Metrics()
    validate_step.avg_metrics.update({"val_loss": 0.05})
    client.metrics.ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=a.id, steps_completed=2, metrics=validate_step), group="validation"))
    done = study_of(client, study.id)
    assert done.state == COMPLETED
    assert done.state_message == f"goal reached: val_loss 0.05 <= 0.1 in trial {a.id}"
    # Trials still running go on; no new ones are handed out.
    assert client.trials.GetTrial(ts.GetTrialRequest(id=b.id)).state == S.TRIAL_STATE_QUEUED
    assert suggest(client, study.id, 1) == ss.SuggestTrialsResponse(study_done=True)


def test_max_trials_ended_completes_the_study_and_max_failed_fails_it(client):
    budget = create_study(client, "budget", max_trials=2)
    trials = suggest(client, budget.id, 5).trials
    assert len(trials) == 2
    finish(client, trials[0].id, 0.2)
    assert study_of(client, budget.id).state == ACTIVE
    finish(client, trials[1].id, 0.3)
    done = study_of(client, budget.id)
    assert (done.state, done.state_message) == (COMPLETED, "max_trials reached: all 2 trials ended")

    fragile = create_study(client, "fragile", max_failed_trials=2)
    first, second, third = suggest(client, fragile.id, 3).trials
    finish(client, first.id, state=S.TRIAL_STATE_ERROR)
    finish(client, third.id, 0.1)
    assert study_of(client, fragile.id).state == ACTIVE
    finish(client, second.id, state=S.TRIAL_STATE_ERROR)
    failed = study_of(client, fragile.id)
    assert failed.state == study_pb2.STUDY_STATE_FAILED
    assert failed.state_message == "max_failed_trials reached: 2 trials ended in ERROR"


def test_stop_study_stops_its_trials_and_complete_study_lets_them_run(client):
    study = create_study(client, "stop-me")
    queued, running = suggest(client, study.id, 2).trials
    report(client, running.id, S.TRIAL_STATE_RUNNING)
    stopped = client.studies.StopStudy(ss.StopStudyRequest(id=study.id, reason="budget cut"))
    assert (stopped.state, stopped.state_message) == (study_pb2.STUDY_STATE_STOPPED, "budget cut")
    assert client.trials.GetTrial(ts.GetTrialRequest(id=running.id)).state == S.TRIAL_STATE_STOPPING_CANCELED
    assert client.trials.GetTrial(ts.GetTrialRequest(id=queued.id)).state == S.TRIAL_STATE_CANCELED
    events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=running.id)).events
    assert events[-1].message == "study: budget cut"
    err = error_of(client.studies.StopStudy, ss.StopStudyRequest(id=study.id))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")

    other = create_study(client, "complete-me")
    (trial,) = suggest(client, other.id, 1).trials
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    completed = client.studies.CompleteStudy(ss.CompleteStudyRequest(id=other.id))
    assert (completed.state, completed.state_message) == (COMPLETED, "completed by CompleteStudy")
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).state == S.TRIAL_STATE_RUNNING
    assert error_of(client.studies.CompleteStudy, ss.CompleteStudyRequest(id=other.id)).reason == "ILLEGAL_TRANSITION"
    assert error_of(client.studies.StopStudy, ss.StopStudyRequest(id=999)).code == grpc.StatusCode.NOT_FOUND


def test_algorithms_and_their_settings_are_checked(client):
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(
        study=make_study("unknown", algorithm=algorithm("simulated-annealing"))))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown algorithm" in err.violations["study.algorithm.name"]
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(
        study=make_study("bad-setting", algorithm=algorithm("random", random_state="seven"))))
    assert list(err.violations) == ["study.algorithm.settings[0].value"]
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(
        study=make_study("bad-rule", early_stopping=study_pb2.EarlyStoppingSpec(name="coin-flip"))))
    assert "study.early_stopping.name" in err.violations
    # grid needs a step on every DOUBLE: the parameter is named.
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(
        study=make_study("bad-grid", algorithm=algorithm("grid"))))
    assert list(err.violations) == ["study.parameters[0]"]

    known = client.studies.ValidateAlgorithmSettings(ss.ValidateAlgorithmSettingsRequest(
        algorithm=algorithm("grid"), parameters=GRID_SPACE))
    assert {"random", "grid", "quasirandom", "tpe", "cmaes"} <= set(known.algorithms)
    assert {"medianstop", "asha", "hyperband"} <= set(known.early_stopping_rules)
    err = error_of(client.studies.ValidateAlgorithmSettings, ss.ValidateAlgorithmSettingsRequest(
        algorithm=algorithm("tpe", gamma="-1"), parameters=GRID_SPACE))
    assert list(err.violations) == ["algorithm.settings[0].value"]
    # An unknown setting of a rule is wrong by its name, as an algorithm's is.
    err = error_of(client.studies.ValidateAlgorithmSettings, ss.ValidateAlgorithmSettingsRequest(
        algorithm=algorithm("random"), parameters=GRID_SPACE,
        early_stopping=study_pb2.EarlyStoppingSpec(name="medianstop", settings=algorithm("", grace=3).settings)))
    assert list(err.violations) == ["early_stopping.settings[0].name"]


def test_validate_algorithm_settings_checks_the_space_as_create_study_does(client):
    def violations(*parameters, name="tpe"):
        err = error_of(client.studies.ValidateAlgorithmSettings, ss.ValidateAlgorithmSettingsRequest(
            algorithm=algorithm(name), parameters=list(parameters)))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        return err.violations

    untyped = study_pb2.ParameterSpec(name="lr", feasible_space=study_pb2.FeasibleSpace(min=0, max=1))
    assert list(violations(untyped)) == ["parameters[0].type"]
    log_from_zero = study_pb2.ParameterSpec(name="lr", type=study_pb2.PARAMETER_TYPE_DOUBLE,
                                            scale=study_pb2.PARAMETER_SCALE_LOG,
                                            feasible_space=study_pb2.FeasibleSpace(min=0, max=1))
    assert "LOG" in violations(log_from_zero)["parameters[0].feasible_space.min"]
    unbounded = study_pb2.ParameterSpec(name="lr", type=study_pb2.PARAMETER_TYPE_DOUBLE)
    assert set(violations(unbounded, name="random")) == {"parameters[0].feasible_space.min",
                                                         "parameters[0].feasible_space.max"}
    upside_down = study_pb2.ParameterSpec(name="n", type=study_pb2.PARAMETER_TYPE_INT,
                                          feasible_space=study_pb2.FeasibleSpace(min=5, max=1, step=-1))
    assert set(violations(upside_down, name="grid")) == {"parameters[0].feasible_space.min",
                                                        "parameters[0].feasible_space.step"}
    no_categories = study_pb2.ParameterSpec(name="opt", type=study_pb2.PARAMETER_TYPE_CATEGORICAL)
    assert list(violations(no_categories)) == ["parameters[0].feasible_space.categories"]
    assert list(violations(GRID_SPACE[0], GRID_SPACE[0])) == ["parameters[1].name"]
    # The server still answers.
    assert "tpe" in client.studies.ValidateAlgorithmSettings(ss.ValidateAlgorithmSettingsRequest(
        algorithm=algorithm("tpe"), parameters=GRID_SPACE)).algorithms


def test_the_algorithm_can_change_while_the_study_is_active(client):
    study = create_study(client, "switch")
    assert len(suggest(client, study.id, 2).trials) == 2
    change = make_study("switch", algorithm=algorithm("grid"))
    del change.parameters[:]
    change.id = study.id
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(
        study=change, update_mask=field_mask_pb2.FieldMask(paths=["algorithm"])))
    assert list(err.violations) == ["study.parameters[0]"]
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(
        study=make_study("switch", id=study.id, algorithm=algorithm("quasirandom", seed=3)),
        update_mask=field_mask_pb2.FieldMask(paths=["algorithm"])))
    assert "random_state" in err.violations["study.algorithm.settings[0].name"]
    change.algorithm.CopyFrom(algorithm("quasirandom", random_state=3))
    updated = client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=change, update_mask=field_mask_pb2.FieldMask(paths=["algorithm"])))
    assert updated.algorithm.name == "quasirandom"
    more = suggest(client, study.id, 2)
    assert [t.name for t in more.trials] == ["switch-3", "switch-4"]
    client.studies.CompleteStudy(ss.CompleteStudyRequest(id=study.id))
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(
        study=change, update_mask=field_mask_pb2.FieldMask(paths=["algorithm"])))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")


@pytest.mark.parametrize("request_fields, field", [
    ({"count": 101}, "count"),
    ({"count": -1}, "count"),
    ({"client_id": "x" * 129}, "client_id"),
    ({"client_id": "worker\n7"}, "client_id"),
])
def test_bad_suggest_requests_name_their_field(client, request_fields, field):
    study = create_study(client, "bad")
    err = error_of(client.studies.SuggestTrials, ss.SuggestTrialsRequest(study_id=study.id, **request_fields))
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert len(suggest(client, study.id, 1).trials) == 1


def test_suggest_needs_a_study_with_a_space(client):
    assert error_of(client.studies.SuggestTrials, ss.SuggestTrialsRequest(study_id=404)).code == grpc.StatusCode.NOT_FOUND
    bare = make_study("bare")
    del bare.parameters[:]
    study = client.studies.CreateStudy(ss.CreateStudyRequest(study=bare))
    err = error_of(client.studies.SuggestTrials, ss.SuggestTrialsRequest(study_id=study.id))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "no search space" in err.message


def test_eight_workers_suggesting_at_once_with_tpe_get_distinct_points(client):
    from concurrent.futures import ThreadPoolExecutor

    study = create_study(client, "tpe-8", algorithm=algorithm("tpe", n_startup_trials=4), parallel_trials=16)
    # Some results first, so TPE is past its random start-up.
    for i, t in enumerate(suggest(client, study.id, 6).trials):
        finish(client, t.id, 0.1 * (i + 1))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda w: suggest(client, study.id, 1, client_id=f"w{w}"), range(8)))
    points = [a.trials[0].hyperparameters["lr"].double_value for a in answers]
    assert len(set(points)) == 8 and all(1e-4 <= p <= 0.1 for p in points)
    assert len({a.trials[0].id for a in answers}) == 8
    assert study_of(client, study.id).suggestion_count == 14


def test_cmaes_after_a_restart_starts_from_the_studys_best_results(db_path):
    from support import Client, start_server

    xy = [study_pb2.ParameterSpec(name=n, type=study_pb2.PARAMETER_TYPE_DOUBLE,
                                  feasible_space=study_pb2.FeasibleSpace(min=-1, max=1)) for n in ("x", "y")]

    def loss(t):
        p = hp(t)
        return (p["x"] - 0.5) ** 2 + (p["y"] + 0.5) ** 2

    srv = start_server(db_path)
    c = Client.connect(srv.address)
    study = make_study("warm", algorithm=algorithm("cmaes", population_size=6, sigma0=0.5))
    del study.parameters[:]
    study.parameters.extend(xy)
    study = c.studies.CreateStudy(ss.CreateStudyRequest(study=study))
    history = []
    for _ in range(4):
        for trial in suggest(c, study.id, 6).trials:
            finish(c, trial.id, loss(trial))
            history.append(loss(trial))
    c.channel.close()
    port = srv.app.port
    srv.stop()
    srv = start_server(db_path, port=port)
    c = Client.connect(srv.address)
    after = [loss(t) for t in suggest(c, study.id, 6).trials]
    best_tenth = sorted(history)[: len(history) // 10 + 2]
    assert sum(after) / len(after) < sum(history) / len(history)
    assert min(after) < max(best_tenth) * 4
    c.channel.close()
    srv.stop()


def complete(client, trial_id: int, **fields) -> trial_pb2.Trial:
    return client.trials.CompleteTrial(ts.CompleteTrialRequest(id=trial_id, **fields))


def test_ask_and_tell_started_trials_end_with_their_result_in_one_call(client):
    study = create_study(client, "ask-tell", objective=study_pb2.Objective(
        metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE, goal=0.1))
    a, b = suggest_started = client.studies.SuggestTrials(ss.SuggestTrialsRequest(
        study_id=study.id, count=2, client_id="driver", start=True)).trials
    assert [t.state for t in suggest_started] == [S.TRIAL_STATE_RUNNING] * 2
    assert all(t.HasField("start_time") for t in suggest_started)
    events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=a.id)).events
    assert [(e.from_state, e.to_state, e.message) for e in events] == [
        (S.TRIAL_STATE_QUEUED, S.TRIAL_STATE_RUNNING, "started by SuggestTrials for driver")]
    # A repeat returns the driver's running trials as they are.
    again = client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study.id, count=2, client_id="driver", start=True))
    assert [(t.id, t.etag) for t in again.trials] == [(a.id, a.etag), (b.id, b.etag)]

    done = complete(client, a.id, final_metrics={"val_loss": 0.4, "accuracy": 0.8}, steps_completed=12, request_id="tell-a")
    assert (done.state, done.searcher_metric_value, done.steps_completed) == (S.TRIAL_STATE_COMPLETED, 0.4, 12)
    assert {s.name: (s.last, s.last_step) for s in done.summary_metrics} == {"val_loss": (0.4, 12), "accuracy": (0.8, 12)}
    assert done.best_validation.metrics.avg_metrics["val_loss"] == 0.4 and done.best_validation.total_batches == 12
    # A retry with the same request_id changes nothing; other values under it are refused.
    assert complete(client, a.id, final_metrics={"val_loss": 0.4, "accuracy": 0.8}, steps_completed=12,
                    request_id="tell-a").etag == done.etag
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(
        id=a.id, final_metrics={"val_loss": 0.3}, request_id="tell-a"))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")
    # Without one, a completed trial takes no second result.
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(id=a.id, final_metrics={"val_loss": 0.3}))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    # The next suggestion for the driver is a new trial; a result at the goal completes the study.
    (c,) = client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study.id, count=2, client_id="driver",
                                                                start=True)).trials[1:]
    assert c.id not in (a.id, b.id)
    complete(client, b.id, final_metrics={"val_loss": 0.05})
    ended = study_of(client, study.id)
    assert ended.state == COMPLETED and ended.state_message == f"goal reached: val_loss 0.05 <= 0.1 in trial {b.id}"
    # A trial completed without final metrics keeps what it reported before.
    validate(client, c.id, 0.7)
    plain = complete(client, c.id)
    assert (plain.state, plain.searcher_metric_value) == (S.TRIAL_STATE_COMPLETED, 0.7)


@pytest.mark.parametrize("request_fields, field", [
    ({"id": 0}, "id"),
    ({"steps_completed": -1}, "steps_completed"),
    ({"trial_run_id": -1}, "trial_run_id"),
    ({"final_metrics": {"": 1.0}}, "final_metrics[]"),
    ({"final_metrics": {"bad\nname": 1.0}}, "final_metrics[bad\nname]"),
    ({"request_id": "r" * 129}, "request_id"),
    ({"message": "m" * 4097}, "message"),
    ({"message": "done\x00"}, "message"),
])
def test_bad_complete_requests_name_their_field_and_change_nothing(client, request_fields, field):
    study = create_study(client, "bad-tell")
    (trial,) = suggest(client, study.id, 1).trials
    request = {"id": trial.id, "final_metrics": {"val_loss": 0.5}, **request_fields}
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(**request))
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).state == S.TRIAL_STATE_QUEUED


def test_complete_refuses_what_the_trial_cannot_take_and_keeps_serving(client):
    study = create_study(client, "refused")
    a, b = suggest(client, study.id, 2).trials
    assert error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(id=10_000)).code == grpc.StatusCode.NOT_FOUND
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(id=a.id, trial_run_id=3,
                                                                        final_metrics={"val_loss": 1.0}))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STALE_TRIAL_RUN")
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(id=a.id, etag="99"))
    assert err.code == grpc.StatusCode.ABORTED
    client.trials.PauseTrial(ts.PauseTrialRequest(id=b.id))
    err = error_of(client.trials.CompleteTrial, ts.CompleteTrialRequest(id=b.id, final_metrics={"val_loss": 1.0}))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
    # Nothing of the refused calls was stored.
    for t in (a, b):
        assert list(client.trials.GetTrial(ts.GetTrialRequest(id=t.id)).summary_metrics) == []
    assert complete(client, a.id, final_metrics={"val_loss": 1.0}).state == S.TRIAL_STATE_COMPLETED


def test_eight_ask_and_tell_drivers_with_tpe_learn_and_never_share_a_point(client):
    from concurrent.futures import ThreadPoolExecutor

    study = create_study(client, "tpe-ask-tell", algorithm=algorithm("tpe", n_startup_trials=4), parallel_trials=16)

    def driver(w: int) -> list[float]:
        points = []
        for _ in range(5):
            (t,) = client.studies.SuggestTrials(ss.SuggestTrialsRequest(
                study_id=study.id, count=1, client_id=f"w{w}", start=True)).trials
            lr = t.hyperparameters["lr"].double_value
            points.append(lr)
            assert complete(client, t.id, final_metrics={"val_loss": abs(lr - 0.01)}).state == S.TRIAL_STATE_COMPLETED
        return points

    with ThreadPoolExecutor(8) as pool:
        points = [p for ps in pool.map(driver, range(8)) for p in ps]
    assert len(points) == 40 and len(set(points)) == 40
    done = client.trials.ListTrials(ts.ListTrialsRequest(study_id=study.id, states=[S.TRIAL_STATE_COMPLETED]))
    assert len(done.trials) == 40 and all(t.HasField("searcher_metric_value") for t in done.trials)
