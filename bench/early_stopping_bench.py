"""Early-stopping rules: the cost of one decision against 1,000 other trials
of 1,000 points each, beside the same decision computed from scratch.

In process, no server: a rule is given 1,000 ended curves (a * exp(-b * t) + c
with random a, b, c), then a running trial is judged at each of its 1,000
points, as the server judges every stored point. Rows:

- judge(trial, others): the others are the same Curve objects every call, the
  trial a new one each point (what the server does when it keeps its curves).
- observe(trial) + decide(trial_id): the incremental path.
- medianstop at a new step: the first judgement at each step, which reads the
  running average of every trial that reached it (judge(), as above).
- the ceiling row: the same decision from scratch with numpy (every other
  curve searched and averaged per call), what a rule without an index pays.

Every row is the median (and p99) of the per-call times of one run; the
table shows the median, min and max of those over --runs runs.

Usage: .venv/bin/python bench/early_stopping_bench.py [--runs N] [--trials N] [--points N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

import numpy as np
from support import Table, median, percentile
from trialplane.server.domain.early_stopping import registry
from trialplane.server.domain.early_stopping.base import Curve, Decision, Rule

RULES = {"medianstop": {}, "asha": {}, "hyperband": {}}


def study(trials: int, points: int, seed: int) -> tuple[list[Curve], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(1, points + 1, dtype=np.int64)
    t = steps.astype(np.float64)
    others = [
        Curve(i, steps, rng.uniform(0.5, 1.5) * np.exp(-rng.uniform(0.001, 0.01) * t) + rng.uniform(0.0, 0.2), False)
        for i in range(trials)
    ]
    return others, steps, 0.9 * np.exp(-0.005 * t) + 0.1


def per_call(call: Callable[[int], object], points: Iterable[int]) -> list[float]:
    """Microseconds of call(k) for each k: the trial judged with its first k points."""
    times = []
    for k in points:
        began = time.perf_counter()
        call(k)
        times.append((time.perf_counter() - began) * 1e6)
    return times


def judging(rule: Rule, trial_id: int, steps: np.ndarray, losses: np.ndarray, others: list[Curve]):
    return lambda k: rule.judge(Curve(trial_id, steps[:k], losses[:k]), others)


def observing(rule: Rule, trial_id: int, steps: np.ndarray, losses: np.ndarray):
    def call(k: int) -> Decision:
        rule.observe(Curve(trial_id, steps[:k], losses[:k]))
        return rule.decide(trial_id)

    return call


def from_scratch(trial: Curve, others: list[Curve]) -> bool:
    """The median rule with no index: every other curve searched and averaged."""
    step = int(trial.steps[-1])
    averages = []
    for other in others:
        if other.steps[-1] >= step:
            i = max(int(np.searchsorted(other.steps, step, side="right")), 1)
            averages.append(float(np.mean(other.losses[:i])))
    return len(averages) >= 3 and float(np.min(trial.losses)) > float(np.median(averages))


def scratching(steps: np.ndarray, losses: np.ndarray, others: list[Curve]):
    return lambda k: from_scratch(Curve(10**6, steps[:k], losses[:k]), others)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--points", type=int, default=1000)
    args = parser.parse_args()
    size = f"{args.trials:,} others x {args.points:,} points"
    RULES["hyperband"] = {"max_resource": str(args.points)}

    table = Table()
    for name in RULES:
        table.define(f"{name}-judge", f"{name}: judge(), {size}", "us", "median call of the run")
        table.define(f"{name}-judge-p99", f"{name}: judge(), p99 call", "us")
        table.define(f"{name}-observe", f"{name}: observe() + decide()", "us", "median call of the run")
    table.define("median-new", "medianstop: judge() at a step new to the rule", "us", "median call of the run",
                 ratio="as % of the same decision from scratch")
    table.define("scratch", "the median rule from scratch with numpy", "us", "median call, no index",
                 ceiling_of="median-new")
    table.define("median-new-p99", "medianstop: judge() at a new step, p99 call", "us")

    for run in range(args.runs):
        others, steps, losses = study(args.trials, args.points, seed=run)
        for name, settings in RULES.items():
            rule = registry.create(name, settings)
            points = range(1, args.points + 1)
            # The first pass over the trial's steps is new to the rule; the second
            # (another trial at the same steps) is what a running study sees.
            first = per_call(judging(rule, 10**6, steps, losses, others), points)
            again = per_call(judging(rule, 10**6 + 1, steps, losses * 1.1, others), points)
            observed = per_call(observing(rule, 10**6 + 2, steps, losses * 0.9), points)
            table.add(f"{name}-judge", median(again))
            table.add(f"{name}-judge-p99", percentile(again, 99))
            table.add(f"{name}-observe", median(observed))
            if name == "medianstop":
                table.add("median-new", median(first))
                table.add("median-new-p99", percentile(first, 99))
        scratch = per_call(scratching(steps, losses, others), range(1, args.points + 1, max(args.points // 50, 1)))
        table.add("scratch", median(scratch))

    table.print()
    print(f"\n{sys.executable} bench/early_stopping_bench.py --runs {args.runs} --trials {args.trials} --points {args.points}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
