"""The record of a training run: one entry per epoch, as :class:`course_lib.train.Trainer`
writes it and :func:`course_lib.plotting.plot_history` draws it.

A plain data container: it imports neither the Trainer nor matplotlib.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass
class History:
    """Per-epoch records of a run: losses, accuracies, learning rate and wall time.

    Every list has one entry per finished epoch (``val_*`` stay empty without validation
    data). What the Trainer writes:

    - ``train_loss``: mean of the training loss (``loss_fn``) over the epoch's examples;
    - ``train_acc``: fraction of training examples whose arg-max logit is the label; with
      soft ``(N, K)`` targets (mixup, CutMix) the label is the arg-max of the target row;
    - ``val_loss``, ``val_acc``: the same on the validation data, with the *evaluation*
      loss (plain cross-entropy unless the Trainer got ``eval_loss_fn``);
    - ``lr``: the learning rate (first parameter group) of the epoch's last optimisation
      step, for per-epoch and per-step schedulers alike;
    - ``time``: wall-clock seconds of the epoch, validation included.

    ``extra`` holds anything callbacks log (e.g. gradient norms); ``stopped_reason`` says
    why a run ended early (early stopping, a non-finite loss), else ``None``.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)
    stopped_reason: str | None = None

    def append(self, logs: dict[str, float]) -> None:
        """Add one epoch: known keys go to their list, anything else to ``extra``."""
        for key, value in logs.items():
            target = getattr(self, key, None)
            if isinstance(target, list):
                target.append(value)
            else:
                self.extra.setdefault(key, []).append(value)

    def log(self, key: str, value: float) -> None:
        """Record an extra per-epoch value (e.g. a gradient norm) under ``extra[key]``."""
        self.extra.setdefault(key, []).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> History:
        return cls(**d)

    def to_frame(self):
        """A pandas DataFrame with one row per epoch."""
        import pandas as pd

        cols = {k: v for k, v in self.to_dict().items() if isinstance(v, list) and v}
        cols.update({k: v for k, v in self.extra.items() if len(v) == len(self.epoch)})
        return pd.DataFrame(cols).set_index("epoch")

    def best(self, key: str = "val_acc", mode: Literal["min", "max"] = "max") -> tuple[int, float]:
        """``(epoch, value)`` of the best entry of ``key`` (``mode="min"`` for losses)."""
        values = getattr(self, key) if hasattr(self, key) else self.extra[key]
        i = int(np.argmax(values) if mode == "max" else np.argmin(values))
        return self.epoch[i], values[i]
