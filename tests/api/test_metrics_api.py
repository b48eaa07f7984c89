"""MetricsService through a real server: ingest, dedup, summaries, rollback, queries."""

import math

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from support import create_study, error_of
from support.trials import S, new_trial
from support.trials import report as report_state
from trialplane.v1 import (
    errors_pb2,
    metrics_service_pb2_grpc,
    study_pb2,
    trial_pb2,
)
from trialplane.v1 import (
    metrics_pb2 as mp,
)
from trialplane.v1 import (
    metrics_service_pb2 as ms,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)

HP = trial_pb2.ParameterValue
GOOD_HPS = {"lr": HP(double_value=0.01), "layers": HP(int_value=2), "optimizer": HP(string_value="adam")}


def stub(client):
    return metrics_service_pb2_grpc.MetricsServiceStub(client.channel)


def struct(**values):
    s = struct_pb2.Struct()
    s.update(values)
    return s


def req(trial_id, step, group="training", run=0, request_id="", time_us=0, **values):
    tm = mp.TrialMetrics(trial_id=trial_id, trial_run_id=run, steps_completed=step, metrics=mp.Metrics(avg_metrics=struct(**values)))
    if time_us:
        tm.report_time.FromMicroseconds(time_us)
    return ms.ReportMetricsRequest(metrics=tm, group=group, request_id=request_id)


def history(client, trial_ids, names, group="training", **kw):
    return stub(client).GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=trial_ids, names=names, group=group, **kw))


def running_trial(client, name="t", **fields):
    trial = new_trial(client, name, **fields)
    report_state(client, trial.id, S.TRIAL_STATE_RUNNING)
    return trial


def test_report_and_read_back(client):
    trial = running_trial(client)
    err = error_of(stub(client).ReportMetrics, req(trial.id, 10, loss=0.5, note="text", flags=[1, 2]))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_FIELD"
    assert sorted(err.violations) == ["metrics.metrics.avg_metrics[flags]", "metrics.metrics.avg_metrics[note]"]
    resp = stub(client).ReportMetrics(req(trial.id, 10, loss=0.5, acc=0.75))
    assert resp.created
    names = stub(client).ListMetricNames(ms.ListMetricNamesRequest(trial_ids=[trial.id])).metrics
    assert [(s.group, s.name, s.count, s.last) for s in names] == [("training", "acc", 1, 0.75), ("training", "loss", 1, 0.5)]
    series = history(client, [trial.id], ["loss", "acc"]).series
    assert [(s.name, list(s.steps), list(s.values), list(s.trial_run_ids)) for s in series] == [
        ("loss", [10], [0.5], [1]), ("acc", [10], [0.75], [1])]
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert [(x.group, x.name, x.last, x.count) for x in got.summary_metrics] == [
        ("training", "acc", 0.75, 1), ("training", "loss", 0.5, 1)]


def test_retries_never_duplicate(client):
    trial = running_trial(client)
    assert stub(client).ReportMetrics(req(trial.id, 1, loss=1.0)).created
    assert not stub(client).ReportMetrics(req(trial.id, 1, loss=1.0)).created
    assert stub(client).ReportMetrics(req(trial.id, 2, loss=0.9, request_id="r-2")).created
    assert not stub(client).ReportMetrics(req(trial.id, 2, loss=0.9, request_id="r-2")).created
    (series,) = history(client, [trial.id], ["loss"]).series
    assert list(series.steps) == [1, 2]
    (summary,) = stub(client).GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial.id])).summaries
    assert summary.count == 2


