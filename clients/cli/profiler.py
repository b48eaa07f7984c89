"""`trialplane profiler TRIAL`: a trial's profiler series, and with --series
the samples of one, reduced by the server to time buckets."""

from __future__ import annotations

import sys

from trialplane.v1 import profiler_pb2, profiler_service_pb2

from ..sdk import Client, ProfilerApi
from ..sdk.values import enum_name
from .output import Printer, Table, when_us

# GetProfilerSamples takes up to 100 series a call.
SERIES_PER_CALL = 100

SERIES_TABLE = Table(["NAME", "TYPE", "AGENT", "GPU", "COUNT", "LAST", "MIN", "MAX", "UPDATED"], flex="GPU",
                     right={"COUNT", "LAST", "MIN", "MAX"})
BUCKET_COLUMNS = ["START", "END", "COUNT", "MIN", "MAX", "LAST"]


def _kind(labels) -> str:
    return enum_name(profiler_pb2.ProfilerMetricType, "PROFILER_METRIC_TYPE_", labels.metric_type)


def _summaries(api: ProfilerApi, series: list) -> list[profiler_service_pb2.ProfilerSamples]:
    """Each series as one bucket over all its samples: count, min, max, last."""
    out = []
    for i in range(0, len(series), SERIES_PER_CALL):
        out += api.samples([s.labels for s in series[i:i + SERIES_PER_CALL]], buckets=1)
    return out


def _series_row(summary: profiler_service_pb2.ProfilerSamples) -> list:
    labels = summary.labels
    if not summary.buckets:
        return [labels.name, _kind(labels), labels.agent_id, labels.gpu_uuid, 0, None, None, None, ""]
    b = summary.buckets[0]
    return [labels.name, _kind(labels), labels.agent_id, labels.gpu_uuid, b.count, b.last, b.min, b.max,
            when_us(b.end_timestamp)]


def profiler_show(client: Client, args, out: Printer) -> int:
    api = ProfilerApi(client.stubs)
    series = list(api.series(args.trial))
    if args.series is None:
        out.items(_summaries(api, series), SERIES_TABLE, _series_row)
        return 0
    chosen = [s for s in series if s.labels.name == args.series and (args.gpu is None or s.labels.gpu_uuid == args.gpu)
              and (args.agent is None or s.labels.agent_id == args.agent)]
    if not chosen:
        names = sorted({s.labels.name for s in series})
        has = f" (it has {', '.join(names)})" if names else " (it has none)"
        which = "".join(f" {k} {v}" for k, v in [("on GPU", args.gpu), ("of agent", args.agent)] if v is not None)
        print(f"trialplane: trial {args.trial} has no profiler series {args.series}{which}{has}", file=sys.stderr)
        return 1
    samples = api.samples([s.labels for s in chosen[:SERIES_PER_CALL]], buckets=args.buckets)
    several = len(samples) > 1
    table = Table((["AGENT", "GPU"] if several else []) + BUCKET_COLUMNS, flex="GPU" if several else None,
                  right={"COUNT", "MIN", "MAX", "LAST"})

    def rows(s: profiler_service_pb2.ProfilerSamples) -> list[list]:
        prefix = [s.labels.agent_id, s.labels.gpu_uuid] if several else []
        return [prefix + [when_us(b.start_timestamp), when_us(b.end_timestamp), b.count, b.min, b.max, b.last]
                for b in s.buckets]

    if out.as_table:
        out.table(table, (r for s in samples for r in rows(s)))
    elif out.output == "csv":
        out.csv_rows(table.headers, (r for s in samples for r in rows(s)))
    else:
        out.items(samples, table, None)
    return 0
