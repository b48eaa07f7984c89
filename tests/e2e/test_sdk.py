"""The Python SDK (trialplane.client.Client) against a real server: helpers,
errors with their details, the token, TLS, and retries through a proxy that
fails the attempts it is told to."""

import math
import socket

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from support.proxy import FAIL_AFTER, FAIL_BEFORE, Proxy, self_signed_certificate
from trialplane.client import (
    Client,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProfilerApi,
    ResourceExhausted,
    RetryPolicy,
    TrialplaneError,
    Unavailable,
)
from trialplane.v1 import (
    checkpoint_pb2,
    errors_pb2,
    log_pb2,
    metrics_pb2,
    study_pb2,
    trial_pb2,
    worker_pb2,
)
from trialplane.v1 import checkpoint_service_pb2 as cs
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import trial_service_pb2 as ts
from trialplane.v1 import worker_service_pb2 as ws

STUDY_YAML = """\
name: mnist-lr
description: from a YAML file
objective:
  metric_name: val_loss
  type: OBJECTIVE_TYPE_MINIMIZE
parameters:
  - name: lr
    type: PARAMETER_TYPE_DOUBLE
    scale: PARAMETER_SCALE_LOG
    feasible_space: {min: 1e-4, max: 0.1}
  - name: optimizer
    type: PARAMETER_TYPE_CATEGORICAL
    feasible_space:
      categories: [sgd, adam]
tags: [yaml]
"""

STUDY = {
    "name": "from-a-dict",
    "objective": {"metricName": "accuracy", "type": "OBJECTIVE_TYPE_MAXIMIZE"},
    "parameters": [{"name": "layers", "type": "PARAMETER_TYPE_INT", "feasible_space": {"min": 1, "max": 8}}],
}


def running_trial(sdk, name="t", **fields):
    trial = sdk.trials.create(name=name, **fields)
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_RUNNING))
    return trial


def report(sdk, trial_id, step, group="training", **values):
    avg = struct_pb2.Struct()
    avg.update(values)
    metrics = metrics_pb2.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=metrics_pb2.Metrics(avg_metrics=avg))
    return sdk.stubs.metrics.ReportMetrics(ms.ReportMetricsRequest(metrics=metrics, group=group))


def test_study_from_a_yaml_file_and_from_a_dict(sdk, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY_YAML)
    from_yaml = sdk.studies.create(path)
    assert from_yaml.id > 0 and from_yaml.name == "mnist-lr" and list(from_yaml.tags) == ["yaml"]
    lr, optimizer = from_yaml.parameters
    # 1e-4 is a string to YAML 1.1; the proto3 JSON mapping reads it as a number.
    assert (lr.name, lr.feasible_space.min, lr.feasible_space.max) == ("lr", 1e-4, 0.1)
    assert list(optimizer.feasible_space.categories) == ["sgd", "adam"]

    from_dict = sdk.studies.create(STUDY)
    assert from_dict.objective.metric_name == "accuracy"
    assert from_dict.parameters[0].feasible_space.max == 8

    as_json = tmp_path / "request.json"
    as_json.write_text('{"study": {"name": "grpcurl-shape", "objective": {"metric_name": "loss", "type": 1}}, "request_id": "r-1"}')
    first = sdk.studies.create(as_json)
    assert sdk.studies.create(as_json).id == first.id  # the file's request_id makes it a retry

    assert sdk.studies.get("mnist-lr").id == from_yaml.id
    assert sdk.studies.get(from_dict.id).name == "from-a-dict"


def test_study_update_and_delete(sdk):
    study = sdk.studies.create(STUDY)
    updated = sdk.studies.update(study.id, description="wider search", max_trials=20)
    assert (updated.description, updated.max_trials) == ("wider search", 20)
    sdk.trials.create(study.id, "t", {"layers": 3})
    with pytest.raises(FailedPrecondition) as info:
        sdk.studies.delete(study.id)
    assert info.value.reason == "RESOURCE_IN_USE"
    assert sdk.studies.delete(study.id, force=True).id == study.id
    with pytest.raises(NotFound):
        sdk.studies.get(study.id)


