"""CMA-ES through the `cmaes` package's CMA (or SepCMA, its diagonal
variant for many parameters), over the unit-cube coordinates of the
DOUBLE, INT and DISCRETE parameters.

CATEGORICAL parameters have no place in a Gaussian: their values are drawn
at random, from (seed, i) like random search's, and CMA-ES searches the
numeric coordinates alone. A space with no numeric parameter is therefore
searched at random.

CMA-ES advances a generation at a time and has to be told exactly
population_size results of the generation it is in, while trials finish in
any order. Each suggestion is one ask() kept with its generation under the
assignment it decoded to; a result is matched to its candidate by that
assignment, so it joins the generation it was asked in. When the current
generation has population_size results they are told and the next
generation starts; a result of an older generation, or one that matches no
candidate (a trial the designer did not suggest), is not told. Candidates
are asked as long as suggestions are wanted, so more workers than
population_size keep busy. A failed trial's candidate is dropped (a later
one takes its place); an infeasible one is told as worse than every result
of its generation. A candidate that decodes to an assignment already
waiting for its result (INT and DISCRETE coordinates round) is asked again
a few times, then moved away from in growing steps, so pending suggestions
are not repeated while the space has free points. When the optimizer
says it has converged it starts again with a new seed.

Warm start: results of trials it did not ask for, told before it has asked
anything (the study's history, replayed into a designer built after a
server restart or a settings change), are not lost. Once at least
WARM_START_MIN of them have come, the optimizer starts from the
distribution of the best of them (cmaes' get_warm_start_mgd, WS-CMA-ES)
instead of the middle of the space.

Settings: sigma0 (initial step size in the unit cube, default 1/6),
population_size (default: CMA-ES's 4 + 3 ln d), variant (cma or sep,
default cma), random_state (a non-negative integer seed in place of the
study's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from cmaes import CMA, SepCMA, get_warm_start_mgd

from ..models import ParameterSpec
from .base import Assignment, Designer, Observed, Outcome, SettingsError
from .registry import register
from .settings import Settings, point_rng
from .space import Space

_REASKS = 10
_WIDEN = 20
# Prior results needed to start from their distribution; the best tenth of
# them (at least two) make it.
WARM_START_MIN = 10


@register
class CmaEs(Designer):
    name = "cmaes"
    settings_help = {
        "sigma0": "initial step size in the unit cube, 0 < sigma0 <= 1 (default 1/6)",
        "population_size": "candidates per generation, >= 4 (default 4 + 3 ln d)",
        "variant": "cma (full covariance, default) or sep (diagonal covariance, for many parameters)",
        "random_state": "non-negative integer seed used instead of the study's seed",
    }

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        super().__init__(space, settings, seed)
        s = Settings(self.name, settings, self.settings_help)
        self.sigma0 = s.number("sigma0", 1.0 / 6.0, 0.0, 1.0, low_open=True)
        size = s.integer("population_size", 0, low=4, high=100_000)
        self.population_size = size or None
        self.variant = s.choice("variant", "cma", ("cma", "sep"))
        self.seed = s.seed(seed)
        self._space = Space(self.space)
        self._numeric = self._space.numeric
        self._restarts = 0
        self._optimizer = self._new_optimizer() if self._numeric else None
        # assignment key -> [((restart, generation), x)] of candidates waiting for their result
        self._pending: dict[tuple, list[tuple[tuple[int, int], np.ndarray]]] = {}
        self._told: list[tuple[np.ndarray, float]] = []
        # Results of trials it did not ask for, while it has asked nothing.
        self._prior: list[tuple[np.ndarray, float]] = []
        self.warm_started = False

    def _new_optimizer(self, start: tuple[np.ndarray, float, np.ndarray] | None = None) -> CMA | SepCMA:
        d = len(self._numeric)
        kind = SepCMA if self.variant == "sep" and d > 1 else CMA
        mean, sigma, cov = start if start is not None else (np.full(d, 0.5), self.sigma0, None)
        extra = {"cov": cov} if cov is not None and kind is CMA else {}
        try:
            return kind(mean=mean, sigma=sigma, bounds=np.tile([0.0, 1.0], (d, 1)),
                        seed=(self.seed + self._restarts) % (1 << 32), population_size=self.population_size, **extra)
        except AssertionError as exc:
            raise SettingsError("population_size", f"is not one CMA-ES can use: {exc}") from None

    def _remember_prior(self, o: Observed) -> None:
        """A result it did not ask for, kept for a warm start while nothing is asked."""
        if self._pending or self._told or self._restarts or self.generation or self.warm_started:
            return
        if o.outcome != Outcome.COMPLETED or o.loss is None or not math.isfinite(o.loss):
            return
        u = self._space.encode(o.params)
        if u is not None:
            self._prior.append((u[self._numeric], float(o.loss)))

    def _warm_start(self) -> None:
        n = len(self._prior)
        if n < WARM_START_MIN:
            return
        mean, sigma, cov = get_warm_start_mgd(self._prior, gamma=max(0.1, 2 / n), alpha=0.1)
        mean = np.clip(mean, 0.0, 1.0)
        sigma = float(min(max(sigma, 1e-3), 1.0))
        self._optimizer = self._new_optimizer((mean, sigma, cov))
        self._prior = []
        self.warm_started = True

    @property
    def generation(self) -> int:
        return self._optimizer.generation if self._optimizer is not None else 0

    def _asked_in(self) -> tuple[int, int]:
        """The generation a candidate asked now belongs to; a restart begins
        its own count, so the restart is part of it."""
        assert self._optimizer is not None
        return self._restarts, self._optimizer.generation

    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        if self._optimizer is None:
            return
        for o in completed:
            if o.outcome == Outcome.ACTIVE:
                continue
            waiting = self._pending.get(self._space.key(o.params))
            if not waiting:
                self._remember_prior(o)
                continue
            generation, x = waiting.pop(0)
            if not waiting:
                del self._pending[self._space.key(o.params)]
            if o.outcome == Outcome.FAILED or generation != self._asked_in():
                continue
            if o.outcome == Outcome.COMPLETED and (o.loss is None or math.isnan(o.loss)):
                continue
            loss = o.loss if o.outcome == Outcome.COMPLETED and o.loss is not None else math.inf
            self._told.append((x, float(loss)))
            if len(self._told) == self._optimizer.population_size:
                self._tell()

    def _tell(self) -> None:
        assert self._optimizer is not None
        losses = [v for _, v in self._told]
        finite = [v for v in losses if math.isfinite(v)]
        # CMA-ES ranks its candidates, so an infeasible one only has to come last.
        worst = (max(finite) + (max(finite) - min(finite)) + 1.0) if finite else 0.0
        self._optimizer.tell([(x, v if math.isfinite(v) else worst) for x, v in self._told])
        self._told = []
        if self._optimizer.should_stop():
            self._restarts += 1
            self._optimizer = self._new_optimizer()

    def suggest(self, count: int, index: int) -> list[Assignment]:
        if self._prior and not self._pending:
            self._warm_start()
            self._prior = []
        out = []
        for j in range(max(count, 0)):
            rng = point_rng(self.seed, index + j)
            u = rng.random(len(self._space))
            if self._optimizer is None:
                out.append(self._space.decode(u))
                continue
            x, params = self._candidate(rng, u)
            self._pending.setdefault(self._space.key(params), []).append((self._asked_in(), x))
            out.append(params)
        return out

    def _candidate(self, rng: np.random.Generator, u: np.ndarray) -> tuple[np.ndarray, Assignment]:
        """A new candidate whose assignment is not waiting for a result already,
        while one can be found."""
        assert self._optimizer is not None
        for _ in range(_REASKS):
            x = self._optimizer.ask()
            u[self._numeric] = x
            params = self._space.decode(u)
            if self._space.key(params) not in self._pending:
                return x, params
        # A narrow distribution over few grid points keeps landing on taken
        # ones: step away from the last candidate, further each time.
        base = x
        for k in range(_WIDEN):
            x = np.clip(base + 0.05 * 1.5**k * rng.standard_normal(len(base)), 0.0, 1.0)
            u[self._numeric] = x
            params = self._space.decode(u)
            if self._space.key(params) not in self._pending:
                break
        return x, params
