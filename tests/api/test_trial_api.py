"""TrialService through a real server: data, lists, history, races, watchdog."""

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, struct_pb2
from support import Client, create_study, error_of, start_server
from support.trials import S, new_trial, report
from trialplane.v1 import errors_pb2, trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

HP = trial_pb2.ParameterValue


def good_hps(lr=0.01, layers=2, optimizer="adam"):
    return {"lr": HP(double_value=lr), "layers": HP(int_value=layers), "optimizer": HP(string_value=optimizer)}


def create(client, trial, request_id=""):
    return client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial, request_id=request_id))


def test_create_round_trips_every_input_field(client):
    study = create_study(client)
    meta = struct_pb2.Struct()
    meta.update({"owner": "ann", "nested": {"k": [1, 2]}})
    trial = create(client, trial_pb2.Trial(
        study_id=study.id,
        name="run-1",
        hyperparameters=good_hps(),
        warm_start_checkpoint_uuid="ckpt-9",
        metadata=meta,
        log_retention_days=7,
        stopping_condition=trial_pb2.StoppingCondition(max_runtime=duration_pb2.Duration(seconds=3600)),
        retry_strategy=trial_pb2.RetryStrategy(max_attempts=3),
        resources=trial_pb2.Resources(cpu=2.5, memory_bytes=8 << 30, gpu=trial_pb2.GpuResources(type="a100", count=2), worker_count=2),
        environment={"NCCL_DEBUG": "INFO"},
        notes="first try",
        tags=["baseline", "gpu"],
        source_info=trial_pb2.TrialSourceInfo(checkpoint_uuid="c1", model_id=4, model_version=2, type=trial_pb2.TRIAL_SOURCE_INFO_TYPE_FINE_TUNING),
    ))
    assert trial.id > 0 and trial.state == S.TRIAL_STATE_QUEUED
    assert trial.trial_run_id == 1 and trial.restarts == 0
    assert trial.hyperparameters["lr"].double_value == pytest.approx(0.01)
    assert trial.hyperparameters["layers"].WhichOneof("kind") == "int_value"
    assert trial.hyperparameters["optimizer"].string_value == "adam"
    assert trial.metadata["nested"]["k"] == [1, 2]
    assert trial.stopping_condition.max_runtime.seconds == 3600
    assert trial.retry_strategy.max_attempts == 3
    assert trial.resources.gpu.type == "a100" and trial.resources.gpu.count == 2
    assert trial.resources.memory_bytes == 8 << 30
    assert dict(trial.environment) == {"NCCL_DEBUG": "INFO"}
    assert list(trial.tags) == ["baseline", "gpu"]
    assert trial.source_info.type == trial_pb2.TRIAL_SOURCE_INFO_TYPE_FINE_TUNING
    assert trial.source_info.model_version == 2
    assert not trial.HasField("start_time") and not trial.HasField("end_time")
    fetched = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert fetched.name == "run-1" and fetched.etag == trial.etag


