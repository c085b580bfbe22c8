"""Classification metrics from predicted labels: accuracy, the confusion matrix, precision,
recall, F-scores (with their averages) and the Matthews correlation coefficient.

Each function has scikit-learn's name, arguments and results (the tests compare them on
hundreds of random cases); see :mod:`course_lib.metrics` for the shared conventions.
``top_k_accuracy_score`` is the one function here that reads scores of shape ``(N, K)``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from course_lib.metrics._inputs import (
    _encode,
    _infer_classes,
    _labels_pair,
    _scores_pair,
    _to_numpy,
)

__all__ = [
    "UndefinedMetricWarning",
    "accuracy_score",
    "top_k_accuracy_score",
    "confusion_matrix",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "f1_score",
    "fbeta_score",
    "matthews_corrcoef",
]


class UndefinedMetricWarning(UserWarning):
    """A metric was 0/0 and has been replaced by ``zero_division`` (as in scikit-learn)."""


# ----------------------------------------------------------------------------------------------
# accuracy and the confusion matrix
# ----------------------------------------------------------------------------------------------


def accuracy_score(y_true: Any, y_pred: Any, *, normalize: bool = True) -> float:
    """Fraction (``normalize=True``) or number of samples with ``y_pred == y_true``."""
    yt, yp = _labels_pair(y_true, y_pred)
    correct = (yt == yp).sum()
    return float(correct / len(yt)) if normalize else float(correct)


def top_k_accuracy_score(
    y_true: Any, y_score: Any, *, k: int = 2, normalize: bool = True, labels: Any = None
) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    ``y_score`` (N, K): ties are broken as in scikit-learn (a stable ascending sort, reversed,
    so among equal scores the larger class index ranks first). ``y_score`` (N,) is a binary
    positive-class score: for ``k=1`` it is thresholded at 0.5 (at 0 if it is not in [0, 1]),
    for ``k>=2`` every sample is a hit.
    """
    yt, ys = _scores_pair(y_true, y_score)
    if ys.ndim == 1:
        classes = _infer_classes(yt, 2, labels)
        target = _encode(yt, classes)
        if k == 1:
            threshold = 0.5 if ys.min() >= 0 and ys.max() <= 1 else 0.0
            hits = (ys > threshold).astype(np.int64) == target
        else:
            hits = np.ones(len(yt), dtype=bool)
    else:
        classes = _infer_classes(yt, ys.shape[1], labels)
        target = _encode(yt, classes)
        top = np.argsort(ys, axis=1, kind="stable")[:, ::-1][:, :k]  # (N, k) class indices
        hits = (top == target[:, None]).any(axis=1)
    return float(hits.mean()) if normalize else float(hits.sum())


def confusion_matrix(
    y_true: Any, y_pred: Any, *, labels: Any = None, normalize: str | None = None
) -> np.ndarray:
    """Confusion matrix ``C`` of shape (K, K): ``C[i, j]`` = #samples of class i predicted as j.

    Rows are true classes, columns predicted classes, in the order of ``labels`` (default: the
    sorted union of both arrays). ``normalize`` = ``"true"`` (rows sum to 1, i.e. recall on the
    diagonal), ``"pred"`` (columns sum to 1, precision on the diagonal), ``"all"`` or ``None``.
    A row or column with no samples is left at 0 when normalised.
    """
    yt, yp = _labels_pair(y_true, y_pred)
    if labels is None:
        labels = np.unique(np.concatenate([yt, yp]))
    else:
        labels = _to_numpy(labels, "labels")
        if not np.isin(yt, labels).any():
            raise ValueError("At least one label specified must be in y_true.")
    k = len(labels)
    i, j = _encode(yt, labels), _encode(yp, labels)
    keep = (i >= 0) & (j >= 0)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (i[keep], j[keep]), 1)
    if normalize is None:
        return cm
    if normalize not in ("true", "pred", "all"):
        raise ValueError(f"normalize must be 'true', 'pred', 'all' or None, got {normalize!r}.")
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    total = cm.sum(axis=axis, keepdims=axis is not None).astype(np.float64)
    return np.divide(cm, total, out=np.zeros((k, k)), where=total != 0)


# ----------------------------------------------------------------------------------------------
# precision, recall, F-score
# ----------------------------------------------------------------------------------------------


def _zero_division_value(zero_division: Any) -> float:
    if isinstance(zero_division, str):
        if zero_division != "warn":
            raise ValueError(f'zero_division must be "warn", 0.0, 1.0 or np.nan: {zero_division!r}')
        return 0.0
    if not (zero_division in (0, 1) or np.isnan(zero_division)):
        raise ValueError(f'zero_division must be "warn", 0.0, 1.0 or np.nan: {zero_division!r}')
    return float(zero_division)


