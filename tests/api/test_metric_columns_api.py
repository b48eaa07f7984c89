"""ReportMetricColumns through a real server: rows are reports, sent as columns."""

import math
import time

import grpc
import pytest
from google.protobuf import struct_pb2
from support import create_study, error_of
from support.trials import S, new_trial
from support.trials import report as report_state
from trialplane.v1 import errors_pb2, trial_pb2
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_service_pb2 as ts

HP = trial_pb2.ParameterValue
GOOD_HPS = {"lr": HP(double_value=0.01), "layers": HP(int_value=2), "optimizer": HP(string_value="adam")}
BASE_US = 4_000_000_000_000_000
CONFLICT = errors_pb2.ERROR_REASON_METRIC_CONFLICT


def block(names, steps, values, group="training", times=(), missing=()):
    return ms.MetricColumns(group=group, names=names, steps=steps, values=values, report_times=times,
                            missing_indices=missing)


def columns(trial_id, *blocks, run=0, request_id=""):
    return ms.ReportMetricColumnsRequest(trial_id=trial_id, trial_run_id=run, blocks=blocks, request_id=request_id)


def report(trial_id, step, group="training", run=0, **values):
    s = struct_pb2.Struct()
    s.update(values)
    return ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, trial_run_id=run, steps_completed=step, metrics=mp.Metrics(avg_metrics=s)),
        group=group)


def history(client, trial_id, names, group="training", **kw):
    got = client.metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial_id], names=names, group=group, **kw))
    return {s.name: s for s in got.series}


def latest(client, trial_id, group="training"):
    got = client.metrics.GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial_id], group=group))
    return {s.name: s for s in got.summaries}


def counts(resp):
    return resp.rows_stored, resp.points_stored, resp.rows_repeated, resp.rows_rejected


def running_trial(client, name="t", **fields):
    trial = new_trial(client, name, **fields)
    report_state(client, trial.id, S.TRIAL_STATE_RUNNING)
    return trial


def test_rows_round_trip_into_history_and_latest_values(client):
    trial = running_trial(client)
    times = [BASE_US + i * 1_000_000 for i in range(4)]
    resp = client.metrics.ReportMetricColumns(columns(trial.id, block(
        ["loss", "acc"], [0, 1, 2, 3], [2.0, 0.1, 1.5, 0.2, math.inf, 0.3, 0.5, math.nan], times=times)))
    assert counts(resp) == (4, 8, 0, 0) and list(resp.rejected_rows) == []
    series = history(client, trial.id, ["loss", "acc"])
    assert list(series["loss"].steps) == [0, 1, 2, 3]
    assert list(series["loss"].values) == [2.0, 1.5, math.inf, 0.5]
    assert list(series["loss"].times) == times and list(series["loss"].trial_run_ids) == [1, 1, 1, 1]
    assert list(series["acc"].values)[:3] == [0.1, 0.2, 0.3] and math.isnan(series["acc"].values[3])
    summaries = latest(client, trial.id)
    loss, acc = summaries["loss"], summaries["acc"]
    assert (loss.count, loss.last, loss.last_step, loss.min, loss.max) == (4, 0.5, 3, 0.5, math.inf)
    assert loss.last_time.ToMicroseconds() == times[3]
    assert (acc.count, acc.min, acc.max, acc.mean) == (4, 0.1, 0.3, pytest.approx(0.2))
    assert math.isnan(acc.last)


def test_rows_without_times_take_the_time_they_are_stored(client):
    trial = running_trial(client)
    before = time.time_ns() // 1000
    stored = client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [1, 2], [1.0, 2.0], times=[0, BASE_US])))
    assert stored.rows_stored == 2
    client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [3], [3.0])))
    after = time.time_ns() // 1000
    times = list(history(client, trial.id, ["loss"])["loss"].times)
    assert times[1] == BASE_US
    assert before <= times[0] <= times[2] <= after


