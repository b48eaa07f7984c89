"""Drawing a 1 M-point metric history in the terminal: plotext (what
`trialplane metrics --plot` draws with) against the hand-written renderer the
CLI used before it (kept below as hand_written()), both from the buckets the
server reduces the history to.

Usage: .venv/bin/python bench/plot_bench.py [--runs N] [--points N]

One `trialplane serve` on a fresh SQLite database holds one trial with
POINTS steps of "loss" (a falling curve with noise and one spike). Rows, each
run:

* server: GetMetricHistory with WIDTH buckets (first, last, min and max of
  each stretch) for the whole series, from this process.
* draw, hand-written / plotext: the chart of those buckets, WIDTH x 20
  characters, timed in this process (plotext already imported).
* import plotext: in a fresh interpreter, what the first chart of a command pays.
* command end to end: `trialplane metrics T --name loss --group training
  --plot`, spawn to exit, against the ceiling of the same command without a
  chart (`trialplane metrics T`: the same start-up, imports and one call).

The issue's target is <= 300 ms to draw the series, server downsampling
included. Every process started here is stopped by its own PID.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from support import QUIET, ROOT, TRIALPLANE, ServerProcess, Table, start_trialplane
from trialplane.client import Client
from trialplane.client.cli import plot
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

SCRIPT = Path(__file__).resolve()
POINTS = 1_000_000
WIDTH = 80
BUCKETS = WIDTH - 2
BLOCK = 100_000


def hand_written(curves: list[tuple[str, list[int], list[float]]], width: int = 72, height: int = 16) -> str:
    """The renderer of clients/cli/plot.py before plotext: a mark per point, a
    value axis with three labels, a step axis with its ends, a legend."""
    marks = "*+ox#@"
    points = [(s, v) for _, steps, values in curves for s, v in zip(steps, values) if math.isfinite(v)]
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    first, last = min(s for s, _ in points), max(s for s, _ in points)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    labels = [f"{hi:.4g}", f"{(hi + lo) / 2:.4g}", f"{lo:.4g}"]
    margin = max(len(x) for x in labels) + 1
    columns = max(8, width - margin - 1)
    grid = [[" "] * columns for _ in range(height)]
    span = max(1, last - first)
    for index, (_, steps, values) in enumerate(curves):
        for step, value in zip(steps, values):
            if math.isfinite(value):
                grid[round((hi - value) / (hi - lo) * (height - 1))][round((step - first) / span * (columns - 1))] = \
                    marks[index % len(marks)]
    rows = []
    for y, row in enumerate(grid):
        label = labels[0] if y == 0 else labels[2] if y == height - 1 else labels[1] if y == (height - 1) // 2 else ""
        rows.append(f"{label.rjust(margin - 1)} |{''.join(row)}")
    rows.append(" " * margin + "+" + "-" * columns)
    rows.append(" " * (margin + 1) + str(first) + str(last).rjust(columns - len(str(first))) + "  step")
    rows.append(" " * (margin + 1) + "   ".join(f"{marks[i % len(marks)]} {c[0]}" for i, c in enumerate(curves)))
    return "\n".join(rows)


def fill(client: Client, points: int) -> int:
    trial = client.trials.create(name="plotted")
    client.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_RUNNING))
    rng = np.random.default_rng(7)
    steps = np.arange(points, dtype=np.int64)
    values = 2.0 * np.exp(-steps / (points / 5)) + 0.05 * rng.standard_normal(points) + 0.2
    values[points // 2 + 3] = 4.0
    for start in range(0, points, BLOCK):
        block = ms.MetricColumns(group="training", names=["loss"], steps=steps[start:start + BLOCK].tolist(),
                                 values=values[start:start + BLOCK].tolist())
        client.stubs.metrics.ReportMetricColumns(ms.ReportMetricColumnsRequest(trial_id=trial.id, blocks=[block]),
                                                 timeout=120)
    return trial.id


def timed_ms(fn) -> tuple[float, object]:
    begin = time.perf_counter()
    result = fn()
    return 1000 * (time.perf_counter() - begin), result


def command_ms(argv: list[str]) -> float:
    env = dict(os.environ, COLUMNS=str(WIDTH), LINES="24")
    begin = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    elapsed = 1000 * (time.perf_counter() - begin)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--points", type=int, default=POINTS)
    args = parser.parse_args()

    table = Table()
    table.define("server", "server: GetMetricHistory, buckets", "ms", f"{args.points:,} points to {BUCKETS} buckets")
    table.define("hand", "draw: hand-written renderer", "ms", "a mark per bucket point; no band, no log axis")
    table.define("plotext", "draw: plotext 6", "ms", f"band + line, {WIDTH}x20, plotext imported")
    table.define("import", "import plotext, fresh interpreter", "ms", "paid once by a --plot command")
    table.define("e2e", "metrics --plot, spawn to exit", "ms", "target <= 300 ms, downsampling included")
    table.define("floor", "metrics (summaries), spawn to exit", "ms", "same start-up and one call, no chart",
                 ceiling_of="e2e", ratio="as % of the command without a chart")

    with tempfile.TemporaryDirectory(prefix="plot-bench-") as name:
        tmp = Path(name)
        server: ServerProcess = start_trialplane(tmp / "bench.db", tmp / "server.log", QUIET)
        try:
            with Client(server.address) as client:
                fill_ms, trial_id = timed_ms(lambda: fill(client, args.points))
                base = [str(TRIALPLANE), "--address", server.address, "metrics", str(trial_id)]
                plot.render([plot.Curve("warm-up", [plot.Bucket(0, 1, 1.0, 2.0, 1.0, 2.0)])])  # imports plotext
                for _ in range(args.runs):
                    took, answer = timed_ms(lambda: client.metrics.histories(trial_id, "loss", buckets=BUCKETS))
                    table.add("server", took)
                    buckets = answer[0].buckets  # type: ignore[index]
                    assert len(buckets) == BUCKETS and max(b.max for b in buckets) == 4.0
                    steps = [s for b in buckets for s in (b.first_step, b.first_step, b.last_step, b.last_step)]
                    values = [v for b in buckets for v in (b.first, b.min, b.max, b.last)]
                    curve = ("loss", steps, values)
                    table.add("hand", timed_ms(partial(hand_written, [curve], width=WIDTH))[0])
                    curves = [plot.Curve("loss", [plot.Bucket(b.first_step, b.last_step, b.first, b.last, b.min, b.max)
                                                  for b in buckets])]
                    table.add("plotext", timed_ms(partial(plot.render, curves, width=WIDTH, height=20))[0])
                    table.add("import", command_ms([sys.executable, "-c", "import plotext"])
                              - command_ms([sys.executable, "-c", "pass"]))
                    table.add("e2e", command_ms([*base, "--name", "loss", "--group", "training", "--plot"]))
                    table.add("floor", command_ms(base))
            server.stop()
        finally:
            ServerProcess.stop_all()

    print(f"plot bench: {args.runs} runs, one trialplane server on SQLite, {args.points:,} points written in "
          f"{fill_ms / 1000:.1f} s, {os.cpu_count()} cores")
    table.print()
    print(f"reproduce: cd {shlex.quote(str(ROOT))} && .venv/bin/python bench/{SCRIPT.name}"
          + (f" --runs {args.runs}" if args.runs != 5 else "") + (f" --points {args.points}" if args.points != POINTS else ""))


if __name__ == "__main__":
    main()
