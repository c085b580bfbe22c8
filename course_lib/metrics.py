"""Evaluation metrics, calibration and classifier comparison, written out in numpy.

Every function that scikit-learn also has uses scikit-learn's name and argument order, so a
student can swap ``from course_lib.metrics import f1_score`` for
``from sklearn.metrics import f1_score`` and get the same number (the test suite checks this on
hundreds of random cases). The code is here to be read: each metric is a few lines of counting.

Conventions
-----------
* Inputs may be numpy arrays, torch tensors (any device) or lists; outputs are Python floats
  or numpy arrays.
* ``y_true`` holds class labels, shape ``(N,)``. ``y_pred`` holds predicted labels, shape ``(N,)``.
* ``y_prob`` / ``y_score`` is either ``(N, K)`` (one column per class, probabilities for the
  calibration and log-loss functions) or ``(N,)`` (the score or probability of the positive
  class in a binary problem).

Edge cases (the same rules everywhere)
--------------------------------------
* **Empty input** raises ``ValueError``.
* **A class that is never predicted** makes its precision 0/0. As in scikit-learn,
  ``zero_division="warn"`` (the default) uses 0 and emits an :class:`UndefinedMetricWarning`;
  pass ``zero_division=0.0``, ``1.0`` or ``np.nan`` to choose the value and silence the warning
  (``np.nan`` entries are then left out of averages). The same holds for recall of a class that
  never occurs in ``y_true`` (only possible when you pass ``labels``) and for an F-score whose
  precision and recall are both undefined.
* **A single class in y_true** leaves AUROC (and the ROC curve, average precision and the PR
  curve when there is no positive) undefined: we raise ``ValueError``. *scikit-learn differs
  here*: it warns and returns ``nan``.
* **Tied scores** are handled exactly as in scikit-learn: a tie between a positive and a
  negative counts one half towards AUROC (the ROC curve takes one diagonal step through the
  tied block), and top-k accuracy breaks ties in favour of the class with the larger index.
* **Probabilities** passed to ``log_loss``, ``brier_score_loss`` and the calibration functions
  must lie in [0, 1] and rows must sum to 1 (``ValueError`` otherwise, e.g. when logits are
  passed by mistake; scikit-learn only warns about the sum).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

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
    "roc_curve",
    "auc",
    "roc_auc_score",
    "precision_recall_curve",
    "average_precision_score",
    "matthews_corrcoef",
    "log_loss",
    "brier_score_loss",
    "ReliabilityCurve",
    "reliability_curve",
    "expected_calibration_error",
    "maximum_calibration_error",
    "adaptive_calibration_error",
    "TemperatureScaler",
    "WilcoxonResult",
    "wilcoxon_signed_rank",
    "stratified_kfold",
    "time_series_split",
]


class UndefinedMetricWarning(UserWarning):
    """A metric was 0/0 and has been replaced by ``zero_division`` (as in scikit-learn)."""


# ----------------------------------------------------------------------------------------------
# input helpers
# ----------------------------------------------------------------------------------------------


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """Tensor/list/array -> numpy array (tensors are detached and copied to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16 or x.dtype == torch.float16:
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError(f"{name} is empty: metrics need at least one sample.")
    return x


def _labels_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D label arrays of the same length."""
    yt = _to_numpy(y_true, "y_true")
    yp = _to_numpy(y_pred, "y_pred")
    if yt.ndim != 1 or yp.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D label arrays of shape (N,), got {yt.shape} and "
            f"{yp.shape}. For scores or probabilities of shape (N, K) take y_prob.argmax(1)."
        )
    if len(yt) != len(yp):
        raise ValueError(f"y_true has {len(yt)} samples but y_pred has {len(yp)}.")
    return yt, yp


def _scores_pair(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    """1-D labels and a (N,) or (N, K) float score array of matching length."""
    yt = _to_numpy(y_true, "y_true")
    ys = _to_numpy(y_score, "y_score").astype(np.float64)
    if yt.ndim != 1:
        raise ValueError(f"y_true must be 1-D of shape (N,), got {yt.shape}.")
    if ys.ndim not in (1, 2) or ys.shape[0] != len(yt):
        raise ValueError(
            f"scores must have shape (N,) or (N, K) with N = len(y_true) = {len(yt)}, "
            f"got {ys.shape}."
        )
    return yt, ys


def _encode(y: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each entry of ``y`` in ``labels`` (-1 where absent)."""
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.searchsorted(sorted_labels, y)
    pos = np.minimum(pos, len(sorted_labels) - 1)
    found = sorted_labels[pos] == y
    return np.where(found, order[pos], -1)


def _check_probabilities(p: np.ndarray, name: str = "y_prob") -> None:
    if p.min() < 0 or p.max() > 1:
        raise ValueError(
            f"{name} must contain probabilities in [0, 1] (got values in "
            f"[{p.min():.3g}, {p.max():.3g}]). If these are logits, apply softmax first."
        )
    if p.ndim == 2 and not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(
            f"each row of {name} (N, K) must sum to 1; got row sums in "
            f"[{p.sum(1).min():.4g}, {p.sum(1).max():.4g}]. Apply softmax to logits first."
        )


def _infer_classes(yt: np.ndarray, n_columns: int, labels: Any | None) -> np.ndarray:
    """Classes that the K columns of a score matrix stand for.

    ``labels`` if given; else the sorted classes of ``y_true`` if there are K of them; else,
    for integer labels in ``0..K-1``, simply ``0..K-1`` (scikit-learn raises in that last case;
    we accept it because in this course column k is always class k).
    """
    if labels is not None:
        classes = np.unique(_to_numpy(labels, "labels"))
    else:
        classes = np.unique(yt)
        if len(classes) != n_columns:
            if np.issubdtype(yt.dtype, np.integer) and yt.min() >= 0 and yt.max() < n_columns:
                classes = np.arange(n_columns)
    if len(classes) != n_columns:
        raise ValueError(
            f"y_true has classes {classes.tolist()} but the scores have {n_columns} columns; "
            "pass labels=[...] naming the class of each column."
        )
    missing = np.setdiff1d(np.unique(yt), classes)
    if len(missing):
        raise ValueError(f"y_true contains labels {missing.tolist()} not in {classes.tolist()}.")
    return classes


def _positive_label(classes: np.ndarray, pos_label: Any | None) -> Any:
    """scikit-learn's rule: pos_label must be given unless labels are {0, 1} or {-1, 1}."""
    if pos_label is not None:
        return pos_label
    as_set = set(classes.tolist())
    if as_set <= {0, 1} or as_set <= {-1, 1} or as_set <= {False, True}:
        return 1
    raise ValueError(f"labels are {classes.tolist()}: say which one is positive with pos_label=.")


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


# ----------------------------------------------------------------------------------------------
# threshold curves: ROC and precision-recall
# ----------------------------------------------------------------------------------------------


def _binary_target(yt: np.ndarray, pos_label: Any, what: str) -> np.ndarray:
    classes = np.unique(yt)
    if len(classes) > 2:
        raise ValueError(
            f"{what} with a 1-D score needs binary y_true, got classes {classes.tolist()}. "
            "For multi-class data pass scores of shape (N, K)."
        )
    pos = _positive_label(classes, pos_label)
    return yt == pos


def _binary_clf_curve(is_pos: np.ndarray, score: np.ndarray):
    """Cumulative (false positives, true positives) at each distinct threshold, high to low.

    Samples are sorted by decreasing score; a block of tied scores forms ONE threshold, which
    is how ties are handled (the curve jumps diagonally across the block).
    """
    order = np.argsort(score, kind="mergesort")[::-1]
    score, is_pos = score[order], is_pos[order]
    distinct = np.where(np.diff(score))[0]  # last index of each tied block
    last = np.r_[distinct, len(score) - 1]
    tps = np.cumsum(is_pos)[last].astype(np.float64)
    fps = 1.0 + last - tps
    return fps, tps, score[last]


def roc_curve(y_true: Any, y_score: Any, *, pos_label: Any = None, drop_intermediate: bool = True):
    """ROC curve of a binary classifier: ``(fpr, tpr, thresholds)``.

    Point i predicts "positive" when ``score >= thresholds[i]``; FPR = FP/(FP+TN), TPR =
    TP/(TP+FN). ``thresholds[0] = inf`` gives the start (0, 0). ``drop_intermediate`` removes
    points on straight segments (same as scikit-learn; the area is unchanged).
    Raises ``ValueError`` when ``y_true`` holds only one class (the curve is undefined).
    """
    yt, ys = _scores_pair(y_true, y_score)
    if ys.ndim != 1:
        raise ValueError(f"roc_curve needs a 1-D score of the positive class, got {ys.shape}.")
    is_pos = _binary_target(yt, pos_label, "roc_curve")
    if is_pos.all() or not is_pos.any():
        raise ValueError(
            "Only one class is present in y_true: the ROC curve and AUROC are undefined. "
            "Evaluate on data that contains both classes."
        )
    fps, tps, thresholds = _binary_clf_curve(is_pos, ys)
    if drop_intermediate and len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[corner], tps[corner], thresholds[corner]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(x: Any, y: Any) -> float:
    """Area under a curve by the trapezoidal rule (x must be monotonic)."""
    x, y = _to_numpy(x, "x").astype(np.float64), _to_numpy(y, "y").astype(np.float64)
    dx = np.diff(x)
    direction = -1.0 if (dx <= 0).all() and (dx < 0).any() else 1.0
    if not ((dx >= 0).all() or (dx <= 0).all()):
        raise ValueError("x is neither increasing nor decreasing: cannot integrate.")
    return float(direction * np.sum(dx * (y[1:] + y[:-1]) / 2))


def _binary_auroc(is_pos: np.ndarray, score: np.ndarray) -> float:
    if is_pos.all() or not is_pos.any():
        raise ValueError(
            "Only one class is present in y_true: AUROC is undefined (scikit-learn returns "
            "nan with a warning). Evaluate on data that contains both classes."
        )
    fpr, tpr, _ = roc_curve(is_pos.astype(np.int64), score, drop_intermediate=False)
    return auc(fpr, tpr)


def _binary_average_precision(is_pos: np.ndarray, score: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(is_pos.astype(np.int64), score)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def _one_vs_rest(metric, yt, ys, classes, average) -> float | np.ndarray:
    """Apply a binary score metric to each column (class c vs the rest) and average."""
    onehot = yt[:, None] == classes[None, :]  # (N, K)
    if average == "micro":
        return metric(onehot.ravel(), ys.ravel())
    scores = np.array([metric(onehot[:, c], ys[:, c]) for c in range(len(classes))])
    if average is None:
        return scores
    if average == "macro":
        return float(scores.mean())
    if average == "weighted":
        weights = onehot.sum(axis=0)
        return float(np.average(scores, weights=weights)) if weights.sum() else 0.0
    raise ValueError(f"average must be 'macro', 'weighted', 'micro' or None, got {average!r}.")


def roc_auc_score(
    y_true: Any,
    y_score: Any,
    *,
    average: str | None = "macro",
    multi_class: str = "raise",
    labels: Any = None,
) -> float | np.ndarray:
    """Area under the ROC curve.

    Binary: ``y_score`` (N,) positive-class score (an (N, 2) matrix is also accepted; column 1
    is used). AUROC = P(score of a random positive > score of a random negative), ties
    counting 1/2. Multi-class: ``y_score`` (N, K) probabilities (rows sum to 1) and
    ``multi_class="ovr"``: the AUROC of each class against the rest, averaged with ``average``
    = ``"macro"``, ``"weighted"`` (by class frequency), ``"micro"`` or ``None`` (per class).
    A class absent from ``y_true`` (or a single class in binary data) raises ``ValueError``.
    """
    yt, ys = _scores_pair(y_true, y_score)
    n_classes = len(np.unique(yt))
    if ys.ndim == 2 and ys.shape[1] == 2 and n_classes <= 2:
        ys = ys[:, 1]
    if ys.ndim == 1:
        if n_classes > 2:
            raise ValueError("y_true is multi-class: pass scores of shape (N, K).")
        classes = np.unique(yt) if labels is None else np.unique(_to_numpy(labels, "labels"))
        return _binary_auroc(yt == classes[-1], ys)
    if multi_class == "raise":
        raise ValueError("multi-class AUROC: pass multi_class='ovr' (one class vs the rest).")
    if multi_class != "ovr":
        raise ValueError(f"only multi_class='ovr' is implemented, got {multi_class!r}.")
    if not np.allclose(ys.sum(axis=1), 1.0):
        raise ValueError(
            "Target scores need to be probabilities for multi-class AUROC, i.e. each row of "
            "y_score must sum to 1 (apply softmax)."
        )
    classes = _infer_classes(yt, ys.shape[1], labels)
    absent = classes[~np.isin(classes, yt)]
    if len(absent):
        raise ValueError(
            f"classes {absent.tolist()} never occur in y_true: their one-vs-rest AUROC is "
            "undefined."
        )
    return _one_vs_rest(_binary_auroc, yt, ys, classes, average)


def precision_recall_curve(
    y_true: Any, y_score: Any, *, pos_label: Any = None, drop_intermediate: bool = False
):
    """Precision-recall curve of a binary classifier: ``(precision, recall, thresholds)``.

    ``precision[i]``, ``recall[i]`` are measured when predicting positive for
    ``score >= thresholds[i]`` (thresholds increase, recall decreases). The last point is
    (recall 0, precision 1) and has no threshold, so ``len(thresholds) = len(precision) - 1``.
    Raises ``ValueError`` when ``y_true`` has no positive sample (recall undefined).
    """
    yt, ys = _scores_pair(y_true, y_score)
    if ys.ndim != 1:
        raise ValueError(f"precision_recall_curve needs a 1-D score, got shape {ys.shape}.")
    is_pos = _binary_target(yt, pos_label, "precision_recall_curve")
    if not is_pos.any():
        raise ValueError("y_true has no positive sample: recall (and the PR curve) is undefined.")
    fps, tps, thresholds = _binary_clf_curve(is_pos, ys)
    if drop_intermediate and len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision_score(
    y_true: Any, y_score: Any, *, average: str | None = "macro", pos_label: Any = 1
) -> float | np.ndarray:
    r"""Average precision (area under the PR curve as a step function).

    AP = sum_n (R_n − R_{n−1}) P_n over thresholds, without interpolation (as scikit-learn).
    Binary: ``y_score`` (N,). Multi-class: ``y_score`` (N, K), one class vs the rest with
    ``average`` = ``"macro"``, ``"weighted"``, ``"micro"`` or ``None``.
    A class with no positive sample raises ``ValueError`` (scikit-learn warns and gives 0).
    """
    yt, ys = _scores_pair(y_true, y_score)
    n_classes = len(np.unique(yt))
    if ys.ndim == 2 and ys.shape[1] == 2 and n_classes <= 2:
        ys = ys[:, 1]
    if ys.ndim == 1:
        if n_classes > 2:
            raise ValueError("y_true is multi-class: pass scores of shape (N, K).")
        present = np.unique(yt).tolist()
        if len(present) == 2 and pos_label not in present:
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present}.")
        return _binary_average_precision(yt == pos_label, ys)
    classes = _infer_classes(yt, ys.shape[1], None)
    absent = classes[~np.isin(classes, yt)]
    if len(absent) and average != "micro":
        raise ValueError(f"classes {absent.tolist()} never occur in y_true: AP is undefined.")
    return _one_vs_rest(_binary_average_precision, yt, ys, classes, average)


# ----------------------------------------------------------------------------------------------
# probabilistic losses
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
# calibration
# ----------------------------------------------------------------------------------------------


def _confidence_and_correct(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray]:
    """Top-label confidence max_k p_ik and whether that top label is right.

    ``y_prob`` (N,) is the positive-class probability of a binary problem: the prediction is
    1 when p > 0.5 and the confidence is max(p, 1 − p).
    """
    yt, p = _scores_pair(y_true, y_prob)
    _check_probabilities(p)
    if p.ndim == 1:
        pred = (p > 0.5).astype(np.int64)
        conf = np.where(pred == 1, p, 1.0 - p)
    else:
        pred = p.argmax(axis=1)
        conf = p.max(axis=1)
    return conf, (pred == yt).astype(np.float64)


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
    y_true: Any, y_prob: Any, n_bins: int = 15, strategy: str = "uniform"
) -> ReliabilityCurve:
    """Bin samples by top-label confidence and return per-bin confidence, accuracy and count.

    ``strategy="uniform"``: M equal-width bins, bin m = ((m−1)/M, m/M] (a confidence of exactly
    0 goes to the first bin). ``strategy="quantile"``: equal-mass bins, i.e. after sorting by
    confidence, bin m holds samples floor/ceil(N/M) in rank order (the binning of adaptive ECE);
    its edges are the midpoints between neighbouring bins' confidences, 0 and 1 at the ends.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}.")
    conf, correct = _confidence_and_correct(y_true, y_prob)
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


def expected_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 15) -> float:
    r"""ECE = Σ_m (|B_m| / N) · |acc(B_m) − conf(B_m)| over M equal-width confidence bins.

    ``y_prob`` (N, K) probabilities (or (N,) positive-class probability). Uses the top-label
    confidence max_k p_ik; bins as in :func:`reliability_curve` (``strategy="uniform"``).
    """
    gaps, count = _calibration_gaps(reliability_curve(y_true, y_prob, n_bins, "uniform"))
    return float((gaps * count).sum() / count.sum())


def maximum_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 15) -> float:
    r"""MCE = max_m |acc(B_m) − conf(B_m)| over the non-empty equal-width bins (worst case)."""
    gaps, _ = _calibration_gaps(reliability_curve(y_true, y_prob, n_bins, "uniform"))
    return float(gaps.max())


def adaptive_calibration_error(y_true: Any, y_prob: Any, n_bins: int = 15) -> float:
    r"""Adaptive ECE: the ECE formula over equal-mass bins (each holds about N / M samples).

    Useful because confidences of deep nets pile up near 1, leaving most equal-width bins
    almost empty. The bins are those of ``reliability_curve(..., strategy="quantile")``.
    """
    gaps, count = _calibration_gaps(reliability_curve(y_true, y_prob, n_bins, "quantile"))
    return float((gaps * count).sum() / count.sum())


class TemperatureScaler:
    r"""Temperature scaling (Guo et al., 2017): calibrated p = softmax(z / T).

    One scalar T > 0 is fitted on *validation* logits by minimising the NLL; we optimise
    log T with L-BFGS so that T stays positive. T > 1 softens overconfident predictions,
    T < 1 sharpens them, and the argmax (hence accuracy) never changes.

    Example::

        scaler = TemperatureScaler().fit(val_logits, val_labels)
        probs = scaler.predict_proba(test_logits)      # = softmax(test_logits / T)

    Logits of shape (N,) are treated as binary logits of the positive class (sigmoid).
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

    def fit(self, logits: Any, y_true: Any) -> TemperatureScaler:
        """Find T minimising mean NLL of softmax(logits / T) on (validation) data; returns self."""
        z = self._logits(logits)
        y = torch.as_tensor(_to_numpy(y_true, "y_true"), dtype=torch.long)
        if y.shape != z.shape[:1]:
            raise ValueError(f"y_true must have shape ({z.shape[0]},), got {tuple(y.shape)}.")
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


