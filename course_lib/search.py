"""Hyperparameter search at a fixed budget: grid, random and Optuna's TPE, compared fairly.

Each method gets the same ``objective`` (a function of a dict of hyperparameters returning a
number to *minimise*, e.g. a validation loss or error) and the same number of trials. The
result records every trial in order, so the **best-so-far curve**
:math:`b_t = \\min_{s \\le t} f(\\theta_s)` shows how fast each method finds good settings.

* ``"grid"``: :math:`k` values per hyperparameter (evenly spaced, on a log scale for
  ``log=True``), all :math:`k^d` combinations in a random order; the budget must be
  :math:`k^d`;
* ``"random"``: every hyperparameter drawn independently, uniform (or log-uniform) in its range;
* ``"tpe"``: Optuna's Tree-structured Parzen Estimator: after ``n_startup`` random trials it
  models the good and the bad trials' densities :math:`\\ell(\\theta)` and :math:`g(\\theta)` and
  proposes the candidate with the largest :math:`\\ell(\\theta)/g(\\theta)`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Range", "SearchResult", "grid_points", "random_points", "run_search", "best_so_far"]

Method = Literal["grid", "random", "tpe"]
Objective = Callable[[dict[str, float]], float]


@dataclass(frozen=True)
class Range:
    """A continuous hyperparameter in ``[low, high]``, searched on a log scale if ``log``."""

    low: float
    high: float
    log: bool = False

    def grid(self, k: int) -> np.ndarray:
        """``k`` evenly spaced values from ``low`` to ``high`` (geometric for ``log=True``)."""
        if self.log:
            return np.geomspace(self.low, self.high, k)
        return np.linspace(self.low, self.high, k)

    def sample(self, rng: np.random.Generator) -> float:
        if self.log:
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


@dataclass
class SearchResult:
    """Every trial of one search, in the order it ran."""

    method: str
    params: list[dict[str, float]] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def best_so_far(self) -> np.ndarray:
        return best_so_far(self.values)

    @property
    def best(self) -> tuple[dict[str, float], float]:
        i = int(np.nanargmin(self.values))
        return self.params[i], self.values[i]


def best_so_far(values: list[float] | np.ndarray) -> np.ndarray:
    """Running minimum ``(n_trials,)``; a NaN trial (a diverged run) counts as ``+inf``."""
    v = np.asarray(values, dtype=float)
    return np.minimum.accumulate(np.where(np.isnan(v), np.inf, v))


def grid_points(space: Mapping[str, Range], n_trials: int, seed: int = 0) -> list[dict[str, float]]:
    """The full grid of ``k`` values per hyperparameter, ``k**d == n_trials``, shuffled with ``seed``.

    Raises ``ValueError`` when ``n_trials`` is not a ``d``-th power (a grid cannot spend any
    other budget exactly).
    """
    d = len(space)
    k = round(n_trials ** (1 / d))
    if k**d != n_trials:
        raise ValueError(f"a grid over {d} hyperparameters needs k**{d} trials, got {n_trials}")
    axes = [r.grid(k) for r in space.values()]
    points = [dict(zip(space, map(float, combo))) for combo in itertools.product(*axes)]
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[i] for i in order]


def random_points(
    space: Mapping[str, Range], n_trials: int, seed: int = 0
) -> list[dict[str, float]]:
    """``n_trials`` independent draws: each hyperparameter uniform (log-uniform) in its range."""
    rng = np.random.default_rng(seed)
    return [{name: r.sample(rng) for name, r in space.items()} for _ in range(n_trials)]


def run_search(
    method: Method,
    objective: Objective,
    space: Mapping[str, Range],
    n_trials: int,
    seed: int = 0,
    n_startup: int = 5,
) -> SearchResult:
    """Run ``n_trials`` trials of ``method`` on ``objective`` (minimised) and record them all.

    ``seed`` fixes the grid's order, the random draws and TPE's sampler
    (``optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)``). A trial that
    returns NaN is recorded as NaN (and reported to Optuna as failed-high, ``inf``).
    """
    result = SearchResult(method)
    if method in ("grid", "random"):
        make = grid_points if method == "grid" else random_points
        for point in make(space, n_trials, seed):
            result.params.append(point)
            result.values.append(float(objective(point)))
        return result
    if method != "tpe":
        raise ValueError(f"method must be 'grid', 'random' or 'tpe', got {method!r}")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def wrapped(trial: optuna.Trial) -> float:
        point = {
            name: trial.suggest_float(name, r.low, r.high, log=r.log) for name, r in space.items()
        }
        value = float(objective(point))
        result.params.append(point)
        result.values.append(value)
        return value if np.isfinite(value) else float("inf")

    study.optimize(wrapped, n_trials=n_trials)
    return result
