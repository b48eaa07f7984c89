"""CheckpointService through a real server: reports, trial totals, listing,
metadata, two-phase deletion, retention and the trial's best checkpoint."""

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from support import create_study, error_of
from support.trials import S, new_trial, report, trial_in
from trialplane.v1 import (
    checkpoint_pb2 as cp,
)
from trialplane.v1 import (
    checkpoint_service_pb2 as cs,
)
from trialplane.v1 import (
    checkpoint_service_pb2_grpc,
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
    study_service_pb2 as ss,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)

C = cp.CheckpointState
ACTIVE, COMPLETED, ERROR = C.CHECKPOINT_STATE_ACTIVE, C.CHECKPOINT_STATE_COMPLETED, C.CHECKPOINT_STATE_ERROR
PARTIAL, DELETED = C.CHECKPOINT_STATE_PARTIALLY_DELETED, C.CHECKPOINT_STATE_DELETED
HP = trial_pb2.ParameterValue
GOOD_HPS = {"lr": HP(double_value=0.01), "layers": HP(int_value=2), "optimizer": HP(string_value="adam")}
INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
GIB = 1 << 30


# --- helpers -----------------------------------------------------------------

def flat(pages):
    return [x for page in pages for x in page]


def stub(client):
    return checkpoint_service_pb2_grpc.CheckpointServiceStub(client.channel)


def put(client, trial_id, uuid, state=COMPLETED, steps=0, files=None, **kw):
    """ReportCheckpoint; files defaults to one 100-byte file."""
    return stub(client).ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=cp.Checkpoint(
        uuid=uuid, trial_id=trial_id, state=state, steps_completed=steps,
        resources={"model.pt": 100} if files is None else files, **kw)))


def get(client, uuid):
    return stub(client).GetCheckpoint(cs.GetCheckpointRequest(uuid=uuid))


def validate(client, trial_id, steps, **metrics):
    s = struct_pb2.Struct()
    s.update(metrics)
    metrics_service_pb2_grpc.MetricsServiceStub(client.channel).ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=steps, metrics=mp.Metrics(avg_metrics=s)),
        group="validation"))


def study_trial(client, study, name="t"):
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(
        trial=trial_pb2.Trial(study_id=study.id, name=name, hyperparameters=GOOD_HPS)))
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    return trial


def uuids(client, **kw):
    return [c.uuid for c in stub(client).ListCheckpoints(cs.ListCheckpointsRequest(**kw)).checkpoints]


def all_pages(client, page_size, **kw):
    """Every page of a listing, as lists of uuids; asserts the last token is empty."""
    pages, token = [], ""
    for _ in range(100):
        resp = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=page_size, page_token=token, **kw))
        pages.append([c.uuid for c in resp.checkpoints])
        token = resp.next_page_token
        if not token:
            return pages
    raise AssertionError("listing never ended")


def trial_totals(client, trial_id):
    t = client.trials.GetTrial(ts.GetTrialRequest(id=trial_id))
    return t.total_checkpoint_size_bytes, t.checkpoint_count


def delete(client, uuids, confirm=False):
    return stub(client).DeleteCheckpoints(cs.DeleteCheckpointsRequest(uuids=uuids, confirm_deleted=confirm))


def retention(client, study_id, **kw):
    return stub(client).ApplyCheckpointRetention(cs.ApplyCheckpointRetentionRequest(study_id=study_id, **kw))


def states(client, *names):
    return {n: get(client, n).state for n in names}


# --- ReportCheckpoint ----------------------------------------------------------

