"""Data whose examples are *not* independent, and the honest cross-validation for each kind.

Plain k-fold cross-validation assumes exchangeable examples. Three common violations, each with a
small generator or helper used in the chapter on evaluating classifiers:

* **groups**: several examples share a source (augmented copies of one image, one writer, one
  patient). :func:`jittered_copies` makes such data; the honest splitter is
  ``sklearn.model_selection.GroupKFold`` (all copies of a source in the same fold).
* **time**: examples are ordered and the world drifts. :func:`drifting_series` makes such data;
  the honest splitter trains on the past only, ``sklearn.model_selection.TimeSeriesSplit``
  (or ``course_lib.data.time_series_split``).
* **selection**: the folds that choose the hyperparameters also report the score.
  :func:`nested_vs_flat` measures that optimism against a fresh test set; the honest estimate
  is nested cross-validation, ``cross_val_score(GridSearchCV(...), ...)``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

__all__ = ["jittered_copies", "drifting_series", "nested_vs_flat"]


def jittered_copies(
    images: np.ndarray,
    labels: np.ndarray,
    n_copies: int,
    max_shift: float = 0.7,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""``n_copies`` augmented copies of every image, and the group (source image) of each copy.

    ``images`` (N, H, W), ``labels`` (N,). Copy c of image i is the image shifted by
    s ~ U[−max_shift, max_shift]² pixels (bilinear interpolation, zeros outside) plus
    Gaussian pixel noise N(0, noise²). Returns ``X`` (N·n_copies, H·W) flattened copies,
    ``y`` (N·n_copies,) their labels, ``groups`` (N·n_copies,) the index i of the source image;
    the copies of one image are consecutive.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"images must be (N, H, W) with N = len(labels), got {images.shape}.")
    if n_copies < 1:
        raise ValueError(f"n_copies must be >= 1, got {n_copies}.")
    rng = np.random.default_rng(seed)
    shifts = rng.uniform(-max_shift, max_shift, (len(images), n_copies, 2))
    copies = np.stack(
        [
            [ndimage.shift(img, s, order=1, mode="constant", cval=0.0) for s in img_shifts]
            for img, img_shifts in zip(images, shifts)
        ]
    )  # (N, n_copies, H, W)
    copies = copies + rng.normal(0.0, noise, copies.shape)
    n = len(images) * n_copies
    groups = np.repeat(np.arange(len(images)), n_copies)
    return copies.reshape(n, -1), np.repeat(np.asarray(labels), n_copies), groups


def drifting_series(
    n: int,
    n_features: int = 3,
    persistence: float = 0.98,
    drift: float = 0.15,
    noise: float = 0.3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""A regression time series whose target drifts: y_t = x_t·w + ℓ_t + ε_t.

    Features follow independent AR(1) processes x_t = φ x_{t−1} + η_t, η ~ N(0, 0.2²), with
    φ = ``persistence`` (slowly varying sensors); w = (1, −½, ½, …) alternating after the
    first weight; the level ℓ_t is a random walk with steps N(0, drift²) (the drift: nothing
    in x_t predicts it); ε_t ~ N(0, noise²). Returns ``X`` (n, n_features) and ``y`` (n,)
    in time order. Neighbours in time have similar x_t *and* similar ℓ_t, which is what a
    shuffled k-fold split lets a flexible model exploit.
    """
    if n < 2 or n_features < 1 or not 0 <= persistence < 1:
        raise ValueError("need n >= 2, n_features >= 1 and 0 <= persistence < 1.")
    rng = np.random.default_rng(seed)
    innovations = rng.normal(0.0, 0.2, (n, n_features))
    x = np.zeros((n, n_features))
    x[0] = innovations[0]
    for t in range(1, n):
        x[t] = persistence * x[t - 1] + innovations[t]
    w = np.array([1.0] + [0.5 * (-1) ** (k + 1) for k in range(n_features - 1)])
    level = np.cumsum(rng.normal(0.0, drift, n))
    return x, x @ w + level + rng.normal(0.0, noise, n)


def nested_vs_flat(
    estimator: Any,
    param_grid: dict[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    X_fresh: np.ndarray,
    y_fresh: np.ndarray,
    k: int = 4,
    seed: int = 0,
) -> dict[str, float]:
    """Three accuracy estimates for "grid search, then refit on all of (X, y)".

    * ``flat``: ``GridSearchCV(...).best_score_``, the mean k-fold score of the winning
      setting on the same folds that chose it (optimistic: the maximum of noisy scores);
    * ``nested``: ``cross_val_score(GridSearchCV(...), X, y, cv=outer)``, the whole selection
      repeated inside each outer training part and scored on the outer test fold;
    * ``fresh``: the refitted winner's accuracy on ``(X_fresh, y_fresh)``, data never used,
      the number both estimates try to predict.

    Inner and outer splits are stratified k-fold, shuffled with ``seed`` and ``seed + 1``.
    scikit-learn's warning that a class has fewer than k members is silenced: with small
    training parts (the point of the exercise) it fires for almost every inner split.
    """
    inner = StratifiedKFold(k, shuffle=True, random_state=seed)
    outer = StratifiedKFold(k, shuffle=True, random_state=seed + 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        search = GridSearchCV(clone(estimator), param_grid, cv=inner).fit(X, y)
        inner_search = GridSearchCV(clone(estimator), param_grid, cv=inner)
        nested = cross_val_score(inner_search, X, y, cv=outer)
    return {
        "flat": float(search.best_score_),
        "nested": float(nested.mean()),
        "fresh": float(search.score(X_fresh, y_fresh)),
    }