def test_listing_iterates_past_one_page(sdk):
    made = [sdk.studies.create({**STUDY, "name": f"s{i}", "tags": ["even" if i % 2 == 0 else "odd"]}).id for i in range(7)]
    assert [s.id for s in sdk.studies.list(page_size=2)] == made
    assert [s.name for s in sdk.studies.list(tags=["odd"], page_size=1)] == ["s1", "s3", "s5"]
    assert [s.name for s in sdk.studies.list(name_pattern="S_", order_by="name desc", page_size=3)][:2] == ["s6", "s5"]

    trials = [sdk.trials.create(made[0], f"t{i}", {"layers": i + 1}) for i in range(5)]
    sdk.trials.kill(trials[1].id)
    assert [t.id for t in sdk.trials.list(made[0], page_size=2)] == [t.id for t in trials]
    assert [t.name for t in sdk.trials.list(states=["canceled"])] == ["t1"]
    assert [t.name for t in sdk.trials.list(made[0], states="QUEUED", name_pattern="t%", page_size=1)] == ["t0", "t2", "t3", "t4"]


def test_a_bad_study_is_invalid_argument_with_its_field_violations(sdk, tmp_path):
    with pytest.raises(InvalidArgument) as info:
        sdk.studies.create({"name": "bad name!", "objective": {"metric_name": "loss"}})
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_FIELD"
    assert {v.field for v in err.field_violations} == {"study.name", "study.objective.type"}
    assert "study.objective.type" in str(err) and str(err).startswith("INVALID_ARGUMENT (INVALID_FIELD): ")
    # What cannot be a study is refused before any call.
    with pytest.raises(ValueError, match='no field named "no_such_field"'):
        sdk.studies.create({"name": "x", "no_such_field": 1})
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        sdk.studies.create(broken)
    assert list(sdk.studies.list()) == []


def test_not_found_carries_its_reason_and_metadata(sdk):
    with pytest.raises(NotFound) as info:
        sdk.trials.get(424242)
    err = info.value
    assert isinstance(err, TrialplaneError)
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert err.metadata == {"resource": "trial", "id": "424242"}
    assert "424242" in err.message
    with pytest.raises(NotFound):
        list(sdk.trials.events(424242))


def test_an_illegal_transition_carries_its_typed_detail(sdk):
    trial = sdk.trials.create(name="done")
    sdk.trials.kill(trial.id)
    with pytest.raises(FailedPrecondition) as info:
        sdk.trials.pause(trial.id)
    assert info.value.reason == "ILLEGAL_TRANSITION"
    detail = info.value.detail(errors_pb2.IllegalTransitionDetails)
    assert (detail.current_state, detail.requested_state) == (trial_pb2.TRIAL_STATE_CANCELED, trial_pb2.TRIAL_STATE_PAUSED)


def test_trial_transitions_events_and_watch(sdk):
    trial = sdk.trials.create(name="steered", tags=["sdk"], resources={"worker_count": 1})
    assert trial.state == trial_pb2.TRIAL_STATE_QUEUED and list(trial.tags) == ["sdk"]
    assert sdk.trials.pause(trial.id, message="hold").state == trial_pb2.TRIAL_STATE_PAUSED
    assert sdk.trials.activate(trial.id).state == trial_pb2.TRIAL_STATE_QUEUED
    restarted = sdk.trials.restart(trial.id, resources={"cpu": 2})
    assert (restarted.trial_run_id, restarted.restarts, restarted.resources.cpu) == (2, 1, 2.0)
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_RUNNING))
    stopping = sdk.trials.stop(trial.id, grace_period=90, message="enough")
    assert stopping.state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    assert stopping.stop_deadline.ToMicroseconds() - stopping.update_time.ToMicroseconds() == 90_000_000
    assert sdk.trials.kill(trial.id).state == trial_pb2.TRIAL_STATE_STOPPING_KILLED
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_CANCELED))

    events = list(sdk.trials.events(trial.id, page_size=2))
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert events[0].message == "hold" and events[-1].to_state == trial_pb2.TRIAL_STATE_CANCELED
    # The trial is terminal, so the watch sends the history and ends.
    assert [e.sequence for e in sdk.trials.watch(trial.id, after_sequence=2)] == [e.sequence for e in events[2:]]
    assert [e.sequence for e in sdk.trials.events(trial.id, descending=True)][0] == events[-1].sequence

    assert sdk.trials.update(trial.id, notes="kept").notes == "kept"
    assert sdk.trials.delete(trial.id).id == trial.id


