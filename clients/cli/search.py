"""studies suggest, stop, complete, update, validate and check-stopping, the
search verbs of a study, and trials complete, which ends a trial a driver
ran with its result."""

from __future__ import annotations

import sys

from ..sdk import Client
from ..sdk.resources import algorithm_spec
from .commands import (
    STUDY_TABLE,
    TRIAL_TABLE,
    UsageError,
    _Objectives,
    _study_id,
    _study_row,
    _trial_row,
    from_study_file,
)
from .output import Printer, Table, number


def studies_suggest(client: Client, args, out: Printer) -> int:
    study_id = _study_id(client, args.study)
    answer = client.studies.suggest(study_id, args.count, client_id=args.client_id, start=args.start)
    out.items(answer.trials, TRIAL_TABLE, _trial_row(_Objectives(client)))
    if answer.study_done or len(answer.trials) < args.count:
        # On stderr, so what stdout holds still parses as the listing.
        why = "the study hands out no more trials" if answer.study_done else "parallel_trials or max_trials leaves no room"
        print(f"trialplane: {len(answer.trials)} of {args.count} trials: {why}", file=sys.stderr)
    return 0


def studies_stop(client: Client, args, out: Printer) -> int:
    study = client.studies.stop(_study_id(client, args.study), reason=args.reason or "")
    out.items([study], STUDY_TABLE, _study_row)
    return 0


def studies_complete(client: Client, args, out: Printer) -> int:
    study = client.studies.complete(_study_id(client, args.study), reason=args.reason or "")
    out.items([study], STUDY_TABLE, _study_row)
    return 0


def trials_complete(client: Client, args, out: Printer) -> int:
    trial = client.trials.complete(args.trial, dict(args.metric), steps_completed=args.steps,
                                   message=args.message or "")
    out.items([trial], TRIAL_TABLE, _trial_row(_Objectives(client)))
    return 0


def studies_update(client: Client, args, out: Printer) -> int:
    """The search settings of a study, changed while it runs or before."""
    fields: dict = {}
    if args.algorithm_setting and args.algorithm is None:
        raise UsageError("--algorithm-setting needs --algorithm (the settings replace the algorithm's)")
    if args.early_stopping_setting and args.early_stopping is None:
        raise UsageError("--early-stopping-setting needs --early-stopping (the settings replace the rule's)")
    if args.algorithm is not None:
        fields["algorithm"] = algorithm_spec(args.algorithm, args.algorithm_setting)
    if args.early_stopping is not None:
        rule = "" if args.early_stopping == "none" else args.early_stopping
        fields["early_stopping"] = algorithm_spec(rule, args.early_stopping_setting)
    for name in ("max_trials", "parallel_trials", "max_failed_trials"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    if not fields:
        raise UsageError("nothing to change: give --algorithm, --early-stopping, --max-trials, --parallel-trials "
                         "or --max-failed-trials")
    study = client.studies.update(_study_id(client, args.study), **fields)
    out.items([study], STUDY_TABLE, _study_row)
    return 0


def studies_validate(client: Client, args, out: Printer) -> int:
    answer = from_study_file(args.file, client.studies.validate_settings)
    if out.as_table:
        out.text(f"the space, algorithm and early-stopping rule of {args.file} are valid\n"
                 f"algorithms: {', '.join(answer.algorithms)}\n"
                 f"early-stopping rules: {', '.join(answer.early_stopping_rules)}")
    else:
        out.one(answer, Table(["ALGORITHMS", "EARLY_STOPPING_RULES"]),
                lambda a: [" ".join(a.algorithms), " ".join(a.early_stopping_rules)])
    return 0


DECISION_TABLE = Table(["TRIAL", "STOP", "RULE", "STEP", "VALUE", "THRESHOLD", "REASON"], flex="REASON",
                       right={"TRIAL", "STEP", "VALUE", "THRESHOLD"})


def _decision_row(d) -> list[str]:
    return [str(d.trial_id), "yes" if d.should_stop else "no", d.rule, str(d.step) if d.step else "",
            number(d.value) if d.HasField("value") else "", number(d.threshold) if d.HasField("threshold") else "",
            d.reason]


def studies_check_stopping(client: Client, args, out: Printer) -> int:
    decisions = client.studies.check_early_stopping(_study_id(client, args.study), args.trial or ())
    out.items(decisions, DECISION_TABLE, _decision_row)
    return 0