@pytest.mark.parametrize("journaled", [True, False], ids=["just-acknowledged", "stored"])
def test_a_reused_request_id_or_step_with_other_values_is_refused(client, journaled):
    trial = running_trial(client)
    other = running_trial(client, "other")
    s = stub(client)
    assert s.ReportMetrics(req(trial.id, 5, loss=0.5, acc=0.1, request_id="r-5")).created
    if not journaled:
        history(client, [trial.id], ["loss"])  # a read stores what the journal holds
    err = error_of(s.ReportMetrics, req(trial.id, 6, loss=0.4, request_id="r-5"))
    assert (err.code, err.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")
    err = error_of(s.ReportMetrics, req(trial.id, 5, loss=0.7, acc=0.1))
    assert (err.code, err.reason) == (grpc.StatusCode.ALREADY_EXISTS, "METRIC_CONFLICT")
    assert "step 5" in err.message
    # New names at a stored step are a conflict too: a step is reported once.
    err = error_of(s.ReportMetrics, req(trial.id, 5, loss=0.5, acc=0.1, lr=0.01))
    assert err.reason == "METRIC_CONFLICT"
    # The same values, with or without the request_id, are a retry.
    assert not s.ReportMetrics(req(trial.id, 5, acc=0.1, loss=0.5, request_id="r-5")).created
    assert not s.ReportMetrics(req(trial.id, 5, acc=0.1, loss=0.5)).created
    # A request_id belongs to its trial: another trial's "r-5" is its own.
    assert s.ReportMetrics(req(other.id, 6, loss=0.4, request_id="r-5")).created
    (series,) = history(client, [trial.id], ["loss"]).series
    assert (list(series.steps), list(series.values)) == ([5], [0.5])
    errors = s.AddEvents(ms.AddEventsRequest(reports=[req(trial.id, 5, loss=0.9), req(999_999, 1, loss=1.0)],
                                             events=[mp.TrialEventItem(trial_id=trial.id)])).errors
    assert [(e.list, e.index, e.error_reason) for e in errors] == [
        ("events", 0, errors_pb2.ERROR_REASON_INVALID_FIELD),
        ("reports", 0, errors_pb2.ERROR_REASON_METRIC_CONFLICT),
        ("reports", 1, errors_pb2.ERROR_REASON_RESOURCE_NOT_FOUND),
    ]
    assert errors[1].reason.startswith("step 5 of group 'training'")


def test_non_finite_values_arrive_as_strings_from_json_clients_and_read_back_in_json(client):
    from google.protobuf import json_format
    trial = running_trial(client)
    report = json_format.Parse(
        f'{{"metrics": {{"trialId": "{trial.id}", "stepsCompleted": "3",'
        ' "metrics": {"avgMetrics": {"loss": "NaN", "gain": "-Infinity"}}}, "group": "validation"}',
        ms.ReportMetricsRequest())
    assert stub(client).ReportMetrics(report).created
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    as_json = json_format.MessageToDict(got)
    assert as_json["latestValidation"]["metrics"]["avgMetrics"] == {"loss": "NaN", "gain": "-Infinity"}
    by_name = {x["name"]: x for x in as_json["summaryMetrics"]}
    assert by_name["loss"]["last"] == "NaN" and by_name["gain"]["last"] == "-Infinity"
    assert by_name["loss"]["count"] == "1"
    (series,) = history(client, [trial.id], ["gain"], group="validation").series
    assert series.values[0] == -math.inf


def test_summaries_are_exact_with_nan_and_infinity(client):
    trial = running_trial(client)
    rng = np.random.default_rng(3)
    values = rng.normal(size=250)
    values[17] = math.nan
    values[200] = math.inf
    batch = ms.AddEventsRequest(reports=[req(trial.id, i, loss=float(v)) for i, v in enumerate(values)])
    assert stub(client).AddEvents(batch).added == 250
    (s,) = stub(client).GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial.id], group="training")).summaries
    finite = values[~np.isnan(values)]
    assert s.count == 250 and s.last == values[-1] and s.last_step == 249
    assert s.min == finite.min() and s.max == math.inf and s.mean == math.inf
    assert s.recent_mean == pytest.approx(values[150:][~np.isnan(values[150:])].mean())
    (series,) = history(client, [trial.id], ["loss"]).series
    assert math.isnan(series.values[17]) and series.values[200] == math.inf
    assert list(series.values[:17]) == list(values[:17])


def test_validation_updates_best_latest_and_searcher_metric(client):
    study = create_study(client)
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, hyperparameters=GOOD_HPS)))
    report_state(client, trial.id, S.TRIAL_STATE_RUNNING)
    for step, loss in [(10, 0.8), (20, 0.6), (30, 0.7)]:
        stub(client).ReportMetrics(req(trial.id, step, group="validation", val_loss=loss, val_acc=1 - loss))
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert got.latest_validation.total_batches == 30
    assert got.latest_validation.metrics.avg_metrics["val_loss"] == 0.7
    assert got.best_validation.total_batches == 20
    assert got.searcher_metric_value == 0.6

    maximize = create_study(client, "maxi", objective=study_pb2.Objective(metric_name="acc", type=study_pb2.OBJECTIVE_TYPE_MAXIMIZE))
    t2 = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=maximize.id, hyperparameters=GOOD_HPS)))
    for step, acc in [(1, 0.5), (2, 0.9), (3, 0.8)]:
        stub(client).ReportMetrics(req(t2.id, step, group="validation", acc=acc))
    got = client.trials.GetTrial(ts.GetTrialRequest(id=t2.id))
    assert got.searcher_metric_value == -0.9 and got.best_validation.total_batches == 2