def test_closing_a_stream_cancels_it(proxy):
    with Client(proxy.address) as sdk:
        trial = running_trial(sdk, "live")
        stream = sdk.stubs.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial.id))
        events = iter(stream)
        assert next(events).event.to_state == trial_pb2.TRIAL_STATE_RUNNING
        # The trial is still running, so only the client can end this stream.
        assert not proxy.stream_ended.is_set()
        stream.close()
        assert proxy.stream_ended.wait(10)
        assert list(events) == []
        assert sdk.trials.get(trial.id).state == trial_pb2.TRIAL_STATE_RUNNING


def test_history_as_lists_and_numpy_arrays_equals_what_was_reported(sdk):
    trial = running_trial(sdk)
    steps = list(range(0, 50, 2))
    for step in steps:
        loss = "NaN" if step == 10 else 1.0 / (step + 1)
        report(sdk, trial.id, step, loss=loss, acc=step / 100)
    report(sdk, trial.id, 0, group="validation", val_loss=0.25)

    arrays = sdk.metrics.history_arrays(trial.id, "loss")
    expected = np.array([math.nan if s == 10 else 1.0 / (s + 1) for s in steps])
    assert arrays.steps.dtype == np.int64 and arrays.values.dtype == np.float64
    np.testing.assert_array_equal(arrays.steps, steps)
    np.testing.assert_array_equal(arrays.values, expected)
    assert len(arrays) == len(steps) and set(arrays.trial_run_ids) == {1} and not arrays.archived.any()
    assert (arrays.times > 0).all()

    # Small raw pages: every page is fetched and each series joined in order.
    loss, acc = sdk.metrics.histories(trial.id, ["loss", "acc"], page_size=7)
    assert list(loss.steps) == steps and list(acc.steps) == steps
    assert list(acc.values) == [s / 100 for s in steps]
    downsampled = sdk.metrics.history(trial.id, "acc", buckets=5)
    assert sum(b.count for b in downsampled.buckets) == len(steps)
    assert downsampled.buckets[-1].max == 0.48

    names = [(m.group, m.name, m.count) for m in sdk.metrics.names(trial.id, page_size=1)]
    assert names == [("training", "acc", 25), ("training", "loss", 25), ("validation", "val_loss", 1)]
    latest = {m.name: m for m in sdk.metrics.latest([trial.id], group="training")}
    assert set(latest) == {"acc", "loss"} and latest["acc"].last == 0.48 and latest["acc"].last_step == 48


def test_history_of_a_restarted_trial_marks_archived_points_across_pages(sdk):
    trial = running_trial(sdk)
    for step in range(2, 21, 2):
        report(sdk, trial.id, step, loss=float(step))
    sdk.trials.restart(trial.id)
    # The new run's first report archives what the first run reported past step 11.
    for step in (11, 12, 13):
        report(sdk, trial.id, step, loss=step / 10)
    current = sdk.metrics.history_arrays(trial.id, "loss")
    np.testing.assert_array_equal(current.steps, [2, 4, 6, 8, 10, 11, 12, 13])
    np.testing.assert_array_equal(current.values, [2, 4, 6, 8, 10, 1.1, 1.2, 1.3])
    np.testing.assert_array_equal(current.trial_run_ids, [1] * 5 + [2] * 3)
    # Pages of three: the first pages hold no archived point, and send no flags.
    everything = sdk.metrics.histories(trial.id, "loss", include_archived=True, page_size=3)[0]
    arrays = sdk.metrics.history_arrays(trial.id, "loss", include_archived=True)
    assert list(everything.steps) == list(arrays.steps) and list(everything.archived) == list(arrays.archived)
    assert len(arrays) == 13
    assert sorted(int(s) for s in arrays.steps[arrays.archived]) == [12, 14, 16, 18, 20]
    assert set(arrays.trial_run_ids[arrays.archived]) == {1}