def test_hyperparameters_keep_to_their_step(client):
    from trialplane.v1 import study_pb2, study_service_pb2

    def spec(name, kind, lo, hi, step):
        return study_pb2.ParameterSpec(name=name, type=kind, feasible_space=study_pb2.FeasibleSpace(min=lo, max=hi, step=step))

    study = client.studies.CreateStudy(study_service_pb2.CreateStudyRequest(study=study_pb2.Study(
        name="stepped",
        objective=study_pb2.Objective(metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        parameters=[
            spec("units", study_pb2.PARAMETER_TYPE_INT, 0, 100, 10),
            spec("offset", study_pb2.PARAMETER_TYPE_INT, 3, 30, 9),
            spec("dropout", study_pb2.PARAMETER_TYPE_DOUBLE, 0.1, 0.9, 0.1),
        ],
    )))

    def trial(units=50, offset=12, dropout=0.3):
        hps = {"units": HP(int_value=units), "offset": HP(int_value=offset), "dropout": HP(double_value=dropout)}
        return trial_pb2.Trial(study_id=study.id, hyperparameters=hps)

    # On the grid: min + k * step, up to floating-point rounding for DOUBLE (0.1 + 2 * 0.1 != 0.3).
    for ok in (trial(), trial(units=0, offset=3, dropout=0.1), trial(units=100, offset=30, dropout=0.9),
               trial(dropout=0.1 + 0.1 + 0.1), trial(dropout=0.7)):
        assert create(client, ok).hyperparameters["units"].int_value == ok.hyperparameters["units"].int_value
    for bad, name in [(trial(units=7), "units"), (trial(offset=10), "offset"), (trial(dropout=0.25), "dropout"),
                      (trial(dropout=0.3001), "dropout")]:
        err = error_of(create, client, bad)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(err.violations) == [f"trial.hyperparameters[{name}]"]
        assert "step" in err.violations[f"trial.hyperparameters[{name}]"]
    assert "nearest allowed values are 0 and 10" in error_of(create, client, trial(units=7)).message


def test_default_name_and_standalone_trial(client):
    trial = create(client, trial_pb2.Trial(hyperparameters={"anything": HP(bool_value=True)}))
    assert trial.name == f"trial-{trial.id}"
    assert trial.study_id == 0
    assert trial.hyperparameters["anything"].bool_value is True


def test_hyperparameters_checked_against_the_study(client):
    study = create_study(client)

    def violations(hps):
        err = error_of(create, client, trial_pb2.Trial(study_id=study.id, hyperparameters=hps))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        return err.violations

    assert "above max" in violations(good_hps(lr=5.0))["trial.hyperparameters[lr]"]
    assert "not one of the categories" in violations(good_hps(optimizer="rmsprop"))["trial.hyperparameters[optimizer]"]
    hps = good_hps()
    del hps["layers"]
    assert "required" in violations(hps)["trial.hyperparameters[layers]"]
    hps = good_hps()
    hps["extra"] = HP(int_value=1)
    assert "not a parameter" in violations(hps)["trial.hyperparameters[extra]"]
    hps = good_hps()
    hps["layers"] = HP(double_value=2.5)
    assert "whole number" in violations(hps)["trial.hyperparameters[layers]"]
    hps = good_hps()
    hps["lr"] = HP(string_value="fast")
    assert "number" in violations(hps)["trial.hyperparameters[lr]"]
    hps = good_hps()
    hps["lr"] = HP(double_value=float("nan"))
    assert "finite" in violations(hps)["trial.hyperparameters[lr]"]
    hps = good_hps()
    hps["lr"] = HP()
    assert "value" in violations(hps)["trial.hyperparameters[lr]"]
    err = error_of(create, client, trial_pb2.Trial(study_id=424242))
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "study"


def test_other_bad_trial_input(client):
    def violations(**fields):
        err = error_of(create, client, trial_pb2.Trial(**fields))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        return err.violations

    assert "at most 256" in violations(name="x" * 257)["trial.name"]
    assert "trial.name" in violations(name="bad\nname")
    assert "trial.tags" in violations(tags=["a", "a"])
    assert "trial.resources.cpu" in violations(resources=trial_pb2.Resources(cpu=-1))
    assert "trial.resources.gpu.count" in violations(resources=trial_pb2.Resources(gpu=trial_pb2.GpuResources(count=-1)))
    assert "trial.retry_strategy.max_attempts" in violations(retry_strategy=trial_pb2.RetryStrategy(max_attempts=1000))
    assert "trial.log_retention_days" in violations(log_retention_days=-5)
    assert "trial.stopping_condition.max_runtime" in violations(
        stopping_condition=trial_pb2.StoppingCondition(max_runtime=duration_pb2.Duration(seconds=-1))
    )
    assert "trial.source_info.type" in violations(source_info=trial_pb2.TrialSourceInfo(type=7))
    assert "trial.study_id" in violations(study_id=-3)
    assert "NUL" in violations(notes="x\x00")["trial.notes"]
    err = error_of(create, client, trial_pb2.Trial(), request_id="r" * 200)
    assert "request_id" in err.violations


def test_study_full_at_max_trials(client):
    study = create_study(client, "small", max_trials=2)
    for _ in range(2):
        create(client, trial_pb2.Trial(study_id=study.id, hyperparameters=good_hps()))
    err = error_of(create, client, trial_pb2.Trial(study_id=study.id, hyperparameters=good_hps()))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "STUDY_FULL"
    assert client.studies.GetStudy(__import__("trialplane.v1.study_service_pb2", fromlist=["x"]).GetStudyRequest(id=study.id)).trial_count == 2


def test_create_retry_returns_the_first_trial(client):
    first = create(client, trial_pb2.Trial(name="once"), request_id="abc")
    again = create(client, trial_pb2.Trial(name="once"), request_id="abc")
    assert again.id == first.id
    assert len(client.trials.ListTrials(ts.ListTrialsRequest()).trials) == 1


def test_restart_retry_does_not_restart_twice(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    req = ts.RestartTrialRequest(id=trial.id, request_id="restart-1", resources=trial_pb2.Resources(cpu=4))
    first = client.trials.RestartTrial(req)
    second = client.trials.RestartTrial(req)
    assert first.restarts == second.restarts == 1
    assert first.trial_run_id == second.trial_run_id == 2
    assert second.resources.cpu == 4


def test_etag_guards_transitions_and_updates(client):
    trial = new_trial(client)
    moved = report(client, trial.id, S.TRIAL_STATE_RUNNING)
    assert moved.etag != trial.etag
    err = error_of(client.trials.StopTrial, ts.StopTrialRequest(id=trial.id, etag=trial.etag))
    assert err.code == grpc.StatusCode.ABORTED and err.reason == "ETAG_MISMATCH"
    assert client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, etag=moved.etag)).state == S.TRIAL_STATE_STOPPING_CANCELED


