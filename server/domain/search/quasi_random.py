"""Quasi-random search: a scrambled Sobol (or Halton) sequence over the unit
cube, which covers the space more evenly than independent random points
for the same budget.

Point i is the i-th point of the sequence scrambled with the seed, so it is
a function of (seed, i): two designers built with the same seed agree point
by point, and whichever replica asks hands out the next one. The engine is
kept between calls and moved with fast_forward (or reset, to go back), so
consecutive calls cost only the points they draw.

Settings: sequence (sobol or halton, default sobol), scramble (true or
false, default true; an unscrambled Sobol sequence starts at the corner of
the cube), random_state (a non-negative integer seed in place of the
study's).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import qmc

from ..models import ParameterSpec
from .ahead import PointsAhead
from .base import Assignment, Designer, Observed
from .registry import register
from .settings import Settings
from .space import Space


@register
class QuasiRandomSearch(Designer):
    name = "quasirandom"
    learns = False
    settings_help = {
        "sequence": "sobol (default) or halton",
        "scramble": "true (default) or false: scramble the sequence with the seed",
        "random_state": "non-negative integer seed used instead of the study's seed",
    }

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        super().__init__(space, settings, seed)
        s = Settings(self.name, settings, self.settings_help)
        self.sequence = s.choice("sequence", "sobol", ("sobol", "halton"))
        self.scramble = s.boolean("scramble", True)
        self.seed = s.seed(seed)
        self._space = Space(self.space)
        self._engine: qmc.QMCEngine | None = None
        self._position = 0
        self._ahead = PointsAhead(self._decoded)

    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        pass  # the sequence does not depend on results

    def _draw(self, index: int, count: int) -> np.ndarray:
        d = len(self._space)
        if d == 0:
            return np.empty((count, 0))
        if self._engine is None:
            kind = qmc.Sobol if self.sequence == "sobol" else qmc.Halton
            self._engine = kind(d, scramble=self.scramble, rng=self.seed % (1 << 63))
            self._position = 0
        if index < self._position:
            self._engine.reset()
            self._position = 0
        if index > self._position:
            self._engine.fast_forward(index - self._position)
        with warnings.catch_warnings():
            # Sobol's balance holds for powers of two drawn from the start; a
            # study takes its points a few at a time, which is what it wants.
            warnings.simplefilter("ignore", UserWarning)
            points = self._engine.random(count)
        self._position = index + count
        return points

    def suggest(self, count: int, index: int) -> list[Assignment]:
        return self._ahead.take(max(index, 0), count)

    def _decoded(self, index: int, count: int) -> list[Assignment]:
        return [self._space.decode(u) for u in self._draw(index, count)]
