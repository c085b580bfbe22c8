"""Probabilistic predictions: proper scoring rules (log loss, Brier score), calibration
errors over confidence bins (ECE, MCE, adaptive ECE, reliability curves) and temperature
scaling.

Labels may be any values (integers, strings): as in scikit-learn, column ``k`` of an
``(N, K)`` probability matrix stands for the ``k``-th smallest label, or for ``labels[k]``
(sorted) when ``labels=`` is given; integer labels ``0..K-1`` need nothing. A ``(N,)`` input is
the probability of the larger of two labels.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from course_lib.metrics._inputs import (
    _check_probabilities,
    _encode,
    _infer_classes,
    _positive_label,
    _scores_pair,
    _to_numpy,
)

__all__ = [
    "log_loss",
    "brier_score_loss",
    "ReliabilityCurve",
    "reliability_curve",
    "expected_calibration_error",
    "maximum_calibration_error",
    "adaptive_calibration_error",
    "TemperatureScaler",
]


# ----------------------------------------------------------------------------------------------
# proper scoring rules: log loss and Brier score
# ----------------------------------------------------------------------------------------------


def _proba_matrix(yt: np.ndarray, proba: np.ndarray, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(one-hot targets (N, K), probabilities (N, K)); a (N,) input becomes [1 - p, p]."""
    if proba.ndim == 2 and proba.shape[1] == 1:
        proba = proba[:, 0]
    if proba.ndim == 1:
        _check_probabilities(proba, "y_proba")
        proba = np.stack([1.0 - proba, proba], axis=1)
    _check_probabilities(proba, "y_proba")
    classes = _infer_classes(yt, proba.shape[1], labels)
    onehot = (yt[:, None] == classes[None, :]).astype(np.float64)
    return onehot, proba


def log_loss(y_true: Any, y_proba: Any, *, normalize: bool = True, labels: Any = None) -> float:
    r"""Negative log-likelihood (cross-entropy) of probabilistic predictions.

    NLL = −(1/N) Σ_i log p_i[y_i], with p clipped to [eps, 1 − eps] (eps = machine epsilon of
    the dtype) so that a confident mistake costs a large but finite amount.
    ``y_proba`` (N, K) or (N,) = probability of the positive class. ``normalize=False`` sums.
    """
    yt, p = _scores_pair(y_true, y_proba)
    onehot, p = _proba_matrix(yt, p, labels)
    dtype = _to_numpy(y_proba, "y_proba").dtype
    eps = np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps
    per_sample = -(onehot * np.log(np.clip(p, eps, 1 - eps))).sum(axis=1)
    return float(per_sample.mean() if normalize else per_sample.sum())


def brier_score_loss(
    y_true: Any,
    y_proba: Any,
    *,
    pos_label: Any = None,
    labels: Any = None,
    scale_by_half: bool | str = "auto",
) -> float:
    r"""Brier score: mean squared error between probabilities and one-hot targets.

    Binary, ``y_proba`` (N,): (1/N) Σ (y_i − p_i)². Multi-class, (N, K): (1/N) Σ_i Σ_k
    (onehot_ik − p_ik)². ``scale_by_half="auto"`` halves the multi-column sum when K = 2 so that
    it equals the binary form (as scikit-learn ≥ 1.7).
    """
    yt, p = _scores_pair(y_true, y_proba)
    if p.ndim == 1 or p.shape[1] == 1:
        p = p.reshape(-1)
        _check_probabilities(p, "y_proba")
        classes = np.unique(yt) if labels is None else np.unique(_to_numpy(labels, "labels"))
        pos = _positive_label(classes, pos_label)
        onehot = np.stack([yt != pos, yt == pos], axis=1).astype(np.float64)
        p = np.stack([1.0 - p, p], axis=1)
    else:
        onehot, p = _proba_matrix(yt, p, labels)
    score = ((onehot - p) ** 2).sum(axis=1).mean()
    if scale_by_half == "auto":
        scale_by_half = p.shape[1] < 3
    return float(score * 0.5 if scale_by_half else score)


# ----------------------------------------------------------------------------------------------
# calibration errors over confidence bins
# ----------------------------------------------------------------------------------------------


