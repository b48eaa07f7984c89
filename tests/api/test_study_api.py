"""StudyService through a real server."""

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from support import create_study, error_of, make_study
from trialplane.v1 import study_pb2, trial_pb2
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import trial_service_pb2 as ts


def test_create_get_and_defaults(client):
    created = create_study(client, "mnist", description="lr sweep", tags=["vision", "sweep"], max_trials=4)
    assert created.id > 0
    assert created.state == study_pb2.STUDY_STATE_ACTIVE
    assert created.etag == "1"
    assert created.create_time.seconds > 0
    assert [p.name for p in created.parameters] == ["lr", "layers", "optimizer"]
    assert created.parameters[0].scale == study_pb2.PARAMETER_SCALE_LOG
    assert created.parameters[0].feasible_space.min == pytest.approx(1e-4)
    assert list(created.parameters[2].feasible_space.categories) == ["sgd", "adam"]
    assert created.parameters[1].feasible_space.HasField("max")
    assert not created.parameters[2].feasible_space.HasField("min")
    by_id = client.studies.GetStudy(ss.GetStudyRequest(id=created.id))
    by_name = client.studies.GetStudy(ss.GetStudyRequest(name="mnist"))
    assert by_id == created == by_name
    assert list(by_id.tags) == ["vision", "sweep"]


def test_create_is_idempotent_with_request_id(client):
    req = ss.CreateStudyRequest(study=make_study("retry-me"), request_id="req-1")
    first = client.studies.CreateStudy(req)
    second = client.studies.CreateStudy(req)
    assert first == second
    assert len(client.studies.ListStudies(ss.ListStudiesRequest()).studies) == 1


def test_duplicate_name_is_already_exists(client):
    create_study(client, "dup")
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(study=make_study("dup")))
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.reason == "RESOURCE_EXISTS"


def _violations_for(client, study):
    err = error_of(client.studies.CreateStudy, ss.CreateStudyRequest(study=study))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "INVALID_FIELD"
    return err.violations


def test_bad_names(client):
    assert "study.name" in _violations_for(client, make_study(""))
    assert "at most 128" in _violations_for(client, make_study("x" * 129))["study.name"]
    assert "study.name" in _violations_for(client, make_study("bad name!"))


def test_bad_objective_and_enums(client):
    study = make_study("s")
    study.objective.type = 0
    assert "study.objective.type" in _violations_for(client, study)
    study = make_study("s")
    study.objective.type = 42
    assert "unknown value 42" in _violations_for(client, study)["study.objective.type"]
    study = make_study("s")
    study.objective.goal = float("nan")
    assert "finite" in _violations_for(client, study)["study.objective.goal"]
    study = make_study("s")
    study.objective.metric_name = ""
    assert "study.objective.metric_name" in _violations_for(client, study)


def test_bad_parameters(client):
    study = make_study("s")
    study.parameters[0].feasible_space.min = 1.0
    study.parameters[0].feasible_space.max = 0.5
    assert "must not exceed max" in _violations_for(client, study)["study.parameters[0].feasible_space.min"]

    study = make_study("s")
    study.parameters.add(name="batch", type=study_pb2.PARAMETER_TYPE_DISCRETE)
    assert "non-empty list" in _violations_for(client, study)["study.parameters[3].feasible_space.values"]

    study = make_study("s")
    study.parameters.add(name="lr", type=study_pb2.PARAMETER_TYPE_DOUBLE, feasible_space=study_pb2.FeasibleSpace(min=0, max=1))
    assert "duplicate parameter name" in _violations_for(client, study)["study.parameters[3].name"]

    study = make_study("s")
    study.parameters[0].feasible_space.min = 0
    assert "LOG scale" in _violations_for(client, study)["study.parameters[0].feasible_space.min"]

    study = make_study("s")
    study.parameters[1].feasible_space.max = 2.5
    assert "whole number" in _violations_for(client, study)["study.parameters[1].feasible_space.max"]

    study = make_study("s")
    study.parameters[0].type = 99
    assert "unknown value 99" in _violations_for(client, study)["study.parameters[0].type"]

    study = make_study("s")
    study.metric_definitions.add(name="loss", regex="loss=(")
    assert "does not compile" in _violations_for(client, study)["study.metric_definitions[0].regex"]


def test_several_violations_reported_at_once(client):
    study = make_study("")
    study.objective.metric_name = ""
    study.max_trials = -1
    violations = _violations_for(client, study)
    assert {"study.name", "study.objective.metric_name", "study.max_trials"} <= set(violations)



def test_free_text_with_a_nul_is_refused_where_it_is_set(client):
    # PostgreSQL's text cannot hold a NUL: it is refused before any write.
    study = make_study("nul")
    study.description = "before\x00after"
    assert "NUL" in _violations_for(client, study)["study.description"]
    created = create_study(client, "nul")
    patch = study_pb2.Study(id=created.id, description="a\x00", max_trials=5)
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(
        study=patch, update_mask=field_mask_pb2.FieldMask(paths=["description"])))
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["study.description"])
    # A field the update does not set is not held to it.
    updated = client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=patch, update_mask=field_mask_pb2.FieldMask(paths=["max_trials"])))
    assert (updated.max_trials, updated.description) == (5, created.description)


