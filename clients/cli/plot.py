"""Metric curves as text: a chart with a value axis, a step axis and a legend,
for `trialplane metrics TRIAL --name loss --plot`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MARKS = "*+ox#@"


@dataclass(frozen=True)
class Curve:
    name: str
    steps: Sequence[int]
    values: Sequence[float]


def _label(x: float) -> str:
    return f"{x:.4g}"


def render(curves: Sequence[Curve], width: int = 72, height: int = 16) -> str:
    """The curves on one chart width characters wide (axis labels included)
    and height rows of plot; NaN and infinite values are left out."""
    points = [(c, s, v) for c in curves for s, v in zip(c.steps, c.values) if math.isfinite(v)]
    if not points:
        return "no finite values to plot"
    lo = min(v for _, _, v in points)
    hi = max(v for _, _, v in points)
    first = min(s for _, s, _ in points)
    last = max(s for _, s, _ in points)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    labels = [_label(hi), _label((hi + lo) / 2), _label(lo)]
    margin = max(len(x) for x in labels) + 1
    columns = max(8, width - margin - 1)
    grid = [[" "] * columns for _ in range(height)]
    span = max(1, last - first)
    for index, curve in enumerate(curves):
        mark = MARKS[index % len(MARKS)]
        for step, value in zip(curve.steps, curve.values):
            if not math.isfinite(value):
                continue
            x = round((step - first) / span * (columns - 1))
            y = round((hi - value) / (hi - lo) * (height - 1))
            grid[y][x] = mark
    rows = []
    for y, row in enumerate(grid):
        label = labels[0] if y == 0 else labels[2] if y == height - 1 else labels[1] if y == (height - 1) // 2 else ""
        rows.append(f"{label.rjust(margin - 1)} |{''.join(row)}")
    rows.append(" " * margin + "+" + "-" * columns)
    left, right = str(first), str(last)
    rows.append(" " * (margin + 1) + left + right.rjust(columns - len(left)) + "  step")
    legend = "   ".join(f"{MARKS[i % len(MARKS)]} {c.name}" for i, c in enumerate(curves))
    rows.append(" " * (margin + 1) + legend)
    return "\n".join(rows)