def test_report_from_an_old_run_is_rejected(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING, trial_run_id=1)
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    err = error_of(report, client, trial.id, S.TRIAL_STATE_COMPLETED, trial_run_id=1)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "STALE_TRIAL_RUN"
    assert err.metadata["trial_run_id"] == "2"
    typed = err.detail(errors_pb2.StaleTrialRunDetails)
    assert (typed.trial_id, typed.reported_trial_run_id, typed.current_trial_run_id) == (trial.id, 1, 2)
    assert report(client, trial.id, S.TRIAL_STATE_RUNNING, trial_run_id=2).state == S.TRIAL_STATE_RUNNING


def test_progress_fields_of_a_state_report(client):
    trial = new_trial(client)
    r = report(client, trial.id, S.TRIAL_STATE_RUNNING, runner_state="loading data", steps_completed=100, task_id="task-1")
    assert r.runner_state == "loading data" and r.steps_completed == 100 and list(r.task_ids) == ["task-1"]
    r = report(client, trial.id, S.TRIAL_STATE_RUNNING, steps_completed=50, task_id="task-1")
    assert r.steps_completed == 100 and list(r.task_ids) == ["task-1"]
    assert r.HasField("start_time")
    r = report(client, trial.id, S.TRIAL_STATE_ERROR, failure_reason="CUDA out of memory")
    assert r.failure_reason == "CUDA out of memory"
    assert r.HasField("end_time")
    assert r.wall_clock_seconds > 0


def test_automatic_retry_under_the_retry_strategy(client):
    trial = create(client, trial_pb2.Trial(retry_strategy=trial_pb2.RetryStrategy(max_attempts=2)))
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    retried = report(client, trial.id, S.TRIAL_STATE_ERROR, failure_reason="node lost")
    assert retried.state == S.TRIAL_STATE_QUEUED
    assert retried.restarts == 1 and retried.trial_run_id == 2
    last = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events[-1]
    assert last.details["automatic_retry"] is True and last.details["failure_reason"] == "node lost"
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    final = report(client, trial.id, S.TRIAL_STATE_ERROR)
    assert final.state == S.TRIAL_STATE_ERROR and final.restarts == 1


