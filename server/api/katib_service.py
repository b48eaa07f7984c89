"""api.v1.beta1.DBManager: Katib's observation-log API on trialplane's metric tables."""

from __future__ import annotations

import datetime as dt
import math
import re

from trialplane.katib.v1beta1 import api_pb2, api_pb2_grpc

from ..domain.errors import InvalidArgument, ViolationCollector, invalid
from ..storage.interface import Storage
from .errors import rpc

MAX_OBSERVATIONS = 100_000


RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MIN_US = (dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc) - EPOCH) // dt.timedelta(microseconds=1)
MAX_US = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc) - EPOCH) // dt.timedelta(microseconds=1)


def parse_time(text: str, field: str) -> int:
    """RFC 3339 to microseconds since the epoch, exactly (no float rounding);
    fractions beyond microseconds are truncated."""
    m = RFC3339.match(text)
    if m is None:
        raise invalid(field, f"{text!r} is not an RFC 3339 time")
    date, clock, fraction, zone = m.groups()
    micros = ((fraction or ".")[1:] + "000000")[:6]
    zone = "+00:00" if zone in ("Z", "z") else zone
    try:
        value = dt.datetime.fromisoformat(f"{date}T{clock}.{micros}{zone}")
    except ValueError:
        raise invalid(field, f"{text!r} is not an RFC 3339 time") from None
    us = (value - EPOCH) // dt.timedelta(microseconds=1)
    if not MIN_US <= us <= MAX_US:
        raise invalid(field, f"{text!r} is outside years 0001-9999 in UTC")
    return us


def format_time(us: int) -> str:
    d = EPOCH + dt.timedelta(microseconds=us)
    return (f"{d.year:04d}-{d.month:02d}-{d.day:02d}T{d.hour:02d}:{d.minute:02d}:{d.second:02d}"
            f".{d.microsecond:06d}Z")


def parse_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


class KatibDBManagerServicer(api_pb2_grpc.DBManagerServicer):
    def __init__(self, storage: Storage):
        self.storage = storage

    @rpc
    async def ReportObservationLog(self, request, context):
        if not request.trial_name:
            raise invalid("trial_name", "must not be empty")
        logs = request.observation_log.metric_logs
        if len(logs) > MAX_OBSERVATIONS:
            raise invalid("observation_log.metric_logs", f"at most {MAX_OBSERVATIONS} per call")
        v = ViolationCollector()
        observations = []
        for i, log in enumerate(logs):
            if not log.metric.name:
                v.add(f"observation_log.metric_logs[{i}].metric.name", "must not be empty")
                continue
            try:
                time = parse_time(log.time_stamp, f"observation_log.metric_logs[{i}].time_stamp")
            except InvalidArgument as exc:
                v.add(f"observation_log.metric_logs[{i}].time_stamp", exc.violations[0].description)
                continue
            observations.append((log.metric.name, time, parse_value(log.metric.value), log.metric.value))
        v.raise_if_any()
        await self.storage.report_observations(request.trial_name, observations)
        return api_pb2.ReportObservationLogReply()

    @rpc
    async def GetObservationLog(self, request, context):
        if not request.trial_name:
            raise invalid("trial_name", "must not be empty")
        start = parse_time(request.start_time, "start_time") if request.start_time else None
        end = parse_time(request.end_time, "end_time") if request.end_time else None
        rows = await self.storage.get_observations(request.trial_name, request.metric_name, start, end)
        return api_pb2.GetObservationLogReply(
            observation_log=api_pb2.ObservationLog(
                metric_logs=[
                    api_pb2.MetricLog(time_stamp=format_time(o.time), metric=api_pb2.Metric(name=o.name, value=o.value))
                    for o in rows
                ]
            )
        )

    @rpc
    async def DeleteObservationLog(self, request, context):
        if not request.trial_name:
            raise invalid("trial_name", "must not be empty")
        await self.storage.delete_observations(request.trial_name)
        return api_pb2.DeleteObservationLogReply()
