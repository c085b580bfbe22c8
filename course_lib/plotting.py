"""Figures for the book: learning curves and image grids.

Every function draws on a Matplotlib ``Axes`` (created when not given), labels its axes,
adds a legend where there is more than one line, and returns the figure or axes so that a
notebook cell can tweak it further.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib.history import History

_LABELS = {"loss": "loss", "acc": "accuracy"}


def _as_history(h: History | Mapping) -> History:
    return h if isinstance(h, History) else History.from_dict(dict(h))


def plot_history(
    runs: History | Mapping[str, History],
    metrics: Sequence[str] = ("loss", "acc"),
    title: str | None = None,
    axes: Sequence[plt.Axes] | None = None,
    logy: bool = False,
) -> plt.Figure:
    """Learning curves: train (solid) vs validation (dashed), one panel per metric.

    ``runs`` is one :class:`History` or a ``{name: History}`` dict to overlay several runs
    (one colour per run). Metrics are ``"loss"`` and ``"acc"`` (or any key ``k`` with
    ``train_k``/``val_k`` lists).
    """
    if isinstance(runs, History) or (isinstance(runs, Mapping) and "train_loss" in runs):
        runs = {"": _as_history(runs)}
    runs = {name: _as_history(h) for name, h in runs.items()}
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes, metrics):
        for i, (name, h) in enumerate(runs.items()):
            c = colors[i % len(colors)]
            prefix = f"{name} " if name else ""
            train = getattr(h, f"train_{metric}", None) or h.extra.get(f"train_{metric}", [])
            val = getattr(h, f"val_{metric}", None) or h.extra.get(f"val_{metric}", [])
            if train:
                ax.plot(h.epoch[: len(train)], train, color=c, label=f"{prefix}train")
            if val:
                ax.plot(h.epoch[: len(val)], val, color=c, ls="--", label=f"{prefix}val")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_LABELS.get(metric, metric))
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def image_grid(
    images: torch.Tensor | np.ndarray,
    labels: Sequence[int] | torch.Tensor | None = None,
    preds: Sequence[int] | torch.Tensor | None = None,
    classes: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    cmap: str = "gray",
    size: float = 1.4,
) -> plt.Figure:
    """Show images ``(N, C, H, W)`` (or ``(N, H, W)``) in a grid.

    Titles show the label, and with ``preds`` also the prediction; wrong predictions are
    drawn in red. Values are rescaled per image to ``[0, 1]`` for display.
    """
    x = torch.as_tensor(images).detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(f"image_grid expects (N, C, H, W) or (N, H, W), got {tuple(x.shape)}")
    n = x.shape[0]
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, min(ncols, n), figsize=(size * min(ncols, n), size * nrows + 0.3), squeeze=False
    )
    name = (lambda k: classes[int(k)]) if classes is not None else (lambda k: str(int(k)))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i]
        lo, hi = img.min(), img.max()
        img = (img - lo) / (hi - lo + 1e-8)
        if img.shape[0] == 1:
            ax.imshow(img[0].numpy(), cmap=cmap)
        else:
            ax.imshow(img.permute(1, 2, 0).numpy())
        text, color = [], "black"
        if labels is not None:
            text.append(name(labels[i]))
        if preds is not None:
            text.append(f"→{name(preds[i])}")
            if labels is not None and int(preds[i]) != int(labels[i]):
                color = "red"
        if text:
            ax.set_title(" ".join(text), fontsize=8, color=color)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: np.ndarray,
    classes: Sequence[str] | None = None,
    normalize: bool = False,
    ax: plt.Axes | None = None,
    title: str | None = None,
    cmap: str = "Blues",
) -> plt.Axes:
    """Heat map of a confusion matrix ``cm[i, j]`` = count of true class ``i`` predicted as ``j``.

    ``normalize=True`` divides each row by its total, so the diagonal shows per-class recall.
    """
    cm = np.asarray(cm, dtype=float)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got {cm.shape}")
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = cm.shape[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * k + 2.5, 0.45 * k + 2))
    im = ax.imshow(cm, cmap=cmap, vmin=0)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
    ax.set_yticks(range(k), names)
    if k <= 12:
        fmt = "{:.2f}" if normalize else "{:.0f}"
        for i in range(k):
            for j in range(k):
                color = "white" if cm[i, j] > 0.6 * cm.max() else "black"
                ax.text(
                    j, i, fmt.format(cm[i, j]), ha="center", va="center", fontsize=7, color=color
                )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(
        title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix")
    )
    return ax


def plot_reliability(
    y_true,
    y_prob,
    n_bins: int = 15,
    ax: plt.Axes | None = None,
    label: str | None = None,
    show_counts: bool = True,
) -> plt.Axes:
    """Reliability diagram: accuracy against confidence per bin, with the diagonal.

    Bars show each bin's accuracy; the red gap up to the bin's mean confidence is the
    miscalibration that ECE averages (weighted by the bin's share of samples). The title
    reports ECE. ``y_prob`` is ``(N, K)`` probabilities (or ``(N,)`` for binary).
    """
    from course_lib.metrics import expected_calibration_error, reliability_curve

    curve = reliability_curve(y_true, y_prob, n_bins=n_bins)
    ece = expected_calibration_error(y_true, y_prob, n_bins=n_bins)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 4.2))
    edges = curve.edges
    width = np.diff(edges)
    filled = curve.count > 0
    ax.bar(edges[:-1][filled], curve.accuracy[filled], width[filled], align="edge",
           edgecolor="black", alpha=0.8, label="accuracy")  # fmt: skip
    gap_lo = np.minimum(curve.accuracy, curve.confidence)[filled]
    gap_hi = np.abs(curve.accuracy - curve.confidence)[filled]
    ax.bar(edges[:-1][filled], gap_hi, width[filled], bottom=gap_lo, align="edge",
           color="red", alpha=0.3, hatch="//", label="gap to confidence")  # fmt: skip
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    if show_counts:
        share = curve.count / max(curve.count.sum(), 1)
        ax.plot((edges[:-1] + edges[1:]) / 2, share, "o-", ms=3, color="gray", lw=1,
                label="share of samples")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{label + ': ' if label else ''}ECE = {100 * ece:.2f} %")
    ax.legend(fontsize="x-small", loc="upper left")
    return ax


def plot_filters(weight: torch.Tensor, ncols: int = 8, title: str | None = None) -> plt.Figure:
    """Show convolution kernels ``(C_out, C_in, kH, kW)``: one tile per output channel
    (RGB when ``C_in == 3``, otherwise the first input channel), each rescaled to [0, 1]."""
    w = torch.as_tensor(weight).detach().float().cpu()
    if w.dim() != 4:
        raise ValueError(f"expected conv weights (C_out, C_in, kH, kW), got {tuple(w.shape)}")
    tiles = w if w.shape[1] == 3 else w[:, :1]
    return image_grid(tiles, ncols=ncols, title=title, cmap="gray", size=0.9)


def plot_feature_maps(
    maps: torch.Tensor, ncols: int = 8, title: str | None = None, max_maps: int = 32
):
    """Show the channels of one feature map ``(C, H, W)`` (or the first example of ``(N, C, H, W)``)."""
    m = torch.as_tensor(maps).detach().float().cpu()
    if m.dim() == 4:
        m = m[0]
    if m.dim() != 3:
        raise ValueError(f"expected feature maps (C, H, W) or (N, C, H, W), got {tuple(m.shape)}")
    return image_grid(m[:max_maps].unsqueeze(1), ncols=ncols, title=title, cmap="viridis", size=1.0)


def plot_decision_boundary(
    predict,
    x: np.ndarray,
    y: np.ndarray,
    ax: plt.Axes | None = None,
    resolution: int = 200,
    margin: float = 0.5,
    title: str | None = None,
) -> plt.Axes:
    """Colour the plane by ``predict(points (M, 2)) -> labels (M,)`` and scatter ``x (N, 2)``
    coloured by ``y (N,)``."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"decision boundaries need 2-D inputs (N, 2), got {x.shape}")
    (x0, y0), (x1, y1) = x.min(0) - margin, x.max(0) + margin
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.c_[gx.ravel(), gy.ravel()]
    z = np.asarray(predict(grid)).reshape(gx.shape)
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4))
    ax.contourf(gx, gy, z, alpha=0.25, cmap="tab10", vmin=0, vmax=9)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=12, edgecolor="k", lw=0.3)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    return ax


