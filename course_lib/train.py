"""The training loop: :class:`Trainer`, its :class:`History` and callbacks.

The loop itself is :meth:`Trainer._train_epoch` (one screen): move a batch to the device,
forward under autocast, backward (through a GradScaler for fp16), clip, step, schedule,
accumulate the loss and accuracy without synchronising, tell the callbacks. Everything
else here — checkpoints, early stopping, distributed training — hangs off callbacks or
small helpers around that loop.

Typical use::

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    history = trainer.fit(train_loader, val_loader, epochs=10)
    plot_history(history)
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

LossFn = Callable[[Tensor, Tensor], Tensor]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------


@dataclass
class History:
    """Per-epoch records of a run: losses, accuracies, learning rate and wall time.

    Every list has one entry per finished epoch (``val_*`` stay empty without validation
    data). ``extra`` holds anything callbacks log (e.g. gradient norms).
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

    def best(self, key: str = "val_acc", mode: str = "max") -> tuple[int, float]:
        """``(epoch, value)`` of the best entry of ``key``."""
        values = getattr(self, key)
        i = int(np.argmax(values) if mode == "max" else np.argmin(values))
        return self.epoch[i], values[i]

    def plot(self, **kwargs):
        from course_lib.plotting import plot_history

        return plot_history(self, **kwargs)


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------


