"""Data quality checks before training: histograms, train/test duplicates, label noise, shift.

"Garbage in, garbage out": four checks that need no model or only a small one.

* :func:`class_histogram`, :func:`pixel_histogram` - how often each class and each intensity
  occurs in a split (compare the splits: a mismatch is visible before any training);
* :func:`exact_duplicates`, :func:`nearest_neighbours`, :func:`near_duplicates` - test images
  that also sit in the training set, byte for byte (hashes) or almost (Euclidean nearest
  neighbour closer than a threshold): they inflate test accuracy;
* :func:`inject_label_noise`, :func:`per_example_loss`, :func:`precision_at_k` - mislabelled
  examples have a high loss under a model trained on them; rank by loss and measure how many
  of the top ``k`` really are wrong;
* :func:`pixel_stat_distance`, :func:`domain_auroc` - how different two splits are: the distance
  between their per-pixel means and standard deviations, and the AUROC of a classifier that
  tries to tell the two splits apart (0.5: indistinguishable, 1: fully separable).

Images are tensors ``(N, C, H, W)`` (or any ``(N, ...)``) with values in ``[0, 1]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "class_histogram",
    "pixel_histogram",
    "image_hashes",
    "exact_duplicates",
    "nearest_neighbours",
    "near_duplicates",
    "inject_label_noise",
    "per_example_loss",
    "precision_at_k",
    "pixel_stat_distance",
    "domain_auroc",
]


# ----------------------------------------------------------------------------------------------
# histograms
# ----------------------------------------------------------------------------------------------


def class_histogram(y: Tensor | np.ndarray, num_classes: int, normalise: bool = True) -> np.ndarray:
    """Count (or fraction, ``normalise=True``) of each class in labels ``y`` of shape ``(N,)``.

    Returns an array ``(num_classes,)``; classes that never occur get 0.
    """
    counts = np.bincount(np.asarray(y).ravel(), minlength=num_classes).astype(float)
    return counts / counts.sum() if normalise else counts


def pixel_histogram(
    x: Tensor, bins: int = 32, value_range: tuple[float, float] = (0.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram of every pixel value of ``x`` ``(N, ...)``: ``(density, edges)``.

    ``density`` has ``bins`` entries and integrates to 1 over ``edges`` (``bins + 1`` values),
    like ``np.histogram(x, bins, range, density=True)``, so splits of any size compare directly.
    """
    return np.histogram(
        x.detach().cpu().numpy().ravel(), bins=bins, range=value_range, density=True
    )


# ----------------------------------------------------------------------------------------------
# duplicates
# ----------------------------------------------------------------------------------------------


def image_hashes(x: Tensor, levels: int = 255) -> list[str]:
    """One SHA-1 hex digest per image of ``x`` ``(N, ...)`` after quantising to ``levels + 1``
    grey levels (``round(x * levels)`` as uint8): equal digests mean identical images."""
    q = torch.round(x.detach().cpu().clamp(0, 1) * levels).to(torch.uint8).reshape(len(x), -1)
    return [hashlib.sha1(row.numpy().tobytes()).hexdigest() for row in q]


def exact_duplicates(train_x: Tensor, test_x: Tensor) -> list[tuple[int, int]]:
    """Pairs ``(test_index, train_index)`` of test images identical to a training image
    (same :func:`image_hashes`); each test image is paired with its first training copy."""
    first: dict[str, int] = {}
    for j, h in enumerate(image_hashes(train_x)):
        first.setdefault(h, j)
    return [(i, first[h]) for i, h in enumerate(image_hashes(test_x)) if h in first]


@torch.no_grad()
def nearest_neighbours(
    query: Tensor, reference: Tensor, k: int = 1, chunk: int = 1024
) -> tuple[Tensor, Tensor]:
    r"""The ``k`` nearest reference rows of every query row in Euclidean distance.

    ``query`` ``(M, ...)`` and ``reference`` ``(N, ...)`` are flattened to ``(M, D)`` and
    ``(N, D)``; :math:`d(q, r) = \lVert q - r \rVert_2` computed exactly as
    :math:`\sqrt{\max(0, \lVert q\rVert^2 - 2 q\cdot r + \lVert r\rVert^2)}` in float64, ``chunk``
    queries at a time. Returns ``(distances, indices)``, both ``(M, k)``, nearest first (the
    same as ``sklearn.neighbors.NearestNeighbors(n_neighbors=k).kneighbors``).
    """
    q = query.detach().reshape(len(query), -1).double()
    r = reference.detach().reshape(len(reference), -1).double()
    r2 = (r * r).sum(1)
    dists, idx = [], []
    for start in range(0, len(q), chunk):
        qb = q[start : start + chunk]
        d2 = (qb * qb).sum(1, keepdim=True) - 2 * qb @ r.T + r2
        d, i = torch.topk(d2.clamp_min(0), k, dim=1, largest=False)
        dists.append(d.sqrt())
        idx.append(i)
    return torch.cat(dists).float(), torch.cat(idx)