def test_report_active_then_completed_keeps_one_checkpoint(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    meta = struct_pb2.Struct()
    meta.update({"framework": "torch", "shards": [1, 2]})
    active = put(client, trial.id, "ck-1", ACTIVE, steps=100, files={"model.pt": 5 * GIB, "optimizer.pt": 1000},
                 metadata=meta, storage_uri="s3://bucket/ck-1")
    assert active.uuid == "ck-1" and active.trial_id == trial.id and active.trial_run_id == 1
    assert active.state == ACTIVE
    assert dict(active.resources) == {"model.pt": 5 * GIB, "optimizer.pt": 1000}
    assert active.size_bytes == 5 * GIB + 1000
    assert active.steps_completed == 100
    assert active.storage_uri == "s3://bucket/ck-1"
    assert MessageToDict(active.metadata) == {"framework": "torch", "shards": [1, 2]}
    assert active.HasField("create_time") and not active.HasField("end_time")

    done = put(client, trial.id, "ck-1", COMPLETED, steps=100,
               files={"model.pt": 5 * GIB, "optimizer.pt": 1000, "config.json": 24})
    assert done.uuid == "ck-1" and done.state == COMPLETED
    assert dict(done.resources) == {"model.pt": 5 * GIB, "optimizer.pt": 1000, "config.json": 24}
    assert done.size_bytes == 5 * GIB + 1024
    assert done.HasField("end_time")
    assert done.create_time == active.create_time
    assert done.storage_uri == "s3://bucket/ck-1"  # not repeated in the second report: kept
    assert MessageToDict(done.metadata) == {"framework": "torch", "shards": [1, 2]}

    assert get(client, "ck-1") == done
    assert uuids(client, trial_id=trial.id) == ["ck-1"]


def test_repeated_reports_keep_end_time_steps_and_files(client):
    trial = new_trial(client)
    first = put(client, trial.id, "c", COMPLETED, steps=50, files={"a": 10})
    assert first.HasField("end_time")
    again = put(client, trial.id, "c", COMPLETED, steps=40, files={})
    assert again.end_time == first.end_time
    assert again.steps_completed == 50  # never goes back
    assert dict(again.resources) == {"a": 10} and again.size_bytes == 10


@pytest.mark.parametrize("final", [COMPLETED, ERROR])
def test_end_time_set_when_a_checkpoint_stops_being_written(client, final):
    trial = new_trial(client)
    assert not put(client, trial.id, "w", ACTIVE).HasField("end_time")
    assert not put(client, trial.id, "w", ACTIVE).HasField("end_time")
    done = put(client, trial.id, "w", final)
    assert done.state == final and done.HasField("end_time")
    assert done.end_time.ToMicroseconds() >= done.create_time.ToMicroseconds()
    direct = put(client, trial.id, "direct", final)
    assert direct.HasField("end_time") and direct.end_time == direct.create_time


def test_trial_totals_follow_reports(client):
    trial = new_trial(client)
    assert trial_totals(client, trial.id) == (0, 0)
    put(client, trial.id, "c1", ACTIVE, files={"a": 5})
    assert trial_totals(client, trial.id) == (5, 1)
    put(client, trial.id, "c1", COMPLETED, files={"a": 5, "b": 7})
    assert trial_totals(client, trial.id) == (12, 1)
    put(client, trial.id, "c2", COMPLETED, files={"c": 3 * GIB})
    assert trial_totals(client, trial.id) == (12 + 3 * GIB, 2)
    put(client, trial.id, "c3", ERROR, files={"partial": 8})
    assert trial_totals(client, trial.id) == (20 + 3 * GIB, 3)
    other = new_trial(client, "other")
    put(client, other.id, "o1", files={"x": 1})
    assert trial_totals(client, trial.id) == (20 + 3 * GIB, 3)
    assert trial_totals(client, other.id) == (1, 1)


@pytest.mark.parametrize("first, second", [
    (COMPLETED, ACTIVE), (COMPLETED, ERROR), (ERROR, ACTIVE), (ERROR, COMPLETED),
])
def test_illegal_report_transitions(client, first, second):
    trial = new_trial(client)
    before = put(client, trial.id, "c", first, files={"a": 1})
    err = error_of(put, client, trial.id, "c", second, files={"a": 999})
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata["uuid"] == "c"
    assert err.metadata["from_state"] == C.Name(first)
    assert err.metadata["to_state"] == C.Name(second)
    assert get(client, "c") == before
    assert trial_totals(client, trial.id) == (1, 1)


def test_deleted_checkpoints_take_no_reports(client):
    trial = new_trial(client)
    put(client, trial.id, "c")
    delete(client, ["c"])
    err = error_of(put, client, trial.id, "c", COMPLETED)
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    delete(client, ["c"], confirm=True)
    err = error_of(put, client, trial.id, "c", ACTIVE)
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert get(client, "c").state == DELETED


@pytest.mark.parametrize("state", [PARTIAL, DELETED, C.CHECKPOINT_STATE_UNSPECIFIED, 42])
def test_report_must_set_active_completed_or_error(client, state):
    trial = new_trial(client)
    err = error_of(put, client, trial.id, "c", state)
    assert err.code == INVALID and err.reason == "INVALID_FIELD"
    assert list(err.violations) == ["checkpoint.state"]
    assert error_of(get, client, "c").code == grpc.StatusCode.NOT_FOUND
    assert trial_totals(client, trial.id) == (0, 0)


@pytest.mark.parametrize("fields, bad_field", [
    ({"uuid": ""}, "checkpoint.uuid"),
    ({"uuid": "u" * 129}, "checkpoint.uuid"),
    ({"trial_id": 0}, "checkpoint.trial_id"),
    ({"trial_id": -4}, "checkpoint.trial_id"),
    ({"steps": -1}, "checkpoint.steps_completed"),
    ({"files": {"weights.bin": -1}}, "checkpoint.resources[weights.bin]"),
    ({"files": {"": 10}}, "checkpoint.resources"),
    ({"storage_uri": "s3://" + "x" * 2045}, "checkpoint.storage_uri"),
])
def test_bad_report_fields(client, fields, bad_field):
    trial = new_trial(client)
    args = {"trial_id": trial.id, "uuid": "c", **fields}
    err = error_of(put, client, args.pop("trial_id"), args.pop("uuid"), **args)
    assert err.code == INVALID and err.reason == "INVALID_FIELD"
    assert bad_field in err.violations
    assert trial_totals(client, trial.id) == (0, 0)
    assert uuids(client) == []


def test_every_bad_field_is_named_at_once(client):
    err = error_of(put, client, 0, "", PARTIAL, steps=-3, files={"a": -1, "b": -2})
    assert err.code == INVALID
    assert set(err.violations) == {
        "checkpoint.uuid", "checkpoint.trial_id", "checkpoint.state", "checkpoint.steps_completed",
        "checkpoint.resources[a]", "checkpoint.resources[b]",
    }


def test_report_for_an_unknown_trial(client):
    err = error_of(put, client, 987654, "c")
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "RESOURCE_NOT_FOUND"
    assert err.metadata == {"resource": "trial", "id": "987654"}
    assert error_of(get, client, "c").code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("terminal", [S.TRIAL_STATE_COMPLETED, S.TRIAL_STATE_ERROR, S.TRIAL_STATE_CANCELED])
def test_a_terminal_trial_takes_no_new_checkpoints(client, terminal):
    trial = trial_in(client, terminal)
    err = error_of(put, client, trial.id, "late")
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata["trial_id"] == str(trial.id)
    assert error_of(get, client, "late").code == grpc.StatusCode.NOT_FOUND
    assert trial_totals(client, trial.id) == (0, 0)


def test_a_checkpoint_started_while_running_can_finish_after_the_trial(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    put(client, trial.id, "flush", ACTIVE, steps=7, files={"a": 1})
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    done = put(client, trial.id, "flush", COMPLETED, steps=7, files={"a": 1, "b": 2})
    assert done.state == COMPLETED and done.size_bytes == 3
    assert trial_totals(client, trial.id) == (3, 1)


def test_a_uuid_belongs_to_one_trial(client):
    a, b = new_trial(client, "a"), new_trial(client, "b")
    put(client, a.id, "shared", ACTIVE)
    err = error_of(put, client, b.id, "shared", COMPLETED)
    assert err.code == PRECONDITION and err.reason == "RESOURCE_EXISTS"
    assert err.metadata == {"uuid": "shared", "trial_id": str(a.id)}
    assert get(client, "shared").trial_id == a.id and get(client, "shared").state == ACTIVE
    assert trial_totals(client, b.id) == (0, 0)


def test_trial_run_id_defaults_to_the_trials_run(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    assert put(client, trial.id, "run1").trial_run_id == 1
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    assert put(client, trial.id, "run2").trial_run_id == 2
    assert put(client, trial.id, "explicit", trial_run_id=1).trial_run_id == 1


# --- GetCheckpoint -----------------------------------------------------------

def test_get_unknown_or_unnamed_checkpoint(client):
    err = error_of(get, client, "does-not-exist")
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "RESOURCE_NOT_FOUND"
    assert err.metadata == {"resource": "checkpoint", "id": "does-not-exist"}
    err = error_of(get, client, "")
    assert err.code == INVALID and "uuid" in err.violations


# --- ListCheckpoints: filters ------------------------------------------------

def test_list_filters(clocked_client, clock):
    client = clocked_client
    study = create_study(client, "filters")
    a = study_trial(client, study, "a")
    b = study_trial(client, study, "b")
    lone = new_trial(client, "lone")
    made = {}
    for uuid, trial, steps, state in [
        ("a1", a, 10, COMPLETED), ("b1", b, 20, ACTIVE), ("a2", a, 30, ERROR),
        ("l1", lone, 40, COMPLETED), ("b2", b, 50, COMPLETED), ("a3", a, 60, ACTIVE),
    ]:
        clock.advance(10)
        made[uuid] = put(client, trial.id, uuid, state, steps=steps)
    assert uuids(client) == ["a1", "b1", "a2", "l1", "b2", "a3"]
    assert uuids(client, trial_id=a.id) == ["a1", "a2", "a3"]
    assert uuids(client, trial_id=lone.id) == ["l1"]
    assert uuids(client, study_id=study.id) == ["a1", "b1", "a2", "b2", "a3"]
    assert uuids(client, study_id=study.id, trial_id=b.id) == ["b1", "b2"]
    assert uuids(client, study_id=study.id, trial_id=lone.id) == []
    assert uuids(client, states=[ACTIVE]) == ["b1", "a3"]
    assert uuids(client, states=[COMPLETED, ERROR]) == ["a1", "a2", "l1", "b2"]
    assert uuids(client, trial_id=a.id, states=[COMPLETED, ACTIVE]) == ["a1", "a3"]
    assert uuids(client, min_steps=30) == ["a2", "l1", "b2", "a3"]
    assert uuids(client, max_steps=30) == ["a1", "b1", "a2"]
    assert uuids(client, min_steps=20, max_steps=50) == ["b1", "a2", "l1", "b2"]
    assert uuids(client, min_steps=40, max_steps=40) == ["l1"]
    # created_after / created_before are exclusive bounds.
    assert uuids(client, created_after=made["a2"].create_time) == ["l1", "b2", "a3"]
    assert uuids(client, created_before=made["a2"].create_time) == ["a1", "b1"]
    assert uuids(client, created_after=made["a1"].create_time, created_before=made["b2"].create_time) == ["b1", "a2", "l1"]
    assert uuids(client, study_id=study.id, states=[COMPLETED], created_after=made["a1"].create_time) == ["b2"]
    future = timestamp_pb2.Timestamp(seconds=made["a3"].create_time.seconds + 3600)
    assert uuids(client, created_after=future) == []
    assert uuids(client, study_id=424242) == [] and uuids(client, trial_id=424242) == []


def test_deleted_checkpoints_are_listed_by_state(client):
    trial = new_trial(client)
    for uuid in ["x", "y", "z"]:
        put(client, trial.id, uuid)
    delete(client, ["x", "y"])
    delete(client, ["x"], confirm=True)
    assert uuids(client, states=[DELETED]) == ["x"]
    assert uuids(client, states=[PARTIAL]) == ["y"]
    assert uuids(client, states=[COMPLETED]) == ["z"]


@pytest.mark.parametrize("request_fields, bad_field", [
    ({"trial_id": -1}, "trial_id"),
    ({"study_id": -1}, "trial_id"),
    ({"min_steps": 50, "max_steps": 10}, "min_steps"),
    ({"states": [C.CHECKPOINT_STATE_UNSPECIFIED]}, "states[0]"),
    ({"states": [COMPLETED, 77]}, "states[1]"),
    ({"page_size": -1}, "page_size"),
    ({"order_by": "size_bytes"}, "order_by"),
    ({"order_by": "steps_completed sideways"}, "order_by"),
    ({"order_by": "create_time asc extra"}, "order_by"),
    ({"order_by": "metric:"}, "order_by"),
    ({"created_after": timestamp_pb2.Timestamp(seconds=1, nanos=-5)}, "created_after"),
])
def test_bad_list_requests(client, request_fields, bad_field):
    err = error_of(stub(client).ListCheckpoints, cs.ListCheckpointsRequest(**request_fields))
    assert err.code == INVALID
    assert bad_field in err.violations


# --- ListCheckpoints: pages and order ----------------------------------------

def test_keyset_pages_of_two_over_five(clocked_client, clock):
    client = clocked_client
    trial = new_trial(client)
    for i in range(5):
        clock.advance(1)
        put(client, trial.id, f"c{i}", steps=i * 10)
    pages = all_pages(client, 2)
    assert pages == [["c0", "c1"], ["c2", "c3"], ["c4"]]
    seen = flat(pages)
    assert len(seen) == len(set(seen)) == 5
    assert all_pages(client, 2, order_by="create_time desc") == [["c4", "c3"], ["c2", "c1"], ["c0"]]
    assert all_pages(client, 5) == [["c0", "c1", "c2", "c3", "c4"]]
    assert all_pages(client, 4, trial_id=trial.id) == [["c0", "c1", "c2", "c3"], ["c4"]]


def test_pages_stay_stable_while_checkpoints_are_added(clocked_client, clock):
    client = clocked_client
    trial = new_trial(client)
    for i in range(3):
        clock.advance(1)
        put(client, trial.id, f"c{i}")
    first = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=2))
    assert [c.uuid for c in first.checkpoints] == ["c0", "c1"]
    clock.advance(1)
    put(client, trial.id, "late")
    seen = [c.uuid for c in first.checkpoints]
    token = first.next_page_token
    while token:
        resp = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=2, page_token=token))
        seen.extend(c.uuid for c in resp.checkpoints)
        token = resp.next_page_token
    assert seen == ["c0", "c1", "c2", "late"]