def _confidence_and_correct(
    y_true: Any, y_prob: Any, labels: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence max_k p_ik and whether that top label is right.

    Column k stands for ``classes[k]`` (see the module docstring). ``y_prob`` (N,) is the
    probability of the larger of two labels: that label is predicted when p > 0.5, and the
    confidence is max(p, 1 − p).
    """
    yt, p = _scores_pair(y_true, y_prob)
    _check_probabilities(p)
    if p.ndim == 1:
        classes = _infer_classes(yt, 2, labels)
        top = (p > 0.5).astype(np.int64)
        conf = np.where(top == 1, p, 1.0 - p)
    else:
        classes = _infer_classes(yt, p.shape[1], labels)
        top = p.argmax(axis=1)
        conf = p.max(axis=1)
    return conf, (classes[top] == yt).astype(np.float64)


class ReliabilityCurve(NamedTuple):
    """Per-bin calibration data (returned by :func:`reliability_curve`).

    Fields (M = number of bins; empty bins have count 0 and nan confidence/accuracy):

    * ``confidence`` (M,) mean top-label confidence conf(B_m) in the bin;
    * ``accuracy``   (M,) fraction correct acc(B_m) in the bin;
    * ``count``      (M,) number of samples |B_m|;
    * ``edges``      (M + 1,) bin boundaries, from 0 to 1.

    ECE = Σ_m (count_m / N) |accuracy_m − confidence_m|; plot ``accuracy`` against
    ``confidence`` (or bars over ``edges``) for a reliability diagram.
    """

    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    edges: np.ndarray


def reliability_curve(
    y_true: Any,
    y_prob: Any,
    n_bins: int = 15,
    strategy: Literal["uniform", "quantile"] = "uniform",
    *,
    labels: Any = None,
) -> ReliabilityCurve:
    """Bin samples by top-label confidence and return per-bin confidence, accuracy and count.

    ``strategy="uniform"``: M equal-width bins, bin m = ((m−1)/M, m/M] (a confidence of exactly
    0 goes to the first bin). ``strategy="quantile"``: equal-mass bins, i.e. after sorting by
    confidence, bin m holds samples floor/ceil(N/M) in rank order (the binning of adaptive ECE);
    its edges are the midpoints between neighbouring bins' confidences, 0 and 1 at the ends.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    conf, correct = _confidence_and_correct(y_true, y_prob, labels)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
        bin_of = np.searchsorted(edges[1:-1], conf, side="left")  # (e_m, e_{m+1}] -> m
        chunks = [np.flatnonzero(bin_of == m) for m in range(n_bins)]
    elif strategy == "quantile":
        order = np.argsort(conf, kind="stable")
        chunks = np.array_split(order, n_bins)
        inner = [
            (conf[a[-1]] + conf[b[0]]) / 2
            for a, b in zip(chunks[:-1], chunks[1:])
            if len(a) and len(b)
        ]
        inner += [1.0] * (n_bins - 1 - len(inner))  # empty bins (n_bins > N) sit at 1
        edges = np.array([0.0, *inner, 1.0])
    else:
        raise ValueError(f"strategy must be 'uniform' or 'quantile', got {strategy!r}.")
    count = np.array([len(c) for c in chunks], dtype=np.int64)
    confidence = np.array([conf[c].mean() if len(c) else np.nan for c in chunks])
    accuracy = np.array([correct[c].mean() if len(c) else np.nan for c in chunks])
    return ReliabilityCurve(confidence, accuracy, count, edges)


def _calibration_gaps(curve: ReliabilityCurve) -> tuple[np.ndarray, np.ndarray]:
    filled = curve.count > 0
    gaps = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return gaps, curve.count[filled]


def expected_calibration_error(
    y_true: Any, y_prob: Any, n_bins: int = 15, *, labels: Any = None
) -> float:
    r"""ECE = Σ_m (|B_m| / N) · |acc(B_m) − conf(B_m)| over M equal-width confidence bins.

    ``y_prob`` (N, K) probabilities (or (N,) positive-class probability). Uses the top-label
    confidence max_k p_ik; bins as in :func:`reliability_curve` (``strategy="uniform"``).
    """
    curve = reliability_curve(y_true, y_prob, n_bins, "uniform", labels=labels)
    gaps, count = _calibration_gaps(curve)
    return float((gaps * count).sum() / count.sum())


def maximum_calibration_error(
    y_true: Any, y_prob: Any, n_bins: int = 15, *, labels: Any = None
) -> float:
    r"""MCE = max_m |acc(B_m) − conf(B_m)| over the non-empty equal-width bins (worst case)."""
    gaps, _ = _calibration_gaps(reliability_curve(y_true, y_prob, n_bins, "uniform", labels=labels))
    return float(gaps.max())


def adaptive_calibration_error(
    y_true: Any, y_prob: Any, n_bins: int = 15, *, labels: Any = None
) -> float:
    r"""Adaptive ECE: the ECE formula over equal-mass bins (each holds about N / M samples).

    Useful because confidences of deep nets pile up near 1, leaving most equal-width bins
    almost empty. The bins are those of ``reliability_curve(..., strategy="quantile")``.
    """
    curve = reliability_curve(y_true, y_prob, n_bins, "quantile", labels=labels)
    gaps, count = _calibration_gaps(curve)
    return float((gaps * count).sum() / count.sum())


# ----------------------------------------------------------------------------------------------
# temperature scaling
# ----------------------------------------------------------------------------------------------


class TemperatureScaler:
    r"""Temperature scaling (Guo et al., 2017): calibrated p = softmax(z / T).

    One scalar T > 0 is fitted on *validation* logits by minimising the NLL; we optimise
    log T with L-BFGS so that T stays positive. T > 1 softens overconfident predictions,
    T < 1 sharpens them, and the argmax (hence accuracy) never changes.

    Example::

        scaler = TemperatureScaler().fit(val_logits, val_labels)
        probs = scaler.predict_proba(test_logits)      # = softmax(test_logits / T)

    Logits of shape (N,) are treated as binary logits of the positive class (sigmoid).
    Labels may be any values: column k of the logits stands for the k-th smallest label (or
    ``labels[k]``, sorted, when ``labels=`` is given to :meth:`fit`).
    """

    def __init__(self, max_iter: int = 100) -> None:
        self.max_iter = max_iter
        self.temperature: float = 1.0
        self.nll_before: float | None = None
        self.nll_after: float | None = None

    @staticmethod
    def _logits(logits: Any) -> torch.Tensor:
        z = torch.as_tensor(_to_numpy(logits, "logits"), dtype=torch.float64)
        if z.ndim == 1:  # binary logit z -> two-class logits [0, z]: softmax == sigmoid
            z = torch.stack([torch.zeros_like(z), z], dim=1)
        if z.ndim != 2:
            raise ValueError(f"logits must have shape (N, K) or (N,), got {tuple(z.shape)}.")
        return z

    def fit(self, logits: Any, y_true: Any, *, labels: Any = None) -> TemperatureScaler:
        """Find T minimising mean NLL of softmax(logits / T) on (validation) data; returns self."""
        z = self._logits(logits)
        yt = _to_numpy(y_true, "y_true")
        if yt.shape != tuple(z.shape[:1]):
            raise ValueError(f"y_true must have shape ({z.shape[0]},), got {yt.shape}.")
        classes = _infer_classes(yt, z.shape[1], labels)
        y = torch.as_tensor(_encode(yt, classes), dtype=torch.long)  # column index per sample
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS(
            [log_t], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), y)
            loss.backward()
            return loss

        with torch.enable_grad():
            self.nll_before = float(F.cross_entropy(z, y))
            opt.step(closure)
        self.temperature = float(log_t.detach().exp())
        self.nll_after = float(F.cross_entropy(z / self.temperature, y))
        return self

    def transform(self, logits: Any) -> Any:
        """Scaled logits z / T, returned as the same type (tensor or array) as the input."""
        if isinstance(logits, torch.Tensor):
            return logits / self.temperature
        return np.asarray(logits, dtype=np.float64) / self.temperature

    def predict_proba(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities softmax(z / T) as a numpy array ((N,) sigmoid for (N,))."""
        z = self._logits(logits) / self.temperature
        p = torch.softmax(z, dim=1).numpy()
        return p[:, 1] if np.ndim(_to_numpy(logits, "logits")) == 1 else p

    def __repr__(self) -> str:
        return f"TemperatureScaler(temperature={self.temperature:.4f})"
