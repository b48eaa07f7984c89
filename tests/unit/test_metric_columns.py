"""A row of a columnar batch is the report it stands for: same values, same digest."""

import math
import struct

from google.protobuf import struct_pb2
from trialplane.server.api.metrics_service import column_batch, report_draft
from trialplane.server.domain import metrics as m
from trialplane.server.domain.errors import DomainError
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms

NAMES = ["zeta", "a", "loss", "損失", "n" * 256, "Acc"]
ROWS = [
    [0.5, 1.0, 2.0, -0.0, 1e300, 3.0],
    [math.nan, math.inf, -math.inf, 0.0, 5e-324, math.nan],
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    [7.0, 7.0, 7.0, 7.0, 7.0, 7.0],
]
MISSING = {(0, 1), (2, 0), (2, 3), (2, 5), *((3, j) for j in range(len(NAMES)))}


def bits(values: dict) -> dict:
    """Values compared bit for bit: NaN equals NaN, -0.0 differs from 0.0."""
    return {name: struct.pack("<d", v) for name, v in values.items()}


def as_report(step: int, values: dict) -> m.ReportDraft:
    """The row as a ReportMetrics request decodes it."""
    s = struct_pb2.Struct()
    for name, value in values.items():
        s.fields[name].number_value = value
    tm = mp.TrialMetrics(trial_id=1, steps_completed=step, metrics=mp.Metrics(avg_metrics=s))
    return report_draft(ms.ReportMetricsRequest(metrics=tm, group="training"))


def test_row_digests_and_values_are_those_of_the_reports():
    width = len(NAMES)
    request = ms.ReportMetricColumnsRequest(trial_id=1, blocks=[ms.MetricColumns(
        group="training", names=NAMES, steps=range(len(ROWS)), values=[v for row in ROWS for v in row],
        missing_indices=sorted(i * width + j for i, j in MISSING))])
    (block,) = column_batch(request).blocks
    digests = block.digests()
    for i, row in enumerate(ROWS):
        values = {name: v for j, (name, v) in enumerate(zip(NAMES, row)) if (i, j) not in MISSING}
        draft = as_report(i, values)
        assert bits(block.row_metrics(i)) == bits(draft.metrics)
        assert digests[i] == draft.digest, i
    assert block.row_metrics(3) == {} and digests[3] == as_report(3, {}).digest
    assert len(set(digests)) == len(ROWS)


def test_an_outcome_reads_back_from_its_record():
    out = m.ColumnOutcome(rows_stored=3, points_stored=7, rows_repeated=1)
    out.reject(0, 2, 9, m.report_conflict(1, "training", 9))
    again = m.ColumnOutcome.from_record(out.to_record())
    assert (again.rows_stored, again.points_stored, again.rows_repeated, again.rows_rejected) == (3, 7, 1, 1)
    (row,) = again.rejected
    assert (row.block, row.row, row.step, row.error.reason, row.error.message) == (
        0, 2, 9, "METRIC_CONFLICT", out.rejected[0].error.message)
    for i in range(m.MAX_REJECTED_ROWS + 5):
        out.reject(1, i, i, DomainError("x", reason="METRIC_CONFLICT"))
    assert out.rows_rejected == m.MAX_REJECTED_ROWS + 6 and len(out.rejected) == m.MAX_REJECTED_ROWS
