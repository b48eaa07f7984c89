"""CheckpointService through a real server."""

import grpc
from google.protobuf import field_mask_pb2, struct_pb2

from trialplane.v1 import (
    checkpoint_pb2 as cp,
    checkpoint_service_pb2 as cs,
    checkpoint_service_pb2_grpc,
    metrics_pb2 as mp,
    metrics_service_pb2 as ms,
    metrics_service_pb2_grpc,
    study_pb2,
    study_service_pb2 as ss,
    trial_pb2,
    trial_service_pb2 as ts,
)

from conftest import create_study, error_of
from trial_helpers import S, new_trial, report

HP = trial_pb2.ParameterValue
GOOD_HPS = {"lr": HP(double_value=0.01), "layers": HP(int_value=2), "optimizer": HP(string_value="adam")}
C = cp.CheckpointState


def stub(client):
    return checkpoint_service_pb2_grpc.CheckpointServiceStub(client.channel)


def put(client, trial_id, uuid, state=C.CHECKPOINT_STATE_COMPLETED, steps=0, files=None, **kw):
    return stub(client).ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=cp.Checkpoint(
        uuid=uuid, trial_id=trial_id, state=state, steps_completed=steps, resources=files or {"model.pt": 100}, **kw)))


def validate(client, trial_id, steps, val_loss):
    s = struct_pb2.Struct()
    s.update({"val_loss": val_loss})
    metrics_service_pb2_grpc.MetricsServiceStub(client.channel).ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=steps, metrics=mp.Metrics(avg_metrics=s)), group="validation"))


def study_trial(client, name="s"):
    study = create_study(client, name)
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(study_id=study.id, hyperparameters=GOOD_HPS)))
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    return study, trial


def test_report_lifecycle_and_trial_totals(client):
    trial = new_trial(client)
    active = put(client, trial.id, "c1", C.CHECKPOINT_STATE_ACTIVE, steps=10, files={"a": 5})
    assert active.state == C.CHECKPOINT_STATE_ACTIVE and not active.HasField("end_time") and active.trial_run_id == 1
    done = put(client, trial.id, "c1", C.CHECKPOINT_STATE_COMPLETED, steps=10, files={"a": 5, "b": 7}, storage_uri="s3://x/c1")
    assert done.state == C.CHECKPOINT_STATE_COMPLETED and done.HasField("end_time")
    assert dict(done.resources) == {"a": 5, "b": 7} and done.size_bytes == 12 and done.storage_uri == "s3://x/c1"
    put(client, trial.id, "c2", steps=20, files={"c": 30})
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert (got.total_checkpoint_size_bytes, got.checkpoint_count) == (42, 2)
    err = error_of(put, client, trial.id, "c1", C.CHECKPOINT_STATE_ACTIVE)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "ILLEGAL_TRANSITION"
    assert stub(client).GetCheckpoint(cs.GetCheckpointRequest(uuid="c2")).steps_completed == 20


def test_bad_reports(client):
    trial = new_trial(client)
    assert "checkpoint.state" in error_of(put, client, trial.id, "x", C.CHECKPOINT_STATE_DELETED).violations
    assert "checkpoint.uuid" in error_of(put, client, trial.id, "").violations
    assert "checkpoint.trial_id" in error_of(put, client, 0, "x").violations
    assert "checkpoint.resources[f]" in error_of(put, client, trial.id, "x", files={"f": -1}).violations
    assert error_of(put, client, 4242, "x").code == grpc.StatusCode.NOT_FOUND
    client.trials.KillTrial(ts.KillTrialRequest(id=trial.id))
    assert error_of(put, client, trial.id, "late").code == grpc.StatusCode.FAILED_PRECONDITION
    assert error_of(stub(client).GetCheckpoint, cs.GetCheckpointRequest(uuid="nope")).code == grpc.StatusCode.NOT_FOUND


