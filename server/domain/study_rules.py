"""Rules about studies that span more than one field."""

from __future__ import annotations

from .errors import FailedPrecondition, require_etag
from .models import Study, StudyState


def check_etag(study: Study, etag: str) -> None:
    require_etag("study", study.id, study.version, etag)


def check_accepts_trials(study: Study) -> None:
    if study.state != StudyState.ACTIVE:
        raise FailedPrecondition(
            f"study {study.id} is {study.state.value} and takes no new trials",
            reason="ILLEGAL_TRANSITION",
            metadata={"study_id": study.id, "state": study.state},
        )
    if study.max_trials and study.trial_count >= study.max_trials:
        raise FailedPrecondition(
            f"study {study.id} already has max_trials={study.max_trials} trials",
            reason="STUDY_FULL",
            metadata={"study_id": study.id, "max_trials": study.max_trials},
        )


def check_deletable(study: Study, force: bool, etag: str = "") -> None:
    check_etag(study, etag)
    if study.trial_count and not force:
        raise FailedPrecondition(
            f"study {study.id} has {study.trial_count} trials; delete with force to remove them too",
            reason="RESOURCE_IN_USE",
            metadata={"study_id": study.id, "trial_count": study.trial_count},
        )
