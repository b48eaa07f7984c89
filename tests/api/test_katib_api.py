"""Katib's DBManager API (api.v1.beta1), called the way Katib's own clients call it.

Katib's metrics collectors and Python client must work against trialplane
unchanged, so the client side here does not use trialplane's generated code
but an independent copy of Katib's definitions (support/katib.py says how it
is built and called).
"""

from __future__ import annotations

import datetime as dt
import math
import re

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import error_of
from support.katib import KatibProto
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import metrics_service_pb2_grpc, trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

SERVICE = "api.v1.beta1.DBManager"
KATIB_MESSAGES = (
    "Metric", "MetricLog", "ObservationLog", "ReportObservationLogRequest", "ReportObservationLogReply",
    "GetObservationLogRequest", "GetObservationLogReply", "DeleteObservationLogRequest", "DeleteObservationLogReply",
)

# RFC 3339 date-time (section 5.6), with the "T"/"Z" case-insensitivity it allows.
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def instant(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time, computed exactly
    (fractions past the microsecond are truncated); fails on anything that is
    not RFC 3339."""
    match = RFC3339.match(text)
    assert match, f"{text!r} is not an RFC 3339 time"
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = (match.group(7) or ".")[1:]
    micros = int((fraction + "000000")[:6])
    zone = match.group(8)
    if zone in ("Z", "z"):
        offset = dt.timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    value = dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=dt.timezone(offset))
    return (value - EPOCH) // dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------
# The independent client


@pytest.fixture(scope="module")
def katib(tmp_path_factory):
    """Katib's messages and services from tests/api/katib_proto, in a private pool."""
    proto = KatibProto(tmp_path_factory.mktemp("katib_proto"))
    classes = {name: proto[name] for name in (*KATIB_MESSAGES, "NasConfig")}
    return {"pool": proto.pool, "file": proto.file, "service": proto.service("DBManager"), "proto": proto, **classes}


class KatibClient:
    """What a Katib collector does: one generic unary call per DBManager method."""

    def __init__(self, channel: grpc.Channel, k: dict):
        self.k = k
        self.calls = k["proto"].calls(channel, "DBManager")

    def request(self, name: str, **fields):
        return self.k[name](**fields)

    def report(self, trial_name: str, logs, timeout: float = 30):
        k = self.k
        request = k["ReportObservationLogRequest"](
            trial_name=trial_name,
            observation_log=k["ObservationLog"](
                metric_logs=[k["MetricLog"](time_stamp=t, metric=k["Metric"](name=n, value=v)) for t, n, v in logs]
            ),
        )
        return self.calls["ReportObservationLog"](request, timeout=timeout)

    def get_raw(self, trial_name: str, **kw):
        return self.calls["GetObservationLog"](self.k["GetObservationLogRequest"](trial_name=trial_name, **kw), timeout=30)

    def get(self, trial_name: str, **kw) -> list[tuple[str, str, str]]:
        """(time_stamp, metric name, value) exactly as the server sent them."""
        reply = self.get_raw(trial_name, **kw)
        return [(m.time_stamp, m.metric.name, m.metric.value) for m in reply.observation_log.metric_logs]

    def get_instants(self, trial_name: str, **kw) -> list[tuple[int, str, str]]:
        """Like get, with each time stamp checked as RFC 3339 and turned into microseconds."""
        return [(instant(t), n, v) for t, n, v in self.get(trial_name, **kw)]

    def delete(self, trial_name: str):
        return self.calls["DeleteObservationLog"](self.k["DeleteObservationLogRequest"](trial_name=trial_name), timeout=30)


@pytest.fixture
def kc(client, katib):
    return KatibClient(client.channel, katib)


@pytest.fixture
def metrics(client):
    return metrics_service_pb2_grpc.MetricsServiceStub(client.channel)


def create_trial(client, name: str) -> trial_pb2.Trial:
    return client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=name)))


def expected(logs) -> list[tuple[int, str, str]]:
    """What Get should return for logs: exact instants, ordered by time."""
    return sorted(((instant(t), n, v) for t, n, v in logs), key=lambda o: o[0])


# Katib's time stamps: RFC 3339 with Z, fractions and offsets; values are strings.
LOGS = [
    ("2026-11-24T10:00:01.5Z", "accuracy", "0.950000"),
    ("2026-11-24T10:00:00Z", "loss", "0.31"),
    ("2026-11-24T12:00:02+02:00", "accuracy", "0.97"),  # 10:00:02Z
    ("2026-11-24T04:30:03-05:30", "loss", "unavailable"),  # 10:00:03Z
    ("2026-11-24T10:00:04.000250Z", "loss", "1e-3"),
    ("2026-11-24T10:00:05.123456789Z", "accuracy", "0.9700"),  # RFC3339Nano, as Go's collectors write it
]


