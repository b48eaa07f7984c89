"""PostgreSQL keeps metric chunks compressed with lz4. Runs when
TRIALPLANE_TEST_POSTGRES_DSN is given."""

from __future__ import annotations

import asyncio

import numpy as np
import psycopg
import pytest
from support import postgres
from trialplane.server.domain import metrics as m
from trialplane.server.domain.models import Trial
from trialplane.server.storage.factory import open_storage

pytestmark = pytest.mark.skipif(not postgres.DSN, reason="needs TRIALPLANE_TEST_POSTGRES_DSN")


def test_metric_chunks_are_stored_with_lz4_and_read_back(schema):
    steps = np.arange(5000, dtype=np.int64)
    values = np.sin(steps / 7.0)

    async def body():
        storage = open_storage(postgres.url_with_schema(schema))
        await storage.open()
        try:
            trial = await storage.create_trial(Trial(), None, lambda st: None)
            block = m.MetricColumns("training", ["loss"], steps, np.zeros(steps.size, dtype=np.int64), values[:, None])
            await storage.report_metric_columns(m.ColumnBatch(trial.id, 0, [block]))
            sid = await storage.metric_series_id(trial.id, "training", "loss")
            return await storage.metric_points(sid, 0, 10**9, False, None, 10**6)
        finally:
            await storage.close()

    points = asyncio.run(body())
    assert points.steps.tolist() == steps.tolist() and points.values.tolist() == values.tolist()
    with psycopg.connect(postgres.DSN, autocommit=True, options=f"-c search_path={schema}") as conn:
        methods = conn.execute(
            "SELECT pg_column_compression(data), count(*), sum(pg_column_size(data)), sum(length(data))"
            " FROM metric_chunks GROUP BY 1 ORDER BY 1"
        ).fetchall()
    # Ten full chunks of 512 points, the last of 392, each large enough to be compressed.
    assert [(method, count) for method, count, _, _ in methods] == [("lz4", 10)]
    (_, _, stored, raw), = methods
    assert stored < raw