def plot_band(
    x: Sequence[float] | np.ndarray,
    values: np.ndarray | Sequence[Sequence[float]],
    ax: plt.Axes | None = None,
    label: str | None = None,
    spread: str = "std",
    **line_kwargs,
) -> plt.Axes:
    """Mean over seeds as a line, with a shaded band for the spread between seeds.

    ``values`` has shape ``(len(x), n_seeds)``: one row per x, one column per seed (NaN
    entries are ignored). ``spread="std"`` shades mean ± one standard deviation (ddof=1),
    ``"minmax"`` the range from the lowest to the highest seed. ``line_kwargs`` go to
    ``ax.plot`` (``marker``, ``ls``, ``color``, ...); the band takes the line's colour.
    """
    if spread not in ("std", "minmax"):
        raise ValueError(f"spread must be 'std' or 'minmax', got {spread!r}")
    x, v = np.asarray(x, dtype=float), np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[0] != x.shape[0]:
        raise ValueError(f"values must have shape (len(x), n_seeds) = ({len(x)}, n), got {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    mean = np.nanmean(v, axis=1)
    if spread == "std":
        sd = np.nanstd(v, axis=1, ddof=1) if v.shape[1] > 1 else np.zeros_like(mean)
        lo, hi = mean - sd, mean + sd
    else:
        lo, hi = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
    (line,) = ax.plot(x, mean, label=label, **line_kwargs)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    return ax
