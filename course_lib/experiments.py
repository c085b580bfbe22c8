"""Repeated experiments: one seeded training run, repeated over seeds and a grid, as mean ± spread.

One seed at toy scale is noise. The chapters therefore run each setting for several seeds:

* :func:`train_classifier` - build the optimiser and a :class:`~course_lib.train.Trainer`, fit,
  return ``(trainer, history)``; a non-finite loss stops the run instead of raising;
* :func:`sweep` - call ``fn(seed=s, **point)`` for every point of a grid and every seed (with a
  progress bar) and collect one row per run in a long :class:`pandas.DataFrame`;
* :func:`mean_spread` - the table to print: one cell per grid point, ``"mean ± std"``.

The band of a plot comes from the same long table (``df.groupby(...)["value"].agg(["mean",
"std"])``, then :func:`course_lib.plotting.plot_band`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib.train import History, Trainer

__all__ = ["train_classifier", "sweep", "mean_spread"]


def train_classifier(
    model: nn.Module,
    train_loader: Iterable,
    val_loader: Iterable | None = None,
    *,
    lr: float,
    epochs: int,
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    device: torch.device | str | None = None,
    **trainer_kwargs: Any,
) -> tuple[Trainer, History]:
    """Fit ``model`` with SGD (+ ``momentum``), Adam or AdamW; return ``(trainer, history)``.

    A NaN/inf loss stops the run (``history.stopped_reason`` says why) rather than raising,
    so a sweep over learning rates records diverged runs instead of crashing. Further
    keyword arguments go to :class:`~course_lib.train.Trainer` (``loss_fn``, ``scheduler``,
    ``callbacks``, ...).
    """
    params = model.parameters()
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    elif optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer must be 'sgd', 'adam' or 'adamw', got {optimizer!r}")
    trainer_kwargs.setdefault("on_nonfinite", "stop")
    trainer = Trainer(model, opt, device=device, **trainer_kwargs)
    history = trainer.fit(train_loader, val_loader, epochs=epochs)
    return trainer, history


def sweep(
    fn: Callable[..., float | Mapping[str, float]],
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int] = (0, 1, 2),
    desc: str | None = None,
) -> pd.DataFrame:
    """Run ``fn(seed=s, **point)`` for every grid point (the product of ``grid``) and seed.

    Returns a long table, one row per run: the grid's columns, ``seed``, and either
    ``value`` (when ``fn`` returns a number) or one column per key of the mapping it returns.
    The loop shows a ``tqdm`` progress bar (``TQDM_DISABLE=1`` hides it).
    """
    names = list(grid)
    points = [dict(zip(names, values)) for values in itertools.product(*grid.values())]
    runs = [(point, seed) for point in points for seed in seeds]
    rows = []
    for point, seed in tqdm(runs, desc=desc or "sweep", leave=False):
        out = fn(seed=seed, **point)
        values = dict(out) if isinstance(out, Mapping) else {"value": float(out)}
        rows.append({**point, "seed": seed, **values})
    return pd.DataFrame(rows)


def mean_spread(
    df: pd.DataFrame,
    index: str | Sequence[str],
    columns: str | None = None,
    value: str | Sequence[str] = "value",
    fmt: str = "{:.3f}",
) -> pd.DataFrame:
    """``"mean ± std"`` strings over the seeds of each cell of a :func:`sweep` table.

    ``index`` (and optionally ``columns``) name the grid columns that label the rows (and
    columns) of the result. With several ``value`` names (and no ``columns``) the result has one
    column per value. The spread is the sample standard deviation over seeds (``ddof=1``;
    ``± nan`` when a cell holds a single run).
    """
    keys = [index] if isinstance(index, str) else list(index)
    values = [value] if isinstance(value, str) else list(value)
    if columns is not None:
        if len(values) != 1:
            raise ValueError("with columns=..., give exactly one value")
        keys.append(columns)

    def cells(name: str) -> pd.Series:
        stats = df.groupby(keys, sort=False)[name].agg(["mean", "std"])
        return stats.apply(lambda r: f"{fmt.format(r['mean'])} ± {fmt.format(r['std'])}", axis=1)

    if columns is not None:
        return cells(values[0]).unstack(columns)
    return pd.concat({name: cells(name) for name in values}, axis=1)
