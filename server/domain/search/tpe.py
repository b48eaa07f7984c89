"""Tree-structured Parzen estimator (TPE), vectorized with numpy, with its
state kept warm between calls.

The model: results are split into the best few ("good", a fraction gamma
of them, at most max_good) and the rest ("bad"). Each group becomes a
density over the unit cube, a mixture of one kernel per point plus a flat
prior kernel: truncated Gaussians on [0, 1] for numeric coordinates,
smoothed one-hot distributions for categories. Candidates are drawn from
the good density and the one where good/bad is largest is suggested.

The kernels are multivariate (one kernel per trial over all coordinates, so
interactions between parameters survive) and share one bandwidth per
coordinate within a group: Scott's factor times the group's spread, clipped
between a floor that shrinks as results accumulate and the prior's width.
A shared bandwidth makes the log density of all kernels at all candidates
one matrix product, so a suggestion at 10,000 results costs a few
milliseconds.

What is kept: the encoded points and losses of all results in arrays that
grow by doubling; update() encodes only the trials it is given and
replaces a trial given again in place. Infeasible trials are results with
an infinite loss (always bad); failed trials are forgotten. With
constant_liar (the default), running trials and the designer's own
suggestions not yet reported back join the bad group, so workers asking at
the same time are steered away from each other; a candidate whose
assignment is already taken (running, suggested or tried) is passed over
while any other candidate is free.

Until n_startup_trials results exist, points are random, drawn like random
search's from (seed, i).

Settings: n_startup_trials (default 10), n_ei_candidates (default 24),
gamma (default 0.1), max_good (default 25), prior_weight (default 1.0),
constant_liar (default true), random_state (a non-negative integer seed in
place of the study's).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import logsumexp, ndtr, ndtri

from ..models import ParameterSpec
from .base import Assignment, Designer, Observed, Outcome
from .registry import register
from .settings import Settings, point_rng
from .space import Space

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
# How often a drawn point may turn out to be taken before one is kept anyway.
_REDRAWS = 8


class _Group:
    """One density: a kernel per point plus the flat prior, ready to evaluate
    at candidates and to draw from."""

    def __init__(self, space: Space, points: np.ndarray, weights: np.ndarray, prior_weight: float):
        self.n = len(points)
        num, cat = space.numeric, space.categorical
        self.mu = points[:, num]
        self.cats = np.floor(points[:, cat] * [space.dims[i].count for i in cat]).astype(np.int64)
        self.cats = np.minimum(self.cats, np.asarray([space.dims[i].count - 1 for i in cat], dtype=np.int64))
        self.n_choices = np.asarray([space.dims[i].count for i in cat], dtype=np.int64)
        total = weights.sum() + prior_weight
        self.log_w = np.log(weights / total) if self.n else np.empty(0)
        self.log_prior_w = math.log(prior_weight / total)
        self.sigma = self._bandwidth(space, num)
        # Each kernel's mass inside [0, 1] per coordinate, as one log term per kernel.
        if self.n and len(num):
            mass = ndtr((1.0 - self.mu) / self.sigma) - ndtr(-self.mu / self.sigma)
            self.log_mass = np.log(np.maximum(mass, 1e-300)).sum(axis=1)
        else:
            self.log_mass = np.zeros(self.n)
        self.prior_log_mass = len(num) * math.log(ndtr(0.5) - ndtr(-0.5))
        # Category smoothing: every kernel puts this much on each category
        # besides 1 on its own, as Optuna's categorical estimator does.
        self.smooth = prior_weight / (self.n + 1)

    def _bandwidth(self, space: Space, num: list[int]) -> np.ndarray:
        d = max(len(num), 1)
        n = max(self.n, 1)
        factor = n ** (-1.0 / (d + 4))
        if self.n > 1:
            spread = self.mu.std(axis=0)
        else:
            spread = np.full(len(num), 0.5)
        floor = np.full(len(num), 1.0 / min(100.0, self.n + 1.0))
        for j, i in enumerate(num):
            size = space.dims[i].size
            if size:
                floor[j] = max(floor[j], 0.5 / size)
        return np.clip(spread * factor, floor, np.maximum(floor, 0.5 * factor))

    def log_density(self, x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
        """log of the density at m candidates (x_num m x numeric, x_cat m x categorical)."""
        m = len(x_num)
        prior = np.full(m, self.log_prior_w - self.prior_log_mass)
        if x_num.shape[1]:
            prior += (-0.5 * ((x_num - 0.5) ** 2).sum(axis=1)) - x_num.shape[1] * _LOG_SQRT_2PI
        prior -= float(np.log(self.n_choices).sum())
        if not self.n:
            return prior
        xs = x_num / self.sigma
        ms = self.mu / self.sigma
        sq = (xs**2).sum(axis=1)[:, None] - 2.0 * xs @ ms.T + (ms**2).sum(axis=1)[None, :]
        log_k = -0.5 * np.maximum(sq, 0.0)
        log_k += self.log_w - self.log_mass - np.log(self.sigma).sum() - x_num.shape[1] * _LOG_SQRT_2PI
        for j, k in enumerate(self.n_choices):
            own = self.cats[:, j][None, :] == x_cat[:, j][:, None]
            log_k += np.where(own, math.log(1.0 + self.smooth), math.log(self.smooth)) - math.log(1.0 + k * self.smooth)
        return np.logaddexp(logsumexp(log_k, axis=1), prior)

    def sample(self, rng: np.random.Generator, m: int) -> tuple[np.ndarray, np.ndarray]:
        probs = np.append(np.exp(self.log_w), math.exp(self.log_prior_w))
        pick = rng.choice(self.n + 1, size=m, p=probs / probs.sum())
        from_prior = pick == self.n
        kernel = np.minimum(pick, max(self.n - 1, 0))
        d = self.mu.shape[1]
        if self.n:
            mu = np.where(from_prior[:, None], 0.5, self.mu[kernel])
        else:
            mu = np.full((m, d), 0.5)
        sigma = np.where(from_prior[:, None], 1.0, self.sigma[None, :])
        lo, hi = ndtr(-mu / sigma), ndtr((1.0 - mu) / sigma)
        x_num = np.clip(mu + sigma * ndtri(lo + rng.random((m, d)) * (hi - lo)), 0.0, 1.0)
        c = len(self.n_choices)
        x_cat = np.floor(rng.random((m, c)) * self.n_choices).astype(np.int64)
        if self.n and c:
            # A kernel keeps its own category with probability 1 / (1 + k * smooth)
            # and otherwise draws uniformly, which adds up to its smoothed one-hot.
            keep = rng.random((m, c)) < 1.0 / (1.0 + self.n_choices * self.smooth)
            keep &= ~from_prior[:, None]
            x_cat = np.where(keep, self.cats[kernel], x_cat)
        return x_num, x_cat


@register
class TPE(Designer):
    name = "tpe"
    settings_help = {
        "n_startup_trials": "results before the model is used; points are random until then (default 10)",
        "n_ei_candidates": "candidates drawn from the good density per suggestion (default 24)",
        "gamma": "fraction of the results that count as good, 0 < gamma <= 1 (default 0.1)",
        "max_good": "at most this many results count as good (default 25)",
        "prior_weight": "weight of the flat prior kernel in each density, > 0 (default 1.0)",
        "constant_liar": "true (default): running trials count as bad results so parallel workers spread out",
        "random_state": "non-negative integer seed used instead of the study's seed",
    }

    def __init__(self, space: Sequence[ParameterSpec], settings: Mapping[str, str], seed: int):
        super().__init__(space, settings, seed)
        s = Settings(self.name, settings, self.settings_help)
        self.n_startup_trials = s.integer("n_startup_trials", 10, low=0, high=1_000_000)
        self.n_ei_candidates = s.integer("n_ei_candidates", 24, low=1, high=10_000)
        self.gamma = s.number("gamma", 0.1, 0.0, 1.0, low_open=True)
        self.max_good = s.integer("max_good", 25, low=1, high=1_000_000)
        self.prior_weight = s.number("prior_weight", 1.0, 0.0, 1e6, low_open=True)
        self.constant_liar = s.boolean("constant_liar", True)
        self.seed = s.seed(seed)
        self._space = Space(self.space)
        d = len(self._space)
        # Results, in the order they arrived: rows [0, _n) of _points and _loss.
        self._points = np.empty((64, d))
        self._loss = np.empty(64)
        self._n = 0
        self._row: dict[int, int] = {}
        self._row_id: list[int] = []
        self._active: dict[int, np.ndarray] = {}
        self._active_keys: dict[int, tuple] = {}
        # Suggested since the last update; the next update's active set holds them.
        self._pending: list[np.ndarray] = []
        self._taken: set[tuple] = set()

    @property
    def n_results(self) -> int:
        """Results the model learns from: completed and infeasible trials."""
        return self._n

    # --- what is known ---------------------------------------------------------------------------

    def update(self, completed: Sequence[Observed], active: Sequence[Observed]) -> None:
        for o in completed:
            if o.outcome == Outcome.ACTIVE:
                continue
            self._active.pop(o.trial_id, None)
            self._active_keys.pop(o.trial_id, None)
            point = self._space.encode(o.params)
            loss = o.loss if o.outcome == Outcome.COMPLETED else math.inf
            if o.outcome == Outcome.FAILED or point is None or loss is None or math.isnan(loss):
                self._forget(o.trial_id)
                continue
            self._store(o.trial_id, point, float(loss))
            self._taken.add(self._space.key(o.params))
        running = [o for o in completed if o.outcome == Outcome.ACTIVE] + list(active)
        now: dict[int, np.ndarray] = {}
        keys: dict[int, tuple] = {}
        for o in running:
            known = self._active.get(o.trial_id)
            point = known if known is not None else self._space.encode(o.params)
            if point is None:
                continue
            self._forget(o.trial_id)  # running again: its old result no longer stands
            now[o.trial_id] = point
            keys[o.trial_id] = self._active_keys.get(o.trial_id) or self._space.key(o.params)
        self._active, self._active_keys = now, keys
        self._pending = []

    def _store(self, trial_id: int, point: np.ndarray, loss: float) -> None:
        row = self._row.get(trial_id)
        if row is None:
            if self._n == len(self._loss):
                self._points = np.concatenate([self._points, np.empty_like(self._points)])
                self._loss = np.concatenate([self._loss, np.empty_like(self._loss)])
            row = self._n
            self._n += 1
            self._row[trial_id] = row
            self._row_id.append(trial_id)
        self._points[row] = point
        self._loss[row] = loss

    def _forget(self, trial_id: int) -> None:
        row = self._row.pop(trial_id, None)
        if row is None:
            return
        last = self._n - 1
        if row != last:
            # The last row takes the place of the removed one.
            self._points[row] = self._points[last]
            self._loss[row] = self._loss[last]
            moved = self._row_id[last]
            self._row_id[row] = moved
            self._row[moved] = row
        self._row_id.pop()
        self._n = last

    # --- suggestions -----------------------------------------------------------------------------

    def suggest(self, count: int, index: int) -> list[Assignment]:
        out = []
        for j in range(max(count, 0)):
            rng = point_rng(self.seed, index + j)
            if self._n < max(self.n_startup_trials, 1):
                params = self._random(rng)
            else:
                params = self._from_model(rng)
            self._taken_now(params)
            out.append(params)
        return out

    def _is_taken(self, params: Assignment) -> bool:
        key = self._space.key(params)
        return key in self._taken or key in self._active_keys.values()

    def _taken_now(self, params: Assignment) -> None:
        point = self._space.encode(params)
        if point is not None:
            self._pending.append(point)
        self._taken.add(self._space.key(params))

    def _random(self, rng: np.random.Generator) -> Assignment:
        params = self._space.decode(rng.random(len(self._space)))
        for _ in range(_REDRAWS):
            if not self._is_taken(params):
                break
            params = self._space.decode(rng.random(len(self._space)))
        return params

    def _groups(self) -> tuple[_Group, _Group]:
        n = self._n
        points, loss = self._points[:n], self._loss[:n]
        finite = int(np.isfinite(loss).sum())
        n_good = min(math.ceil(self.gamma * n), self.max_good, finite)
        good = np.zeros(n, dtype=bool)
        if n_good:
            good[np.argpartition(loss, n_good - 1)[:n_good]] = True
        bad_points = points[~good]
        # Older bad results weigh less, as in Optuna: a ramp up to 1 over all
        # but the newest max_good of them (rows are in order of arrival).
        n_bad = len(bad_points)
        bad_w = np.ones(n_bad)
        if n_bad > self.max_good:
            bad_w[: n_bad - self.max_good] = np.linspace(1.0 / n_bad, 1.0, n_bad - self.max_good)
        if self.constant_liar and (self._active or self._pending):
            liars = np.array(list(self._active.values()) + self._pending)
            bad_points = np.concatenate([bad_points, liars])
            bad_w = np.concatenate([bad_w, np.ones(len(liars))])
        return (_Group(self._space, points[good], np.ones(n_good), self.prior_weight),
                _Group(self._space, bad_points, bad_w, self.prior_weight))

    def _from_model(self, rng: np.random.Generator) -> Assignment:
        good, bad = self._groups()
        x_num, x_cat = good.sample(rng, self.n_ei_candidates)
        score = good.log_density(x_num, x_cat) - bad.log_density(x_num, x_cat)
        first = None
        for c in np.argsort(-score, kind="stable"):
            params = self._decode(x_num[c], x_cat[c])
            if first is None:
                first = params
            if not self._is_taken(params):
                return params
        return self._random(rng) if first is None else first

    def _decode(self, x_num: np.ndarray, x_cat: np.ndarray) -> Assignment:
        u = np.empty(len(self._space))
        u[self._space.numeric] = x_num
        counts = np.asarray([self._space.dims[i].count for i in self._space.categorical])
        u[self._space.categorical] = (x_cat + 0.5) / counts if len(counts) else x_cat
        return self._space.decode(u)
