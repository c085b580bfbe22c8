"""Post-hoc recalibration of a trained classifier's logits, one class at a time (one-vs-rest).

Two classical maps, both fitted on *validation* logits ``z`` (N, K) with integer labels
``0..K-1`` and applied unchanged to test logits:

* :class:`PlattScaler` (Platt, 1999): per class k a sigmoid of its own logit,
  q_k = σ(a_k z_k + b_k), 2K parameters;
* :class:`IsotonicCalibrator` (Zadrozny & Elkan, 2002): per class k a non-decreasing step
  function q_k = g_k(z_k) fitted by isotonic regression (pool adjacent violators).

Each one-vs-rest score q_k is fitted as if "class k vs the rest" were a binary problem, so the
K scores of one input do not sum to 1; both classes renormalise, p_k = q_k / Σ_j q_j (the
uniform 1/K when every q_k is 0). That renormalisation, and the fact that every class gets its
own map, is why these methods can change the predicted class (the argmax) and the ranking,
unlike temperature scaling (:class:`course_lib.metrics.TemperatureScaler`), which divides all
logits by one T > 0. Both match ``sklearn.calibration.CalibratedClassifierCV`` with
``method="sigmoid"`` / ``"isotonic"`` on a frozen model whose ``decision_function`` returns
the logits (the tests check this).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from course_lib.metrics._inputs import _to_numpy

__all__ = ["PlattScaler", "IsotonicCalibrator"]


def _logits_and_labels(logits: Any, y_true: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
    z = _to_numpy(logits, "logits").astype(np.float64)
    if z.ndim != 2 or z.shape[1] < 3:
        raise ValueError(f"logits must have shape (N, K) with K >= 3, got {z.shape}.")
    if y_true is None:
        return z, np.empty(0, dtype=np.int64)
    y = _to_numpy(y_true, "y_true")
    if y.shape != (len(z),):
        raise ValueError(f"y_true must have shape ({len(z)},), got {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"y_true must hold integer labels 0..{z.shape[1] - 1}.")
    return z, y.astype(np.int64)


def _renormalise(q: np.ndarray) -> np.ndarray:
    """p_k = q_k / Σ_j q_j per row; a row of zeros becomes the uniform distribution."""
    total = q.sum(axis=1, keepdims=True)
    uniform = np.full_like(q, 1.0 / q.shape[1])
    return np.divide(q, total, out=uniform, where=total != 0)


def _fit_sigmoid(f: np.ndarray, is_pos: np.ndarray) -> tuple[float, float]:
    r"""Platt's fit of P(positive | f) = σ(a f + b) by maximum likelihood.

    Targets are Platt's smoothed labels t = (N₊ + 1)/(N₊ + 2) for positives and 1/(N₋ + 2)
    for negatives (a prior that keeps a, b finite on separable data). Logits with
    max |f| ≥ 30 are divided by that maximum first (as scikit-learn does, for conditioning)
    and a is rescaled back, so the fitted map is the same.
    """
    scale = float(np.abs(f).max()) if np.abs(f).max() >= 30 else 1.0
    g = f / scale
    n_pos = is_pos.sum()
    n_neg = len(is_pos) - n_pos
    t = np.where(is_pos, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def nll_and_grad(ab: np.ndarray) -> tuple[float, np.ndarray]:
        s = ab[0] * g + ab[1]
        loss = np.logaddexp(0.0, s) - t * s  # −[t log σ(s) + (1−t) log(1−σ(s))]
        r = 1.0 / (1.0 + np.exp(-s)) - t  # d loss / d s
        return float(loss.sum()), np.array([(r * g).sum(), r.sum()])

    b0 = np.log((n_pos + 1.0) / (n_neg + 1.0))
    res = minimize(nll_and_grad, x0=np.array([0.0, b0]), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-10, "ftol": 1e-14, "maxiter": 1000})  # fmt: skip
    return float(res.x[0] / scale), float(res.x[1])


class PlattScaler:
    r"""One-vs-rest Platt scaling of logits: p_k ∝ σ(a_k z_k + b_k), renormalised over k.

    ``fit(logits (N, K), y (N,))`` fits (a_k, b_k) for every class k on "k vs rest" with
    Platt's smoothed targets; ``predict_proba(logits)`` returns (N, K) probabilities. The
    fitted slopes and intercepts are in ``a_`` and ``b_`` (shape (K,)). Labels are integers
    0..K−1, K ≥ 3 (for K = 2 use one sigmoid on the logit difference).
    """

    def __init__(self) -> None:
        self.a_: np.ndarray | None = None
        self.b_: np.ndarray | None = None

    def fit(self, logits: Any, y_true: Any) -> PlattScaler:
        z, y = _logits_and_labels(logits, y_true)
        ab = [_fit_sigmoid(z[:, k], y == k) for k in range(z.shape[1])]
        self.a_, self.b_ = (np.array(v) for v in zip(*ab))
        return self

    def predict_proba(self, logits: Any) -> np.ndarray:
        if self.a_ is None or self.b_ is None:
            raise RuntimeError("call fit() first.")
        z, _ = _logits_and_labels(logits)
        return _renormalise(1.0 / (1.0 + np.exp(-(self.a_ * z + self.b_))))

    def __repr__(self) -> str:
        fitted = "unfitted" if self.a_ is None else f"K={len(self.a_)}"
        return f"PlattScaler({fitted})"


class IsotonicCalibrator:
    r"""One-vs-rest isotonic regression of logits: p_k ∝ g_k(z_k), renormalised over k.

    g_k is the non-decreasing step function that minimises Σ_i (1[y_i = k] − g_k(z_ik))² on
    the validation data (pool adjacent violators, ``sklearn.isotonic.IsotonicRegression``);
    test logits outside the fitted range are clipped to its ends. Being a step function, g_k
    maps many inputs to the same value: confidences get *ties*, and renormalising K separate
    maps can change the argmax. ``calibrators_`` holds the K fitted regressions.
    """

    def __init__(self) -> None:
        self.calibrators_: list[IsotonicRegression] = []

    def fit(self, logits: Any, y_true: Any) -> IsotonicCalibrator:
        z, y = _logits_and_labels(logits, y_true)
        self.calibrators_ = [
            IsotonicRegression(out_of_bounds="clip").fit(z[:, k], (y == k).astype(np.float64))
            for k in range(z.shape[1])
        ]
        return self

    def predict_proba(self, logits: Any) -> np.ndarray:
        if not self.calibrators_:
            raise RuntimeError("call fit() first.")
        z, _ = _logits_and_labels(logits)
        q = np.stack([iso.predict(z[:, k]) for k, iso in enumerate(self.calibrators_)], axis=1)
        return _renormalise(q)

    def __repr__(self) -> str:
        return f"IsotonicCalibrator(K={len(self.calibrators_)})"
