"""Katib's DBManager API, called the way Katib's own clients call it.

The client messages come from tests/katib_proto, compiled at test time into a
private descriptor pool, so the check does not lean on trialplane's own
generated code.
"""

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_tools import protoc

from trialplane.v1 import metrics_service_pb2 as ms, metrics_service_pb2_grpc, trial_pb2, trial_service_pb2 as ts

from conftest import error_of

PROTO_DIR = Path(__file__).parent / "katib_proto"


@pytest.fixture(scope="module")
def katib(tmp_path_factory):
    out = tmp_path_factory.mktemp("katib") / "katib.pb"
    assert protoc.main(["protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}", "katib_client.proto"]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"api.v1.beta1.{name}")) for name in (
        "Metric", "MetricLog", "ObservationLog", "ReportObservationLogRequest", "ReportObservationLogReply",
        "GetObservationLogRequest", "GetObservationLogReply", "DeleteObservationLogRequest", "DeleteObservationLogReply")}


class KatibClient:
    def __init__(self, channel, k):
        self.k = k
        call = lambda method, reply: channel.unary_unary(  # noqa: E731
            f"/api.v1.beta1.DBManager/{method}", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=k[reply].FromString)
        self.report = call("ReportObservationLog", "ReportObservationLogReply")
        self.get = call("GetObservationLog", "GetObservationLogReply")
        self.delete = call("DeleteObservationLog", "DeleteObservationLogReply")

    def report_logs(self, trial_name, logs):
        k = self.k
        return self.report(k["ReportObservationLogRequest"](trial_name=trial_name, observation_log=k["ObservationLog"](
            metric_logs=[k["MetricLog"](time_stamp=t, metric=k["Metric"](name=n, value=v)) for t, n, v in logs])))

    def get_logs(self, trial_name, **kw):
        reply = self.get(self.k["GetObservationLogRequest"](trial_name=trial_name, **kw))
        return [(m.time_stamp, m.metric.name, m.metric.value) for m in reply.observation_log.metric_logs]


@pytest.fixture
def kc(client, katib):
    return KatibClient(client.channel, katib)


LOGS = [
    ("2026-11-24T10:00:01.5Z", "accuracy", "0.950000"),
    ("2026-11-24T10:00:00Z", "loss", "0.31"),
    ("2026-11-24T12:00:02+02:00", "accuracy", "0.97"),
    ("2026-11-24T10:00:03Z", "loss", "unavailable"),
]


def test_report_and_get_round_trip(kc):
    kc.report_logs("katib-trial-1", LOGS)
    assert kc.get_logs("katib-trial-1") == [
        ("2026-11-24T10:00:00.000000Z", "loss", "0.31"),
        ("2026-11-24T10:00:01.500000Z", "accuracy", "0.950000"),
        ("2026-11-24T10:00:02.000000Z", "accuracy", "0.97"),
        ("2026-11-24T10:00:03.000000Z", "loss", "unavailable"),
    ]
    assert [v for _, _, v in kc.get_logs("katib-trial-1", metric_name="accuracy")] == ["0.950000", "0.97"]
    window = kc.get_logs("katib-trial-1", start_time="2026-11-24T10:00:01.5Z", end_time="2026-11-24T10:00:02Z")
    assert [v for _, _, v in window] == ["0.950000", "0.97"]
    assert kc.get_logs("never-reported") == []


def test_a_known_trial_name_links_the_points(client, kc):
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="katib-linked")))
    kc.report_logs("katib-linked", [("2026-11-24T10:00:00Z", "loss", "0.5"), ("2026-11-24T10:00:05Z", "loss", "0.25")])
    metrics = metrics_service_pb2_grpc.MetricsServiceStub(client.channel)
    (series,) = metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="katib", names=["loss"])).series
    assert list(series.values) == [0.5, 0.25]


def test_delete(kc):
    kc.report_logs("to-delete", LOGS[:2])
    kc.delete(kc.k["DeleteObservationLogRequest"](trial_name="to-delete"))
    assert kc.get_logs("to-delete") == []
    kc.delete(kc.k["DeleteObservationLogRequest"](trial_name="to-delete"))


def test_bad_input(kc):
    err = error_of(kc.report_logs, "", LOGS)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "trial_name" in err.violations
    err = error_of(kc.report_logs, "t", [("yesterday", "loss", "1")])
    assert "observation_log.metric_logs[0].time_stamp" in err.violations
    err = error_of(kc.get_logs, "t", start_time="noon")
    assert "start_time" in err.violations


def test_reflection_lists_the_katib_service(client):
    stub = reflection_pb2_grpc.ServerReflectionStub(client.channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert "api.v1.beta1.DBManager" in names