def test_steps_order_with_ties_pages_without_duplicates(clocked_client, clock):
    client = clocked_client
    trial = new_trial(client)
    for uuid, steps in [("a", 30), ("b", 10), ("c", 30), ("d", 20), ("e", 10)]:
        clock.advance(1)
        put(client, trial.id, uuid, steps=steps)
    # Ties keep the order the checkpoints were stored in, reversed for desc.
    assert uuids(client, order_by="steps_completed") == ["b", "e", "d", "a", "c"]
    assert uuids(client, order_by="steps_completed asc") == ["b", "e", "d", "a", "c"]
    assert uuids(client, order_by="steps_completed desc") == ["c", "a", "d", "e", "b"]
    assert uuids(client, order_by=" steps_completed  DESC ") == ["c", "a", "d", "e", "b"]
    assert all_pages(client, 2, order_by="steps_completed desc") == [["c", "a"], ["d", "e"], ["b"]]
    assert all_pages(client, 2, order_by="steps_completed") == [["b", "e"], ["d", "a"], ["c"]]
    assert all_pages(client, 2, order_by="steps_completed desc", max_steps=20) == [["d", "e"], ["b"]]


def test_bad_page_tokens(clocked_client, clock):
    client = clocked_client
    trial = new_trial(client)
    for i in range(3):
        clock.advance(1)
        put(client, trial.id, f"c{i}", steps=i)
    token = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=1)).next_page_token
    assert token
    for bad in ["zzz", "!!!not-base64!!!", token[:-3], "e30"]:
        err = error_of(stub(client).ListCheckpoints, cs.ListCheckpointsRequest(page_size=1, page_token=bad))
        assert err.code == INVALID and err.reason == "INVALID_PAGE_TOKEN", bad
        assert "page_token" in err.violations
    # A token only fits the query it came from.
    for other in [{"order_by": "steps_completed desc"}, {"trial_id": trial.id}, {"states": [COMPLETED]}]:
        err = error_of(stub(client).ListCheckpoints, cs.ListCheckpointsRequest(page_size=1, page_token=token, **other))
        assert err.code == INVALID and err.reason == "INVALID_PAGE_TOKEN", other
    # The page size may change between pages.
    resp = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=5, page_token=token))
    assert [c.uuid for c in resp.checkpoints] == ["c1", "c2"] and resp.next_page_token == ""