# ---------------------------------------------------------------------------
# The wire contract


def test_private_descriptor_leaves_the_default_pool_alone(katib):
    # NasConfig exists only in the test's copy: had the copy been loaded
    # into the default pool, it would be found there.
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("api.v1.beta1.NasConfig")
    assert katib["NasConfig"].DESCRIPTOR.file.pool is katib["pool"]
    assert [m.name for m in katib["service"].methods] == [
        "ReportObservationLog", "GetObservationLog", "DeleteObservationLog"]


def reflection_call(channel, **request):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (response,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**request)]), timeout=10)
    return response


def test_reflection_lists_the_katib_service(client):
    response = reflection_call(client.channel, list_services="")
    assert SERVICE in {s.name for s in response.list_services_response.service}


def test_reflected_descriptor_matches_katib_field_for_field(client, katib):
    """The server's api.v1.beta1 has Katib's names, numbers, types and methods."""
    response = reflection_call(client.channel, file_containing_symbol=SERVICE)
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in response.file_descriptor_response.file_descriptor_proto]
    (served,) = [f for f in files if any(s.name == "DBManager" for s in f.service)]
    assert served.package == "api.v1.beta1"

    def shape(file_proto, names):
        messages = {m.name: m for m in file_proto.message_type}
        return {
            name: sorted((f.name, f.number, f.type, f.label, f.type_name) for f in messages[name].field)
            for name in names
        }

    assert shape(served, KATIB_MESSAGES) == shape(katib["file"], KATIB_MESSAGES)

    def methods(file_proto):
        (service,) = [s for s in file_proto.service if s.name == "DBManager"]
        return sorted((m.name, m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                      for m in service.method)

    assert methods(served) == methods(katib["file"])


# ---------------------------------------------------------------------------
# Report and Get


def test_report_and_get_round_trip_ordered_by_time_with_values_as_sent(kc):
    assert kc.report("katib-trial-1", LOGS).ByteSize() == 0
    got = kc.get("katib-trial-1")
    # Every time stamp comes back as RFC 3339 (instant() checks it) and in UTC.
    assert all(t.endswith(("Z", "z", "+00:00")) for t, _, _ in got)
    assert kc.get_instants("katib-trial-1") == expected(LOGS)
    # The values are the strings sent, not reformatted numbers.
    assert [v for _, _, v in got] == ["0.31", "0.950000", "0.97", "unavailable", "1e-3", "0.9700"]


def test_metric_name_filter(kc):
    kc.report("katib-filter", LOGS)
    assert kc.get_instants("katib-filter", metric_name="accuracy") == expected(
        [log for log in LOGS if log[1] == "accuracy"])
    assert [v for _, _, v in kc.get("katib-filter", metric_name="loss")] == ["0.31", "unavailable", "1e-3"]
    assert kc.get("katib-filter", metric_name="precision") == []


def test_time_range_filter_is_inclusive_at_both_ends(kc):
    kc.report("katib-window", LOGS)
    values = lambda **kw: [v for _, _, v in kc.get("katib-window", **kw)]  # noqa: E731
    # Bounds equal to the times of points include them.
    assert values(start_time="2026-11-24T10:00:01.5Z", end_time="2026-11-24T10:00:03Z") == [
        "0.950000", "0.97", "unavailable"]
    # The same instants written with other offsets select the same points.
    assert values(start_time="2026-11-24T11:00:01.500+01:00", end_time="2026-11-24T05:00:03-05:00") == [
        "0.950000", "0.97", "unavailable"]
    # One bound only.
    assert values(start_time="2026-11-24T10:00:04.00025Z") == ["1e-3", "0.9700"]
    assert values(end_time="2026-11-24T10:00:00Z") == ["0.31"]
    # Just past a point excludes it.
    assert values(start_time="2026-11-24T10:00:04.000251Z") == ["0.9700"]
    assert values(end_time="2026-11-24T10:00:01.499999Z") == ["0.31"]
    # Combined with the metric filter.
    assert values(metric_name="loss", start_time="2026-11-24T10:00:01Z", end_time="2026-11-24T10:00:04Z") == [
        "unavailable"]
    # Empty windows.
    assert values(start_time="2026-11-25T00:00:00Z") == []
    assert values(start_time="2026-11-24T10:00:03Z", end_time="2026-11-24T10:00:02Z") == []


def test_reports_append_and_duplicates_are_kept(kc):
    kc.report("katib-append", LOGS[:2])
    kc.report("katib-append", LOGS[2:])
    # Katib's file collector gives every line without a time stamp the same
    # one; all of them are observations.
    same = [("2026-11-24T10:00:10Z", "loss", "0.1")] * 3
    kc.report("katib-append", same)
    assert kc.get_instants("katib-append") == expected(LOGS + same)


def test_an_empty_observation_log_is_accepted(kc):
    kc.report("katib-empty", [])
    assert kc.get("katib-empty") == []


def test_non_numeric_values_are_stored_and_returned_as_sent(kc):
    odd = ["unavailable", "NaN", "inf", "", "1,5", " 0.5 ", "0.950000", "-0", "1.0000000000000000001",
           "ünïcode ✓", '{"a": [1, 2]}']
    logs = [(f"2026-11-24T10:00:{i:02d}Z", "objective", value) for i, value in enumerate(odd)]
    kc.report("katib-odd", logs)
    assert [v for _, _, v in kc.get("katib-odd")] == odd
    # A numeric value of another metric is stored in its own series.
    kc.report("katib-odd", [("2026-11-24T10:01:00Z", "other", "-Infinity")])
    assert [v for _, _, v in kc.get("katib-odd", metric_name="other")] == ["-Infinity"]


def test_many_observations_keep_their_raw_values(kc):
    # One large batch (several storage chunks) and many small reports (which
    # the storage compacts) must both keep every value string.
    base = dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone.utc)
    stamp = lambda i: (base + dt.timedelta(milliseconds=i)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    big = [(stamp(i), "loss", f"{1 / (i + 1):.6f}") for i in range(1300)]
    kc.report("katib-many", big)
    small = [(stamp(2000 + i), "loss", f"{i}.000") for i in range(70)]
    for log in small:
        kc.report("katib-many", [log])
    got = kc.get_instants("katib-many")
    assert got == expected(big + small)
    tail = kc.get("katib-many", start_time=stamp(2000), end_time=stamp(2069))
    assert [v for _, _, v in tail] == [v for _, _, v in small]


# ---------------------------------------------------------------------------
# Trial names


def test_an_unknown_trial_name_is_kept_and_readable(kc, client):
    kc.report("katib-unknown-trial", LOGS[:3])
    assert kc.get_instants("katib-unknown-trial") == expected(LOGS[:3])
    assert kc.get("katib-unknown-trial-2") == []
    assert kc.get("never-reported") == []
    # A trialplane trial created under that name later: what came before
    # stays readable with what comes after.
    create_trial(client, "katib-unknown-trial")
    kc.report("katib-unknown-trial", LOGS[3:])
    assert kc.get_instants("katib-unknown-trial") == expected(LOGS)


def test_a_trial_name_links_observations_to_the_trial(kc, client, metrics):
    trial = create_trial(client, "katib-linked")
    other = create_trial(client, "katib-other")
    logs = [("2026-11-24T10:00:00Z", "loss", "0.5"), ("2026-11-24T12:00:05+02:00", "loss", "0.250"),
            ("2026-11-24T10:00:07Z", "loss", "unavailable"), ("2026-11-24T10:00:01Z", "accuracy", "0.75")]
    kc.report("katib-linked", logs)

    (series,) = metrics.GetMetricHistory(
        ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="katib", names=["loss"])).series
    assert series.trial_id == trial.id and series.group == "katib" and series.name == "loss"
    assert list(series.values)[:2] == [0.5, 0.25]
    assert len(series.values) == 3 and math.isnan(series.values[2])
    assert list(series.times) == [instant(t) for t, n, _ in logs if n == "loss"]
    (accuracy,) = metrics.GetMetricHistory(
        ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="katib", names=["accuracy"])).series
    assert list(accuracy.values) == [0.75]

    # Katib still reads the strings it sent.
    assert kc.get_instants("katib-linked") == expected(logs)
    # Nothing landed on the other trial.
    reply = metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[other.id], group="katib", names=["loss"]))
    assert all(len(s.values) == 0 for s in reply.series)