def test_logs_checkpoints_and_workers(sdk):
    trial = running_trial(sdk)
    lines = [log_pb2.TaskLog(trial_id=trial.id, message=f"line {i}", level=log_pb2.LOG_LEVEL_WARNING if i == 3 else 0)
             for i in range(12)]
    sdk.stubs.logs.AddLogs(ls.AddLogsRequest(logs=lines))
    assert [line.message for line in sdk.logs.list(trial.id, page_size=5)] == [f"line {i}" for i in range(12)]
    assert [line.message for line in sdk.logs.list(trial.id, levels=["warning"])] == ["line 3"]
    assert [line.message for line in sdk.logs.tail(trial.id, 3)] == ["line 9", "line 10", "line 11"]
    follow = sdk.logs.follow(trial.id, after_id=sdk.logs.tail(trial.id, 2)[0].id)
    assert next(follow).message == "line 11"
    follow.close()

    for step in (10, 20):
        sdk.stubs.checkpoints.ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=checkpoint_pb2.Checkpoint(
            uuid=f"ck-{step}", trial_id=trial.id, state=checkpoint_pb2.CHECKPOINT_STATE_COMPLETED,
            steps_completed=step, resources={"model.pt": step * 100})))
    assert [c.uuid for c in sdk.checkpoints.list(trial.id, page_size=1)] == ["ck-10", "ck-20"]
    assert [c.uuid for c in sdk.checkpoints.list(trial.id, min_steps=15)] == ["ck-20"]
    assert sdk.checkpoints.get("ck-20").size_bytes == 2000

    for rank in range(2):
        sdk.stubs.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(trial_id=trial.id, type="worker", rank=rank)))
    workers = list(sdk.workers.list(trial.id, page_size=1))
    assert [w.rank for w in workers] == [0, 1]
    assert sdk.workers.get(workers[1].id).rank == 1
    assert list(sdk.workers.list(trial.id, states=["running"])) == []


def test_a_write_whose_answer_was_lost_is_retried_once_and_applied_once(server, proxy):
    with Client(proxy.address, retry=RetryPolicy(initial_backoff=0.01)) as sdk:
        proxy.fail("TrialService/CreateTrial", FAIL_AFTER)
        trial = sdk.trials.create(name="once")
        first, retry = proxy.attempts_of("TrialService/CreateTrial")
        assert first.request == retry.request
        sent = ts.CreateTrialRequest.FromString(first.request)
        assert len(sent.request_id) == 32 and sent.trial.name == "once"

        proxy.fail("TrialService/PauseTrial", FAIL_AFTER)
        assert sdk.trials.pause(trial.id).state == trial_pb2.TRIAL_STATE_PAUSED
    with Client(server.address) as direct:
        assert [t.id for t in direct.trials.list()] == [trial.id]
        assert [e.to_state for e in direct.trials.events(trial.id)] == [trial_pb2.TRIAL_STATE_PAUSED]


def test_unavailable_is_retried_until_the_server_answers(proxy):
    with Client(proxy.address, retry=RetryPolicy(initial_backoff=0.01)) as sdk:
        proxy.fail("TrialService/GetTrial", FAIL_BEFORE, FAIL_BEFORE, FAIL_BEFORE)
        with pytest.raises(NotFound):
            sdk.trials.get(5)
        assert len(proxy.attempts_of("TrialService/GetTrial")) == 4
    with Client(proxy.address, retry=RetryPolicy(max_attempts=1)) as sdk:
        proxy.fail("TrialService/GetTrial", FAIL_BEFORE)
        with pytest.raises(Unavailable) as info:
            sdk.trials.get(5)
        assert "upstream not reachable" in info.value.message and info.value.reason == ""


def test_a_server_that_never_comes_up_is_unavailable(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    with Client(address, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01)) as sdk:
        with pytest.raises(Unavailable) as info:
            sdk.trials.get(1)
        assert info.value.reason == ""
        with pytest.raises(Unavailable):
            sdk.wait_until_ready(timeout=0.2)


def test_retry_info_and_error_info_are_decoded(proxy):
    status = status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="slow down")
    for detail in [
        error_details_pb2.ErrorInfo(reason="LIMIT_EXCEEDED", domain="trialplane.v1", metadata={"limit": "10"}),
        error_details_pb2.RetryInfo(retry_delay={"seconds": 1, "nanos": 500_000_000}),
    ]:
        status.details.add().Pack(detail)
    proxy.fail("TrialService/GetTrial", rpc_status.to_status(status))
    with Client(proxy.address) as sdk, pytest.raises(ResourceExhausted) as info:
        sdk.trials.get(1)
    assert (info.value.reason, info.value.metadata, info.value.retry_delay) == ("LIMIT_EXCEEDED", {"limit": "10"}, 1.5)