def test_order_by_a_validation_metric(clocked_client, clock):
    client = clocked_client
    study = create_study(client, "by-metric")
    a = study_trial(client, study, "a")
    b = study_trial(client, study, "b")
    plan = [("a10", a, 10, 0.5), ("b10", b, 10, 0.3), ("a20", a, 20, 0.8), ("nometric", a, 25, None),
            ("b20", b, 20, 0.1), ("a30", a, 30, 0.3)]
    for uuid, trial, steps, loss in plan:
        if loss is not None:
            validate(client, trial.id, steps, val_loss=loss, accuracy=1 - loss)
        clock.advance(1)
        put(client, trial.id, uuid, steps=steps)
    assert get(client, "a10").validation_metrics["val_loss"] == 0.5
    assert get(client, "a10").validation_metrics["accuracy"] == 0.5
    assert not get(client, "nometric").HasField("validation_metrics")
    # Ties (b10 and a30 at 0.3) keep the storage order.
    assert uuids(client, order_by="metric:val_loss") == ["b20", "b10", "a30", "a10", "a20"]
    assert uuids(client, order_by="metric:val_loss desc") == ["a20", "a10", "a30", "b10", "b20"]
    assert uuids(client, order_by="metric:accuracy desc") == ["b20", "a30", "b10", "a10", "a20"]
    assert uuids(client, order_by="metric:val_loss", trial_id=a.id) == ["a30", "a10", "a20"]
    assert uuids(client, order_by="metric:val_loss", min_steps=20) == ["b20", "a30", "a20"]
    assert uuids(client, order_by="metric:no_such_metric") == []
    pages = all_pages(client, 2, order_by="metric:val_loss")
    assert pages == [["b20", "b10"], ["a30", "a10"], ["a20"]]
    assert all_pages(client, 2, order_by="metric:val_loss desc") == [["a20", "a10"], ["a30", "b10"], ["b20"]]


