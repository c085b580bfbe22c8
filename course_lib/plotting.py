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

from course_lib.train import History

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
