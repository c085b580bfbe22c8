"""Red flags of training, reproduced: deliberately broken runs and the symptoms they leave.

The lecture's list of symptoms (a loss that becomes NaN, a training loss that stays high, an
unstable validation curve, a large train/validation gap, different results in train and eval
mode) is easiest to recognise after producing each one on purpose:

* :func:`largest_drop` and :func:`curve_symptoms` - the numbers to read off one run's
  :class:`~course_lib.train.History`;
* :func:`red_flag_runs` - train one model per broken configuration (a learning rate, an
  optimiser, weight decay, unshuffled class-sorted data), one row of symptoms each;
* :func:`forgotten_eval` - a model with BatchNorm evaluated in training mode on class-sorted
  test batches, then properly: what forgetting ``model.eval()`` costs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from course_lib.data import TensorLoader
from course_lib.experiments import train_classifier
from course_lib.runtime import seed_everything
from course_lib.train import History

__all__ = ["largest_drop", "curve_symptoms", "red_flag_runs", "forgotten_eval"]


def largest_drop(values: Sequence[float]) -> float:
    """The largest fall between two consecutive values, ``max(v[e] - v[e + 1])``; 0 if none falls."""
    return max([a - b for a, b in zip(values, values[1:])] + [0.0])


def curve_symptoms(history: History, skip: int = 2) -> dict[str, Any]:
    """One run's red-flag numbers from its per-epoch curves.

    ``epochs`` run; the last ``train loss`` and ``val acc``; the lowest and highest validation
    accuracy after the first ``skip`` epochs (``val acc min``, ``val acc max``: how much the curve
    moves once training has started); :func:`largest_drop` of the validation accuracy; and
    ``stopped`` (the reason a run ended early, e.g. a NaN loss, else ``""``). Values of a run that
    stopped before any epoch finished are NaN.
    """
    nan = float("nan")
    late = history.val_acc[skip:]
    return {
        "epochs": len(history.train_loss),
        "train loss": history.train_loss[-1] if history.train_loss else nan,
        "val acc": history.val_acc[-1] if history.val_acc else nan,
        "val acc min": min(late) if late else nan,
        "val acc max": max(late) if late else nan,
        "largest drop": largest_drop(history.val_acc),
        "stopped": "NaN loss" if history.stopped_reason else "",
    }


def red_flag_runs(
    make_model: Callable[[], nn.Module],
    x: Tensor,
    y: Tensor,
    val_loader: Iterable,
    runs: Mapping[str, Mapping[str, Any]],
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    batch_size: int = 32,
    seed: int = 0,
    skip: int = 2,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Train ``make_model()`` once per entry of ``runs``; one row of :func:`curve_symptoms` each.

    Every run starts from ``seed_everything(seed)`` and the reference settings (``lr``,
    ``optimizer``, shuffled batches of ``batch_size`` in an order fixed by ``seed``, ``epochs``);
    the entry's keys change them: ``lr``, ``optimizer``, ``weight_decay``, ``epochs``,
    ``shuffle=False``, and ``sort_by_class=True`` (the training data sorted by label, as many
    datasets are stored). Training goes through
    :func:`~course_lib.experiments.train_classifier`, so a NaN loss stops the run (the Trainer
    prints why) instead of raising. Returns a table indexed by the names of ``runs``.
    """
    rows = {}
    for name, change in runs.items():
        change = dict(change)
        unknown = set(change) - {
            "lr",
            "optimizer",
            "weight_decay",
            "epochs",
            "shuffle",
            "sort_by_class",
        }
        if unknown:
            raise ValueError(f"run {name!r}: unknown settings {sorted(unknown)}")
        xs, ys = x, y
        if change.pop("sort_by_class", False):
            order = torch.argsort(y, stable=True)
            xs, ys = x[order], y[order]
        seed_everything(seed)
        loader = TensorLoader(
            xs, ys, batch_size=batch_size, shuffle=change.pop("shuffle", True), seed=seed
        )
        settings = {"lr": lr, "optimizer": optimizer, "epochs": epochs, **change}
        _, history = train_classifier(make_model(), loader, val_loader, device=device, **settings)
        rows[name] = curve_symptoms(history, skip)
    return pd.DataFrame.from_dict(rows, orient="index")


@torch.no_grad()
def forgotten_eval(
    model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 100
) -> dict[str, float]:
    """Accuracy with ``model.eval()`` forgotten, on class-sorted batches, then with it.

    The examples ``x`` ``(N, ...)`` are sorted by their labels ``y`` ``(N,)`` and fed in batches
    of ``batch_size`` in **training mode**: every BatchNorm layer normalises with the statistics
    of a batch that holds (mostly) one class, and also *updates its running statistics* with
    them. Then the whole set is evaluated in eval mode. The model is changed (its running
    statistics) and left in eval mode: this shows the damage, it does not avoid it.

    Returns ``{"train mode": accuracy, "eval mode afterwards": accuracy}``.
    """
    param = next(model.parameters())
    order = torch.argsort(y, stable=True)
    xs, ys = x[order].to(param.device), y[order].to(param.device)
    model.train()
    wrong = torch.cat(
        [model(xs[i : i + batch_size]).argmax(1) for i in range(0, len(ys), batch_size)]
    )
    model.eval()
    right = model(xs).argmax(1)
    return {
        "train mode": (wrong == ys).float().mean().item(),
        "eval mode afterwards": (right == ys).float().mean().item(),
    }