def test_validation_reported_after_the_checkpoint_reaches_it(client):
    study = create_study(client, "late-validation")
    trial = study_trial(client, study)
    put(client, trial.id, "early", steps=100)
    put(client, trial.id, "other-step", steps=200)
    assert not get(client, "early").HasField("validation_metrics")
    assert uuids(client, order_by="metric:val_loss") == []
    validate(client, trial.id, 100, val_loss=0.42)
    assert get(client, "early").validation_metrics["val_loss"] == 0.42
    assert not get(client, "other-step").HasField("validation_metrics")
    assert uuids(client, order_by="metric:val_loss") == ["early"]
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).best_checkpoint.uuid == "early"


def test_validation_after_the_checkpoint_reaches_it_without_a_study(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    validate(client, trial.id, 10, val_loss=0.7)
    put(client, trial.id, "before", steps=10)
    put(client, trial.id, "after", steps=20)
    validate(client, trial.id, 20, val_loss=0.2)
    assert get(client, "before").validation_metrics["val_loss"] == 0.7
    assert uuids(client, order_by="metric:val_loss") == ["after", "before"]
    assert get(client, "after").validation_metrics["val_loss"] == 0.2


# --- UpdateCheckpoint ----------------------------------------------------------

def update(client, uuid, metadata=None, paths=("metadata",), **fields):
    meta = struct_pb2.Struct()
    meta.update(metadata or {})
    return stub(client).UpdateCheckpoint(cs.UpdateCheckpointRequest(
        checkpoint=cp.Checkpoint(uuid=uuid, metadata=meta, **fields),
        update_mask=field_mask_pb2.FieldMask(paths=list(paths))))


def test_update_metadata(client):
    trial = new_trial(client)
    meta = struct_pb2.Struct()
    meta.update({"old": 1, "keep": "no"})
    before = put(client, trial.id, "m", steps=5, files={"a": 3}, metadata=meta)
    upd = update(client, "m", {"framework": "torch", "nested": {"epochs": [1, 2]}})
    assert MessageToDict(upd.metadata) == {"framework": "torch", "nested": {"epochs": [1, 2]}}
    assert upd.state == COMPLETED and dict(upd.resources) == {"a": 3} and upd.steps_completed == 5
    assert upd.create_time == before.create_time and upd.end_time == before.end_time
    assert MessageToDict(get(client, "m").metadata) == {"framework": "torch", "nested": {"epochs": [1, 2]}}
    # Only the metadata changes, whatever else the message carries.
    upd = update(client, "m", {"v": 2}, state=ERROR, resources={"a": 999}, steps_completed=77, trial_id=trial.id + 5)
    assert MessageToDict(upd.metadata) == {"v": 2}
    assert upd.state == COMPLETED and dict(upd.resources) == {"a": 3} and upd.steps_completed == 5
    assert upd.trial_id == trial.id
    cleared = update(client, "m", {})
    assert MessageToDict(cleared.metadata) == {}
    assert trial_totals(client, trial.id) == (3, 1)


@pytest.mark.parametrize("paths", [["state"], ["metadata", "resources"], ["steps_completed"], ["uuid"], []])
def test_update_mask_allows_only_metadata(client, paths):
    trial = new_trial(client)
    put(client, trial.id, "m")
    err = error_of(update, client, "m", {"x": 1}, paths=paths, state=ERROR)
    assert err.code == INVALID and "update_mask" in err.violations
    got = get(client, "m")
    assert MessageToDict(got.metadata) == {} and got.state == COMPLETED


def test_update_unknown_or_unnamed_checkpoint(client):
    err = error_of(update, client, "ghost", {"x": 1})
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "checkpoint"
    err = error_of(update, client, "", {"x": 1})
    assert err.code == INVALID and "checkpoint.uuid" in err.violations


# --- DeleteCheckpoints ---------------------------------------------------------

def test_two_phase_delete(client):
    trial = new_trial(client)
    put(client, trial.id, "d1", files={"x": 10, "y": 5})
    put(client, trial.id, "d2", files={"z": 20})
    put(client, trial.id, "keep", files={"k": 100})
    assert trial_totals(client, trial.id) == (135, 3)

    marked = delete(client, ["d1", "d2"]).checkpoints
    assert [(c.uuid, c.state) for c in marked] == [("d1", PARTIAL), ("d2", PARTIAL)]
    assert dict(marked[0].resources) == {"x": 10, "y": 5} and marked[0].size_bytes == 15
    assert states(client, "d1", "d2", "keep") == {"d1": PARTIAL, "d2": PARTIAL, "keep": COMPLETED}
    assert trial_totals(client, trial.id) == (135, 3)  # files still there until confirmed

    again = delete(client, ["d1", "d2"]).checkpoints
    assert [(c.uuid, c.state) for c in again] == [("d1", PARTIAL), ("d2", PARTIAL)]
    assert get(client, "d1") == marked[0]

    gone = delete(client, ["d1"], confirm=True).checkpoints
    assert [(c.uuid, c.state) for c in gone] == [("d1", DELETED)]
    assert dict(gone[0].resources) == {} and gone[0].size_bytes == 0
    assert get(client, "d1") == gone[0]
    assert trial_totals(client, trial.id) == (120, 2)

    repeat = delete(client, ["d1"], confirm=True).checkpoints
    assert repeat == gone
    assert trial_totals(client, trial.id) == (120, 2)

    both = delete(client, ["d2", "d1"], confirm=True).checkpoints
    assert [(c.uuid, c.state) for c in both] == [("d2", DELETED), ("d1", DELETED)]
    assert trial_totals(client, trial.id) == (100, 1)
    # Marking a deleted checkpoint again changes nothing either.
    assert delete(client, ["d1"]).checkpoints[0].state == DELETED


def test_duplicate_uuids_are_handled_once(client):
    trial = new_trial(client)
    put(client, trial.id, "d")
    resp = delete(client, ["d", "d", "d"])
    assert [(c.uuid, c.state) for c in resp.checkpoints] == [("d", PARTIAL)]


def test_error_checkpoints_can_be_deleted(client):
    trial = new_trial(client)
    put(client, trial.id, "broken", ERROR, files={"half": 9})
    assert delete(client, ["broken"]).checkpoints[0].state == PARTIAL
    assert delete(client, ["broken"], confirm=True).checkpoints[0].state == DELETED
    assert trial_totals(client, trial.id) == (0, 0)


def test_confirm_without_mark_is_refused(client):
    trial = new_trial(client)
    put(client, trial.id, "c", files={"a": 4})
    err = error_of(delete, client, ["c"], True)
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata == {"uuid": "c", "from_state": "CHECKPOINT_STATE_COMPLETED", "to_state": "CHECKPOINT_STATE_DELETED"}
    assert get(client, "c").state == COMPLETED and trial_totals(client, trial.id) == (4, 1)


def test_an_active_checkpoint_cannot_be_marked(client):
    trial = new_trial(client)
    put(client, trial.id, "done")
    put(client, trial.id, "writing", ACTIVE)
    err = error_of(delete, client, ["writing"])
    assert err.code == PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata == {"uuid": "writing", "from_state": "CHECKPOINT_STATE_ACTIVE",
                            "to_state": "CHECKPOINT_STATE_PARTIALLY_DELETED"}
    # All or nothing: the completed one in the same call is not marked either.
    err = error_of(delete, client, ["done", "writing"])
    assert err.code == PRECONDITION
    assert states(client, "done", "writing") == {"done": COMPLETED, "writing": ACTIVE}


def test_unknown_uuid_changes_nothing(client):
    trial = new_trial(client)
    put(client, trial.id, "a", files={"f": 1})
    put(client, trial.id, "b", files={"f": 2})
    err = error_of(delete, client, ["a", "missing", "b"])
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "RESOURCE_NOT_FOUND"
    assert err.metadata == {"resource": "checkpoint", "id": "missing"}
    assert states(client, "a", "b") == {"a": COMPLETED, "b": COMPLETED}
    delete(client, ["a"])
    err = error_of(delete, client, ["a", "missing"], True)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert get(client, "a").state == PARTIAL and dict(get(client, "a").resources) == {"f": 1}
    assert trial_totals(client, trial.id) == (3, 2)


def test_delete_needs_uuids(client):
    err = error_of(delete, client, [])
    assert err.code == INVALID and "uuids" in err.violations
    err = error_of(delete, client, [f"u{i}" for i in range(1001)])
    assert err.code == INVALID and "uuids" in err.violations


# --- ApplyCheckpointRetention ------------------------------------------------

def retention_study(client, clock, name="keep"):
    """A study with 4 completed checkpoints of known val_loss over two trials,
    plus checkpoints that retention never touches."""
    study = create_study(client, name)
    a = study_trial(client, study, "a")
    b = study_trial(client, study, "b")
    for uuid, trial, steps, loss in [("a1", a, 10, 0.5), ("b1", b, 10, 0.2), ("a2", a, 20, 0.9), ("b2", b, 20, 0.4)]:
        validate(client, trial.id, steps, val_loss=loss)
        clock.advance(1)
        put(client, trial.id, uuid, steps=steps, files={"w": 10})
    # Not COMPLETED: never marked, and never "latest" or "best".
    validate(client, a.id, 30, val_loss=0.01)
    clock.advance(1)
    put(client, a.id, "writing", ACTIVE, steps=30, files={"w": 10})
    clock.advance(1)
    put(client, b.id, "failed", ERROR, steps=30, files={"w": 10})
    return study, a, b


ALL = ("a1", "b1", "a2", "b2", "writing", "failed")


def test_retention_keeps_best_and_latest(clocked_client, clock):
    client = clocked_client
    study, a, _ = retention_study(client, clock)
    other = create_study(client, "elsewhere")
    o = study_trial(client, other, "o")
    clock.advance(1)
    put(client, o.id, "other-study", steps=5)
    lone = new_trial(client, "lone")
    put(client, lone.id, "no-study")
    before = {u: get(client, u) for u in ALL}

    dry = retention(client, study.id, keep_best=1, keep_latest=1, dry_run=True).marked
    assert sorted(c.uuid for c in dry) == ["a1", "a2"]
    assert all(c.state == COMPLETED for c in dry)
    assert {u: get(client, u) for u in ALL} == before
    assert trial_totals(client, a.id) == (30, 3)

    marked = retention(client, study.id, keep_best=1, keep_latest=1).marked
    assert sorted(c.uuid for c in marked) == ["a1", "a2"]
    assert all(c.state == PARTIAL for c in marked)
    assert states(client, *ALL, "other-study", "no-study") == {
        "a1": PARTIAL, "b1": COMPLETED, "a2": PARTIAL, "b2": COMPLETED, "writing": ACTIVE, "failed": ERROR,
        "other-study": COMPLETED, "no-study": COMPLETED,
    }
    # Marking is the first phase only: the files are still counted.
    assert trial_totals(client, a.id) == (30, 3)
    assert retention(client, study.id, keep_best=1, keep_latest=1).marked == []
    assert retention(client, study.id, keep_best=1, keep_latest=1, dry_run=True).marked == []


@pytest.mark.parametrize("keep_best, keep_latest, dropped", [
    (1, 0, ["a1", "a2", "b2"]),
    (0, 1, ["a1", "a2", "b1"]),
    (2, 0, ["a1", "a2"]),
    (0, 3, ["a1"]),
    (2, 2, ["a1"]),
    (4, 0, []),
    (0, 9, []),
])
def test_retention_counts(clocked_client, clock, keep_best, keep_latest, dropped):
    client = clocked_client
    study, _, _ = retention_study(client, clock)
    dry = retention(client, study.id, keep_best=keep_best, keep_latest=keep_latest, dry_run=True).marked
    assert sorted(c.uuid for c in dry) == dropped
    marked = retention(client, study.id, keep_best=keep_best, keep_latest=keep_latest).marked
    assert sorted(c.uuid for c in marked) == dropped
    assert sorted(uuids(client, states=[PARTIAL])) == dropped


def test_retention_with_a_maximized_objective(clocked_client, clock):
    client = clocked_client
    study = create_study(client, "maxi", objective=study_pb2.Objective(
        metric_name="accuracy", type=study_pb2.OBJECTIVE_TYPE_MAXIMIZE))
    trial = study_trial(client, study)
    for uuid, steps, acc in [("c1", 1, 0.7), ("c2", 2, 0.95), ("c3", 3, 0.8), ("c4", 4, 0.6)]:
        validate(client, trial.id, steps, accuracy=acc)
        clock.advance(1)
        put(client, trial.id, uuid, steps=steps)
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).best_checkpoint.uuid == "c2"
    marked = retention(client, study.id, keep_best=1, keep_latest=1).marked
    assert sorted(c.uuid for c in marked) == ["c1", "c3"]


