"""Grid search: every combination of the study's values exactly once.

A DOUBLE needs a step (an unstepped one has no finite grid and is refused
with a SettingsError naming it); an INT without a step takes every whole
number in range; DISCRETE values are taken in ascending order, categories
in the order the study lists them.

Point i is i written in mixed radix, one digit per parameter with the last
parameter the fastest, so that it depends on i alone: any replica hands out
the next point from the study's count, and no point comes twice. Once i
reaches the product of the sizes, suggest returns fewer points than asked
(none at all from then on): the grid is exhausted.

Settings: none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from ..models import ParameterSpec
from .base import Assignment, Designer, Observed, SettingsError
from .registry import register
from .settings import Settings
from .space import Space


@register
class GridSearch(Designer):
    name = "grid"
    learns = False
    settings_help: ClassVar[Mapping[str, str]] = {}

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        super().__init__(space, settings, seed)
        Settings(self.name, settings, self.settings_help)
        self._space = Space(self.space)
        self._sizes: list[int] = []
        for dim in self._space.dims:
            if dim.size is None:
                raise SettingsError(dim.name, f"grid search needs a step for DOUBLE parameter {dim.name!r}")
            self._sizes.append(dim.size)
        self.total = 1
        for size in self._sizes:
            self.total *= size

    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        pass  # the order of the grid does not depend on results

    def point(self, i: int) -> Assignment:
        """The i-th point of the grid, 0 <= i < total."""
        digits = []
        for size in reversed(self._sizes):
            i, k = divmod(i, size)
            digits.append(k)
        digits.reverse()
        return {dim.name: dim.value_at(k) for dim, k in zip(self._space.dims, digits)}

    def suggest(self, count: int, index: int) -> list[Assignment]:
        end = min(index + count, self.total)
        return [self.point(i) for i in range(max(index, 0), end)]