def test_update_trial_with_mask(client):
    trial = new_trial(client, "before", tags=["x"])
    upd = client.trials.UpdateTrial(ts.UpdateTrialRequest(
        trial=trial_pb2.Trial(id=trial.id, name="after", notes="n", tags=["y", "z"], state=S.TRIAL_STATE_COMPLETED,
                              retry_strategy=trial_pb2.RetryStrategy(max_attempts=4)),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "notes", "tags", "retry_strategy"]),
    ))
    assert (upd.name, upd.notes, list(upd.tags)) == ("after", "n", ["y", "z"])
    assert upd.retry_strategy.max_attempts == 4
    assert upd.state == S.TRIAL_STATE_QUEUED
    listed = client.trials.ListTrials(ts.ListTrialsRequest(tags=["z"])).trials
    assert [t.id for t in listed] == [trial.id]
    assert not client.trials.ListTrials(ts.ListTrialsRequest(tags=["x"])).trials
    err = error_of(client.trials.UpdateTrial, ts.UpdateTrialRequest(
        trial=trial_pb2.Trial(id=trial.id, state=S.TRIAL_STATE_COMPLETED), update_mask=field_mask_pb2.FieldMask(paths=["state"])))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "update_mask" in err.violations
    err = error_of(client.trials.UpdateTrial, ts.UpdateTrialRequest(
        trial=trial_pb2.Trial(id=trial.id, name="x" * 300), update_mask=field_mask_pb2.FieldMask(paths=["name"])))
    assert "trial.name" in err.violations
    # PostgreSQL's text cannot hold a NUL: refused for what the update sets.
    err = error_of(client.trials.UpdateTrial, ts.UpdateTrialRequest(
        trial=trial_pb2.Trial(id=trial.id, notes="a\x00b"), update_mask=field_mask_pb2.FieldMask(paths=["notes"])))
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["trial.notes"])
    err = error_of(client.trials.UpdateTrial, ts.UpdateTrialRequest(
        trial=trial_pb2.Trial(id=trial.id, notes="late", etag=trial.etag), update_mask=field_mask_pb2.FieldMask(paths=["notes"])))
    assert err.code == grpc.StatusCode.ABORTED


def test_delete_trial(client):
    study = create_study(client)
    trial = create(client, trial_pb2.Trial(study_id=study.id, hyperparameters=good_hps()))
    err = error_of(client.trials.DeleteTrial, ts.DeleteTrialRequest(id=trial.id))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "RESOURCE_IN_USE"
    client.trials.KillTrial(ts.KillTrialRequest(id=trial.id))
    assert client.trials.DeleteTrial(ts.DeleteTrialRequest(id=trial.id)).id == trial.id
    assert error_of(client.trials.GetTrial, ts.GetTrialRequest(id=trial.id)).code == grpc.StatusCode.NOT_FOUND
    from trialplane.v1 import study_service_pb2 as ss

    assert client.studies.GetStudy(ss.GetStudyRequest(id=study.id)).trial_count == 0
    running = new_trial(client)
    assert client.trials.DeleteTrial(ts.DeleteTrialRequest(id=running.id, force=True)).id == running.id


def test_get_with_read_mask(client):
    trial = new_trial(client, "masked")
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id, read_mask=field_mask_pb2.FieldMask(paths=["name", "state"])))
    assert got.name == "masked" and got.state == S.TRIAL_STATE_QUEUED and got.id == 0
    err = error_of(client.trials.GetTrial, ts.GetTrialRequest(id=trial.id, read_mask=field_mask_pb2.FieldMask(paths=["bogus"])))
    assert "read_mask" in err.violations


