"""Input conversion and checks shared by the metric modules (private).

* ``_to_numpy``: tensors (any device, any float dtype), lists or arrays -> numpy; empty -> error;
* ``_labels_pair`` / ``_scores_pair``: shape checks for (labels, labels) and (labels, scores);
* ``_encode``: label -> its index in a list of classes;
* ``_infer_classes``: which class each column of an (N, K) score matrix stands for;
* ``_check_probabilities``, ``_positive_label``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


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