# ----------------------------------------------------------------------------------------------
# comparing two classifiers over N datasets: the Wilcoxon signed-rank test
# ----------------------------------------------------------------------------------------------


class WilcoxonResult(NamedTuple):
    """Outcome of :func:`wilcoxon_signed_rank`.

    * ``statistic`` T = min(R+, R−);   ``r_plus`` (B better), ``r_minus`` (A better)
    * ``z``  (T − N(N+1)/4) / sqrt(N(N+1)(2N+1)/24)  (tie-corrected), always reported
    * ``p_value`` two-sided, from the exact distribution or the normal approximation
    * ``method`` ``"exact"`` or ``"approx"``;  ``n`` differences used (zeros dropped)
    * ``reject`` p_value < alpha;  ``better`` ``"a"``, ``"b"`` or ``None``;  ``decision`` text
    """

    statistic: float
    z: float
    p_value: float
    reject: bool
    better: str | None
    decision: str
    method: str
    n: int
    r_plus: float
    r_minus: float
    alpha: float


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the mean of the ranks they span (e.g. two tied for 1st: 1.5 each)."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    ranks = np.empty(len(values))
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_vals[end] != sorted_vals[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of ranks start+1..end
            start = end
    return ranks


def _exact_signed_rank_pvalue(ranks: np.ndarray, r_plus: float) -> float:
    """Two-sided p from the exact null distribution of R+ given these ranks.

    Under H0 every rank is + or − with probability 1/2, so R+ is the sum of a random subset of
    the ranks. We count subsets per sum with a small dynamic programme (ranks are doubled to
    make tied half-ranks integers): exact for any n, also with ties (conditionally on them).
    """
    twice = np.rint(2 * ranks).astype(np.int64)
    counts = np.zeros(twice.sum() + 1)
    counts[0] = 1.0
    for r in twice:  # add rank r to every subset: counts'[s] = counts[s] + counts[s - r]
        counts[r:] = counts[r:] + counts[:-r]
    prob = counts / counts.sum()
    observed = int(round(2 * r_plus))
    p_low, p_high = prob[: observed + 1].sum(), prob[observed:].sum()
    return float(min(1.0, 2 * min(p_low, p_high)))


def wilcoxon_signed_rank(
    scores_a: Any,
    scores_b: Any,
    alpha: float = 0.05,
    exact: bool | None = None,
    zero_method: str = "wilcox",
) -> WilcoxonResult:
    r"""Wilcoxon signed-rank test: do classifiers A and B differ over N datasets (Demšar 2006)?

    1. d_i = score_b,i − score_a,i on each dataset i (higher score = better);
    2. rank |d_i| from 1 to N, tied values get the average rank;
    3. R+ = sum of ranks where B won (d_i > 0), R− = sum where A won (d_i < 0);
    4. T = min(R+, R−) and

       z = (T − N(N+1)/4) / sqrt(N(N+1)(2N+1)/24),

       approximately standard normal for large N (about N > 25). With tied |d_i| the variance
       is reduced by Σ(t³ − t)/48 over tie groups of size t (as in scipy).
    5. Two-sided p = 2 Φ(z); at alpha = 0.05, reject "A and B are equal" when z < −1.96.

    ``exact``: ``True`` computes p from the exact distribution of R+ (small N; also valid with
    ties, conditionally), ``False`` uses the normal approximation, ``None`` picks exact for
    N <= 25. ``zero_method``: ``"wilcox"`` drops d_i = 0 (scipy's default), ``"zsplit"`` ranks
    them and splits their ranks evenly between R+ and R− (Demšar's suggestion).
    Raises ``ValueError`` for empty or unequal-length input or when every d_i is 0.
    Agrees with ``scipy.stats.wilcoxon(scores_b, scores_a, zero_method, method="asymptotic",
    correction=False)``, and with ``method="exact"`` when no two |d_i| tie (scipy's exact
    table assumes distinct ranks; with ties the exact p-values here enumerate the tied ranks
    and differ slightly).
    """
    a = _to_numpy(scores_a, "scores_a").astype(np.float64).ravel()
    b = _to_numpy(scores_b, "scores_b").astype(np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"scores_a and scores_b must pair up: {a.shape} vs {b.shape}.")
    d = b - a
    if zero_method == "wilcox":
        d = d[d != 0]
    elif zero_method != "zsplit":
        raise ValueError(f"zero_method must be 'wilcox' or 'zsplit', got {zero_method!r}.")
    n = len(d)
    if n == 0 or not (d != 0).any():
        raise ValueError("all differences are zero: the two classifiers cannot be told apart.")
    ranks = _average_ranks(np.abs(d))
    r_plus = ranks[d > 0].sum() + ranks[d == 0].sum() / 2
    r_minus = ranks[d < 0].sum() + ranks[d == 0].sum() / 2
    t_stat = min(r_plus, r_minus)

    _, tie_sizes = np.unique(np.abs(d), return_counts=True)
    variance = n * (n + 1) * (2 * n + 1) / 24 - (tie_sizes**3 - tie_sizes).sum() / 48
    z = (t_stat - n * (n + 1) / 4) / math.sqrt(variance)

    use_exact = n <= 25 if exact is None else exact
    if use_exact:  # zero differences (zsplit) add a fixed half-rank to R+: leave them out
        p_value = _exact_signed_rank_pvalue(ranks[d != 0], ranks[d > 0].sum())
    else:
        p_value = min(1.0, 2 * 0.5 * math.erfc(-z / math.sqrt(2)))  # 2 Φ(z), z <= 0
    reject = p_value < alpha
    better = ("b" if r_plus > r_minus else "a") if reject else None
    if reject:
        decision = f"reject H0 (p = {p_value:.4g} < {alpha}): {better.upper()} is better"
    else:
        decision = f"no significant difference (p = {p_value:.4g} >= {alpha})"
    return WilcoxonResult(
        statistic=float(t_stat),
        z=float(z),
        p_value=float(p_value),
        reject=bool(reject),
        better=better,
        decision=decision,
        method="exact" if use_exact else "approx",
        n=n,
        r_plus=float(r_plus),
        r_minus=float(r_minus),
        alpha=alpha,
    )


# ----------------------------------------------------------------------------------------------
# data splits
# ----------------------------------------------------------------------------------------------


def stratified_kfold(
    y: Any, k: int = 5, seed: int = 0, shuffle: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds that keep the class proportions: a list of ``(train_idx, test_idx)`` pairs.

    Each class's indices are (shuffled with ``seed`` and) dealt round-robin to the k folds,
    continuing where the previous class stopped, so every class count per fold differs by at
    most one and fold sizes differ by at most one. Every index is in exactly one test fold.
    """
    y = _to_numpy(y, "y").ravel()
    if not 2 <= k <= len(y):
        raise ValueError(f"k must be between 2 and the number of samples ({len(y)}), got {k}.")
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < k:
        warnings.warn(
            f"the smallest class has only {counts.min()} members, fewer than k={k}: some test "
            "folds will miss it.",
            UserWarning,
            stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in classes:
        idx = np.flatnonzero(y == c)
        if shuffle:
            idx = rng.permutation(idx)
        fold_of[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    everything = np.arange(len(y))
    return [(everything[fold_of != f], everything[fold_of == f]) for f in range(k)]


def time_series_split(n: int, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining splits for ordered data: train on the past, test on the next block.

    The last k·⌊n/(k+1)⌋ samples are cut into k test blocks of ⌊n/(k+1)⌋; split i trains on
    everything before block i. Same indices as ``sklearn.model_selection.TimeSeriesSplit(k)``.
    """
    test_size = n // (k + 1)
    if k < 1 or test_size == 0:
        raise ValueError(f"cannot make {k} time-series splits from {n} samples (need n > k).")
    starts = range(n - k * test_size, n, test_size)
    return [(np.arange(s), np.arange(s, s + test_size)) for s in starts]
