"""A study's progress, decided inside the writes that make it: a trial that
ends, a validation that reaches the goal, a suggestion that finds the space
exhausted. The study's row is locked before it is decided on, so two
replicas ending the last two trials at once complete the study once."""

from __future__ import annotations

from ...domain import study_lifecycle
from ...domain.models import Study, StudyState, Trial, TrialState
from ...domain.trial_lifecycle import TERMINAL
from . import records
from .query import marks
from .statements import Tx

_TERMINAL = [s.value for s in TERMINAL]
# Named rather than "not terminal", so the (study_id, state) index finds them.
_UNFINISHED = [s.value for s in TrialState if s not in TERMINAL]


def locked(tx: Tx, study_id: int) -> Study | None:
    row = tx.one("SELECT * FROM studies WHERE id = ?" + tx.dialect.for_update, (study_id,))
    return None if row is None else records.study_from_row(row)


def save(tx: Tx, study: Study, now: int) -> None:
    """Writes a study read with locked() back, as a new version."""
    row = records.study_row(study)
    tx.run(
        "UPDATE studies SET state = ?, trial_count = ?, suggestion_count = ?, update_time = ?, version = version + 1,"
        " body = ? WHERE id = ?",
        (row["state"], row["trial_count"], row["suggestion_count"], now, row["body"], study.id),
    )


def save_counts(tx: Tx, study: Study, now: int) -> None:
    """Writes back a locked study whose trial and suggestion counts are all
    that changed, as a new version; its body stays as it is."""
    tx.run("UPDATE studies SET trial_count = ?, suggestion_count = ?, update_time = ?, version = version + 1"
           " WHERE id = ?", (study.trial_count, study.suggestion_count, now, study.id))


# Parsed unfinished trials by id, with the version they were parsed at.
ParsedTrials = dict[int, tuple[int, Trial]]
MAX_PARSED = 50_000


def unfinished(tx: Tx, study_id: int, parsed: ParsedTrials) -> list[Trial]:
    """The study's unfinished trials, in id order, for deciding on them
    (their metric summaries are not read). A trial whose version is the one
    in parsed is not parsed again; the trials are shared: read them, do not
    change them."""
    # Sorted here, not by ORDER BY id: SQLite would then walk every trial of
    # the study in id order rather than the (study_id, state, id) index.
    versions = sorted(tx.tuples(f"SELECT id, version FROM trials WHERE study_id = ? AND state IN ({marks(_UNFINISHED)})",
                                (study_id, *_UNFINISHED)))
    found: dict[int, Trial] = {}
    stale = []
    for trial_id, version in versions:
        entry = parsed.get(trial_id)
        if entry is not None and entry[0] == version:
            found[trial_id] = entry[1]
        else:
            stale.append(trial_id)
    if len(parsed) + len(stale) > MAX_PARSED:
        parsed.clear()
    for start in range(0, len(stale), 500):
        chunk = stale[start:start + 500]
        for row in tx.all(f"SELECT * FROM trials WHERE id IN ({marks(chunk)})", tuple(chunk)):
            trial = records.trial_from_row(row)
            found[trial.id] = trial
            parsed[trial.id] = (trial.version, trial)
    return [found[trial_id] for trial_id, _ in versions]


def keep_parsed(parsed: ParsedTrials, trials: list[Trial]) -> None:
    """Trials as a committed write stored them, so the next unfinished()
    finds them parsed; a finished one leaves the cache."""
    for trial in trials:
        if trial.state in TERMINAL:
            parsed.pop(trial.id, None)
        else:
            parsed[trial.id] = (trial.version, trial)


def _count(tx: Tx, study_id: int, states: list[str], negate: bool = False) -> int:
    op = "NOT IN" if negate else "IN"
    return tx.value(f"SELECT count(*) FROM trials WHERE study_id = ? AND state {op} ({marks(states)})",
                    (study_id, *states))


def leave_active(tx: Tx, study_id: int, state: StudyState, message: str, now: int) -> bool:
    """Moves an ACTIVE study out of ACTIVE; False when it was not ACTIVE."""
    study = locked(tx, study_id)
    if study is None or study.state != StudyState.ACTIVE:
        return False
    save(tx, study_lifecycle.leave(study, state, message), now)
    return True


def after_trial_change(tx: Tx, before: Trial, after: Trial, now: int,
                       parsed: records.ParsedStudies | None = None) -> None:
    """A trial of a study that just ended may fail the study (too many
    errors) or complete it (its last trial of max_trials). parsed: as for
    records.study_from_row."""
    if not after.study_id or after.state not in TERMINAL or before.state in TERMINAL:
        return
    study = _active(tx, after.study_id, parsed)
    if study is None:
        return
    could_fail = after.state == TrialState.ERROR and study.max_failed_trials
    could_complete = study.max_trials and study.trial_count >= study.max_trials
    if not (could_fail or could_complete):
        return
    # Locked, and read again, only when the study may end here: where replicas
    # write at once, two trials ending together would each count the other
    # as unfinished, and neither would end the study. (Locking the study on
    # every ending would wait, and deadlock, on writes that lock a study
    # before its trials.)
    study = _active(tx, after.study_id, parsed, lock=True)
    if study is None:
        return
    if after.state == TrialState.ERROR and study.max_failed_trials:
        message = study_lifecycle.failures_message(study, _count(tx, study.id, [TrialState.ERROR.value]))
        if message:
            leave_active(tx, study.id, StudyState.FAILED, message, now)
            return
    if study.max_trials and study.trial_count >= study.max_trials:
        message = study_lifecycle.budget_message(study, _count(tx, study.id, _TERMINAL, negate=True))
        if message:
            leave_active(tx, study.id, StudyState.COMPLETED, message, now)


def _active(tx: Tx, study_id: int, parsed: records.ParsedStudies | None, lock: bool = False) -> Study | None:
    row = tx.one("SELECT * FROM studies WHERE id = ?" + (tx.dialect.for_update if lock else ""), (study_id,))
    if row is None:
        return None
    study = records.study_from_row(row, parsed)
    return study if study.state == StudyState.ACTIVE else None


def after_improvement(tx: Tx, study: Study | None, trial_id: int, signed: float, now: int) -> None:
    """A trial's new best validation may reach the study's goal."""
    if study is None or study.state != StudyState.ACTIVE:
        return
    message = study_lifecycle.goal_message(study, signed, trial_id)
    if message:
        leave_active(tx, study.id, StudyState.COMPLETED, message, now)
