"""Metric curves as text, for `trialplane metrics TRIAL --name loss --plot`,
drawn by plotext from the buckets the server reduced a history to.

Each bucket keeps its stretch's first, last, min and max, so a curve is
drawn twice: its band, a vertical stroke from min to max at the middle of
each bucket (a spike no wider than one point still shows), and its line
through every bucket's first and last points. The value axis is linear or,
with log_y, logarithmic (which refuses values at or below 0); the step axis
has round ticks. The legend goes under the chart, where it hides no point.
Colours only on a terminal (styled); plotext is imported when a chart is
drawn (about 0.1 s), not for every command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

LINE_MARKS = "•+x*o#"
BAND_MARKS = "│┊╎┆║┋"
# 256-colour numbers (plotext's own first ones): a curve's band, line and legend share one.
COLOURS = [12, 10, 9, 14, 13, 11]
TICKS = 5


@dataclass(frozen=True)
class Bucket:
    first_step: int
    last_step: int
    first: float
    last: float
    min: float
    max: float


@dataclass(frozen=True)
class Curve:
    name: str
    buckets: Sequence[Bucket]


class PlotError(ValueError):
    """The curves cannot be drawn as asked (a value at or below 0 on a log axis)."""


def _finite(curves: Sequence[Curve]) -> list[tuple[Curve, list[Bucket]]]:
    """Each curve's buckets whose four values are finite (NaN and infinities are left out)."""
    return [(c, [b for b in c.buckets if all(math.isfinite(v) for v in (b.first, b.last, b.min, b.max))])
            for c in curves]


def _nice(span: float) -> float:
    """A round tick spacing: 1, 2 or 5 times a power of ten, about span / TICKS."""
    raw = max(span / TICKS, 1e-12)
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def step_label(step: float) -> str:
    """1234 as 1234, 250000 as 250k, 1500000 as 1.5M."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(step) >= size * 10 or (abs(step) >= size and step % size == 0):
            return f"{step / size:.4g}{unit}"
    return f"{step:.0f}"


def step_ticks(first: int, last: int) -> list[float]:
    spacing = max(1.0, _nice(last - first))
    start = math.ceil(first / spacing) * spacing
    ticks = []
    tick = start
    while tick <= last:
        ticks.append(tick)
        tick += spacing
    return ticks or [first]


def check_log(curves: Sequence[Curve]) -> None:
    for curve, buckets in _finite(curves):
        low = min(buckets, key=lambda b: b.min, default=None)
        if low is not None and low.min <= 0:
            raise PlotError(f"--log-y needs values above 0: {curve.name} is {low.min:.6g} "
                            f"between steps {low.first_step} and {low.last_step}")


def render(curves: Sequence[Curve], width: int = 80, height: int = 20, *, log_y: bool = False,
           styled: bool = False) -> str:
    """The curves on one chart width by height characters (axes, ticks and
    legend included)."""
    drawn = [(c, b) for c, b in _finite(curves) if b]
    if not drawn:
        return "no finite values to plot"
    if log_y:
        check_log(curves)
    import plotext

    figure = plotext.figure
    figure.clear()
    figure.theme("simple" if styled else "colorless")
    figure.plot_size(width, max(height - 1, 8))
    first = min(b[0].first_step for _, b in drawn)
    last = max(b[-1].last_step for _, b in drawn)
    for i, (_, buckets) in enumerate(drawn):
        middle = [(b.first_step + b.last_step) / 2 for b in buckets]
        colour = plotext.pixel(foreground=COLOURS[i % len(COLOURS)])
        band_mark = plotext.marker(BAND_MARKS[i % len(BAND_MARKS)], colour)
        line_mark = plotext.marker(LINE_MARKS[i % len(LINE_MARKS)], colour)
        low = figure.signal(middle, [b.min for b in buckets], marker=band_mark)
        high = figure.signal(middle, [b.max for b in buckets], marker=band_mark)
        figure.draw(high.fill(low))
        steps = [s for b in buckets for s in (b.first_step, b.last_step)]
        values = [v for b in buckets for v in (b.first, b.last)]
        figure.draw(figure.signal(steps, values, marker=line_mark).lines())
    figure.legend(False)
    x_axis = figure.ruler("x")
    ticks = step_ticks(first, last)
    x_axis.ticks(ticks, [step_label(t) for t in ticks])
    if last > first:
        x_axis.lim(first, last)
    if log_y:
        figure.ruler("y").scale("log")
    figure.label("step", axis="x")
    chart = figure.build().string(colorless=not styled)

    def paint(i: int, mark: str) -> str:
        return f"\x1b[38;5;{COLOURS[i % len(COLOURS)]}m{mark}\x1b[0m" if styled else mark

    legend = "   ".join(
        f"{paint(i, LINE_MARKS[i % len(LINE_MARKS)])} {c.name} ({paint(i, BAND_MARKS[i % len(BAND_MARKS)])} min..max)"
        for i, (c, _) in enumerate(drawn))
    return chart.rstrip("\n") + "\n " + legend