def near_duplicates(
    train_x: Tensor, test_x: Tensor, threshold: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Test images whose nearest training image lies closer than ``threshold`` (Euclidean, on
    the flattened pixels): ``(test_indices, train_indices, distances)``, each ``(n_found,)``.

    ``threshold=0`` finds nothing; exact copies have distance 0 and are found by any
    ``threshold > 0``. Pick the threshold from the distribution of nearest-neighbour
    distances (a clear gap below the bulk) and look at the pairs before deleting anything.
    """
    d, j = nearest_neighbours(test_x, train_x, k=1)
    d, j = d[:, 0], j[:, 0]
    found = torch.nonzero(d < threshold).flatten()
    return found, j[found], d[found]


# ----------------------------------------------------------------------------------------------
# label noise
# ----------------------------------------------------------------------------------------------


def inject_label_noise(
    y: Tensor, fraction: float, num_classes: int, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Give ``round(fraction * N)`` randomly chosen examples a wrong label.

    Each chosen label is replaced by one of the ``num_classes - 1`` *other* classes, uniformly.
    Returns ``(noisy_labels, flipped)`` with ``flipped`` a boolean mask ``(N,)``.
    """
    g = torch.Generator().manual_seed(seed)
    n = len(y)
    chosen = torch.randperm(n, generator=g)[: round(fraction * n)]
    offset = torch.randint(1, num_classes, (len(chosen),), generator=g)
    noisy = y.clone()
    noisy[chosen] = (y[chosen] + offset) % num_classes
    flipped = torch.zeros(n, dtype=torch.bool)
    flipped[chosen] = True
    return noisy, flipped


@torch.no_grad()
def per_example_loss(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> Tensor:
    r"""Cross-entropy of every example, :math:`\ell_i = -\log p_\theta(y_i \mid x_i)`, shape ``(N,)``.

    The model is put in eval mode and runs on the device of its parameters; the result is on
    the CPU. A high loss means the model disagrees with the label: a hard example, or a wrong
    label.
    """
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size].to(device), y[start : start + batch_size].to(device)
        out.append(F.cross_entropy(model(xb).float(), yb, reduction="none").cpu())
    return torch.cat(out)


def precision_at_k(scores: Tensor, is_positive: Tensor, ks: Iterable[int]) -> dict[int, float]:
    """For each ``k``: the fraction of the ``k`` highest ``scores`` whose ``is_positive`` is set.

    With ``scores`` the per-example losses and ``is_positive`` the flipped labels, this is how
    much of a "check these first" list really is mislabelled. Ties are broken by index order
    (a stable sort of ``-scores``). Random ranking has expected precision ``is_positive.mean()``.
    """
    order = torch.from_numpy(np.argsort(-scores.numpy(), kind="stable"))
    hits = is_positive[order].double()
    return {int(k): float(hits[:k].mean()) for k in ks}


# ----------------------------------------------------------------------------------------------
# train/test shift
# ----------------------------------------------------------------------------------------------


def pixel_stat_distance(a: Tensor, b: Tensor) -> dict[str, float]:
    r"""How far apart the per-pixel statistics of two splits ``(N_a, ...)`` and ``(N_b, ...)`` are.

    With :math:`\mu_a, \sigma_a` the mean and standard deviation of every pixel over split
    ``a`` (likewise ``b``), returns the root-mean-square differences over the :math:`D` pixels,
    ``mean_rms`` :math:`= \sqrt{\tfrac1D \sum_d (\mu_{a,d} - \mu_{b,d})^2}` and ``std_rms``
    (the same for :math:`\sigma`), plus ``mean_abs`` :math:`= |\bar a - \bar b|`, the difference
    of the overall mean intensities.
    """
    fa, fb = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    mean_rms = (fa.mean(0) - fb.mean(0)).pow(2).mean().sqrt()
    std_rms = (fa.std(0) - fb.std(0)).pow(2).mean().sqrt()
    return {
        "mean_rms": float(mean_rms),
        "std_rms": float(std_rms),
        "mean_abs": float((fa.mean() - fb.mean()).abs()),
    }


def domain_auroc(
    a: Tensor, b: Tensor, folds: int = 5, seed: int = 0, max_n: int = 1000, components: int = 32
) -> float:
    """Cross-validated AUROC of a classifier that tells split ``a`` from split ``b``.

    Both splits are flattened to ``(N, D)``, each subsampled to at most ``max_n`` examples
    (with ``seed``), and labelled 0 (``a``) and 1 (``b``); standardisation, a PCA to
    ``components`` dimensions and a logistic regression (scikit-learn, ``C=0.1``) are scored by ``folds``-fold stratified cross-validation with
    out-of-fold probabilities. About 0.5: the classifier cannot separate them (no detectable
    shift); near 1: the splits are different distributions. Unequal sizes do not bias AUROC.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    parts = []
    for t in (a, b):
        f = t.detach().cpu().reshape(len(t), -1).double().numpy()
        parts.append(f[rng.permutation(len(f))[:max_n]])
    features = np.concatenate(parts)
    labels = np.r_[np.zeros(len(parts[0])), np.ones(len(parts[1]))]
    n_comp = min(components, features.shape[1], len(features) - len(features) // folds)
    clf = make_pipeline(
        StandardScaler(), PCA(n_comp, random_state=seed), LogisticRegression(C=0.1, max_iter=500)
    )
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    proba = cross_val_predict(clf, features, labels, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, proba))