def _divide(num, den, metric: str, why: str, zero_division, warn: bool) -> np.ndarray:
    """num / den with 0/0 (or x/0) replaced by ``zero_division``; warn like scikit-learn."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    mask = den == 0
    out = num / np.where(mask, 1.0, den)
    if mask.any():
        out[mask] = _zero_division_value(zero_division)
        if warn and isinstance(zero_division, str):
            warnings.warn(
                f"{metric} is ill-defined and being set to 0.0 for labels with no {why} "
                "samples. Use `zero_division` to control this behaviour.",
                UndefinedMetricWarning,
                stacklevel=4,
            )
    return out


def _nan_average(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Average ignoring nan entries; all-zero weights fall back to an unweighted mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    values = values[keep]
    if weights is None or weights[keep].sum() == 0:
        return float(values.mean())
    return float(np.average(values, weights=weights[keep]))


def precision_recall_fscore_support(
    y_true: Any,
    y_pred: Any,
    *,
    beta: float = 1.0,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = None,
    warn_for: tuple[str, ...] = ("precision", "recall", "f-score"),
    zero_division: Any = "warn",
):
    r"""Per-class precision, recall, F-beta and support, optionally averaged.

    For class c with counts TP, FP, FN:

    * precision = TP / (TP + FP),   recall = TP / (TP + FN)
    * F_beta = (1 + beta^2) TP / ((1 + beta^2) TP + beta^2 FN + FP)   (F1 for beta = 1)
    * support = TP + FN (number of true samples of c)

    ``average``:

    * ``None``: arrays, one entry per label, plus the support array;
    * ``"binary"``: the scores of ``pos_label`` only (data must have at most two classes);
    * ``"macro"``: unweighted mean over classes;
    * ``"weighted"``: mean weighted by support;
    * ``"micro"``: pool TP, FP, FN over classes first (equals accuracy for single-label data).

    With an average the support is returned as ``None`` (as in scikit-learn).
    ``zero_division``: see the module docstring (class never predicted -> precision 0/0).
    """
    yt, yp = _labels_pair(y_true, y_pred)
    present = np.unique(np.concatenate([yt, yp]))
    if average not in (None, "binary", "micro", "macro", "weighted"):
        raise ValueError(
            f"average must be None, 'binary', 'micro', 'macro' or 'weighted', got {average!r}."
        )
    _zero_division_value(zero_division)  # validate early
    if average == "binary":
        if len(present) > 2:
            raise ValueError(
                f"Target is multiclass ({len(present)} classes) but average='binary'. Choose "
                "average='macro', 'micro', 'weighted' or None."
            )
        if pos_label not in present.tolist() and len(present) >= 2:
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present}.")
        labels = np.asarray([pos_label])
    elif labels is None:
        labels = present
    else:
        labels = _to_numpy(labels, "labels")

    i, j = _encode(yt, labels), _encode(yp, labels)
    k = len(labels)
    true_sum = np.bincount(i[i >= 0], minlength=k)
    pred_sum = np.bincount(j[j >= 0], minlength=k)
    tp_sum = np.bincount(i[(i >= 0) & (i == j)], minlength=k)
    if average == "micro":
        tp_sum, pred_sum, true_sum = (np.array([s.sum()]) for s in (tp_sum, pred_sum, true_sum))

    precision = _divide(
        tp_sum, pred_sum, "Precision", "predicted", zero_division, "precision" in warn_for
    )
    recall = _divide(tp_sum, true_sum, "Recall", "true", zero_division, "recall" in warn_for)
    if np.isposinf(beta):
        f_score = recall
    elif beta == 0:
        f_score = precision
    else:
        b2 = beta**2
        f_score = _divide(
            (1 + b2) * tp_sum,
            b2 * true_sum + pred_sum,
            "F-score",
            "true nor predicted",
            zero_division,
            "f-score" in warn_for,
        )
    if average is None:
        return precision, recall, f_score, true_sum
    weights = true_sum.astype(np.float64) if average == "weighted" else None
    return (
        _nan_average(precision, weights),
        _nan_average(recall, weights),
        _nan_average(f_score, weights),
        None,
    )


def precision_score(
    y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """Precision TP / (TP + FP); see :func:`precision_recall_fscore_support`."""
    p, _, _, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        labels=labels,
        pos_label=pos_label,
        average=average,
        warn_for=("precision",),
        zero_division=zero_division,
    )
    return p


def recall_score(
    y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """Recall TP / (TP + FN); see :func:`precision_recall_fscore_support`."""
    _, r, _, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        labels=labels,
        pos_label=pos_label,
        average=average,
        warn_for=("recall",),
        zero_division=zero_division,
    )
    return r


def fbeta_score(
    y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary", zero_division="warn"
):
    """F-beta score; see :func:`precision_recall_fscore_support`."""
    _, _, f, _ = precision_recall_fscore_support(
        y_true,
        y_pred,
        beta=beta,
        labels=labels,
        pos_label=pos_label,
        average=average,
        warn_for=("f-score",),
        zero_division=zero_division,
    )
    return f


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", zero_division="warn"):
    """F1 = 2 P R / (P + R) = 2 TP / (2 TP + FP + FN); see :func:`precision_recall_fscore_support`."""
    return fbeta_score(
        y_true,
        y_pred,
        beta=1.0,
        labels=labels,
        pos_label=pos_label,
        average=average,
        zero_division=zero_division,
    )


def matthews_corrcoef(y_true: Any, y_pred: Any) -> float:
    r"""Matthews correlation coefficient, binary and multi-class.

    Binary: (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)). The multi-class form (Gorodkin)
    uses the confusion matrix C with n samples, c = trace(C), t = row sums, p = column sums:
    MCC = (c·n − t·p) / sqrt((n² − p·p)(n² − t·t)). Returns 0.0 when the denominator is 0
    (e.g. a classifier that always predicts one class), as scikit-learn does.
    """
    cm = confusion_matrix(y_true, y_pred).astype(np.float64)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    n, correct = cm.sum(), np.trace(cm)
    cov_tp = correct * n - t @ p
    cov_pp = n**2 - p @ p
    cov_tt = n**2 - t @ t
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_pp * cov_tt))