def test_list_trials_ordered_by_a_metric(client):
    study = create_study(client)
    losses = {"a": 0.5, "b": 0.2, "c": 0.9, "d": 0.4, "e": 0.7}
    ids = {}
    for name, loss in losses.items():
        t = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, name=name, hyperparameters=GOOD_HPS)))
        ids[name] = t.id
        stub(client).ReportMetrics(req(t.id, 1, group="validation", val_loss=loss))
    silent = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, name="f", hyperparameters=GOOD_HPS)))

    def names(order_by, page_size=2):
        out, token = [], ""
        while True:
            resp = client.trials.ListTrials(ts.ListTrialsRequest(study_id=study.id, order_by=order_by, page_size=page_size, page_token=token))
            out.extend(t.name for t in resp.trials)
            token = resp.next_page_token
            if not token:
                return out

    by_loss = sorted(losses, key=losses.get)
    assert names("metrics.validation.val_loss.last") == by_loss
    assert names("metrics.validation.val_loss.min desc") == by_loss[::-1]
    assert names("searcher_metric_value") == by_loss
    assert "f" not in names("searcher_metric_value desc") and silent.id not in ids.values()
    for bad in ["metrics.validation.val_loss", "metrics.x.y.median"]:
        assert "order_by" in error_of(client.trials.ListTrials, ts.ListTrialsRequest(order_by=bad)).violations


def test_restart_rolls_back_the_older_run(client):
    trial = running_trial(client)
    for step in (10, 20, 30, 40, 50):
        stub(client).ReportMetrics(req(trial.id, step, run=1, loss=step / 10))
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    err = error_of(stub(client).ReportMetrics, req(trial.id, 60, run=1, loss=9.0))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "STALE_TRIAL_RUN"
    stub(client).ReportMetrics(req(trial.id, 35, run=2, loss=0.35))
    (live,) = history(client, [trial.id], ["loss"]).series
    assert list(live.steps) == [10, 20, 30, 35] and list(live.trial_run_ids) == [1, 1, 1, 2]
    (everything,) = history(client, [trial.id], ["loss"], include_archived=True).series
    assert list(everything.steps) == [10, 20, 30, 35, 40, 50]
    assert list(everything.archived) == [False, False, False, False, True, True]
    (s,) = stub(client).GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial.id])).summaries
    assert (s.count, s.last, s.max, s.last_step) == (4, 0.35, 3.0, 35)
    stub(client).ReportMetrics(req(trial.id, 45, run=2, loss=0.45))
    (live,) = history(client, [trial.id], ["loss"]).series
    assert list(live.steps) == [10, 20, 30, 35, 45]
    (b,) = history(client, [trial.id], ["loss"], buckets=1).series[0].buckets
    assert (b.count, b.first, b.last, b.max) == (5, 1.0, 0.45, 3.0)


def _plant(client, trial_id, n, spike):
    values = np.sin(np.arange(n) / 40.0)
    values[spike] = 50.0
    values[spike + 3] = -50.0
    for lo in range(0, n, 5000):
        batch = ms.AddEventsRequest(reports=[req(trial_id, i, loss=float(values[i])) for i in range(lo, min(n, lo + 5000))])
        assert stub(client).AddEvents(batch).added == min(n, lo + 5000) - lo
    return values


@pytest.mark.parametrize("n,buckets", [(3000, 40), (20000, 50)], ids=["point-buckets", "block-buckets"])
def test_downsampling_keeps_a_planted_spike_exactly(client, n, buckets):
    trial = running_trial(client)
    spike = n // 3 + 1
    values = _plant(client, trial.id, n, spike)
    (series,) = history(client, [trial.id], ["loss"], buckets=buckets).series
    got = series.buckets
    assert 1 < len(got) <= buckets
    assert sum(b.count for b in got) == n
    assert max(b.max for b in got) == 50.0 and min(b.min for b in got) == -50.0
    for b in got:
        inside = values[b.first_step:b.last_step + 1]
        assert b.count == inside.size
        assert (b.first, b.last, b.min, b.max) == (inside[0], inside[-1], inside.min(), inside.max())
    (window,) = history(client, [trial.id], ["loss"], buckets=buckets, start_step=1234, end_step=n - 777).series
    inside = values[1234:n - 776]
    assert sum(b.count for b in window.buckets) == inside.size
    assert window.buckets[0].first == inside[0] and window.buckets[-1].last == inside[-1]
    assert max(b.max for b in window.buckets) == inside.max()