def test_retention_uses_the_study_rule(clocked_client, clock):
    client = clocked_client
    study, _, _ = retention_study(client, clock)
    err = error_of(retention, client, study.id)
    assert err.code == INVALID and "keep_best" in err.violations
    assert uuids(client, states=[PARTIAL]) == []

    updated = client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=study_pb2.Study(id=study.id, checkpoint_retention=study_pb2.CheckpointRetention(keep_best=1, keep_latest=1)),
        update_mask=field_mask_pb2.FieldMask(paths=["checkpoint_retention"])))
    assert updated.checkpoint_retention.keep_best == 1 and updated.checkpoint_retention.keep_latest == 1
    dry = retention(client, study.id, dry_run=True).marked
    assert sorted(c.uuid for c in dry) == ["a1", "a2"]
    # An explicit rule in the request wins over the study's.
    assert sorted(c.uuid for c in retention(client, study.id, keep_best=3, dry_run=True).marked) == ["a2"]
    marked = retention(client, study.id).marked
    assert sorted(c.uuid for c in marked) == ["a1", "a2"]
    assert sorted(uuids(client, states=[PARTIAL])) == ["a1", "a2"]


def test_retention_rule_only_from_the_study_it_names(clocked_client, clock):
    client = clocked_client
    study, _, _ = retention_study(client, clock)
    create_study(client, "has-rule", checkpoint_retention=study_pb2.CheckpointRetention(keep_latest=1))
    err = error_of(retention, client, study.id)
    assert err.code == INVALID and "keep_best" in err.violations


