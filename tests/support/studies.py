"""Studies for tests."""

from __future__ import annotations

from trialplane.v1 import study_pb2, study_service_pb2

from .client import Client


def make_study(name="study-a", **kwargs) -> study_pb2.Study:
    study = study_pb2.Study(
        name=name,
        objective=study_pb2.Objective(metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        parameters=[
            study_pb2.ParameterSpec(
                name="lr",
                type=study_pb2.PARAMETER_TYPE_DOUBLE,
                feasible_space=study_pb2.FeasibleSpace(min=1e-4, max=0.1),
                scale=study_pb2.PARAMETER_SCALE_LOG,
            ),
            study_pb2.ParameterSpec(
                name="layers",
                type=study_pb2.PARAMETER_TYPE_INT,
                feasible_space=study_pb2.FeasibleSpace(min=1, max=8),
            ),
            study_pb2.ParameterSpec(
                name="optimizer",
                type=study_pb2.PARAMETER_TYPE_CATEGORICAL,
                feasible_space=study_pb2.FeasibleSpace(categories=["sgd", "adam"]),
            ),
        ],
    )
    for key, value in kwargs.items():
        if isinstance(value, list):
            getattr(study, key).extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(study, key).CopyFrom(value)
        else:
            setattr(study, key, value)
    return study


def create_study(client: Client, name="study-a", **kwargs) -> study_pb2.Study:
    return client.studies.CreateStudy(study_service_pb2.CreateStudyRequest(study=make_study(name, **kwargs)))