def test_missing_cells_hold_no_value_and_are_no_nan(client):
    trial = running_trial(client)
    # Step 10 has no acc, step 11 no loss, step 12 a NaN loss; step 13 nothing at all.
    table = [0.5, -1.0, -1.0, 0.7, math.nan, 0.8, -1.0, -1.0]
    resp = client.metrics.ReportMetricColumns(columns(trial.id, block(["loss", "acc"], [10, 11, 12, 13], table,
                                                                      missing=[1, 2, 6, 7])))
    assert counts(resp) == (4, 4, 0, 0)
    series = history(client, trial.id, ["loss", "acc"])
    assert list(series["loss"].steps) == [10, 12] and series["loss"].values[0] == 0.5
    assert math.isnan(series["loss"].values[1])
    assert (list(series["acc"].steps), list(series["acc"].values)) == ([11, 12], [0.7, 0.8])
    summaries = latest(client, trial.id)
    assert (summaries["loss"].count, summaries["loss"].min, summaries["loss"].max) == (2, 0.5, 0.5)
    assert summaries["acc"].count == 2
    # Each row is the report it stands for: step 10 was {loss}, step 13 an empty report.
    assert not client.metrics.ReportMetrics(report(trial.id, 10, loss=0.5)).created
    assert not client.metrics.ReportMetrics(report(trial.id, 13)).created
    for step, values in ((10, {"loss": 0.5, "acc": -1.0}), (13, {"loss": 1.0})):
        err = error_of(client.metrics.ReportMetrics, report(trial.id, step, **values))
        assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "METRIC_CONFLICT")


def test_validation_rows_update_latest_and_best_validation(client):
    study = create_study(client)
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, hyperparameters=GOOD_HPS)))
    report_state(client, trial.id, S.TRIAL_STATE_RUNNING)
    resp = client.metrics.ReportMetricColumns(columns(
        trial.id,
        block(["loss"], [10, 20, 30], [1.0, 0.9, 0.8]),
        block(["val_loss", "val_acc"], [10, 20, 30], [0.8, 0.2, 0.6, 0.0, 0.7, 0.3], group="validation",
              times=[BASE_US + 10, BASE_US + 20, BASE_US + 30], missing=[3]),
    ))
    assert counts(resp) == (6, 8, 0, 0)
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert got.latest_validation.total_batches == 30
    assert dict(got.latest_validation.metrics.avg_metrics) == {"val_loss": 0.7, "val_acc": 0.3}
    assert got.latest_validation.end_time.ToMicroseconds() == BASE_US + 30
    assert got.best_validation.total_batches == 20
    assert dict(got.best_validation.metrics.avg_metrics) == {"val_loss": 0.6}
    assert got.searcher_metric_value == 0.6
    assert latest(client, trial.id, "validation")["val_acc"].count == 2
    # A later better validation, sent as columns, moves the best one.
    client.metrics.ReportMetricColumns(columns(trial.id, block(["val_loss"], [40], [0.1], group="validation")))
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert (got.best_validation.total_batches, got.searcher_metric_value) == (40, 0.1)


def test_a_retry_with_the_request_id_returns_the_first_answer_and_stores_nothing(client):
    trial = running_trial(client)
    request = columns(trial.id, block(["loss", "acc"], [1, 2, 3], [1.0, 0.1, 0.9, 0.2, 0.8, 0.3], missing=[5]),
                      request_id="batch-1")
    first = client.metrics.ReportMetricColumns(request)
    assert counts(first) == (3, 5, 0, 0)
    again = client.metrics.ReportMetricColumns(request)
    assert again == first
    # Without the request_id the same rows are retries of stored reports.
    resent = client.metrics.ReportMetricColumns(columns(trial.id, *request.blocks))
    assert counts(resent) == (0, 0, 3, 0)
    # A row is a report: sent again through ReportMetrics it is a retry too.
    assert not client.metrics.ReportMetrics(report(trial.id, 2, loss=0.9, acc=0.2)).created
    assert not client.metrics.ReportMetrics(report(trial.id, 3, loss=0.8)).created
    series = history(client, trial.id, ["loss", "acc"])
    assert (list(series["loss"].steps), list(series["acc"].steps)) == ([1, 2, 3], [1, 2])
    assert (latest(client, trial.id)["loss"].count, latest(client, trial.id)["acc"].count) == (3, 2)


def test_a_reused_request_id_with_other_rows_is_refused(client):
    trial = running_trial(client)
    other = running_trial(client, "other")
    client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [1], [1.0]), request_id="batch-1"))
    for changed in (columns(trial.id, block(["loss"], [2], [1.0]), request_id="batch-1"),
                    columns(trial.id, block(["loss"], [1], [1.0], times=[BASE_US]), request_id="batch-1"),
                    columns(trial.id, block(["loss"], [1], [1.0], group="eval"), request_id="batch-1")):
        err = error_of(client.metrics.ReportMetricColumns, changed)
        assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")
        assert err.metadata == {"request_id": "batch-1", "method": "ReportMetricColumns"}
    assert list(history(client, trial.id, ["loss"])["loss"].steps) == [1]
    assert list(history(client, trial.id, ["loss"], group="eval")["loss"].steps) == []
    # The id belongs to its trial: another trial's "batch-1" is its own.
    assert client.metrics.ReportMetricColumns(columns(other.id, block(["loss"], [2], [1.0]), request_id="batch-1")).rows_stored == 1