def test_the_token_goes_as_bearer_metadata(proxy, monkeypatch):
    with Client(proxy.address, token="s3cret") as sdk:
        sdk.trials.create(name="with-token")
        list(sdk.trials.list())
    monkeypatch.setenv("TRIALPLANE_TOKEN", "from-env")
    monkeypatch.setenv("TRIALPLANE_ADDRESS", proxy.address)
    with Client() as sdk:
        assert sdk.address == proxy.address
        list(sdk.trials.watch(sdk.trials.kill(1).id))
    tokens = [a.metadata.get("authorization") for a in proxy.attempts]
    assert tokens == ["Bearer s3cret", "Bearer s3cret", "Bearer from-env", "Bearer from-env"]


def test_tls_with_a_root_certificate_file(server, tmp_path):
    key, cert = self_signed_certificate(tmp_path)
    proxy = Proxy(server.address, grpc.ssl_server_credentials([(key, cert)]))
    try:
        (tmp_path / "roots.pem").write_bytes(cert)
        with Client(proxy.address, tls=tmp_path / "roots.pem", token="t") as sdk:
            assert sdk.trials.create(name="over-tls").name == "over-tls"
        assert proxy.attempts[0].metadata["authorization"] == "Bearer t"
        # Plaintext to a TLS port does not get through.
        with Client(proxy.address, retry=RetryPolicy(max_attempts=1)) as plain, pytest.raises(Unavailable):
            plain.trials.get(1)
    finally:
        proxy.stop()


def test_raw_stubs_raise_the_sdk_errors_too(sdk):
    with pytest.raises(NotFound) as info:
        sdk.stubs.workers.GetWorker(ws.GetWorkerRequest(id=99))
    assert info.value.metadata["resource"] == "worker"
    with pytest.raises(NotFound):
        list(sdk.stubs.logs.WatchLogs(ls.WatchLogsRequest(trial_id=99)))


def test_search_helpers_suggest_check_stop_and_complete(sdk):
    study = sdk.studies.create(STUDY)
    first = sdk.studies.suggest(study.id, 2)
    assert len(first.trials) == 2 and not first.study_done
    assert all(1 <= t.hyperparameters["layers"].int_value <= 8 for t in first.trials)
    # Each call gets a client id of its own, so a second call makes new trials ...
    second = sdk.studies.suggest(study.id, 1)
    assert second.trials[0].id not in {t.id for t in first.trials}
    # ... and a given one gets that client's unfinished trials back.
    mine = sdk.studies.suggest(study.id, 1, client_id="driver-7")
    assert sdk.studies.suggest(study.id, 1, client_id="driver-7").trials[0].id == mine.trials[0].id
    assert len(list(sdk.trials.list(study.id))) == 4

    running = mine.trials[0]
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=running.id, state=trial_pb2.TRIAL_STATE_RUNNING))
    (decision,) = sdk.studies.check_early_stopping(study.id, running.id)
    assert decision.trial_id == running.id and not decision.should_stop and decision.reason
    with pytest.raises(NotFound):
        sdk.studies.check_early_stopping(study.id, sdk.trials.create(name="elsewhere").id)

    stopped = sdk.studies.stop(study.id, reason="budget")
    assert (stopped.state, stopped.state_message) == (study_pb2.STUDY_STATE_STOPPED, "budget")
    assert sdk.trials.get(running.id).state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    with pytest.raises(FailedPrecondition):
        sdk.studies.complete(study.id)
    other = sdk.studies.create({**STUDY, "name": "other"})
    assert sdk.studies.complete(other.id, reason="enough").state == study_pb2.STUDY_STATE_COMPLETED
    assert sdk.studies.suggest(other.id).study_done


