"""api.v1.beta1.DBManager: Katib's observation-log API on trialplane's metric tables."""

from __future__ import annotations

import datetime as dt
import math

from trialplane.katib.v1beta1 import api_pb2, api_pb2_grpc

from ..domain.errors import ViolationCollector, invalid
from ..storage.base import Storage
from .errors import rpc

MAX_OBSERVATIONS = 100_000


def parse_time(text: str, field: str) -> int:
    """RFC 3339 to microseconds since the epoch."""
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise invalid(field, f"{text!r} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1_000_000) if abs(value.year) < 10000 else 0


def format_time(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
            except Exception as exc:  # noqa: BLE001 - collected below
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
                    api_pb2.MetricLog(time_stamp=format_time(time), metric=api_pb2.Metric(name=name, value=raw))
                    for name, time, raw in rows
                ]
            )
        )

    @rpc
    async def DeleteObservationLog(self, request, context):
        if not request.trial_name:
            raise invalid("trial_name", "must not be empty")
        await self.storage.delete_observations(request.trial_name)
        return api_pb2.DeleteObservationLogReply()