def test_raw_pages_across_trials_and_metrics(client):
    t1, t2 = running_trial(client, "one"), running_trial(client, "two")
    for t, n in ((t1, 25), (t2, 12)):
        stub(client).AddEvents(ms.AddEventsRequest(reports=[req(t.id, i, loss=float(i), acc=float(-i)) for i in range(n)]))
    seen, token, pages = [], "", 0
    while True:
        resp = history(client, [t1.id, t2.id], ["loss", "acc"], page_size=10, page_token=token)
        pages += 1
        for s in resp.series:
            seen.extend((s.trial_id, s.name, step) for step in s.steps)
        token = resp.next_page_token
        if not token:
            break
    assert pages == 8
    assert len(seen) == len(set(seen)) == 2 * 25 + 2 * 12
    err = error_of(stub(client).GetMetricHistory, ms.GetMetricHistoryRequest(trial_ids=[t1.id], names=["loss"], group="training", page_token="bogus"))
    assert err.reason == "INVALID_PAGE_TOKEN"


def test_add_events_reports_item_errors_and_dedups_retries(client):
    trial = running_trial(client)
    done = new_trial(client, "done")
    client.trials.KillTrial(ts.KillTrialRequest(id=done.id))
    events = [
        mp.TrialEventItem(trial_id=trial.id, scalar=mp.ScalarEvent(metric="loss", variant="train", iteration=1, value=0.5)),
        mp.TrialEventItem(trial_id=trial.id, scalar=mp.ScalarEvent(metric="loss", variant="train", iteration=2, value=0.4)),
        mp.TrialEventItem(trial_id=trial.id, vector=mp.VectorEvent(metric="hist", variant="w", iteration=1, values=[1, 2, 3])),
        mp.TrialEventItem(trial_id=trial.id, plot=mp.PlotEvent(metric="pr", iteration=1, plot_json='{"data": [1]}')),
        mp.TrialEventItem(trial_id=trial.id, plot=mp.PlotEvent(metric="pr", iteration=2, plot_json="{not json")),
        mp.TrialEventItem(trial_id=trial.id, image=mp.ImageEvent(metric="samples", iteration=1, url="s3://b/k.png")),
        mp.TrialEventItem(trial_id=trial.id),
    ]
    request = ms.AddEventsRequest(
        reports=[req(trial.id, 5, loss=1.0), req(424242, 5, loss=1.0), req(done.id, 5, loss=1.0), req(trial.id, 6, group="")],
        events=events,
    )
    resp = stub(client).AddEvents(request)
    assert resp.added == 1 + 2 + 3
    errors = {(e.list, e.index): e.reason for e in resp.errors}
    assert set(errors) == {("reports", 1), ("reports", 2), ("reports", 3), ("events", 4), ("events", 6)}
    assert "not found" in errors[("reports", 1)] and "CANCELED" in errors[("reports", 2)]
    assert "group" in errors[("reports", 3)] and "JSON" in errors[("events", 4)]
    again = stub(client).AddEvents(request)
    assert again.added == 3  # the debug events are appended again; reports and scalar points are not
    (train,) = history(client, [trial.id], ["train"], group="loss").series
    assert list(train.steps) == [1, 2] and list(train.values) == [0.5, 0.4]
    listed = stub(client).ListDebugEvents(ms.ListDebugEventsRequest(trial_id=trial.id, page_size=2))
    assert [e.WhichOneof("event") for e in listed.events] == ["vector", "plot"]
    assert list(listed.events[0].vector.values) == [1, 2, 3] and listed.next_page_token
    images = stub(client).ListDebugEvents(ms.ListDebugEventsRequest(trial_id=trial.id, kinds=[ms.DEBUG_EVENT_KIND_IMAGE]))
    assert [e.image.url for e in images.events] == ["s3://b/k.png", "s3://b/k.png"]