def test_search_settings_are_validated_and_changed_on_a_running_study(sdk, tmp_path):
    answer = sdk.studies.validate_settings({**STUDY, "algorithm": {"name": "grid"}})
    assert {"random", "grid", "tpe"} <= set(answer.algorithms) and "asha" in answer.early_stopping_rules
    with pytest.raises(InvalidArgument) as bad:
        sdk.studies.validate_settings({**STUDY, "algorithm": {"name": "tpe", "settings": [{"name": "gamma", "value": "2"}]}})
    assert [v.field for v in bad.value.field_violations] == ["algorithm.settings[0].value"]
    path = tmp_path / "study.yaml"
    path.write_text("name: from-a-file\nparameters: [{name: x, type: PARAMETER_TYPE_DOUBLE}]\n")
    with pytest.raises(InvalidArgument) as bad:
        sdk.studies.validate_settings(path)
    assert {v.field for v in bad.value.field_violations} == {"parameters[0].feasible_space.min",
                                                             "parameters[0].feasible_space.max"}
    study = sdk.studies.create({**STUDY, "name": "retuned"})
    (first,) = sdk.studies.suggest(study.id, start=True).trials
    changed = sdk.studies.set_algorithm(study.id, "quasirandom", {"random_state": 5})
    assert [(x.name, x.value) for x in changed.algorithm.settings] == [("random_state", "5")]
    assert sdk.studies.set_early_stopping(study.id, "asha", {"min_resource": 2}).early_stopping.name == "asha"
    assert sdk.studies.get(study.id).early_stopping.settings[0].value == "2"
    (second,) = sdk.studies.suggest(study.id, start=True).trials
    assert second.name.endswith("-2") and sdk.trials.get(first.id).state == trial_pb2.TRIAL_STATE_RUNNING
    with pytest.raises(InvalidArgument):
        sdk.studies.set_algorithm(study.id, "grid", {"steps": "many"})
    assert sdk.studies.set_early_stopping(study.id, "").early_stopping.name == ""


def test_ask_and_tell_with_the_sdk(sdk):
    study = sdk.studies.create({**STUDY, "name": "ask-tell"})
    (trial,) = sdk.studies.suggest(study.id, client_id="driver", start=True).trials
    assert trial.state == trial_pb2.TRIAL_STATE_RUNNING
    done = sdk.trials.complete(trial.id, {"accuracy": 0.9}, steps_completed=5)
    # MAXIMIZE: the searcher's value is the accuracy negated.
    assert (done.state, done.searcher_metric_value, done.steps_completed) == (trial_pb2.TRIAL_STATE_COMPLETED, -0.9, 5)
    with pytest.raises(FailedPrecondition):
        sdk.trials.complete(trial.id, {"accuracy": 0.95})
    (after,) = sdk.studies.suggest(study.id, client_id="driver", start=True).trials
    assert after.id != trial.id


def test_the_ask_and_tell_example_runs_a_study_to_its_budget(server, sdk):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "ask_and_tell.py"
    env = {**os.environ, "TRIALPLANE_ADDRESS": server.address}
    done = subprocess.run([sys.executable, str(script), "--trials", "24", "--workers", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    study = sdk.studies.get("branin-ask-and-tell")
    assert (study.state, study.trial_count) == (study_pb2.STUDY_STATE_COMPLETED, 24)
    trials = list(sdk.trials.list(study.id))
    assert {t.state for t in trials} == {trial_pb2.TRIAL_STATE_COMPLETED}
    assert all(t.summary_metrics[0].name == "branin" for t in trials)
    best = min(trials, key=lambda t: t.searcher_metric_value)
    assert done.stdout.startswith(f"24 trials told; best: trial {best.id} at ")
    assert done.stdout.rstrip().endswith(f"branin {best.searcher_metric_value:.6f} (optimum 0.397887)")


def test_profiler_series_and_raw_samples_joined_across_pages(sdk):
    trial = sdk.trials.create(name="profiled")
    labels = pp.TrialProfilerMetricLabels(trial_id=trial.id, name="gpu_util", gpu_uuid="GPU-1",
                                          metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)
    for start in (0, 3):
        batch = pp.TrialProfilerMetricsBatch(values=[float(start + i) for i in range(3)], batches=[start + i for i in range(3)],
                                             timestamps=[1_700_000_000_000_000 + start + i for i in range(3)], labels=labels)
        sdk.stubs.profiler.ReportProfilerMetrics(ps.ReportProfilerMetricsRequest(batch=batch))
    profiler = ProfilerApi(sdk.stubs)
    (series,) = profiler.series(trial.id)
    assert (series.labels, series.sample_count, series.first_batch, series.last_batch) == (labels, 6, 0, 5)
    (raw,) = profiler.samples([labels], page_size=2)
    assert list(raw.samples.values) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and list(raw.samples.batches) == list(range(6))
    (bucketed,) = profiler.samples([labels], buckets=2)
    assert [(b.count, b.min, b.max, b.last) for b in bucketed.buckets] == [(3, 0.0, 2.0, 2.0), (3, 3.0, 5.0, 5.0)]