def test_update_with_mask_and_etag(client):
    created = create_study(client, "upd")
    patch = study_pb2.Study(id=created.id, description="new text", max_trials=10, name="ignored")
    updated = client.studies.UpdateStudy(
        ss.UpdateStudyRequest(study=patch, update_mask=field_mask_pb2.FieldMask(paths=["description", "max_trials"]))
    )
    assert updated.description == "new text"
    assert updated.max_trials == 10
    assert updated.name == "upd"
    assert updated.etag == "2"

    stale = study_pb2.Study(id=created.id, description="stale", etag=created.etag)
    err = error_of(
        client.studies.UpdateStudy,
        ss.UpdateStudyRequest(study=stale, update_mask=field_mask_pb2.FieldMask(paths=["description"])),
    )
    assert err.code == grpc.StatusCode.ABORTED
    assert err.reason == "ETAG_MISMATCH"

    err = error_of(
        client.studies.UpdateStudy,
        ss.UpdateStudyRequest(study=patch, update_mask=field_mask_pb2.FieldMask(paths=["state"])),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "transition methods" in err.violations["update_mask"]
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(study=patch))
    assert "update_mask" in err.violations
    assert client.studies.GetStudy(ss.GetStudyRequest(id=created.id)).description == "new text"


def test_delete_needs_force_when_it_has_trials(client):
    study = create_study(client, "del")
    trial = client.trials.CreateTrial(
        ts.CreateTrialRequest(
            trial=trial_pb2.Trial(
                study_id=study.id,
                hyperparameters={
                    "lr": trial_pb2.ParameterValue(double_value=0.01),
                    "layers": trial_pb2.ParameterValue(int_value=2),
                    "optimizer": trial_pb2.ParameterValue(string_value="sgd"),
                },
            )
        )
    )
    err = error_of(client.studies.DeleteStudy, ss.DeleteStudyRequest(id=study.id))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "RESOURCE_IN_USE"
    assert err.metadata["trial_count"] == "1"
    deleted = client.studies.DeleteStudy(ss.DeleteStudyRequest(id=study.id, force=True))
    assert deleted.name == "del"
    assert error_of(client.studies.GetStudy, ss.GetStudyRequest(id=study.id)).code == grpc.StatusCode.NOT_FOUND
    assert error_of(client.trials.GetTrial, ts.GetTrialRequest(id=trial.id)).code == grpc.StatusCode.NOT_FOUND


def test_unknown_ids_are_not_found(client):
    err = error_of(client.studies.GetStudy, ss.GetStudyRequest(id=999))
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "RESOURCE_NOT_FOUND"
    assert err.metadata == {"resource": "study", "id": "999"}
    assert error_of(client.studies.GetStudy, ss.GetStudyRequest(name="nope")).code == grpc.StatusCode.NOT_FOUND
    assert error_of(client.studies.DeleteStudy, ss.DeleteStudyRequest(id=5)).code == grpc.StatusCode.NOT_FOUND
    assert error_of(client.studies.GetStudy, ss.GetStudyRequest()).code == grpc.StatusCode.INVALID_ARGUMENT


def test_list_filters_order_and_read_mask(client):
    for name, owner, tags in [("alpha", "ann", ["a"]), ("Beta_1", "bob", ["a", "b"]), ("beta-2", "bob", ["b"])]:
        create_study(client, name, owner=owner, tags=tags)
    names = lambda resp: [s.name for s in resp.studies]  # noqa: E731
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(owner="bob"))) == ["Beta_1", "beta-2"]
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(tags=["a", "b"]))) == ["Beta_1"]
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(name_pattern="BETA%"))) == ["Beta_1", "beta-2"]
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(name_pattern="beta\\_1"))) == ["Beta_1"]
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(order_by="name desc"))) == ["beta-2", "alpha", "Beta_1"]
    assert names(client.studies.ListStudies(ss.ListStudiesRequest(order_by="id desc"))) == ["beta-2", "Beta_1", "alpha"]
    masked = client.studies.ListStudies(
        ss.ListStudiesRequest(read_mask=field_mask_pb2.FieldMask(paths=["id", "name"]))
    ).studies[0]
    assert masked.name == "alpha" and masked.id > 0
    assert not masked.HasField("objective") and not masked.parameters
    err = error_of(
        client.studies.ListStudies, ss.ListStudiesRequest(read_mask=field_mask_pb2.FieldMask(paths=["nope"]))
    )
    assert "read_mask" in err.violations
    err = error_of(client.studies.ListStudies, ss.ListStudiesRequest(order_by="owner"))
    assert "order_by" in err.violations
    future = timestamp_pb2.Timestamp(seconds=4_000_000_000)
    assert not client.studies.ListStudies(ss.ListStudiesRequest(created_after=future)).studies
    assert len(client.studies.ListStudies(ss.ListStudiesRequest(created_before=future)).studies) == 3


def test_a_study_and_a_trial_read_back_as_they_were_sent(client):
    sent = make_study("as-sent")
    created = client.studies.CreateStudy(ss.CreateStudyRequest(study=sent))
    # What the client left unset stays unset: no empty sub-messages, no
    # scale filled in for the parameters that named none.
    for field in ("algorithm", "early_stopping", "checkpoint_retention"):
        assert not created.HasField(field), field
    assert [p.scale for p in created.parameters] == [p.scale for p in sent.parameters]
    assert created.parameters[1].scale == study_pb2.PARAMETER_SCALE_UNSPECIFIED
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="bare")))
    for field in ("stopping_condition", "retry_strategy", "resources", "source_info", "best_validation",
                  "latest_validation", "best_checkpoint", "metadata"):
        assert not trial.HasField(field), field
    with_gpu = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(
        name="gpu", resources=trial_pb2.Resources(gpu=trial_pb2.GpuResources(type="a100", count=2)))))
    assert (with_gpu.resources.gpu.type, with_gpu.resources.gpu.count) == ("a100", 2)


def test_delete_without_an_id_is_invalid_not_missing(client):
    err = error_of(client.studies.DeleteStudy, ss.DeleteStudyRequest())
    assert (err.code, list(err.violations)) == (grpc.StatusCode.INVALID_ARGUMENT, ["id"])
