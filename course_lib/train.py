"""The training loop: :class:`Trainer` and its callbacks.

The loop itself is :meth:`Trainer._train_epoch` (one screen): move a batch to the device,
let the callbacks change it (mixup, CutMix), forward under autocast, stop if the loss is not
finite, backward (through a GradScaler for fp16), unscale, tell the callbacks, clip, step,
schedule, accumulate the loss and accuracy without synchronising. :meth:`Trainer.fit` runs
epochs around it: validation, the epoch's logs, callbacks, then checkpoints. The hook
order follows Lightning's: callbacks see unscaled gradients, and a checkpoint is written
after every callback has seen the epoch, so it holds their final state.

Typical use::

    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    history = trainer.fit(train_loader, val_loader, epochs=10)
    plot_history(history)

The record of a run is a :class:`course_lib.history.History`; distributed setup lives in
:mod:`course_lib.distributed`.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from course_lib.data import TensorLoader
from course_lib.distributed import all_reduce_sum, init_distributed, shard_loader
from course_lib.history import History
from course_lib.runtime import get_device

LossFn = Callable[[Tensor, Tensor], Tensor]
AmpOption = Literal["auto", "bf16", "fp16", "off"]
_AMP_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "fp32": "off", "float32": "off"}


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


# ---------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------


class Callback:
    """Hooks called by :class:`Trainer`. Override the ones you need.

    Per batch, in this order: ``on_batch_start`` (the batch is on the device; return it,
    possibly changed, e.g. mixed), forward, ``on_after_backward`` (gradients are unscaled,
    before clipping and the optimiser step), ``on_batch_end`` (after the step).

    ``logs`` in ``on_epoch_end`` holds the epoch's ``train_loss``, ``train_acc``,
    ``val_loss``, ``val_acc``, ``lr`` and ``time`` (already in ``trainer.history``). A
    callback may record more with ``trainer.history.log(key, value)`` or stop training
    with ``trainer.stop_training = True`` (honoured before the next batch). A callback
    with state that a resumed run needs returns it from ``state_dict``.
    """

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...

    def on_batch_start(self, trainer: Trainer, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        return xb, yb

    def on_after_backward(self, trainer: Trainer, step: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None: ...
    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _infer_mode(monitor: str) -> Literal["min", "max"]:
    name = monitor.lower()
    if any(word in name for word in ("acc", "auc", "f1")):
        return "max"
    if "loss" in name:
        return "min"
    raise ValueError(
        f"EarlyStopping cannot tell whether {monitor!r} should go down or up: "
        f"pass mode='min' or mode='max'"
    )


class EarlyStopping(Callback):
    """Stop when a monitored quantity has not improved for ``patience`` epochs.

    An epoch counts as an improvement when the value beats the best so far by more than
    ``min_delta``. ``mode`` says which way is better; by default it follows the name of
    ``monitor``: ``"max"`` for accuracies, AUCs and F1 scores (``*acc*``, ``*auc*``,
    ``*f1*``), ``"min"`` for losses (``*loss*``); other names need ``mode``. With
    ``restore_best=True`` the model gets the weights of the best epoch back at the end.

    Also usable without a Trainer: ``stop = es.step(value)`` after each epoch. Epochs are
    counted from 1, so ``best_epoch`` matches ``History.epoch``.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: Literal["min", "max"] | None = None,
        restore_best: bool = True,
    ) -> None:
        mode = _infer_mode(monitor) if mode is None else mode
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

    def state_dict(self) -> dict[str, Any]:
        keys = ("best", "best_epoch", "wait", "epoch", "best_state")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class ModelCheckpoint(Callback):
    """Save a full training checkpoint (see :meth:`Trainer.save_checkpoint`) every
    ``every`` epochs to ``path``, so a disconnected session loses at most that many epochs.
    Resume with ``trainer.fit(..., resume_from=path)``.

    The Trainer writes the file once *all* callbacks have seen the epoch, so the order of
    the callbacks does not matter: early-stopping state and ``stop_training`` are current.
    """

    def __init__(self, path: str | os.PathLike, every: int = 1) -> None:
        self.path, self.every = Path(path), every

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch % self.every == 0:
            trainer.request_checkpoint(self.path)


