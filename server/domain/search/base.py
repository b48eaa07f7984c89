"""What every search algorithm offers and what it is given."""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ..models import HyperparameterValue, ParameterSpec

Assignment = dict[str, HyperparameterValue]


class Outcome(str, enum.Enum):
    # Still running (or queued): its point is taken, its result unknown.
    ACTIVE = "ACTIVE"
    # Finished with an objective value.
    COMPLETED = "COMPLETED"
    # Ended without a usable value (error, killed, stopped before reporting).
    FAILED = "FAILED"
    # The training code said the point cannot be trained (early exit
    # INVALID_HP): not a result, and a point to steer away from.
    INFEASIBLE = "INFEASIBLE"


@dataclass(frozen=True)
class Observed:
    """One trial of the study, as the algorithm sees it."""

    trial_id: int
    params: Assignment
    outcome: Outcome
    # The objective as a loss, lower is better (a MAXIMIZE study's values
    # come negated); None unless outcome is COMPLETED.
    loss: float | None = None


class SettingsError(ValueError):
    """A bad algorithm setting; `setting` is its name, or the name of the
    parameter the algorithm cannot search, or "" for the algorithm name."""

    def __init__(self, setting: str, message: str, *, unknown: bool = False):
        super().__init__(message)
        self.setting = setting
        self.message = message
        # The setting's name is what is wrong, not its value.
        self.unknown = unknown


class Designer(abc.ABC):
    """A search algorithm bound to one study's space and settings."""

    # The name studies give in AlgorithmSpec.name.
    name: ClassVar[str]
    # Settings it takes, name -> description (for errors and docs).
    settings_help: ClassVar[Mapping[str, str]] = {}
    # False where points do not depend on the study's trials: such a
    # designer is told nothing, and the trials are not read for it.
    learns: ClassVar[bool] = True

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        """Raises SettingsError for an unknown setting, a bad value, or a
        space the algorithm cannot search (grid over an unstepped DOUBLE)."""
        self.space = list(space)
        self.seed = seed

    @abc.abstractmethod
    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        """Learns what changed since the last call: trials that finished
        (COMPLETED, FAILED or INFEASIBLE), and every trial running now (the
        whole set, replacing the one given before). A finished trial given
        again replaces what was known of it."""

    @abc.abstractmethod
    def suggest(self, count: int, index: int) -> list[Assignment]:
        """Up to count new points, every value inside the space and of its
        declared type. index is how many points the study handed out
        before, so that an algorithm whose i-th point is a function of
        (seed, i) hands out the same points whichever replica asks. Fewer
        than count (none at all) means the space is exhausted."""