class Callback:
    """Hooks called by :class:`Trainer`. Override the ones you need.

    ``logs`` in ``on_epoch_end`` holds the epoch's ``train_loss``, ``train_acc``,
    ``val_loss``, ``val_acc``, ``lr`` and ``time`` (already in ``trainer.history``). A
    callback may record more with ``trainer.history.log(key, value)`` or stop training
    with ``trainer.stop_training = True``.
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None: ...
    def on_after_backward(self, trainer: Trainer, step: int) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...


class EarlyStopping(Callback):
    """Stop when a monitored quantity has not improved for ``patience`` epochs.

    An epoch counts as an improvement when the value beats the best so far by more than
    ``min_delta`` (lower is better for ``mode="min"``, e.g. ``val_loss``). With
    ``restore_best=True`` the model gets the weights of the best epoch back at the end.

    Also usable without a Trainer: ``stop = es.step(value)`` after each epoch. Epochs are
    counted from 1, so ``best_epoch`` matches ``History.epoch``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "min",
        restore_best: bool = True,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode, self.restore_best = mode, restore_best
        self.best: float = math.inf if mode == "min" else -math.inf
        self.best_epoch: int = -1
        self.wait = 0
        self.epoch = 0
        self.best_state: dict[str, Tensor] | None = None

    def improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def step(self, value: float, model: nn.Module | None = None) -> bool:
        """Record one epoch's value; return True when training should stop."""
        self.epoch += 1
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, self.epoch, 0
            if model is not None and self.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.patience

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r} but the logs only have "
                f"{sorted(logs)}; pass validation data to fit() or monitor a train_* key."
            )
        self.epoch = epoch - 1  # keep epochs aligned with the trainer's numbering
        if self.step(logs[self.monitor], trainer.unwrapped_model):
            trainer.stop_training = True
            trainer.history.stopped_reason = (
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.unwrapped_model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save a full training checkpoint (see :meth:`Trainer.save_checkpoint`) every
    ``every`` epochs to ``path``, so a disconnected session loses at most that many epochs.
    Resume with ``trainer.fit(..., resume_from=path)``."""

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        self.path, self.every = Path(path), every

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch % self.every == 0:
            trainer.save_checkpoint(self.path)


class LRLogger(Callback):
    """Record the learning rate after every optimisation step in ``self.lrs``."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None:
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


# ---------------------------------------------------------------------------
# Distributed helpers (torchrun sets RANK / WORLD_SIZE / LOCAL_RANK)
# ---------------------------------------------------------------------------


def distributed_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` alone."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed() -> tuple[int, int]:
    """Join the process group started by ``torchrun`` (gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    rank, world, local = distributed_env()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return rank, world


class _ShardSampler(torch.utils.data.Sampler):
    """Every ``world``-th index starting at ``rank``: disjoint shards, no padding, in order."""

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, n, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


# ---------------------------------------------------------------------------
# The Trainer
# ---------------------------------------------------------------------------


def _resolve_amp(amp: bool | str | None, device: torch.device) -> torch.dtype | None:
    """``None``/``True`` → bf16 on CUDA when supported else fp16; off on CPU unless asked."""
    if amp is False or (amp is None and device.type != "cuda"):
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16  # amp=True on CPU: bf16 autocast


class Trainer:
    """Train and evaluate a classifier.

    Args:
        model: maps a batch ``(B, *input_shape)`` to logits ``(B, K)``.
        optimizer: any ``torch.optim`` optimizer over ``model``'s parameters.
        loss_fn: ``loss_fn(logits, targets) -> scalar``; cross-entropy by default.
        device: where to train; default :func:`course_lib.runtime.get_device`.
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped once per epoch or per step.
        scheduler_step: ``"epoch"`` or ``"step"``.
        callbacks: :class:`Callback` objects (EarlyStopping, ModelCheckpoint, ...).
        amp: mixed precision: ``None`` = bf16/fp16 on CUDA, off on CPU; ``"bf16"``,
            ``"fp16"`` (with a GradScaler), ``True`` or ``False``.
        channels_last: store 4-D inputs and weights as NHWC (faster convolutions on GPUs).
        compile: wrap the model in ``torch.compile``.
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        progress: tqdm bar per epoch; ``None`` = only on an interactive terminal, never in CI.
        verbose: print one line per epoch (useful in notebooks).
        on_nonfinite: ``"raise"`` a :class:`NonFiniteLossError` or ``"stop"`` training (the
            message, with the step, goes to ``history.stopped_reason``) when the loss is NaN/inf.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn = F.cross_entropy,
        device: torch.device | str | None = None,
        scheduler: Any | None = None,
        scheduler_step: str = "epoch",
        callbacks: Sequence[Callback] = (),
        amp: bool | str | None = None,
        channels_last: bool = False,
        compile: bool = False,
        grad_clip: float | None = None,
        progress: bool | None = None,
        verbose: bool = False,
        on_nonfinite: str = "raise",
    ) -> None:
        from course_lib.runtime import get_device

        if scheduler_step not in ("epoch", "step"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'step', got {scheduler_step!r}")
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
        self.device = torch.device(device) if device is not None else get_device()
        self.rank, self.world_size = init_distributed()
        self.memory_format = torch.channels_last if channels_last else torch.preserve_format
        model = model.to(self.device, memory_format=self.memory_format)
        self.unwrapped_model = model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        self.model = torch.compile(model) if compile else model
        self.optimizer, self.loss_fn = optimizer, loss_fn
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.callbacks = list(callbacks)
        self.amp_dtype = _resolve_amp(amp, self.device)
        fp16_cuda = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16_cuda)
        self.grad_clip = grad_clip
        ci = os.environ.get("CI") or os.environ.get("COURSE_PROFILE") == "ci"
        self.progress = (sys.stderr.isatty() and not ci) if progress is None else progress
        self.verbose, self.on_nonfinite = verbose, on_nonfinite
        self.history = History()
        self.epoch = 0  # epochs finished so far
        self.step = 0  # optimisation steps so far
        self.stop_training = False
        self._loader_generator: torch.Generator | None = None
        # Steps between checks of the loss for NaN/inf; each check synchronises a GPU.
        self.check_every = 1 if self.device.type == "cpu" else 25

    # -- the loop ------------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        xb = xb.to(self.device, non_blocking=True)
        if xb.dim() == 4:
            xb = xb.contiguous(memory_format=self.memory_format)
        return xb, yb.to(self.device, non_blocking=True)

    def _train_epoch(self, loader: Iterable) -> dict[str, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        count, recent = 0, []
        for xb, yb in self._progress(loader, f"epoch {self.epoch + 1}"):
            xb, yb = self._to_device(xb, yb)
            with self._autocast():
                logits = self.model(xb)
                loss = self.loss_fn(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            for cb in self.callbacks:
                cb.on_after_backward(self, self.step)
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.scheduler is not None and self.scheduler_step == "step":
                self.scheduler.step()
            self.step += 1
            loss = loss.detach()
            recent.append(loss)
            if len(recent) >= self.check_every:
                self._check_finite(recent)
                recent = []
                if self.stop_training:
                    break
            loss_sum += loss * yb.shape[0]
            if yb.dim() == 1:  # hard labels: count correct predictions
                correct += (logits.argmax(1) == yb).sum()
            count += yb.shape[0]
            for cb in self.callbacks:
                cb.on_batch_end(self, self.step, loss)
        if recent:
            self._check_finite(recent)
        totals = self._all_reduce(torch.stack([loss_sum, correct.float()]), count)
        return {"train_loss": totals[0], "train_acc": totals[1]}

    def _check_finite(self, recent: list[Tensor]) -> None:
        finite = torch.isfinite(torch.stack(recent))
        if bool(finite.all()):
            return
        bad_step = self.step - len(recent) + int((~finite).nonzero()[0]) + 1
        message = (
            f"non-finite training loss ({float(recent[int((~finite).nonzero()[0])])}) at step "
            f"{bad_step} (epoch {self.epoch + 1}); try a smaller learning rate, gradient "
            f"clipping (grad_clip=...) or check the inputs for NaNs."
        )
        if self.on_nonfinite == "raise":
            raise NonFiniteLossError(message)
        self.stop_training = True
        self.history.stopped_reason = message
        self._log(message)

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Mean loss and accuracy over ``loader`` (model in eval mode).

        Under DDP each process evaluates its own shard with the plain (unwrapped) model,
        so shards of unequal length cannot deadlock; the sums are all-reduced at the end.
        """
        model = self.unwrapped_model if self.world_size > 1 else self.model
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        count = 0
        for xb, yb in self._shard(loader, train=False):
            xb, yb = self._to_device(xb, yb)
            with self._autocast():
                logits = model(xb)
                loss_sum += self.loss_fn(logits, yb).float() * yb.shape[0]
            correct += (logits.argmax(1) == yb).sum()
            count += yb.shape[0]
        totals = self._all_reduce(torch.stack([loss_sum, correct]), count)
        return {"loss": totals[0], "acc": totals[1]}

    @torch.no_grad()
    def predict(self, loader: Iterable) -> tuple[Tensor, Tensor]:
        """``(logits, targets)`` over ``loader`` in order, on the CPU, as float32 ``(N, K)`` and ``(N,)``."""
        self.model.eval()
        outs, targets = [], []
        for xb, yb in loader:
            xb, yb = self._to_device(xb, yb)
            with self._autocast():
                outs.append(self.model(xb).float().cpu())
            targets.append(yb.cpu())
        return torch.cat(outs), torch.cat(targets)

    def fit(
        self,
        train_loader: Iterable,
        val_loader: Iterable | None = None,
        epochs: int = 1,
        resume_from: str | os.PathLike | None = None,
    ) -> History:
        """Train for ``epochs`` epochs in total (counting epochs of a resumed checkpoint).

        With ``resume_from`` pointing at an existing checkpoint, training continues from it:
        model, optimizer, scheduler, scaler, epoch, history and random states are restored.
        """
        # A DataLoader draws each epoch's shuffling seed from its generator: checkpoint it too.
        self._loader_generator = getattr(train_loader, "generator", None)
        if resume_from is not None and Path(resume_from).exists():
            self.load_checkpoint(resume_from)
        train_loader = self._shard(train_loader, train=True)
        self.stop_training = False
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while self.epoch < epochs and not self.stop_training:
            for cb in self.callbacks:
                cb.on_epoch_start(self, self.epoch + 1)
            for obj in (train_loader, getattr(train_loader, "sampler", None)):
                if hasattr(obj, "set_epoch"):
                    obj.set_epoch(self.epoch)
            start = time.perf_counter()
            logs = self._train_epoch(train_loader)
            if val_loader is not None:
                logs.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            logs["lr"] = self.optimizer.param_groups[0]["lr"]
            logs["time"] = time.perf_counter() - start
            if self.scheduler is not None and self.scheduler_step == "epoch":
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(logs.get("val_loss", logs["train_loss"]))
                else:
                    self.scheduler.step()
            self.epoch += 1
            self.history.append({"epoch": self.epoch, **logs})
            self._log_epoch(logs)
            for cb in self.callbacks:  # after the history, so checkpoints include this epoch
                cb.on_epoch_end(self, self.epoch, logs)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    # -- checkpoints -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "history": self.history.to_dict(),
            "callbacks": [cb.__dict__ for cb in self.callbacks if isinstance(cb, EarlyStopping)],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": np.random.get_state(),
                "python": random.getstate(),
                "loader": g.get_state() if (g := self._loader_generator) is not None else None,
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.history = History.from_dict(state["history"])
        stoppers = [cb for cb in self.callbacks if isinstance(cb, EarlyStopping)]
        for cb, saved in zip(stoppers, state.get("callbacks", [])):
            cb.__dict__.update(saved)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng.get("loader") is not None and self._loader_generator is not None:
            self._loader_generator.set_state(rng["loader"])

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` atomically (rank 0 only under DDP)."""
        if self.rank != 0:
            return
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.load_state_dict(state)

    # -- helpers ---------------------------------------------------------------------------

    def _all_reduce(self, sums: Tensor, count: int) -> list[float]:
        """Divide summed metrics by the number of examples, across all processes."""
        totals = torch.cat([sums.float(), torch.tensor([float(count)], device=sums.device)])
        if self.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
        n = max(float(totals[-1]), 1.0)
        return [float(v) / n for v in totals[:-1]]

    def _shard(self, loader: Iterable, train: bool) -> Iterable:
        """Under DDP give each process its own part of the data.

        Training: a shuffled shard per process, all of equal length (every process runs the
        same number of steps). Evaluation: disjoint shards without padding, so the
        all-reduced mean is exact.
        """
        if self.world_size == 1:
            return loader
        if hasattr(loader, "shard"):  # TensorLoader
            return loader.shard(self.rank, self.world_size)
        if not isinstance(loader, torch.utils.data.DataLoader):
            return loader
        if train:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(loader.dataset, self.world_size, self.rank, shuffle=True)
        else:
            sampler = _ShardSampler(len(loader.dataset), self.rank, self.world_size)
        return torch.utils.data.DataLoader(
            loader.dataset, batch_size=loader.batch_size, sampler=sampler,
            num_workers=loader.num_workers, collate_fn=loader.collate_fn,
            pin_memory=loader.pin_memory, drop_last=loader.drop_last and train,
        )  # fmt: skip

    def _progress(self, loader: Iterable, desc: str) -> Iterable:
        if not self.progress or self.rank != 0:
            return loader
        from tqdm.auto import tqdm

        return tqdm(loader, desc=desc, leave=False)

    def _log(self, message: str) -> None:
        if self.rank == 0:
            print(message)

    def _log_epoch(self, logs: dict[str, float]) -> None:
        if not self.verbose:
            return
        parts = [f"epoch {self.epoch:3d}"]
        parts += [f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "lr")]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f}s"]
        self._log(" | ".join(parts))