class LRLogger(Callback):
    """Record the learning rate after every optimisation step in ``self.lrs``."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_end(self, trainer: Trainer, step: int, loss: Tensor) -> None:
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


# ---------------------------------------------------------------------------
# The Trainer
# ---------------------------------------------------------------------------


def _resolve_amp(amp: bool | AmpOption | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for no autocast.

    ``None``/``"auto"``: bf16 on CUDA where supported, else fp16; off elsewhere. ``True``:
    the same on CUDA, bf16 on other devices. ``False``/``"off"`` (alias ``"fp32"``): off.
    ``"bf16"``/``"fp16"`` (aliases ``"bfloat16"``/``"float16"``): that dtype on any device.
    """
    if amp is None or amp is True:
        amp = "auto" if amp is None or device.type == "cuda" else "bf16"
    elif amp is False:
        amp = "off"
    choice = _AMP_ALIASES.get(amp, amp) if isinstance(amp, str) else None
    if choice not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(
            f"amp must be None, True, False, 'auto', 'bf16', 'fp16' or 'off', got {amp!r}"
        )
    if choice == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}[choice]


def _n_correct(logits: Tensor, targets: Tensor) -> Tensor:
    """Correct arg-max predictions; soft ``(B, K)`` targets count their arg-max as the label."""
    labels = targets if targets.dim() == 1 else targets.argmax(1)
    return (logits.argmax(1) == labels).sum()


