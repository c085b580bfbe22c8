"""Experiment logging: write every run's numbers to disk, read them back to compare runs.

"Use an experiment manager": a run whose numbers live only in a notebook's memory cannot be
compared with next week's run. Three :class:`~course_lib.train.Callback` classes:

* :class:`CSVLogger` - one row per epoch (``epoch`` and the Trainer's logs) in a CSV file;
* :class:`TensorBoardLogger` - the same scalars as TensorBoard event files
  (``torch.utils.tensorboard.SummaryWriter``), optionally also the loss of every step; view
  them with ``tensorboard --logdir <dir>`` (locally) or ``%load_ext tensorboard`` then
  ``%tensorboard --logdir <dir>`` (Colab, Jupyter);
* :class:`GradNormLogger` - the global gradient norm :math:`\\lVert g\\rVert_2` of every step,
  *before* clipping (``on_after_backward``), kept in ``norms`` and, per epoch, in the history
  (``grad_norm_max``) and in an optional TensorBoard writer.

:func:`read_scalars` reads event files back into a table (one column per tag, indexed by step).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import Tensor

from course_lib.train import Callback

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

    from course_lib.train import Trainer

__all__ = ["CSVLogger", "TensorBoardLogger", "GradNormLogger", "read_scalars"]

EPOCH_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time")


class CSVLogger(Callback):
    """Append one row per epoch to ``path``: ``epoch`` and every key of the epoch's logs.

    The header is the keys of the first epoch (``train_loss, train_acc, val_loss, val_acc,
    lr, time`` with validation data). An existing file is overwritten at the start of
    :meth:`Trainer.fit` unless ``append=True`` (a resumed run). Read it with
    ``pandas.read_csv(path)``.
    """

    def __init__(self, path: str | os.PathLike, append: bool = False) -> None:
        self.path, self.append = Path(path), append
        self._fields: list[str] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.append or not self.path.exists():
            self.path.unlink(missing_ok=True)
            self._fields = None
        else:
            with self.path.open() as f:
                self._fields = next(csv.reader(f), None)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        row = {"epoch": epoch, **logs}
        new = self._fields is None
        if new:
            self._fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoardLogger(Callback):
    """Write the epoch's logs as TensorBoard scalars under ``logdir`` (one run per folder).

    Tags: ``epoch/<key>`` for every key of the logs (global step = epoch number, from 1);
    with ``every_n_steps=n`` also ``step/train_loss`` every ``n`` optimisation steps (global
    step = step number). ``hparams`` (a dict of numbers/strings) are written once as the run's
    text summary ``hparams``. The writer is flushed after every epoch and closed at the end.
    """

    def __init__(
        self,
        logdir: str | os.PathLike,
        every_n_steps: int | None = None,
        hparams: dict[str, float | str] | None = None,
    ) -> None:
        self.logdir, self.every_n_steps, self.hparams = Path(logdir), every_n_steps, hparams
        self.writer: SummaryWriter | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.logdir))
        if self.hparams:
            text = "  \n".join(f"{k}: {v}" for k, v in self.hparams.items())
            self.writer.add_text("hparams", text, global_step=0)

    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None:
        if self.writer is not None and self.every_n_steps and step % self.every_n_steps == 0:
            self.writer.add_scalar("step/train_loss", float(loss), global_step=step)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.writer is None:
            return
        for key, value in logs.items():
            self.writer.add_scalar(f"epoch/{key}", float(value), global_step=epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class GradNormLogger(Callback):
    r"""Record the global gradient norm :math:`\lVert g\rVert_2 = \sqrt{\sum_p \lVert g_p\rVert_2^2}`
    of every step, before clipping (the Trainer clips after ``on_after_backward``).

    ``norms`` holds one float per step (``inf``/``nan`` when the gradient is not finite); at
    the end of each epoch the epoch's largest norm goes into the history as
    ``grad_norm_max`` (``history.extra``) and, with a ``writer``, to the tag ``step/grad_norm``.
    """

    def __init__(self, writer: SummaryWriter | None = None) -> None:
        self.norms: list[float] = []
        self.writer = writer
        self._epoch_start = 0

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._epoch_start = len(self.norms)

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        self.norms.append(float(norm))
        if self.writer is not None:
            self.writer.add_scalar("step/grad_norm", self.norms[-1], global_step=step + 1)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        epoch_norms = self.norms[self._epoch_start :]
        trainer.history.log("grad_norm_max", max(epoch_norms) if epoch_norms else float("nan"))


def read_scalars(logdir: str | os.PathLike) -> pd.DataFrame:
    """Every scalar of the TensorBoard event files in ``logdir`` as a table.

    One column per tag, indexed by global step (``NaN`` where a tag has no value at a step);
    read with ``tensorboard.backend.event_processing.event_accumulator`` with no size limit
    (every event is kept). Values are the float32 numbers TensorBoard stored.
    """
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    columns = {
        tag: pd.Series({e.step: e.value for e in acc.Scalars(tag)}, dtype=float)
        for tag in acc.Tags()["scalars"]
    }
    frame = pd.DataFrame(columns)
    frame.index.name = "step"
    return frame.sort_index()
