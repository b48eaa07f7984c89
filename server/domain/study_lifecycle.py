"""How a study leaves ACTIVE, and how many trials it may still hand out.

A study completes when its goal is reached, when max_trials trials have
ended, when its search space is exhausted, or when a user completes it; it
fails when max_failed_trials trials ended in ERROR; a user can stop it. Each
way out records a state message that says which, and every later attempt to
leave ACTIVE again is refused: whichever happens first wins.
"""

from __future__ import annotations

from .errors import FailedPrecondition
from .models import ObjectiveType, Study, StudyState


def leave(study: Study, state: StudyState, message: str) -> Study:
    """study moved out of ACTIVE; ILLEGAL_TRANSITION when it left already."""
    if study.state != StudyState.ACTIVE:
        raise FailedPrecondition(
            f"study {study.id} is {study.state.value}, not ACTIVE",
            reason="ILLEGAL_TRANSITION",
            metadata={"study_id": study.id, "from_state": study.state, "to_state": state},
        )
    study.state = state
    study.state_message = message
    return study


def signed_goal(study: Study) -> float | None:
    """The goal on the scale of searcher_metric_value (lower is better)."""
    goal = study.objective.goal
    if goal is None:
        return None
    return -goal if study.objective.type == ObjectiveType.MAXIMIZE else goal


def goal_message(study: Study, signed_value: float, trial_id: int) -> str | None:
    """Why the study is done when a trial's best (signed) value reaches the
    goal; None when it does not."""
    target = signed_goal(study)
    if target is None or signed_value > target:
        return None
    value = -signed_value if study.objective.type == ObjectiveType.MAXIMIZE else signed_value
    relation = ">=" if study.objective.type == ObjectiveType.MAXIMIZE else "<="
    return f"goal reached: {study.objective.metric_name} {value:g} {relation} {study.objective.goal:g} in trial {trial_id}"


def suggestion_room(study: Study, unfinished: int, wanted: int) -> int:
    """How many new trials SuggestTrials may make now."""
    if study.state != StudyState.ACTIVE:
        return 0
    room = wanted
    if study.parallel_trials:
        room = min(room, study.parallel_trials - unfinished)
    if study.max_trials:
        room = min(room, study.max_trials - study.trial_count)
    return max(0, room)


def budget_message(study: Study, unfinished: int) -> str | None:
    """Why the study is done once every one of its max_trials has ended."""
    if study.max_trials and study.trial_count >= study.max_trials and unfinished == 0:
        return f"max_trials reached: all {study.max_trials} trials ended"
    return None


def failures_message(study: Study, failed: int) -> str | None:
    if study.max_failed_trials and failed >= study.max_failed_trials:
        return f"max_failed_trials reached: {failed} trials ended in ERROR"
    return None


EXHAUSTED = "search space exhausted: every point was handed out"