def test_bad_reports(client):
    trial = running_trial(client)
    s = stub(client)
    assert error_of(s.ReportMetrics, req(99999, 1, loss=1.0)).code == grpc.StatusCode.NOT_FOUND
    err = error_of(s.ReportMetrics, req(trial.id, 1, group="", loss=1.0))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "group" in err.violations
    err = error_of(s.ReportMetrics, req(trial.id, -1, loss=1.0))
    assert "metrics.steps_completed" in err.violations
    report_state(client, trial.id, S.TRIAL_STATE_COMPLETED)
    err = error_of(s.ReportMetrics, req(trial.id, 2, loss=1.0))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    big = ms.AddEventsRequest(events=[mp.TrialEventItem(trial_id=trial.id, scalar=mp.ScalarEvent(metric="m", iteration=i)) for i in range(10001)])
    err = error_of(s.AddEvents, big)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "10000" in err.message
    assert "group" in error_of(s.GetMetricHistory, ms.GetMetricHistoryRequest(trial_ids=[trial.id], names=["x"])).violations
    assert "names" in error_of(s.GetMetricHistory, ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="g")).violations
    assert "trial_ids" in error_of(s.GetMetricHistory, ms.GetMetricHistoryRequest(group="g", names=["x"])).violations
    err = error_of(s.GetMetricHistory, ms.GetMetricHistoryRequest(trial_ids=[5555], group="g", names=["x"]))
    assert err.code == grpc.StatusCode.NOT_FOUND


def test_time_axis_buckets(client):
    trial = running_trial(client)
    base = 1_800_000_000_000_000
    # Steps go up evenly but time jumps: the time axis buckets differently.
    times = [base + i * 1_000_000 for i in range(50)] + [base + 10**9 + i * 1_000_000 for i in range(50)]
    stub(client).AddEvents(ms.AddEventsRequest(reports=[req(trial.id, i, time_us=t, loss=float(i)) for i, t in enumerate(times)]))
    by_step = history(client, [trial.id], ["loss"], buckets=2).series[0].buckets
    by_time = history(client, [trial.id], ["loss"], buckets=2, axis=ms.METRIC_AXIS_EPOCH_TIME).series[0].buckets
    assert [b.count for b in by_step] == [50, 50]
    assert [b.count for b in by_time] == [50, 50]
    by_time = history(client, [trial.id], ["loss"], buckets=4, axis=ms.METRIC_AXIS_EPOCH_TIME).series[0].buckets
    assert [b.count for b in by_time] == [50, 50]
    assert by_time[1].first_time.ToMicroseconds() == base + 10**9


def test_watch_metrics_follows_until_the_trial_ends(client):
    trial = running_trial(client)
    stub(client).ReportMetrics(req(trial.id, 1, loss=1.0))
    follow = stub(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id), timeout=30)
    first = next(follow)
    assert [(s.name, list(s.steps)) for s in first.series] == [("loss", [1])]
    stub(client).ReportMetrics(req(trial.id, 2, loss=0.5))
    second = next(follow)
    assert list(second.series[0].steps) == [2] and list(second.series[0].values) == [0.5]
    report_state(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follow) == []
    resumed = list(stub(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id, after_step=1), timeout=30))
    assert [list(r.series[0].steps) for r in resumed] == [[2]]


def test_metric_names_and_latest_values_come_in_pages(client):
    a, b = running_trial(client, "a"), running_trial(client, "b")
    for trial, names in ((a, ["x", "y", "z"]), (b, ["p", "q"])):
        stub(client).ReportMetrics(req(trial.id, 1, **dict.fromkeys(names, 1.0)))
        stub(client).ReportMetrics(req(trial.id, 1, group="validation", val=2.0))

    def walk(method, request_type, field, **kw):
        seen, token, pages = [], "", 0
        while True:
            resp = method(request_type(trial_ids=[a.id, b.id], page_size=2, page_token=token, **kw))
            seen += [(s.trial_id, s.group, s.name) for s in getattr(resp, field)]
            pages += 1
            token = resp.next_page_token
            if not token:
                return seen, pages

    names, pages = walk(stub(client).ListMetricNames, ms.ListMetricNamesRequest, "metrics")
    assert names == [(a.id, "training", n) for n in "xyz"] + [(a.id, "validation", "val")] + [
        (b.id, "training", n) for n in "pq"] + [(b.id, "validation", "val")]
    assert pages == 4
    latest, pages = walk(stub(client).GetLatestMetrics, ms.GetLatestMetricsRequest, "summaries", group="validation")
    assert latest == [(a.id, "validation", "val"), (b.id, "validation", "val")] and pages == 1
    err = error_of(stub(client).ListMetricNames, ms.ListMetricNamesRequest(trial_ids=[a.id], page_token="bogus"))
    assert err.reason == "INVALID_PAGE_TOKEN"
    first = stub(client).ListMetricNames(ms.ListMetricNamesRequest(trial_ids=[a.id], page_size=1))
    err = error_of(stub(client).ListMetricNames,
                   ms.ListMetricNamesRequest(trial_ids=[b.id], page_size=1, page_token=first.next_page_token))
    assert err.reason == "INVALID_PAGE_TOKEN"


