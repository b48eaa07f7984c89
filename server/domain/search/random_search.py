"""Random search: every point uniform in the study's unit cube (see space.py
for what uniform means per parameter type).

Point i is drawn from a generator seeded with (seed, i) alone, so a replica
that knows how many points the study handed out draws the next one without
any state, and a restarted server hands out what it would have.

Settings: random_state (a non-negative integer seed in place of the study's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..models import ParameterSpec
from .ahead import PointsAhead
from .base import Assignment, Designer, Observed
from .registry import register
from .settings import Settings, point_rng
from .space import Space


@register
class RandomSearch(Designer):
    name = "random"
    learns = False
    settings_help = {"random_state": "non-negative integer seed used instead of the study's seed"}

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        super().__init__(space, settings, seed)
        self.seed = Settings(self.name, settings, self.settings_help).seed(seed)
        self._space = Space(self.space)
        self._ahead = PointsAhead(self._draw)

    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        pass  # results do not change where random points fall

    def suggest(self, count: int, index: int) -> list[Assignment]:
        return self._ahead.take(index, count)

    def _draw(self, index: int, count: int) -> list[Assignment]:
        d = len(self._space)
        return [self._space.decode(point_rng(self.seed, index + j).random(d)) for j in range(count)]