def test_list_filters_orders_and_pages(client):
    study, trial = study_trial(client)
    other = new_trial(client, "other")
    for i, loss in enumerate([0.5, 0.2, 0.9, 0.4]):
        validate(client, trial.id, (i + 1) * 10, loss)
        put(client, trial.id, f"s{i}", steps=(i + 1) * 10)
    put(client, trial.id, "no-metric", steps=55)
    put(client, other.id, "o1", steps=5)
    lst = lambda **kw: [c.uuid for c in stub(client).ListCheckpoints(cs.ListCheckpointsRequest(**kw)).checkpoints]  # noqa: E731
    assert lst(trial_id=trial.id) == ["s0", "s1", "s2", "s3", "no-metric"]
    assert lst(study_id=study.id, order_by="steps_completed desc") == ["no-metric", "s3", "s2", "s1", "s0"]
    assert lst(trial_id=trial.id, order_by="metric:val_loss") == ["s1", "s3", "s0", "s2"]
    assert lst(min_steps=20, max_steps=40) == ["s1", "s2", "s3"]
    assert lst(states=[C.CHECKPOINT_STATE_ACTIVE]) == []
    seen, token = [], ""
    while True:
        resp = stub(client).ListCheckpoints(cs.ListCheckpointsRequest(page_size=2, page_token=token))
        seen.extend(c.uuid for c in resp.checkpoints)
        token = resp.next_page_token
        if not token:
            break
    assert seen == ["s0", "s1", "s2", "s3", "no-metric", "o1"]
    err = error_of(stub(client).ListCheckpoints, cs.ListCheckpointsRequest(page_token="zzz"))
    assert err.reason == "INVALID_PAGE_TOKEN"
    assert "order_by" in error_of(stub(client).ListCheckpoints, cs.ListCheckpointsRequest(order_by="size")).violations
    best = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).best_checkpoint
    assert best.uuid == "s1" and best.total_batches == 20
    assert stub(client).GetCheckpoint(cs.GetCheckpointRequest(uuid="s1")).validation_metrics["val_loss"] == 0.2


def test_update_metadata(client):
    trial = new_trial(client)
    put(client, trial.id, "m")
    meta = struct_pb2.Struct()
    meta.update({"framework": "torch"})
    upd = stub(client).UpdateCheckpoint(cs.UpdateCheckpointRequest(
        checkpoint=cp.Checkpoint(uuid="m", metadata=meta), update_mask=field_mask_pb2.FieldMask(paths=["metadata"])))
    assert upd.metadata["framework"] == "torch"
    err = error_of(stub(client).UpdateCheckpoint, cs.UpdateCheckpointRequest(
        checkpoint=cp.Checkpoint(uuid="m"), update_mask=field_mask_pb2.FieldMask(paths=["state"])))
    assert "update_mask" in err.violations


def test_two_phase_delete(client):
    trial = new_trial(client)
    put(client, trial.id, "d1", files={"x": 10})
    put(client, trial.id, "d2", files={"y": 20})
    writing = put(client, trial.id, "w", C.CHECKPOINT_STATE_ACTIVE)
    delete = lambda uuids, confirm=False: stub(client).DeleteCheckpoints(cs.DeleteCheckpointsRequest(uuids=uuids, confirm_deleted=confirm))  # noqa: E731
    assert error_of(delete, ["d1", "missing"]).code == grpc.StatusCode.NOT_FOUND
    assert stub(client).GetCheckpoint(cs.GetCheckpointRequest(uuid="d1")).state == C.CHECKPOINT_STATE_COMPLETED
    assert error_of(delete, ["d1"], True).code == grpc.StatusCode.FAILED_PRECONDITION
    assert error_of(delete, [writing.uuid]).code == grpc.StatusCode.FAILED_PRECONDITION
    marked = delete(["d1"]).checkpoints
    assert [c.state for c in marked] == [C.CHECKPOINT_STATE_PARTIALLY_DELETED]
    assert [c.state for c in delete(["d1"]).checkpoints] == [C.CHECKPOINT_STATE_PARTIALLY_DELETED]
    gone = delete(["d1"], True).checkpoints[0]
    assert gone.state == C.CHECKPOINT_STATE_DELETED and not gone.resources
    assert delete(["d1"], True).checkpoints[0].state == C.CHECKPOINT_STATE_DELETED
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert (got.total_checkpoint_size_bytes, got.checkpoint_count) == (120, 2)


def test_retention_keeps_best_and_latest(client):
    study, trial = study_trial(client)
    for i, loss in enumerate([0.5, 0.2, 0.9, 0.4]):
        validate(client, trial.id, (i + 1) * 10, loss)
        put(client, trial.id, f"r{i}", steps=(i + 1) * 10)
    apply = lambda **kw: stub(client).ApplyCheckpointRetention(cs.ApplyCheckpointRetentionRequest(study_id=study.id, **kw))  # noqa: E731
    dry = apply(keep_best=1, keep_latest=1, dry_run=True).marked
    assert sorted(c.uuid for c in dry) == ["r0", "r2"]
    assert stub(client).GetCheckpoint(cs.GetCheckpointRequest(uuid="r0")).state == C.CHECKPOINT_STATE_COMPLETED
    assert "keep_best" in error_of(apply).violations
    client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=study_pb2.Study(id=study.id, checkpoint_retention=study_pb2.CheckpointRetention(keep_best=2)),
        update_mask=field_mask_pb2.FieldMask(paths=["checkpoint_retention"])))
    marked = apply().marked
    assert sorted(c.uuid for c in marked) == ["r0", "r2"]
    assert all(c.state == C.CHECKPOINT_STATE_PARTIALLY_DELETED for c in marked)
    assert apply().marked == []
