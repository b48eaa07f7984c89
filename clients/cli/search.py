"""studies suggest, stop and complete, the search verbs of a study, and
trials complete, which ends a trial a driver ran with its result."""

from __future__ import annotations

import sys

from ..sdk import Client
from .commands import (
    STUDY_TABLE,
    TRIAL_TABLE,
    _Objectives,
    _study_id,
    _study_row,
    _trial_row,
)
from .output import Printer


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