def test_rows_conflicting_with_stored_steps_are_listed_and_the_others_stored(client):
    trial = running_trial(client)
    assert client.metrics.ReportMetrics(report(trial.id, 5, loss=0.5)).created
    resp = client.metrics.ReportMetricColumns(columns(
        trial.id,
        block(["loss"], [4, 5, 6], [0.4, 0.55, 0.6]),
        # Step 6 again with its value is a retry, step 4 with another one a conflict.
        block(["loss"], [6, 4, 7], [0.6, 0.45, 0.7]),
        # Other names at a stored step are a conflict as well.
        block(["loss", "lr"], [5], [0.5, 0.01]),
    ))
    assert counts(resp) == (3, 3, 1, 3)
    assert [(r.block_index, r.row_index, r.step, r.error_reason) for r in resp.rejected_rows] == [
        (0, 1, 5, CONFLICT), (1, 1, 4, CONFLICT), (2, 0, 5, CONFLICT)]
    assert resp.rejected_rows[0].reason.startswith("step 5 of group 'training'")
    series = history(client, trial.id, ["loss", "lr"])
    assert (list(series["loss"].steps), list(series["loss"].values)) == ([4, 5, 6, 7], [0.4, 0.5, 0.6, 0.7])
    assert list(series["lr"].steps) == []
    # The same step in another group is another report.
    assert client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [5], [9.0], group="eval"))).rows_stored == 1


def test_more_rejected_rows_than_listed_are_counted(client):
    trial = running_trial(client)
    steps = list(range(1500))
    client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], steps, [1.0] * 1500)))
    resp = client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], steps, [2.0] * 1500)))
    assert counts(resp) == (0, 0, 0, 1500)
    assert [r.step for r in resp.rejected_rows] == steps[:1000]


def test_a_newer_run_rolls_back_what_older_runs_reported_past_its_first_step(client):
    trial = running_trial(client)
    client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [10, 20, 30, 40, 50], [1.0, 2.0, 3.0, 4.0, 5.0]), run=1))
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    err = error_of(client.metrics.ReportMetricColumns, columns(trial.id, block(["loss"], [60], [6.0]), run=1))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STALE_TRIAL_RUN")
    resp = client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [35, 45], [0.35, 0.45])))
    assert resp.rows_stored == 2
    live = history(client, trial.id, ["loss"])["loss"]
    assert (list(live.steps), list(live.trial_run_ids)) == ([10, 20, 30, 35, 45], [1, 1, 1, 2, 2])
    everything = history(client, trial.id, ["loss"], include_archived=True)["loss"]
    assert list(everything.steps) == [10, 20, 30, 35, 40, 45, 50]
    (summary,) = latest(client, trial.id).values()
    assert (summary.count, summary.last, summary.max) == (5, 0.45, 3.0)


def test_a_missing_or_finished_trial_refuses_the_whole_batch(client):
    err = error_of(client.metrics.ReportMetricColumns, columns(424242, block(["loss"], [1], [1.0])))
    assert (err.code, err.reason, err.metadata["id"]) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND", "424242")
    trial = running_trial(client)
    report_state(client, trial.id, S.TRIAL_STATE_COMPLETED)
    err = error_of(client.metrics.ReportMetricColumns, columns(trial.id, block(["loss"], [1], [1.0])))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ILLEGAL_TRANSITION")
    assert latest(client, trial.id) == {}


def _good():
    return columns(1, block(["loss", "acc"], [1, 2], [1.0, 2.0, 3.0, 4.0]), block(["x"], [1, 2], [1.0, 2.0], group="eval"))


def _bad(change):
    def make(trial_id):
        request = _good()
        request.trial_id = trial_id
        change(request)
        return request
    return make