def test_retention_request_errors(client):
    study = create_study(client, "errs")
    for kw, field in [({"keep_best": -1}, "keep_best"), ({"keep_latest": -2}, "keep_best")]:
        err = error_of(retention, client, study.id, **kw)
        assert err.code == INVALID and field in err.violations
    err = error_of(retention, client, 0, keep_best=1)
    assert err.code == INVALID and "study_id" in err.violations
    err = error_of(retention, client, 777777, keep_best=1)
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "study"
    err = error_of(retention, client, 777777)
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "study"


# --- the trial's best checkpoint -------------------------------------------------

def test_best_checkpoint_of_a_trial(clocked_client, clock):
    client = clocked_client
    study = create_study(client, "best")
    trial = study_trial(client, study)

    def best():
        return client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).best_checkpoint

    assert not client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).HasField("best_checkpoint")
    put(client, trial.id, "unscored", steps=5)
    assert not client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).HasField("best_checkpoint")
    for uuid, steps, loss in [("c10", 10, 0.6), ("c20", 20, 0.25), ("c30", 30, 0.4)]:
        validate(client, trial.id, steps, val_loss=loss)
        clock.advance(1)
        put(client, trial.id, uuid, steps=steps, files={"m": steps})
    top = best()
    assert (top.uuid, top.state, top.total_batches, dict(top.resources)) == ("c20", COMPLETED, 20, {"m": 20})
    assert top.HasField("end_time")
    # A better checkpoint still being written does not count, nor does a failed one.
    validate(client, trial.id, 40, val_loss=0.1)
    clock.advance(1)
    put(client, trial.id, "c40", ACTIVE, steps=40)
    validate(client, trial.id, 50, val_loss=0.05)
    clock.advance(1)
    put(client, trial.id, "c50", ERROR, steps=50)
    assert best().uuid == "c20"
    put(client, trial.id, "c40", COMPLETED, steps=40)
    assert best().uuid == "c40"
    # Marked for deletion: no longer a candidate.
    delete(client, ["c40"])
    assert best().uuid == "c20"
    listed = client.trials.ListTrials(ts.ListTrialsRequest(study_id=study.id)).trials
    assert [t.best_checkpoint.uuid for t in listed] == ["c20"]


def test_validation_without_the_objective_after_the_checkpoint_reaches_it(client):
    study = create_study(client, "no-objective-in-report")
    trial = study_trial(client, study)
    validate(client, trial.id, 10, accuracy=0.6)
    put(client, trial.id, "before", steps=10)
    put(client, trial.id, "after", steps=20)
    validate(client, trial.id, 20, accuracy=0.9)
    assert get(client, "before").validation_metrics["accuracy"] == 0.6
    assert uuids(client, order_by="metric:accuracy desc") == ["after", "before"]
