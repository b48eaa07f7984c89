"""Early stopping through a real server: the study's rule is applied as
validation metrics are stored, and CheckEarlyStopping answers on demand."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from support import create_study, error_of
from support.trials import S, report
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import study_pb2
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import trial_service_pb2 as ts


def rule(name: str, **settings) -> study_pb2.EarlyStoppingSpec:
    return study_pb2.EarlyStoppingSpec(
        name=name, settings=[study_pb2.AlgorithmSetting(name=k, value=str(v)) for k, v in settings.items()])


def running_trials(client, study_id: int, n: int) -> list[int]:
    trials = client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study_id, count=n)).trials
    for t in trials:
        report(client, t.id, S.TRIAL_STATE_RUNNING)
    return [t.id for t in trials]


def validate(client, trial_id: int, step: int, loss: float, metric: str = "val_loss") -> None:
    metrics = mp.Metrics()
    metrics.avg_metrics.update({metric: loss})
    client.metrics.ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=metrics), group="validation"))


def state_within(client, trial_id: int, state: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.trials.GetTrial(ts.GetTrialRequest(id=trial_id)).state == state:
            return True
        time.sleep(0.02)
    return False


def test_median_stopping_stops_the_planted_bad_trial_and_records_why(client):
    study = create_study(client, "median", early_stopping=rule("medianstop", min_trials_required=2, start_step=2))
    good_a, good_b, good_c, bad = running_trials(client, study.id, 4)
    for step in range(1, 6):
        for tid, loss in ((good_a, 1.0 / step), (good_b, 1.2 / step), (good_c, 0.9 / step)):
            validate(client, tid, step, loss)
    validate(client, bad, 1, 3.0)
    # Step 1 is before start_step: nothing is judged yet.
    assert client.trials.GetTrial(ts.GetTrialRequest(id=bad)).state == S.TRIAL_STATE_RUNNING
    validate(client, bad, 2, 2.5)
    assert state_within(client, bad, S.TRIAL_STATE_STOPPING_CANCELED)
    event = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=bad)).events[-1]
    assert event.message.startswith("early stopping (medianstop): ")
    decided = event.details["early_stopping"]
    assert decided["rule"] == "medianstop" and decided["step"] == 2 and decided["value"] == 2.5
    # The median of the others' running averages at step 2: (1 + 0.5) / 2 = 0.75 for good_a.
    assert decided["threshold"] == 0.75
    for tid in (good_a, good_b, good_c):
        assert client.trials.GetTrial(ts.GetTrialRequest(id=tid)).state == S.TRIAL_STATE_RUNNING


def test_asha_stops_what_falls_out_of_the_top_of_a_rung_in_a_maximize_study(client):
    study = create_study(client, "asha", early_stopping=rule("asha", min_resource=2, reduction_factor=2),
                         objective=study_pb2.Objective(metric_name="accuracy", type=study_pb2.OBJECTIVE_TYPE_MAXIMIZE))
    best, good, worse, worst = running_trials(client, study.id, 4)
    for tid, accuracy in ((best, 0.9), (good, 0.8), (worse, 0.5)):
        validate(client, tid, 2, accuracy, "accuracy")
    validate(client, worst, 2, 0.1, "accuracy")
    assert state_within(client, worst, S.TRIAL_STATE_STOPPING_CANCELED)
    decided = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=worst)).events[-1].details["early_stopping"]
    # In the objective's own sign: the trial had 0.1 where the top half began at 0.8.
    assert (decided["rule"], decided["step"], decided["value"], decided["threshold"]) == ("asha", 2, 0.1, 0.8)
    assert client.trials.GetTrial(ts.GetTrialRequest(id=best)).state == S.TRIAL_STATE_RUNNING


def test_hyperband_stops_trials_at_their_brackets_rungs_and_never_the_best(client):
    # Three brackets: rungs at steps 1 and 3, at step 3, and none (run to the end).
    study = create_study(client, "hyperband", early_stopping=rule("hyperband", min_resource=1, max_resource=9,
                                                                    reduction_factor=3))
    trials = running_trials(client, study.id, 30)
    # Each trial reaches a rung after the better ones of its bracket: most of them stop.
    loss = {tid: 1.0 + i for i, tid in enumerate(trials)}
    best = min(loss, key=loss.get)
    for step in range(1, 10):
        for tid in trials:
            if client.trials.GetTrial(ts.GetTrialRequest(id=tid)).state == S.TRIAL_STATE_RUNNING:
                validate(client, tid, step, loss[tid])
    stopped: set[int] = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        states = {tid: client.trials.GetTrial(ts.GetTrialRequest(id=tid)).state for tid in trials}
        stopped = {tid for tid, state in states.items() if state == S.TRIAL_STATE_STOPPING_CANCELED}
        if stopped and all(state in (S.TRIAL_STATE_RUNNING, S.TRIAL_STATE_STOPPING_CANCELED) for state in states.values()):
            break
        time.sleep(0.05)
    assert best not in stopped and len(trials) / 3 <= len(stopped) < len(trials)
    for tid in stopped:
        decided = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=tid)).events[-1].details["early_stopping"]
        assert decided["rule"] == "hyperband" and decided["step"] in (1, 3)
        # Worse than where its rung's top third began: minimize, so above the threshold.
        assert decided["value"] == loss[tid] and decided["threshold"] < decided["value"]


def test_check_early_stopping_answers_without_acting(client):
    study = create_study(client, "check", early_stopping=rule("medianstop", min_trials_required=1, start_step=1))
    a, b = running_trials(client, study.id, 2)
    decisions = client.studies.CheckEarlyStopping(ss.CheckEarlyStoppingRequest(study_id=study.id)).decisions
    assert [(d.trial_id, d.should_stop) for d in decisions] == [(a, False), (b, False)]
    assert all(d.rule == "medianstop" and d.reason for d in decisions)
    validate(client, a, 1, 0.2)
    one = client.studies.CheckEarlyStopping(ss.CheckEarlyStoppingRequest(study_id=study.id, trial_ids=[a])).decisions
    assert [d.trial_id for d in one] == [a] and not one[0].should_stop
    err = error_of(client.studies.CheckEarlyStopping, ss.CheckEarlyStoppingRequest(study_id=study.id, trial_ids=[999]))
    assert err.code == grpc.StatusCode.NOT_FOUND

    plain = create_study(client, "no-rule")
    (c,) = running_trials(client, plain.id, 1)
    (d,) = client.studies.CheckEarlyStopping(ss.CheckEarlyStoppingRequest(study_id=plain.id, trial_ids=[c])).decisions
    assert (d.should_stop, d.reason) == (False, "the study has no early-stopping rule")
    # Without trial_ids every unfinished trial is answered; a trial of another study is not found.
    assert [x.trial_id for x in client.studies.CheckEarlyStopping(
        ss.CheckEarlyStoppingRequest(study_id=plain.id)).decisions] == [c]
    err = error_of(client.studies.CheckEarlyStopping, ss.CheckEarlyStoppingRequest(study_id=plain.id, trial_ids=[a]))
    assert err.code == grpc.StatusCode.NOT_FOUND


def test_a_rule_set_on_a_running_study_is_answered_on_demand_then_applied_at_the_next_report(client):
    study = create_study(client, "late-rule")
    good_a, good_b, good_c, bad = running_trials(client, study.id, 4)
    for step in range(1, 4):
        for tid, loss in ((good_a, 1.0 / step), (good_b, 1.2 / step), (good_c, 0.9 / step), (bad, 3.2 - 0.2 * step)):
            validate(client, tid, step, loss)
    change = study_pb2.Study(id=study.id, early_stopping=rule("medianstop", min_trials_required=2, start_step=2))
    updated = client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=change, update_mask=field_mask_pb2.FieldMask(paths=["early_stopping"])))
    assert updated.early_stopping.name == "medianstop"
    assert client.studies.GetStudy(ss.GetStudyRequest(id=study.id)).early_stopping == updated.early_stopping
    decisions = {d.trial_id: d for d in client.studies.CheckEarlyStopping(
        ss.CheckEarlyStoppingRequest(study_id=study.id)).decisions}
    assert [tid for tid, d in decisions.items() if d.should_stop] == [bad]
    decided = decisions[bad]
    # good_a's running average at step 3, (1 + 1/2 + 1/3) / 3, is the median of the others'.
    assert (decided.rule, decided.step, decided.value) == ("medianstop", 3, pytest.approx(2.6))
    assert decided.threshold == pytest.approx((1 + 1 / 2 + 1 / 3) / 3) and decided.reason
    # Answering is not acting; the next report is judged by the new rule.
    assert client.trials.GetTrial(ts.GetTrialRequest(id=bad)).state == S.TRIAL_STATE_RUNNING
    for tid, loss in ((good_a, 1.0 / 4), (good_b, 1.2 / 4), (good_c, 0.9 / 4)):
        validate(client, tid, 4, loss)
    validate(client, bad, 4, 2.4)
    assert state_within(client, bad, S.TRIAL_STATE_STOPPING_CANCELED)
    event = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=bad)).events[-1]
    assert event.details["early_stopping"]["rule"] == "medianstop" and event.details["early_stopping"]["step"] == 4
    for tid in (good_a, good_b, good_c):
        assert client.trials.GetTrial(ts.GetTrialRequest(id=tid)).state == S.TRIAL_STATE_RUNNING
    err = error_of(client.studies.CheckEarlyStopping,
                   ss.CheckEarlyStoppingRequest(study_id=study.id, trial_ids=list(range(1, 1002))))
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["trial_ids"])


def test_a_running_trial_that_stores_no_metric_within_the_timeout_is_stopped(clocked_client, clocked_server, clock):
    client = clocked_client
    sweep = lambda: clocked_server.call(clocked_server.app.watchdog.sweep())  # noqa: E731
    study = create_study(client, "deadline", metrics_timeout=duration_pb2.Duration(seconds=60))
    quiet, talking, queued = client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study.id, count=3)).trials
    for t in (quiet, talking):
        report(client, t.id, S.TRIAL_STATE_RUNNING)
    assert study.metrics_timeout.seconds == 60
    clock.advance(45)
    validate(client, talking.id, 1, 0.5)
    clock.advance(20)
    # 65 s after they started: quiet stored nothing, talking stored a point 20 s ago.
    assert sweep() == 1
    stopped = client.trials.GetTrial(ts.GetTrialRequest(id=quiet.id))
    assert stopped.state == S.TRIAL_STATE_STOPPING_CANCELED
    event = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=quiet.id)).events[-1]
    assert event.message == "no metric stored for 60 s (the study's metrics_timeout)"
    assert event.details["metrics_timeout_seconds"] == 60
    assert client.trials.GetTrial(ts.GetTrialRequest(id=talking.id)).state == S.TRIAL_STATE_RUNNING
    assert client.trials.GetTrial(ts.GetTrialRequest(id=queued.id)).state == S.TRIAL_STATE_QUEUED
    clock.advance(50)
    assert sweep() == 1
    assert client.trials.GetTrial(ts.GetTrialRequest(id=talking.id)).state == S.TRIAL_STATE_STOPPING_CANCELED