def test_list_filters(client):
    s1 = create_study(client, "s1")
    s2 = create_study(client, "s2")
    a = create(client, trial_pb2.Trial(study_id=s1.id, name="a", hyperparameters=good_hps(), tags=["red", "big"]))
    b = create(client, trial_pb2.Trial(study_id=s1.id, name="b", hyperparameters=good_hps(), tags=["red"]))
    c = create(client, trial_pb2.Trial(study_id=s2.id, name="c", hyperparameters=good_hps()))
    report(client, b.id, S.TRIAL_STATE_RUNNING)
    ids = lambda **kw: [t.id for t in client.trials.ListTrials(ts.ListTrialsRequest(**kw)).trials]  # noqa: E731
    assert ids(study_id=s1.id) == [a.id, b.id]
    assert ids(states=[S.TRIAL_STATE_RUNNING]) == [b.id]
    assert ids(states=[S.TRIAL_STATE_RUNNING, S.TRIAL_STATE_QUEUED]) == [a.id, b.id, c.id]
    assert ids(tags=["red"]) == [a.id, b.id]
    assert ids(tags=["red", "big"]) == [a.id]
    assert ids(created_after=a.create_time) == [b.id, c.id]
    assert ids(created_before=c.create_time) == [a.id, b.id]
    assert ids(study_id=s2.id, states=[S.TRIAL_STATE_RUNNING]) == []
    assert ids(order_by="id desc") == [c.id, b.id, a.id]
    assert ids(order_by="update_time desc")[0] == b.id
    assert ids(order_by="name desc") == [c.id, b.id, a.id]
    err = error_of(client.trials.ListTrials, ts.ListTrialsRequest(states=[55]))
    assert "states[0]" in err.violations
    for bad in ["nope", "id sideways", "id asc extra"]:
        assert "order_by" in error_of(client.trials.ListTrials, ts.ListTrialsRequest(order_by=bad)).violations
    assert "page_size" in error_of(client.trials.ListTrials, ts.ListTrialsRequest(page_size=-1)).violations


def test_ilike_patterns(client):
    names = ["test-run", "FOOtest-runBAR", "test-runBAR", "%test9run", "%test_run", "FOOtest_run", "%test__run",
             "%test_runBAR", "test_run", "testXrun", "back\\slash", "Ünïcode-Run"]
    ids = {n: new_trial(client, n).id for n in names}

    def match(pattern):
        resp = client.trials.ListTrials(ts.ListTrialsRequest(name_pattern=pattern, page_size=100))
        return {t.name for t in resp.trials}

    assert match("%test-run%") == {"test-run", "FOOtest-runBAR", "test-runBAR"}
    assert match("\\%test_run") == {"%test9run", "%test_run"}
    assert match("test\\_run") == {"test_run"}
    assert match("TEST_RUN") == {"test-run", "test_run", "testXrun"}
    assert match("back\\\\slash") == {"back\\slash"}
    assert match("ünïcode%") == {"Ünïcode-Run"}
    assert match("%") == set(ids)
    err = error_of(client.trials.ListTrials, ts.ListTrialsRequest(name_pattern="abc\\"))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "lone backslash" in err.violations["name_pattern"]


def _all_pages(client, **kw):
    seen, token, pages = [], "", 0
    while True:
        resp = client.trials.ListTrials(ts.ListTrialsRequest(page_token=token, **kw))
        seen.extend(resp.trials)
        pages += 1
        token = resp.next_page_token
        if not token:
            return seen, pages


def test_pagination_is_stable_under_concurrent_inserts(client, server):
    first = [new_trial(client, f"p{i:03d}").id for i in range(60)]
    stop = threading.Event()
    inserted = []

    def writer():
        other = Client.connect(server.address)
        while not stop.is_set() and len(inserted) < 200:
            inserted.append(other.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="late"))).id)
        other.channel.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        desc, pages = _all_pages(client, page_size=7, order_by="create_time desc", name_pattern="p%")
    finally:
        stop.set()
        thread.join()
    assert pages == 9
    assert [t.id for t in desc] == list(reversed(first))
    asc, _ = _all_pages(client, page_size=11, order_by="id")
    ids = [t.id for t in asc]
    assert len(ids) == len(set(ids)) == 60 + len(inserted)
    assert ids == sorted(ids)
    by_name, _ = _all_pages(client, page_size=5, order_by="name", name_pattern="p%")
    assert [t.name for t in by_name] == sorted(f"p{i:03d}" for i in range(60))


