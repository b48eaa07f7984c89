"""How the rules read a curve, in one place so that they all read it alike.

- A trial has reached step s once it reported some step >= s (curves may
  have gaps: a trial that reported 8 and 10 has reached 9).
- Its value at s is the loss of its last point at or before s: what it had
  when it got there. A trial whose first report came after s is read at its
  first point.
- Losses are compared with NaN ranked as +inf, worse than every number; a
  running average that took in a NaN is +inf.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np


def index_at(steps: Sequence[int], step: int) -> int:
    """The index of the point a curve with these (ascending) steps is read at
    for step; only meaningful for a curve with at least one point."""
    return max(bisect.bisect_right(steps, step) - 1, 0)


def indices_at(steps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """index_at for several steps at once."""
    return np.maximum(np.searchsorted(steps, at, side="right") - 1, 0)


def ranked(losses: np.ndarray) -> np.ndarray:
    """Losses as float64 the way they are compared: NaN becomes +inf."""
    values = np.asarray(losses, dtype=np.float64)
    return np.where(np.isnan(values), np.inf, values)


def rank(loss: float) -> float:
    return math.inf if math.isnan(loss) else loss


def running_averages(losses: np.ndarray) -> np.ndarray:
    """Mean of the first i+1 ranked losses, for each i."""
    values = ranked(losses)
    # -inf then +inf (or the reverse) sums to NaN; a NaN-tainted average is +inf.
    with np.errstate(invalid="ignore"):
        averages = np.cumsum(values) / np.arange(1, len(values) + 1)
    return np.where(np.isnan(averages), np.inf, averages)


def show(value: float | None) -> str:
    """A loss as a reason sentence prints it."""
    return "none" if value is None else f"{value:.4g}"