BAD = {
    "trial_id": _bad(lambda r: setattr(r, "trial_id", 0)),
    "trial_run_id": _bad(lambda r: setattr(r, "trial_run_id", -1)),
    "request_id": _bad(lambda r: setattr(r, "request_id", "r" * 129)),
    "blocks[1].values": _bad(lambda r: r.blocks[1].values.append(3.0)),
    "blocks[0].group": _bad(lambda r: setattr(r.blocks[0], "group", "")),
    "blocks[1].group": _bad(lambda r: setattr(r.blocks[1], "group", "g" * 129)),
    "blocks[1].names": _bad(lambda r: (r.blocks[1].ClearField("names"), r.blocks[1].ClearField("values"))),
    "blocks[0].names[1]": _bad(lambda r: r.blocks[0].names.__setitem__(1, "bad\nname")),
    "blocks[1].names[0]": _bad(lambda r: r.blocks[1].names.__setitem__(0, "n" * 257)),
    "blocks[0].names[2]": _bad(lambda r: (r.blocks[0].names.append("loss"), r.blocks[0].values.extend([5.0, 6.0]))),
    "blocks[1].steps[1]": _bad(lambda r: r.blocks[1].steps.__setitem__(1, -2)),
    "blocks[0].report_times": _bad(lambda r: r.blocks[0].report_times.append(BASE_US)),
    "blocks[1].report_times[0]": _bad(lambda r: r.blocks[1].report_times.extend([-1, BASE_US])),
    "blocks[0].report_times[1]": _bad(lambda r: r.blocks[0].report_times.extend([BASE_US, 253_402_300_800_000_000])),
    "blocks[0].missing_indices[1]": _bad(lambda r: r.blocks[0].missing_indices.extend([0, 4])),
    "blocks[1].missing_indices[0]": _bad(lambda r: r.blocks[1].missing_indices.append(-1)),
}


@pytest.mark.parametrize("field", list(BAD))
def test_bad_input_is_invalid_argument_naming_the_field_and_stores_nothing(client, field):
    trial = running_trial(client)
    err = error_of(client.metrics.ReportMetricColumns, BAD[field](trial.id))
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD")
    assert list(err.violations) == [field], err.violations
    assert latest(client, trial.id) == {}
    # The server keeps serving, and the request as it should be is stored.
    assert client.metrics.ReportMetricColumns(_bad(lambda r: None)(trial.id)).rows_stored == 4


def test_every_bad_field_of_a_request_is_named(client):
    trial = running_trial(client)
    request = _bad(lambda r: (r.blocks[0].steps.__setitem__(0, -1), r.blocks[1].values.append(1.0)))(trial.id)
    assert sorted(error_of(client.metrics.ReportMetricColumns, request).violations) == [
        "blocks[0].steps[0]", "blocks[1].values"]


def test_batches_past_the_limits_are_refused_with_the_limit(client):
    trial = running_trial(client)
    values = 1_000_001
    too_many = columns(trial.id, block(["a", "b"], range(values // 2), [1.0] * (values - 1)), block(["c"], [0], [1.0]))
    err = error_of(client.metrics.ReportMetricColumns, too_many)
    assert (err.code, err.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED")
    assert err.metadata == {"limit": "1000000", "limit_name": "max_batch_points", "requested": "1000001"}
    assert "1000000 values" in err.message
    names = [f"m{i}" for i in range(1_001)]
    err = error_of(client.metrics.ReportMetricColumns, columns(trial.id, block(names, [0], [1.0] * len(names))))
    assert (err.code, err.reason, err.metadata) == (
        grpc.StatusCode.RESOURCE_EXHAUSTED, "LIMIT_EXCEEDED", {"limit": "1000", "requested": "1001"})
    assert latest(client, trial.id) == {}
    at_limit = columns(trial.id, block(names[:600], [0, 1], [1.0] * 1_200), block(names[600:1_000], [0], [2.0] * 400,
                                                                                       group="eval"))
    assert counts(client.metrics.ReportMetricColumns(at_limit)) == (3, 1_600, 0, 0)
    at_limit = columns(trial.id, block(names[:100], range(2, 10_002), [3.0] * 1_000_000))
    assert counts(client.metrics.ReportMetricColumns(at_limit)) == (10_000, 1_000_000, 0, 0)
    m99 = history(client, trial.id, ["m99"], page_size=20_000)["m99"]
    assert list(m99.steps) == list(range(10_002)) and set(m99.values[2:]) == {3.0}


def test_bytes_that_are_no_request_leave_the_server_serving(client):
    call = client.channel.unary_unary("/trialplane.v1.MetricsService/ReportMetricColumns",
                                      request_serializer=None, response_deserializer=None)
    err = error_of(call, b"\x1a\x05\x0a\x03ab", timeout=10)
    assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")
    trial = running_trial(client)
    assert client.metrics.ReportMetricColumns(columns(trial.id, block(["loss"], [0], [1.0]))).rows_stored == 1