# ---------------------------------------------------------------------------
# Delete


def test_delete_removes_the_observations_and_is_idempotent(kc):
    kc.report("to-delete", LOGS)
    kc.report("to-keep", LOGS[:2])
    assert kc.delete("to-delete").ByteSize() == 0
    assert kc.get("to-delete") == []
    assert kc.get("to-delete", metric_name="loss") == []
    kc.delete("to-delete")
    kc.delete("never-reported")
    assert kc.get_instants("to-keep") == expected(LOGS[:2])
    # The name can be reported again from scratch.
    kc.report("to-delete", LOGS[:1])
    assert kc.get_instants("to-delete") == expected(LOGS[:1])


def test_delete_of_a_linked_trial_removes_its_katib_history_only(kc, client, metrics):
    trial = create_trial(client, "katib-linked-delete")
    kc.report("katib-linked-delete", [("2026-11-24T10:00:00Z", "loss", "0.5")])
    kc.delete("katib-linked-delete")
    assert kc.get("katib-linked-delete") == []
    reply = metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="katib", names=["loss"]))
    assert all(len(s.values) == 0 for s in reply.series)
    assert client.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).name == "katib-linked-delete"


# ---------------------------------------------------------------------------
# Bad input


def test_empty_trial_name_is_invalid_everywhere(kc):
    for call, args in ((kc.report, ("", LOGS)), (kc.get, ("",)), (kc.delete, ("",))):
        err = error_of(call, *args)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "trial_name" in err.violations