class Trainer:
    """Train and evaluate a classifier.

    Args:
        model: maps a batch ``(B, *input_shape)`` to logits ``(B, K)``.
        optimizer: any ``torch.optim`` optimizer over ``model``'s parameters.
        loss_fn: ``loss_fn(logits, targets) -> scalar``; cross-entropy by default. Targets
            are labels ``(B,)`` or soft targets ``(B, K)`` (then ``train_acc`` counts the
            arg-max of each target row as its label).
        eval_loss_fn: the loss :meth:`evaluate` reports as ``val_loss``: plain
            cross-entropy unless given, so a smoothed or regularised training loss does not
            leak into validation (and EarlyStopping). Pass ``loss_fn`` to evaluate with it.
        device: where to train; default :func:`course_lib.runtime.get_device` (under
            torchrun ``cuda:LOCAL_RANK``). A :class:`~course_lib.data.TensorLoader` whose
            data sit on another accelerator is moved to this device; CPU data stay there
            and are copied batch by batch.
        scheduler: a ``torch.optim.lr_scheduler`` object, stepped once per epoch or per step.
        scheduler_step: ``"epoch"`` or ``"step"`` (``ReduceLROnPlateau``: ``"epoch"`` only).
        callbacks: :class:`Callback` objects (EarlyStopping, ModelCheckpoint, ...).
        amp: mixed precision, see :func:`_resolve_amp`: ``None`` = bf16/fp16 on CUDA, off
            elsewhere; ``"bf16"``, ``"fp16"`` (with a GradScaler), ``"off"``, ``True``, ``False``.
        channels_last: store 4-D inputs and weights as NHWC (faster convolutions on GPUs).
        compile: ``True`` wraps the model in ``torch.compile``; a dict is passed to it as
            keyword arguments (e.g. ``{"backend": "eager"}``).
        grad_clip: clip the global gradient norm to this value (``None``: no clipping).
        progress: one tqdm bar per :meth:`fit` over its epochs, with the latest metrics.
            ``None``: shown unless one of the environment variables ``CI``,
            ``TQDM_DISABLE`` (tqdm's own switch) is set or ``COURSE_PROFILE=ci``.
        verbose: print one line per epoch.
        on_nonfinite: when the loss is NaN/inf, ``"raise"`` a :class:`NonFiniteLossError` or
            ``"stop"`` training (the message, with the step, goes to
            ``history.stopped_reason``). Either way the check comes before the backward
            pass, so the model keeps the weights of the last finite step. It costs one
            device-to-host copy of a scalar per step (one synchronisation on a GPU) and,
            under DDP, one all-reduce of a flag so that every process stops together.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: LossFn = F.cross_entropy,
        device: torch.device | str | None = None,
        scheduler: Any | None = None,
        scheduler_step: Literal["epoch", "step"] = "epoch",
        callbacks: Sequence[Callback] = (),
        amp: bool | AmpOption | None = None,
        channels_last: bool = False,
        compile: bool | dict[str, Any] = False,
        grad_clip: float | None = None,
        progress: bool | None = None,
        verbose: bool = False,
        on_nonfinite: Literal["raise", "stop"] = "raise",
        eval_loss_fn: LossFn = F.cross_entropy,
    ) -> None:
        if scheduler_step not in ("epoch", "step"):
            raise ValueError(f"scheduler_step must be 'epoch' or 'step', got {scheduler_step!r}")
        plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if plateau and scheduler_step == "step":
            raise ValueError(
                "ReduceLROnPlateau needs a validation metric, which exists once per epoch: "
                "use scheduler_step='epoch'"
            )
        if on_nonfinite not in ("raise", "stop"):
            raise ValueError(f"on_nonfinite must be 'raise' or 'stop', got {on_nonfinite!r}")
        self.rank, self.world_size = init_distributed()
        self.device = get_device(device)
        self.amp_dtype = _resolve_amp(amp, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.preserve_format
        model = model.to(self.device, memory_format=self.memory_format)
        self.unwrapped_model = model
        if self.world_size > 1:
            cuda = self.device.type == "cuda" and self.device.index is not None
            model = DistributedDataParallel(model, device_ids=[self.device.index] if cuda else None)
        if compile:
            model = torch.compile(model, **(compile if isinstance(compile, dict) else {}))
        self.model = model
        self.optimizer, self.loss_fn, self.eval_loss_fn = optimizer, loss_fn, eval_loss_fn
        self.scheduler, self.scheduler_step = scheduler, scheduler_step
        self.callbacks = list(callbacks)
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.grad_clip = grad_clip
        env = os.environ
        tqdm_off = env.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
        quiet = tqdm_off or bool(env.get("CI")) or env.get("COURSE_PROFILE") == "ci"
        self.progress = not quiet if progress is None else progress
        self.verbose, self.on_nonfinite = verbose, on_nonfinite
        self.history = History()
        self.epoch = 0  # epochs finished so far
        self.step = 0  # optimisation steps so far
        self.stop_training = False  # set by callbacks or a non-finite loss; saved in checkpoints
        self._checkpoint_paths: list[Path] = []
        self._train_loader: Iterable | None = None  # its order state goes into checkpoints

    # -- the loop ------------------------------------------------------------------------

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        xb = xb.to(self.device, non_blocking=True)
        if xb.dim() == 4 and self.memory_format is torch.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb, yb.to(self.device, non_blocking=True)

    def _train_epoch(self, loader: Iterable) -> dict[str, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        count, lr = 0, self.optimizer.param_groups[0]["lr"]
        for xb, yb in loader:
            xb, yb = self._to_device(xb, yb)
            for cb in self.callbacks:
                xb, yb = cb.on_batch_start(self, xb, yb)
            with self._autocast():
                logits = self.model(xb)
                loss = self.loss_fn(logits, yb)
            if not self._finite(loss):  # before backward: the weights stay finite
                break
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)  # hooks and clipping see true gradients
            for cb in self.callbacks:
                cb.on_after_backward(self, self.step)
            if self.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            lr = self.optimizer.param_groups[0]["lr"]  # the lr this step used
            if self.scheduler is not None and self.scheduler_step == "step":
                self.scheduler.step()
            self.step += 1
            loss = loss.detach()
            loss_sum += loss * yb.shape[0]
            correct += _n_correct(logits, yb)
            count += yb.shape[0]
            for cb in self.callbacks:
                cb.on_batch_end(self, self.step, loss)
            if self.stop_training:
                break
        if count == 0 and not self.stop_training:
            raise ValueError(
                "the training loader yielded no batch: with drop_last=True it needs at "
                "least batch_size examples (per process under DDP)"
            )
        loss_mean, acc = self._mean(torch.stack([loss_sum, correct.float()]), count)
        return {"train_loss": loss_mean, "train_acc": acc, "lr": lr}

    def _finite(self, loss: Tensor) -> bool:
        """Whether the loss is finite on every process; else raise or stop (``on_nonfinite``)."""
        if self.world_size == 1:
            bad = 0 if math.isfinite(loss.item()) else 1  # one scalar to the host
        else:  # one process with a NaN stops them all: nobody hangs in the next all-reduce
            bad = int(all_reduce_sum((~torch.isfinite(loss.detach())).float().reshape(1)))
        if not bad:
            return True
        where = f" on {bad} of {self.world_size} processes" if self.world_size > 1 else ""
        message = (
            f"non-finite training loss{where} (here {float(loss.detach())}) at step "
            f"{self.step + 1} (epoch {self.epoch + 1}); try a smaller learning rate, gradient "
            f"clipping (grad_clip=...) or check the inputs for NaNs."
        )
        if self.on_nonfinite == "raise":
            raise NonFiniteLossError(message)
        self.stop_training = True
        self.history.stopped_reason = message
        self._log(message)
        return False

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Mean ``eval_loss_fn`` (cross-entropy by default) and accuracy over ``loader``.

        The model is in eval mode. Under DDP each process evaluates a disjoint, unpadded
        shard with the plain (unwrapped) model, so shards of unequal length cannot
        deadlock, and the sums are all-reduced: the result equals a one-process evaluation.
        """
        model = self.unwrapped_model if self.world_size > 1 else self.model
        model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        count = 0
        for xb, yb in self._prepare(loader, train=False):
            xb, yb = self._to_device(xb, yb)
            with self._autocast():
                logits = model(xb)
            loss_sum += self.eval_loss_fn(logits.float(), yb).float() * yb.shape[0]
            correct += _n_correct(logits, yb)
            count += yb.shape[0]
        loss, acc = self._mean(torch.stack([loss_sum, correct.float()]), count)
        return {"loss": loss, "acc": acc}

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
        """Train until ``epochs`` epochs are done *in total* and return the history.

        ``epochs`` counts every epoch this trainer (or the checkpoint it resumed) has run:
        a second ``fit(..., epochs=5)`` after five epochs has nothing left to do and warns;
        ask for ``epochs=10`` to train five more. A stopped run (early stopping, a
        non-finite loss, a callback's ``stop_training``) stays stopped, also when resumed
        from its checkpoint; set ``trainer.stop_training = False`` to train it further.

        With ``resume_from`` pointing at an existing checkpoint, training continues from it:
        model, optimizer, scheduler, scaler, epoch, history, callback and random states.
        """
        self._train_loader = train_loader  # checkpoints record what decides its data order
        if resume_from is not None and Path(resume_from).exists():
            self.load_checkpoint(resume_from)
        if self.epoch >= epochs or self.stop_training:
            done = self.history.stopped_reason if self.stop_training else None
            warnings.warn(
                f"fit(epochs={epochs}): nothing to train, {self.epoch} epochs done"
                + (f" and the run stopped ({done})" if done else "; `epochs` is the total"),
                stacklevel=2,
            )
        train_loader = self._prepare(train_loader, train=True)
        bar = self._progress_bar(epochs)
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
            logs["time"] = time.perf_counter() - start
            if self.scheduler is not None and self.scheduler_step == "epoch":
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(logs.get("val_loss", logs["train_loss"]))
                else:
                    self.scheduler.step()
            self.epoch += 1
            self.history.append({"epoch": self.epoch, **logs})
            for cb in self.callbacks:
                cb.on_epoch_end(self, self.epoch, logs)
            self._end_epoch(logs, bar)  # after every callback: checkpoints hold their state
        if bar is not None:
            bar.close()
        for cb in self.callbacks:
            cb.on_fit_end(self)
        return self.history

    # -- checkpoints -----------------------------------------------------------------------

    def request_checkpoint(self, path: str | os.PathLike) -> None:
        """Have the trainer save a checkpoint to ``path`` at the end of this epoch, once
        every callback has run (what :class:`ModelCheckpoint` does)."""
        self._checkpoint_paths.append(Path(path))

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly where it stopped."""
        return {
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "stop_training": self.stop_training,
            "history": self.history.to_dict(),
            "callbacks": [(type(cb).__name__, cb.state_dict()) for cb in self.callbacks],
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
            "train_loader": self._loader_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; its tensors may be on any device (RNG states: CPU)."""
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])  # moves its state to the params
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.stop_training = state.get("stop_training", False)
        self.history = History.from_dict(state["history"])
        saved: dict[str, list[dict]] = {}  # the k-th callback of a class gets the k-th state
        for name, cb_state in state.get("callbacks", []):
            saved.setdefault(name, []).append(cb_state)
        for cb in self.callbacks:
            if saved.get(type(cb).__name__):
                cb.load_state_dict(saved[type(cb).__name__].pop(0))
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self._load_loader_state(state.get("train_loader"))

    def _loader_state(self) -> Any:
        """A TensorLoader's ``state_dict()``; a DataLoader's generator state (it draws
        each epoch's shuffling seed from it); else ``None``."""
        loader = self._train_loader
        if hasattr(loader, "state_dict"):
            return loader.state_dict()
        g = getattr(loader, "generator", None)
        return g.get_state() if g is not None else None

    def _load_loader_state(self, saved: Any) -> None:
        loader = self._train_loader
        if saved is None or loader is None:
            return
        if hasattr(loader, "load_state_dict"):
            loader.load_state_dict(saved)
        elif getattr(loader, "generator", None) is not None:
            loader.generator.set_state(saved.cpu())

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
        """Load a checkpoint written on any device: read to the CPU, then restore (the
        model and optimiser copy their tensors to where their parameters are)."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))

    # -- helpers ---------------------------------------------------------------------------

    def _mean(self, sums: Tensor, count: int) -> list[float]:
        """Summed metrics divided by the number of examples, over all processes (NaN if none)."""
        totals = torch.cat([sums.float(), torch.tensor([float(count)], device=sums.device)])
        if self.world_size > 1:
            all_reduce_sum(totals)
        n = float(totals[-1])
        return [float(v) / n if n > 0 else math.nan for v in totals[:-1]]

    def _prepare(self, loader: Iterable, train: bool) -> Iterable:
        """``loader`` for this process: its DDP shard, TensorLoader data on this device."""
        if isinstance(loader, TensorLoader) and loader.device.type != "cpu":
            if loader.device != self.device:
                loader = loader.to(self.device)
        return shard_loader(loader, self.rank, self.world_size, train=train)

    def _progress_bar(self, epochs: int):
        if not self.progress or self.rank != 0 or self.epoch >= epochs:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=epochs, initial=self.epoch, desc="fit", unit="epoch")

    def _end_epoch(self, logs: dict[str, float], bar) -> None:
        """Checkpoints the callbacks asked for, then the progress bar and the epoch line."""
        for path in self._checkpoint_paths:
            self.save_checkpoint(path)
        self._checkpoint_paths.clear()
        shown = {k: v for k, v in logs.items() if k not in ("time", "lr")}
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
            bar.update()
        if self.verbose:
            parts = [f"epoch {self.epoch:3d}"] + [f"{k} {v:.4f}" for k, v in shown.items()]
            self._log(" | ".join(parts + [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f}s"]))

    def _log(self, message: str) -> None:
        if self.rank == 0:
            print(message)