def test_page_size_defaults_and_cap(client, server):
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: new_trial(client, f"n{i}"), range(1050)))
    assert len(client.trials.ListTrials(ts.ListTrialsRequest()).trials) == 50
    big = client.trials.ListTrials(ts.ListTrialsRequest(page_size=5000))
    assert len(big.trials) == 1000 and big.next_page_token
    rest = client.trials.ListTrials(ts.ListTrialsRequest(page_size=5000, page_token=big.next_page_token))
    assert len(rest.trials) == 50 and rest.next_page_token == ""


def test_bad_page_tokens(client):
    for i in range(3):
        new_trial(client, f"t{i}")
    token = client.trials.ListTrials(ts.ListTrialsRequest(page_size=1)).next_page_token
    for bad in ["garbage!", "eyJ4IjoxfQ", token[:-3]]:
        err = error_of(client.trials.ListTrials, ts.ListTrialsRequest(page_size=1, page_token=bad))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert err.reason == "INVALID_PAGE_TOKEN" and "page_token" in err.violations
    err = error_of(client.trials.ListTrials, ts.ListTrialsRequest(page_size=1, page_token=token, order_by="name"))
    assert err.reason == "INVALID_PAGE_TOKEN"
    assert len(client.trials.ListTrials(ts.ListTrialsRequest(page_size=1, page_token=token)).trials) == 1


def test_trial_events_history_and_pages(client):
    trial = new_trial(client)
    for state in [S.TRIAL_STATE_PULLING, S.TRIAL_STATE_STARTING, S.TRIAL_STATE_RUNNING]:
        report(client, trial.id, state, message=f"now {S.TrialState.Name(state)}")
    client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, grace_period=duration_pb2.Duration(seconds=30), message="user stop"))
    report(client, trial.id, S.TRIAL_STATE_CANCELED)
    events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    assert [S.TrialState.Name(e.to_state)[12:] for e in events] == ["PULLING", "STARTING", "RUNNING", "STOPPING_CANCELED", "CANCELED"]
    assert events[0].from_state == S.TRIAL_STATE_QUEUED
    assert events[0].message == "now TRIAL_STATE_PULLING"
    assert events[3].message == "user stop" and events[3].details["grace_period_seconds"] == 30
    assert all(e.time.seconds > 0 and e.trial_run_id == 1 for e in events)
    page1 = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id, page_size=2, descending=True))
    page2 = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id, page_size=2, descending=True, page_token=page1.next_page_token))
    page3 = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id, page_size=2, descending=True, page_token=page2.next_page_token))
    assert [e.sequence for e in (*page1.events, *page2.events, *page3.events)] == [5, 4, 3, 2, 1]
    assert page3.next_page_token == ""
    after = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id, after_sequence=3))
    assert [e.sequence for e in after.events] == [4, 5]
    assert error_of(client.trials.ListTrialEvents, ts.ListTrialEventsRequest(trial_id=999)).code == grpc.StatusCode.NOT_FOUND