def test_bad_time_stamp_is_invalid_and_nothing_is_stored(kc):
    err = error_of(kc.report, "katib-bad-time", [("yesterday", "loss", "1")])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "observation_log.metric_logs[0].time_stamp" in err.violations

    # Every bad log is named by its index; the good ones are not stored either.
    err = error_of(kc.report, "katib-bad-time", [
        ("2026-11-24T10:00:00Z", "loss", "1"), ("2026-11-24T25:00:00Z", "loss", "2"), ("noon", "loss", "3")])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(err.violations) == {"observation_log.metric_logs[1].time_stamp",
                                   "observation_log.metric_logs[2].time_stamp"}
    assert kc.get("katib-bad-time") == []


def test_empty_metric_name_is_invalid(kc):
    err = error_of(kc.report, "katib-bad-name", [("2026-11-24T10:00:00Z", "", "1")])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "observation_log.metric_logs[0].metric.name" in err.violations


def test_bad_time_bounds_are_invalid(kc):
    kc.report("katib-bad-bounds", LOGS)
    err = error_of(kc.get, "katib-bad-bounds", start_time="noon")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "start_time" in err.violations
    err = error_of(kc.get, "katib-bad-bounds", end_time="tomorrow")
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "end_time" in err.violations


# ---------------------------------------------------------------------------
# Known server bugs (see the reasons)


def test_katibs_zero_time_stamp_comes_back_as_rfc3339(kc):
    logs = [("0001-01-01T00:00:00Z", "accuracy", "unavailable"), ("0999-06-01T00:00:00Z", "accuracy", "0.1")]
    kc.report("katib-zero-time", logs)
    assert kc.get_instants("katib-zero-time") == expected(logs)


def test_microsecond_time_stamps_are_kept_exactly(kc):
    logs = [("2004-05-16T18:49:24.239133Z", "loss", "0.5"), ("2038-12-24T17:05:23.163839Z", "loss", "0.25")]
    kc.report("katib-micros", logs)
    got = kc.get("katib-micros")
    assert [(instant(t), n, v) for t, n, v in got] == expected(logs)
    for t, _, v in got:
        assert v in [x for _, _, x in kc.get("katib-micros", start_time=t, end_time=t)]


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-01:00"])
def test_an_accepted_time_stamp_never_makes_the_log_unreadable(kc, stamp):
    good = ("2026-11-24T10:00:00Z", "loss", "0.5")
    try:
        kc.report("katib-far-future", [good, (stamp, "loss", "0.25")])
    except grpc.RpcError as exc:
        # Refusing the time is fine, as long as it is refused as bad input.
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        kc.report("katib-far-future", [good])
        assert kc.get_instants("katib-far-future") == expected([good])
        return
    got = kc.get("katib-far-future")
    assert [v for _, _, v in got] == ["0.5", "0.25"]
    assert kc.get("katib-far-future", metric_name="loss", end_time="2027-01-01T00:00:00Z")[0][2] == "0.5"


@pytest.mark.parametrize("batches", [
    [["inf", "-inf"]],
    [["inf"], ["-inf", "0.5"]],
], ids=["one-request", "two-requests"])
def test_infinities_of_both_signs_are_stored_as_sent(kc, batches):
    sent = []
    for i, values in enumerate(batches):
        logs = [(f"2026-11-24T10:00:{i:02d}.{j:06d}Z", "loss", v) for j, v in enumerate(values)]
        kc.report(f"katib-infinities-{len(batches)}", logs)
        sent += values
    assert [v for _, _, v in kc.get(f"katib-infinities-{len(batches)}")] == sent


@pytest.mark.parametrize("stamp", ["2026-11-24", "2026-W48-2", "20261124T100000Z", "2026-11-24T10"])
def test_non_rfc3339_time_stamps_are_invalid(kc, stamp):
    err = error_of(kc.report, "katib-iso-forms", [(stamp, "loss", "1")])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "observation_log.metric_logs[0].time_stamp" in err.violations