def test_watch_metrics_from_the_start_delivers_step_zero(client):
    trial = running_trial(client)
    stub(client).ReportMetrics(req(trial.id, 0, loss=2.0))
    stub(client).ReportMetrics(req(trial.id, 1, loss=1.0))
    report_state(client, trial.id, S.TRIAL_STATE_COMPLETED)
    everything = list(stub(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id), timeout=30))
    assert [(list(r.series[0].steps), list(r.series[0].values)) for r in everything] == [([0, 1], [2.0, 1.0])]
    # An explicit after_step of 0 still means "after step 0".
    after_zero = list(stub(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id, after_step=0), timeout=30))
    assert [list(r.series[0].steps) for r in after_zero] == [[1]]


def test_watch_streams_send_their_headers_before_the_first_item(client):
    import threading
    import time

    from trialplane.v1 import log_service_pb2 as ls
    from trialplane.v1 import log_service_pb2_grpc, trial_service_pb2_grpc
    trial = running_trial(client)
    calls = [
        stub(client).WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id), timeout=20),
        log_service_pb2_grpc.LogServiceStub(client.channel).WatchLogs(ls.WatchLogsRequest(trial_id=trial.id), timeout=20),
        trial_service_pb2_grpc.TrialServiceStub(client.channel).WatchTrialEvents(
            ts.WatchTrialEventsRequest(trial_id=trial.id, after_sequence=1), timeout=20),
    ]
    got = []

    def headers(call):
        call.initial_metadata()
        got.append(call)

    threads = [threading.Thread(target=headers, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    arrived = len(got)
    for c in calls:
        c.cancel()
    # Each call is open for 20 s with nothing to send: only headers sent at
    # once can have arrived.
    assert arrived == 3


def test_a_scalar_event_at_a_stored_iteration_with_another_value_is_a_conflict(client):
    trial = running_trial(client)

    def scalar(iteration, value):
        return mp.TrialEventItem(trial_id=trial.id, scalar=mp.ScalarEvent(metric="eval", variant="acc",
                                                                           iteration=iteration, value=value))

    first = stub(client).AddEvents(ms.AddEventsRequest(events=[scalar(1, 0.5), scalar(2, 0.6), scalar(2, 0.7)]))
    assert first.added == 2
    assert [(e.index, e.error_reason) for e in first.errors] == [(2, errors_pb2.ERROR_REASON_METRIC_CONFLICT)]
    again = stub(client).AddEvents(ms.AddEventsRequest(events=[scalar(1, 0.5), scalar(1, 0.9), scalar(3, float("nan"))]))
    assert again.added == 1
    assert [(e.index, e.error_reason) for e in again.errors] == [(1, errors_pb2.ERROR_REASON_METRIC_CONFLICT)]
    assert "step 1 of eval/acc" in again.errors[0].reason
    nan_retry = stub(client).AddEvents(ms.AddEventsRequest(events=[scalar(3, float("nan"))]))
    assert (nan_retry.added, list(nan_retry.errors)) == (0, [])
    (series,) = history(client, [trial.id], ["acc"], group="eval").series
    assert list(series.steps) == [1, 2, 3] and list(series.values)[:2] == [0.5, 0.6]


def test_a_report_time_outside_the_timestamp_range_is_refused_not_acknowledged(client):
    trial = running_trial(client)
    far = req(trial.id, 1, loss=1.0)
    far.metrics.report_time.seconds = 2**62
    err = error_of(stub(client).ReportMetrics, far)
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["metrics.report_time"])
    # Nothing was stored for the step, and the server keeps serving it.
    assert stub(client).ReportMetrics(req(trial.id, 1, loss=1.0)).created
    assert list(history(client, [trial.id], ["loss"]).series[0].steps) == [1]
