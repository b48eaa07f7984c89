"""Search algorithms in-process (no server): what a suggestion costs as a study
grows, beside Optuna's TPESampler in the same run, and how good a point each
finds for the same budget.

Speed: a study of 4 parameters (DOUBLE, LOG DOUBLE, INT, CATEGORICAL) with N
completed trials and 16 running. One step is what the server does per
suggestion: the oldest running trial completes (update), one new point is
asked for (suggest) and starts running. Each run times --calls steps and
contributes its p50 and p99; the table shows the median of --runs runs.
Optuna does the same on an in-memory study (tell, then ask with fixed
distributions) with TPESampler's defaults (in Optuna 5: multivariate,
constant liar, 10 startup trials, 24 candidates), and is printed below tpe
with tpe's time as % of it.

Quality: the best value found in --budget sequential trials on Branin (2-D,
optimum 0.397887), Hartmann-6 (6-D, optimum -3.32237) and a planted quadratic
over the four parameter types (optimum 0), for each of --seeds seeds; the
mean over seeds, its standard error, median, min and max.

Usage: .venv/bin/python bench/search_bench.py [--runs N] [--sizes 100,1000,3000,10000]
           [--calls N] [--optuna-calls N] [--seeds N] [--budget N] [--skip-speed] [--skip-quality]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
from support import Table, fmt, median, percentile
from trialplane.server.domain.models import (
    FeasibleSpace,
    ParameterScale,
    ParameterSpec,
    ParameterType,
)
from trialplane.server.domain.search import registry
from trialplane.server.domain.search.base import Observed, Outcome

T = ParameterType
ACTIVE = 16
MINE = ("random", "quasirandom", "tpe", "cmaes")
QUALITY = ("tpe", "optuna-tpe", "cmaes", "quasirandom", "random")
# What the issue asks of a suggestion's p50, by algorithm and study size.
TARGETS = {("tpe", 3000): "target <= 10 ms", ("tpe", 10000): "target <= 30 ms",
           **{(a, n): "target <= 1 ms" for a in ("random", "quasirandom") for n in (100, 1000, 3000, 10000)}}

SPEED_SPACE = [
    ParameterSpec("lr", T.DOUBLE, FeasibleSpace(min=1e-5, max=1.0), ParameterScale.LOG),
    ParameterSpec("dropout", T.DOUBLE, FeasibleSpace(min=0.0, max=0.5)),
    ParameterSpec("layers", T.INT, FeasibleSpace(min=1, max=64)),
    ParameterSpec("optimizer", T.CATEGORICAL, FeasibleSpace(categories=["sgd", "adam", "lion", "rmsprop"])),
]


def optuna_distributions(specs: list[ParameterSpec]) -> dict:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict = {}
    for s in specs:
        fs = s.feasible_space
        log = s.scale == ParameterScale.LOG
        if s.type == T.DOUBLE:
            out[s.name] = FloatDistribution(fs.min, fs.max, log=log, step=fs.step)
        elif s.type == T.INT:
            out[s.name] = IntDistribution(int(fs.min), int(fs.max), log=log, step=int(fs.step or 1))
        else:
            out[s.name] = CategoricalDistribution(fs.categories)
    return out


def loss_of(params: dict) -> float:
    """Any deterministic loss will do for timing; this one has a minimum inside."""
    return (math.log10(params["lr"]) + 3) ** 2 + (params["dropout"] - 0.1) ** 2 + (params["layers"] - 20) ** 2 / 400 \
        + (0.0 if params["optimizer"] == "adam" else 0.3)


def history(n: int, seed: int) -> list[dict]:
    """n random points of SPEED_SPACE, the same for every algorithm."""
    return registry.create("random", SPEED_SPACE, {}, seed).suggest(n, 0)


# --- speed ------------------------------------------------------------------------------------------


def time_designer(name: str, n: int, calls: int, seed: int) -> list[float]:
    """Seconds per step (update + suggest) for `calls` steps at n completed, 16 running."""
    designer = registry.create(name, SPEED_SPACE, {}, seed)
    points = history(n + ACTIVE, seed)
    designer.update([Observed(i, p, Outcome.COMPLETED, loss_of(p)) for i, p in enumerate(points[:n])], [])
    running = [Observed(n + k, p, Outcome.ACTIVE) for k, p in enumerate(points[n:])]
    designer.update([], running)
    next_id = n + ACTIVE
    samples = []
    for _ in range(calls):
        begin = time.perf_counter()
        oldest, running = running[0], running[1:]
        designer.update([Observed(oldest.trial_id, oldest.params, Outcome.COMPLETED, loss_of(oldest.params))], running)
        (params,) = designer.suggest(1, next_id)
        samples.append(time.perf_counter() - begin)
        running.append(Observed(next_id, params, Outcome.ACTIVE))
        next_id += 1
    return samples


def time_optuna(n: int, calls: int, seed: int) -> list[float]:
    """The same steps with Optuna: tell the oldest running trial, ask a new one."""
    import optuna
    from optuna.trial import TrialState, create_trial

    dists = optuna_distributions(SPEED_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    points = history(n + ACTIVE, seed)
    study.add_trials([create_trial(params=p, distributions=dists, value=loss_of(p)) for p in points[:n]])
    study.add_trials([create_trial(params=p, distributions=dists, state=TrialState.RUNNING) for p in points[n:]])
    running = list(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
    samples = []
    for _ in range(calls):
        begin = time.perf_counter()
        oldest, running = running[0], running[1:]
        study.tell(oldest.number, loss_of(oldest.params))
        trial = study.ask(dists)
        samples.append(time.perf_counter() - begin)
        running.append(trial)
    return samples


def speed(table: Table, args: argparse.Namespace) -> None:
    for n in args.sizes:
        for name in MINE:
            ratio = "tpe as % of Optuna" if name == "tpe" else ""
            table.define(f"{name}@{n}:p50", f"{name} p50 at {n:,} done", "ms", TARGETS.get((name, n), ""), ratio=ratio)
            table.define(f"{name}@{n}:p99", f"{name} p99 at {n:,} done", "ms", ratio=ratio)
            if name == "tpe":
                table.define(f"optuna@{n}:p50", "Optuna TPESampler p50", "ms", ceiling_of=f"tpe@{n}:p50")
                table.define(f"optuna@{n}:p99", "Optuna TPESampler p99", "ms", ceiling_of=f"tpe@{n}:p99")
    for run in range(args.runs):
        for n in args.sizes:
            for name in MINE:
                s = time_designer(name, n, args.calls, run)
                table.add(f"{name}@{n}:p50", 1000 * median(s))
                table.add(f"{name}@{n}:p99", 1000 * percentile(s, 99))
            s = time_optuna(n, args.optuna_calls, run)
            table.add(f"optuna@{n}:p50", 1000 * median(s))
            table.add(f"optuna@{n}:p99", 1000 * percentile(s, 99))
        print(f"  speed run {run + 1}/{args.runs} done", flush=True)


# --- quality ----------------------------------------------------------------------------------------


def branin(p: dict) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: dict) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    return float(-(_H_ALPHA * np.exp(-(_H_A * (x - _H_P) ** 2).sum(axis=1))).sum())


# The planted optimum: lr 3e-3, width 0.62, depth 37, optimizer "lion"; value 0 there.
def planted(p: dict) -> float:
    return ((math.log10(p["lr"]) - math.log10(3e-3)) / 2) ** 2 + (p["width"] - 0.62) ** 2 \
        + ((p["depth"] - 37) / 50) ** 2 + (0.0 if p["optimizer"] == "lion" else 0.25)


FUNCTIONS: dict[str, tuple[list[ParameterSpec], Callable[[dict], float], float]] = {
    "branin": ([ParameterSpec("x1", T.DOUBLE, FeasibleSpace(min=-5.0, max=10.0)),
                ParameterSpec("x2", T.DOUBLE, FeasibleSpace(min=0.0, max=15.0))], branin, 0.397887),
    "hartmann6": ([ParameterSpec(f"x{i}", T.DOUBLE, FeasibleSpace(min=0.0, max=1.0)) for i in range(6)],
                  hartmann6, -3.32237),
    "planted quadratic": ([ParameterSpec("lr", T.DOUBLE, FeasibleSpace(min=1e-5, max=1.0), ParameterScale.LOG),
                           ParameterSpec("width", T.DOUBLE, FeasibleSpace(min=0.0, max=1.0)),
                           ParameterSpec("depth", T.INT, FeasibleSpace(min=1, max=100)),
                           ParameterSpec("optimizer", T.CATEGORICAL,
                                         FeasibleSpace(categories=["sgd", "adam", "lion", "rmsprop"]))],
                          planted, 0.0),
}


def best_found(algorithm: str, specs: list[ParameterSpec], f: Callable[[dict], float], budget: int, seed: int) -> float:
    if algorithm == "optuna-tpe":
        import optuna

        dists = optuna_distributions(specs)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        for _ in range(budget):
            trial = study.ask(dists)
            study.tell(trial, f(trial.params))
        return study.best_value
    designer = registry.create(algorithm, specs, {}, seed)
    best = math.inf
    for i in range(budget):
        (params,) = designer.suggest(1, i)
        value = f(params)
        best = min(best, value)
        designer.update([Observed(i, params, Outcome.COMPLETED, value)], [])
    return best


def quality(args: argparse.Namespace) -> list[tuple]:
    rows = []
    for fname, (specs, f, optimum) in FUNCTIONS.items():
        for algorithm in QUALITY:
            bests = [best_found(algorithm, specs, f, args.budget, seed) for seed in range(args.seeds)]
            rows.append((fname, algorithm, bests, optimum))
        print(f"  quality on {fname} done", flush=True)
    return rows


def print_quality(rows: list[tuple], budget: int, seeds: int) -> None:
    header = ("function", "algorithm", "mean best", "+- s.e.", "median", "min", "max", "optimum")
    cells = [header]
    for fname, algorithm, bests, optimum in rows:
        se = statistics.stdev(bests) / math.sqrt(len(bests)) if len(bests) > 1 else 0.0
        cells.append((fname, algorithm, f"{statistics.fmean(bests):.4f}", f"{se:.4f}", f"{median(bests):.4f}",
                      f"{min(bests):.4f}", f"{max(bests):.4f}", fmt(optimum) if optimum else "0"))
    print(f"\nbest value found in {budget} sequential trials, {seeds} seeds (lower is better)")
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for i, c in enumerate(cells):
        print("  ".join(x.ljust(w) if j < 2 else x.rjust(w) for j, (x, w) in enumerate(zip(c, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


# A difference of means beyond this many standard errors (of the difference)
# is called a difference; within it, noise.
NOISE_SE = 2.0


def verdict(mine: list[float], other: list[float]) -> tuple[float, float, str]:
    """(difference of mean bests, its standard error, the verdict); lower is better."""
    diff = statistics.fmean(mine) - statistics.fmean(other)
    se = math.sqrt(statistics.variance(mine) / len(mine) + statistics.variance(other) / len(other))
    if diff < -NOISE_SE * se:
        return diff, se, "better"
    if diff > NOISE_SE * se:
        return diff, se, "worse"
    return diff, se, f"within noise (<= {NOISE_SE:g} s.e.)"


def print_verdicts(rows: list[tuple]) -> None:
    """The issue's two questions per function: does TPE beat random, and is
    it worse than Optuna's TPE beyond noise."""
    bests = {(fname, algorithm): b for fname, algorithm, b, _ in rows}
    print("\ntpe against random and against optuna-tpe (difference of mean bests; negative: tpe found lower)")
    for fname in dict.fromkeys(fname for fname, *_ in rows):
        for other in ("random", "optuna-tpe"):
            if (fname, "tpe") in bests and (fname, other) in bests and len(bests[(fname, other)]) > 1:
                diff, se, said = verdict(bests[(fname, "tpe")], bests[(fname, other)])
                print(f"  {fname:<18} tpe vs {other:<10}  {diff:+.4f} +- {se:.4f}  {said}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="speed runs; the table shows the median of their p50 and p99")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000, 3000, 10000],
                        help="completed trials per study, comma-separated")
    parser.add_argument("--calls", type=int, default=100, help="timed suggestions per run and size (trialplane)")
    parser.add_argument("--optuna-calls", type=int, default=30, help="timed suggestions per run and size (Optuna)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds per function and algorithm for quality")
    parser.add_argument("--budget", type=int, default=100, help="trials per quality run")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    began = time.perf_counter()
    table = Table()
    if not args.skip_speed:
        speed(table, args)
    rows = [] if args.skip_quality else quality(args)
    print(f"\nsearch_bench: {platform.python_implementation()} {platform.python_version()}, optuna {optuna.__version__},"
          f" {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, {time.perf_counter() - began:.0f} s")
    if not args.skip_speed:
        print(f"\nseconds per suggestion (update + suggest; Optuna: tell + ask), {ACTIVE} running, "
              f"{args.calls} steps per run ({args.optuna_calls} for Optuna), median of {args.runs} runs")
        table.print()
    if rows:
        print_quality(rows, args.budget, args.seeds)
        print_verdicts(rows)
    sizes = ",".join(str(n) for n in args.sizes)
    print(f"\nreproduce with: .venv/bin/python bench/search_bench.py --runs {args.runs} --sizes {sizes}"
          f" --calls {args.calls} --optuna-calls {args.optuna_calls} --seeds {args.seeds} --budget {args.budget}"
          f"{' --skip-speed' if args.skip_speed else ''}{' --skip-quality' if args.skip_quality else ''}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