def test_watch_trial_events_follows_until_terminal(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    stream = client.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial.id), timeout=20)
    first = next(stream)
    assert first.event.sequence == 1 and first.event.to_state == S.TRIAL_STATE_RUNNING
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    rest = [r.event.to_state for r in stream]
    assert rest == [S.TRIAL_STATE_COMPLETED]
    resumed = list(client.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial.id, after_sequence=1), timeout=20))
    assert [r.event.sequence for r in resumed] == [2]
    with pytest.raises(grpc.RpcError) as info:
        list(client.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=777), timeout=5))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_racing_transitions_have_one_winner(client, server):
    """Stop and completion race on many trials: each ends in exactly one consistent state."""
    trials = [new_trial(client, f"race{i}") for i in range(30)]
    for t in trials:
        report(client, t.id, S.TRIAL_STATE_RUNNING)
    clients = [Client.connect(server.address) for _ in range(2)]
    outcomes = {}

    def stop(t):
        try:
            return clients[0].trials.StopTrial(ts.StopTrialRequest(id=t.id, etag=str(int(t.etag) + 1))).state
        except grpc.RpcError as err:
            return err.code()

    def complete(t):
        try:
            return clients[1].trials.ReportTrialState(
                ts.ReportTrialStateRequest(id=t.id, state=S.TRIAL_STATE_STOPPING_COMPLETED, etag=str(int(t.etag) + 1))).state
        except grpc.RpcError as err:
            return err.code()

    with ThreadPoolExecutor(8) as pool:
        for t in trials:
            outcomes[t.id] = (pool.submit(stop, t), pool.submit(complete, t))
    for t in trials:
        a, b = (f.result() for f in outcomes[t.id])
        wins = [r for r in (a, b) if not isinstance(r, grpc.StatusCode)]
        losses = [r for r in (a, b) if isinstance(r, grpc.StatusCode)]
        assert len(wins) == 1 and losses in ([grpc.StatusCode.ABORTED], [grpc.StatusCode.FAILED_PRECONDITION])
        final = client.trials.GetTrial(ts.GetTrialRequest(id=t.id))
        assert final.state == wins[0]
        events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=t.id)).events
        assert [e.sequence for e in events] == [1, 2]
    for c in clients:
        c.channel.close()


def test_watchdog_escalates_and_ends_silent_trials(clocked_client, clocked_server, clock):
    client = clocked_client
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    client.trials.StopTrial(ts.StopTrialRequest(id=trial.id, grace_period=duration_pb2.Duration(seconds=60)))
    sweep = lambda: clocked_server.call(clocked_server.app.watchdog.sweep())  # noqa: E731
    assert sweep() == 0
    clock.advance(61)
    assert sweep() == 1
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).state == S.TRIAL_STATE_STOPPING_KILLED
    clock.advance(31)
    assert sweep() == 1
    ended = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert ended.state == S.TRIAL_STATE_CANCELED and not ended.HasField("stop_deadline")
    assert sweep() == 0

    limited = create(client, trial_pb2.Trial(stopping_condition=trial_pb2.StoppingCondition(max_runtime=duration_pb2.Duration(seconds=100))))
    report(client, limited.id, S.TRIAL_STATE_RUNNING)
    clock.advance(50)
    assert sweep() == 0
    clock.advance(51)
    assert sweep() == 1
    stopped = client.trials.GetTrial(ts.GetTrialRequest(id=limited.id))
    assert stopped.state == S.TRIAL_STATE_STOPPING_CANCELED and stopped.failure_reason == "max runtime exceeded"
    assert stopped.wall_clock_seconds == pytest.approx(101, abs=1)


def test_everything_survives_a_restart(db_path):
    srv = start_server(db_path)
    c = Client.connect(srv.address)
    study = create_study(c, "persist")
    trial = create(c, trial_pb2.Trial(study_id=study.id, hyperparameters=good_hps(), tags=["keep"]))
    report(c, trial.id, S.TRIAL_STATE_RUNNING)
    before = c.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    c.channel.close()
    srv.stop()

    srv = start_server(db_path)
    c = Client.connect(srv.address)
    try:
        after = c.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
        assert after.state == S.TRIAL_STATE_RUNNING and after.etag == before.etag
        assert after.hyperparameters == before.hyperparameters
        assert [t.id for t in c.trials.ListTrials(ts.ListTrialsRequest(tags=["keep"])).trials] == [trial.id]
        assert len(c.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events) == 1
        assert create(c, trial_pb2.Trial(study_id=study.id, hyperparameters=good_hps())).id == trial.id + 1
    finally:
        c.channel.close()
        srv.stop()
