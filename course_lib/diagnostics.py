"""Diagnostics during training: dead ReLUs, and per-layer gradient norms after a number of steps.

A ReLU unit is **dead** on a data set when its pre-activation is negative for every example: its
output is then 0 everywhere, its derivative is 0 everywhere, and the gradient with respect to its
own weights and bias is 0. Whether it stays dead depends on its layer: a unit of the first layer
sees fixed inputs, a unit of a deeper layer sees the outputs of the layers below, which keep
changing, so it can come back to life.

* :func:`dead_relu_masks` - one boolean mask per ``nn.ReLU`` module of a model: ``True`` where a
  unit is zero on every example of ``x``;
* :class:`DeadReLUCounter` - a :class:`~course_lib.train.Callback` that records these masks at the
  start of training and after every epoch; ``counts`` gives the numbers per layer and check,
  ``revived()`` how many units were dead at one check and alive at a later one.

* :func:`gradient_norms_during_training` - train with a given optimiser and record, after chosen
  numbers of steps, the per-layer gradient norms of :func:`course_lib.models.signal_stats` on one
  fixed probe batch (how the gradient flow changes once training has started).

A *unit* is one element of the layer's output for one example: a neuron of an MLP (output
``(N, units)``), or one channel at one position of a convolutional map (output ``(N, C, H, W)``
gives ``C * H * W`` units). Only ``nn.ReLU`` modules are seen, not ``F.relu`` calls.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.models import signal_stats
from course_lib.train import Callback, Trainer

__all__ = ["dead_relu_masks", "DeadReLUCounter", "gradient_norms_during_training"]


def dead_relu_masks(model: nn.Module, x: Tensor, batch_size: int = 1024) -> list[Tensor]:
    """For every ``nn.ReLU`` of ``model`` (in forward order), a bool tensor over its units.

    ``mask[u]`` is ``True`` when unit ``u`` outputs exactly 0 for every example of ``x``
    (shape ``(N, ...)``), i.e. :math:`\\max_n \\mathrm{ReLU}(s_{n,u}) = 0`. The model runs in
    evaluation mode without gradients, ``batch_size`` examples at a time, on the device of its
    parameters; its train/eval mode is restored afterwards. Masks have the shape of one
    example's output of that layer (e.g. ``(256,)`` for a 256-unit hidden layer).
    """
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    maxima: list[Tensor | None] = [None] * len(relus)

    def make_hook(k: int):
        def hook(module: nn.Module, inputs, output: Tensor) -> None:
            batch_max = output.detach().amax(dim=0)
            maxima[k] = batch_max if maxima[k] is None else torch.maximum(maxima[k], batch_max)

        return hook

    handles = [m.register_forward_hook(make_hook(k)) for k, m in enumerate(relus)]
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else x.device
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                model(x[start : start + batch_size].to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return [(m <= 0).cpu() for m in maxima if m is not None]


class DeadReLUCounter(Callback):
    """Record the dead units of every ReLU layer on ``x`` before training and after each epoch.

    ``masks[t][l]`` is the :func:`dead_relu_masks` result of layer ``l`` at check ``t``
    (``t = 0``: before the first step, ``t = e``: after epoch ``e``).
    """

    def __init__(self, x: Tensor, batch_size: int = 1024) -> None:
        self.x, self.batch_size = x, batch_size
        self.masks: list[list[Tensor]] = []

    def _record(self, model: nn.Module) -> None:
        self.masks.append(dead_relu_masks(model, self.x, self.batch_size))

    def on_fit_start(self, trainer: Trainer) -> None:
        self._record(trainer.model)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> None:
        self._record(trainer.model)

    @property
    def counts(self) -> list[list[int]]:
        """``counts[t][l]``: number of dead units of layer ``l`` at check ``t``."""
        return [[int(m.sum()) for m in check] for check in self.masks]

    def revived(self) -> list[int]:
        """Per layer: units that were dead at some check and alive at a later one."""
        if not self.masks:
            return []
        result = []
        for layer in range(len(self.masks[0])):
            was_dead = torch.zeros_like(self.masks[0][layer])
            came_back = torch.zeros_like(self.masks[0][layer])
            for check in self.masks:
                came_back |= was_dead & ~check[layer]
                was_dead |= check[layer]
            result.append(int(came_back.sum()))
        return result


def gradient_norms_during_training(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    probe: tuple[Tensor, Tensor],
    checkpoints: Sequence[int],
    scheduler=None,
    modules: type | tuple[type, ...] = nn.Conv2d,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> dict[int, np.ndarray]:
    """Train ``model`` step by step and record per-layer gradient norms at ``checkpoints``.

    Step ``t`` = forward and backward of the next ``(x, y)`` of ``batches`` (cycled when it
    runs out, e.g. a loader gives one epoch), ``optimizer.step()`` and ``scheduler.step()``
    (per step, if given). Before step ``t`` for every ``t`` in ``checkpoints`` (``0`` = at
    initialisation), ``signal_stats(model, *probe, loss_fn, modules)`` is taken on the fixed
    probe batch: result[t] is its ``grad_norm`` column, one value per selected module in
    forward order (L2 norm of dLoss/d(module output) per example). The model stays in
    training mode (BatchNorm uses batch statistics); the probe does not update any weight.
    """
    cycled = itertools.chain.from_iterable(itertools.repeat(batches))
    model.train()
    profiles: dict[int, np.ndarray] = {}
    for step in range(max(checkpoints) + 1):
        if step in checkpoints:
            stats = signal_stats(model, probe[0], probe[1], loss_fn=loss_fn, modules=modules)
            profiles[step] = stats["grad_norm"].to_numpy()
        if step == max(checkpoints):
            break
        x, y = next(cycled)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return profiles
