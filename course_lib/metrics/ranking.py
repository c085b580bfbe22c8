"""Threshold curves and the areas under them: ROC curve and AUROC, precision-recall curve
and average precision (AUPRC), binary and one-vs-rest multi-class.

Scores rank the examples; these metrics judge the ranking at every threshold at once, so they
do not depend on where a classifier puts its decision threshold. Ties follow scikit-learn: a
block of tied scores is one threshold (the ROC curve crosses it diagonally).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_lib.metrics._inputs import _infer_classes, _positive_label, _scores_pair, _to_numpy

__all__ = [
    "roc_curve",
    "auc",
    "roc_auc_score",
    "precision_recall_curve",
    "average_precision_score",
]


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
