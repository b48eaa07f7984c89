"""The arguments of the commands whose handlers live outside commands.py:
profiler series, the live `top`, following and plotting metrics, and the
search verbs of studies and trials. Imports nothing heavy: it runs for every --help."""

from __future__ import annotations

import argparse
from collections.abc import Callable

DEFAULT_TOP_INTERVAL = 2.0
DEFAULT_PROFILER_BUCKETS = 60


def _positive(kind: type) -> Callable[[str], float]:
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _metric(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be NAME=NUMBER, not {text!r}") from None


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"must be NAME=VALUE, not {text!r}")
    return name, value


def add_view_commands(sub, studies, trials, metrics: argparse.ArgumentParser, command: Callable) -> None:
    """sub: the top-level subparsers; studies, trials: those groups'; metrics:
    the metrics command's parser; command(group, name, handler, help) makes a
    leaf command with the global options."""
    p = command(studies, "suggest", "search:studies_suggest",
                "ask the study's search algorithm for new trials (created QUEUED)")
    p.add_argument("study", help="id or name")
    p.add_argument("--count", type=_positive(int), default=1, help="how many trials, 1 to 100 (default: 1)")
    p.add_argument("--client-id",
                   help="names the caller: a repeat with the same id first returns its unfinished trials "
                        "(default: a new id per call, so only a retry of this call gets the same trials)")
    p.add_argument("--start", action="store_true",
                   help="make the trials RUNNING at once, for a caller that runs them itself and ends each "
                        "with `trials complete`")
    p = command(trials, "complete", "search:trials_complete",
                "end a trial with its result: final metrics as its validation, then COMPLETED")
    p.add_argument("trial", type=int, help="trial id")
    p.add_argument("--metric", action="append", type=_metric, default=[], metavar="NAME=VALUE",
                   help="a final value (val_loss=0.21); repeat for several; none: the trial keeps what it reported")
    p.add_argument("--steps", type=int, default=0,
                   help="the step of the result and the trial's steps_completed (default: the trial's own)")
    p.add_argument("--message", help="why, for the trial's event history")
    p = command(studies, "stop", "search:studies_stop", "end the search: the study STOPPED, its unfinished trials stopped")
    p.add_argument("study", help="id or name")
    p.add_argument("--reason", help="why, for the study's state message and each trial's stop event")
    p = command(studies, "complete", "search:studies_complete",
                "mark the search done: the study COMPLETED takes no new trials; running ones go on")
    p.add_argument("study", help="id or name")
    p.add_argument("--reason", help="why, for the study's state message")
    p = command(studies, "update", "search:studies_update",
                "change a study's search settings, while it runs too: algorithm, early-stopping rule, budgets")
    p.add_argument("study", help="id or name")
    p.add_argument("--algorithm", help="random, grid, quasirandom, tpe or cmaes (checked against the space)")
    p.add_argument("--algorithm-setting", action="append", type=_setting, default=[], metavar="NAME=VALUE",
                   help="a setting of --algorithm (random_state=7); repeat for several")
    p.add_argument("--early-stopping", metavar="RULE", help="medianstop, asha, hyperband, or none to remove it")
    p.add_argument("--early-stopping-setting", action="append", type=_setting, default=[], metavar="NAME=VALUE",
                   help="a setting of --early-stopping (min_trials_required=3); repeat for several")
    p.add_argument("--max-trials", type=int, help="trials the study makes in all (0: no limit)")
    p.add_argument("--parallel-trials", type=int, help="unfinished trials at once (0: no limit)")
    p.add_argument("--max-failed-trials", type=int, help="ERROR trials that fail the study (0: no limit)")
    p = command(studies, "validate", "search:studies_validate",
                "check a study file's space, algorithm and early-stopping rule without creating the study")
    p.add_argument("-f", "--file", required=True, help="the study, as `studies create` takes it")
    p = command(studies, "check-stopping", "search:studies_check_stopping",
                "what the study's early-stopping rule says of its unfinished trials now, without acting on it")
    p.add_argument("study", help="id or name")
    p.add_argument("--trial", action="append", type=int, metavar="ID",
                   help="only this trial; repeat for several (default: every unfinished trial)")

    metrics.add_argument("-f", "--follow", action="store_true",
                         help="keep printing new points, a row each, until the trial ends")
    metrics.add_argument("--log-y", action="store_true", help="with --plot: a logarithmic value axis")

    p = command(sub, "profiler", "profiler:profiler_show",
                "a trial's profiler series (count, last, min, max), or with --series its samples in time buckets")
    p.add_argument("trial", type=int, help="trial id")
    p.add_argument("--series", metavar="NAME", help="the samples of the series of this name (one per GPU and agent)")
    p.add_argument("--gpu", help="with --series: only the series of this GPU uuid")
    p.add_argument("--agent", help="with --series: only the series of this agent")
    p.add_argument("--buckets", type=_positive(int), default=DEFAULT_PROFILER_BUCKETS,
                   help=f"with --series: how many time buckets the server reduces the samples to "
                        f"(default: {DEFAULT_PROFILER_BUCKETS}; at most 10,000)")

    p = command(sub, "top", "top:top", "a live table of the running trials; Ctrl-C ends it")
    p.add_argument("--study", help="only trials of this study (id or name)")
    p.add_argument("-n", "--interval", type=_positive(float), default=DEFAULT_TOP_INTERVAL,
                   help=f"seconds between refreshes (default: {DEFAULT_TOP_INTERVAL:g})")
    p.add_argument("--once", action="store_true",
                   help="print one frame and exit (so does -o json, yaml or csv)")
