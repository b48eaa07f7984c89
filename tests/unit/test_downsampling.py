"""Buckets from chunk aggregates: exact over their points, equal in width when affordable."""

import numpy as np
import pytest
from trialplane.server.domain import metrics as m


def chunked(steps: np.ndarray, values: np.ndarray, size: int):
    """Chunks of `size` consecutive points: their aggregates, ids and a loader."""
    parts = [(steps[i:i + size], values[i:i + size]) for i in range(0, len(steps), size)]
    rows = [(len(s), int(s[0]), int(s[-1]), int(s[0]) * 10, int(s[-1]) * 10, float(v[0]), float(v[-1]),
             float(np.nanmin(v)), float(np.nanmax(v))) for s, v in parts]
    loaded: list[int] = []

    def load(ids):
        loaded.extend(ids)
        picked = [parts[i] for i in ids]
        return m.StepsTimesValues(np.concatenate([s for s, _ in picked]), np.concatenate([s * 10 for s, _ in picked]),
                                  np.concatenate([v for _, v in picked]))

    return m.BlockColumns.of_rows(rows), np.arange(len(parts)), load, loaded


def same(a: list[m.Block], b: list[m.Block]) -> bool:
    """Equal block for block, NaN equal to NaN."""
    return [repr(x) for x in a] == [repr(x) for x in b]


NO_POINTS = m.StepsTimesValues(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))


def test_chunks_across_edges_are_split_into_equal_widths():
    steps = np.arange(1000, dtype=np.int64)
    values = np.sin(steps / 7.0)
    chunks, ids, load, loaded = chunked(steps, values, 30)
    got = m.bucket_chunks(chunks, ids, NO_POINTS, load, 7)
    assert same(got, m.bucket_points(steps, steps * 10, values, steps, 7))
    # Only chunks across an edge were read: 6 edges, one chunk each.
    assert len(loaded) == 6


def test_past_the_budget_chunks_stay_whole_and_buckets_stay_exact(monkeypatch):
    monkeypatch.setattr(m, "EXACT_EDGE_POINTS", 100)
    steps = np.arange(1000, dtype=np.int64)
    values = np.cos(steps / 3.0)
    chunks, ids, load, loaded = chunked(steps, values, 30)
    got = m.bucket_chunks(chunks, ids, NO_POINTS, load, 7)
    assert loaded == []
    assert sum(b.count for b in got) == 1000 and len(got) <= 7
    for b in got:
        # Whole chunks: edges fall on multiples of 30, and each bucket is exact over its own steps.
        assert b.first_step % 30 == 0 and (b.last_step + 1) % 30 == 0 or b.last_step == 999
        inside = values[b.first_step:b.last_step + 1]
        assert (b.count, b.first, b.last, b.vmin, b.vmax) == (len(inside), inside[0], inside[-1], inside.min(), inside.max())


@pytest.mark.parametrize("n", [1, 3, 1000])
def test_loose_points_and_nan_values_merge_with_chunks(n):
    steps = np.arange(200, dtype=np.int64)
    values = steps.astype(float)
    values[::17] = np.nan
    chunks, ids, load, _ = chunked(steps[:150], values[:150], 25)
    loose = m.StepsTimesValues(steps[150:], steps[150:] * 10, values[150:])
    assert same(m.bucket_chunks(chunks, ids, loose, load, n), m.bucket_points(steps, steps * 10, values, steps, n))
