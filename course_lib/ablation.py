"""Regularisation experiments of chapter 8: one training function for every ablation variant,
mixup/CutMix as a Trainer callback, and the BatchNorm-after-dropout variance shift.

* :class:`MixBatches` - a :class:`~course_lib.train.Callback` that replaces every training
  batch by its mixup or CutMix version with soft targets ``(B, K)``;
* :func:`train_variant` - SGD with momentum, a cosine (or step) schedule and early stopping,
  the variant given by keyword arguments (augmentation, mixing, weight decay, label smoothing);
  :func:`variant_scores` - its train/test accuracy, gap and mean confidence;
* :func:`dropout_bn_mlp` and :func:`variance_shift` - Li et al. (2019): dropout placed before
  BatchNorm makes the test-time input variance of the BN layer differ from its running one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import regularisers as reg
from course_lib.data import TensorLoader
from course_lib.runtime import seed_everything
from course_lib.train import Callback, EarlyStopping, Trainer

__all__ = [
    "MixBatches",
    "per_example",
    "train_variant",
    "variant_scores",
    "dropout_bn_mlp",
    "variance_shift",
]

Mix = Literal["mixup", "cutmix"]
Placement = Literal["no dropout", "before BN", "after BN", "only before classifier"]


class MixBatches(Callback):
    """Mix every training batch with mixup or CutMix and train on the soft targets.

    ``on_batch_start`` returns ``(x_mixed, lam * onehot(y_a) + (1 - lam) * onehot(y_b))`` of
    shapes ``(B, ...)`` and ``(B, num_classes)``; cross-entropy with probability targets then
    equals :func:`course_lib.regularisers.mixup_loss`. Evaluation batches are not touched.
    """

    def __init__(
        self,
        mix: Mix,
        alpha: float,
        num_classes: int,
        generator: torch.Generator | None = None,
    ) -> None:
        if mix not in ("mixup", "cutmix"):
            raise ValueError(f"mix must be 'mixup' or 'cutmix', got {mix!r}")
        self.fn = reg.mixup if mix == "mixup" else reg.cutmix
        self.alpha, self.num_classes, self.generator = alpha, num_classes, generator

    def on_batch_start(self, trainer: Trainer, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        mixed, y_a, y_b, lam = self.fn(xb, yb, self.alpha, generator=self.generator)
        k = self.num_classes
        soft = lam * F.one_hot(y_a, k).to(mixed.dtype) + (1 - lam) * F.one_hot(y_b, k).to(
            mixed.dtype
        )
        return mixed, soft


def per_example(transform: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Turn a per-image transform ``(C, H, W) -> (C, H, W)`` into a batch transform."""
    return lambda xb: torch.stack([transform(img) for img in xb])


def train_variant(
    make_model: Callable[[], nn.Module],
    x: Tensor,
    y: Tensor,
    val_loader: Iterable,
    *,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int = 32,
    transform: Callable[[Tensor], Tensor] | None = None,
    mix: Mix | None = None,
    alpha: float = 1.0,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    schedule: Literal["cosine", "step"] = "cosine",
    patience: int | None = 5,
    device: torch.device | str | None = None,
) -> tuple[nn.Module, Trainer]:
    """Train one ablation variant; return ``(model, trainer)``.

    Seeds everything with ``seed``, builds the model with ``make_model()`` and a shuffled
    :class:`~course_lib.data.TensorLoader` of ``(x, y)`` (its order also from ``seed``). SGD with
    momentum 0.9 and ``weight_decay``; ``schedule="cosine"`` anneals the lr to 0 over ``epochs``,
    ``"step"`` halves it every 50 epochs (the lecture's recipe); early stopping on the validation
    loss with ``patience`` (None: off). ``transform`` augments whole batches, ``mix`` adds
    :class:`MixBatches`; ``label_smoothing`` goes to the cross-entropy.
    """
    seed_everything(seed)
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    if schedule == "cosine":
        sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, epochs
        )
    else:
        sched = torch.optim.lr_scheduler.StepLR(opt, 50, 0.5)
    callbacks: list[Callback] = []
    if patience is not None:
        callbacks.append(EarlyStopping(patience=patience))
    if mix is not None:
        gen = torch.Generator().manual_seed(seed)
        callbacks.append(MixBatches(mix, alpha, int(y.max()) + 1, generator=gen))
    loss_fn = partial(F.cross_entropy, label_smoothing=label_smoothing)
    trainer = Trainer(
        model, opt, loss_fn=loss_fn, device=device, scheduler=sched, callbacks=callbacks
    )
    loader = TensorLoader(x, y, batch_size=batch_size, transform=transform, seed=seed)
    trainer.fit(loader, val_loader, epochs=epochs)
    return model, trainer


def variant_scores(
    trainer: Trainer, train_eval_loader: Iterable, test_loader: Iterable
) -> dict[str, float]:
    """Train and test accuracy, their gap, the mean top probability on the test set, epochs run.

    The test set is run once: its accuracy and confidence both come from ``trainer.predict``.
    """
    train_acc = trainer.evaluate(train_eval_loader)["acc"]
    logits, targets = trainer.predict(test_loader)
    test_acc = (logits.argmax(1) == targets).float().mean().item()
    return {
        "train acc": train_acc,
        "test acc": test_acc,
        "gap": train_acc - test_acc,
        "mean confidence": logits.float().softmax(1).max(1).values.mean().item(),
        "epochs": float(len(trainer.history.train_loss)),
    }


def dropout_bn_mlp(
    placement: Placement,
    d_in: int,
    num_classes: int,
    p: float = 0.5,
    width: int = 256,
    depth: int = 3,
) -> nn.Sequential:
    """``depth`` blocks of ``Linear -> BN -> ReLU`` with dropout placed as named, then a linear.

    * ``"before BN"``: ``Linear -> Dropout -> BN -> ReLU`` (the lecture's "option 2");
    * ``"after BN"``: ``Linear -> BN -> ReLU -> Dropout``, feeding dropped activations into
      the next block's BN;
    * ``"only before classifier"``: no dropout in the blocks, one before the last linear layer
      (no BN after any dropout, the fix of Li et al.);
    * ``"no dropout"``. Input ``(N, ...)`` is flattened to ``(N, d_in)``.
    """
    blocks: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        c_in = d_in if i == 0 else width
        if placement == "before BN":
            blocks += [nn.Linear(c_in, width), nn.Dropout(p), nn.BatchNorm1d(width), nn.ReLU()]
        elif placement == "after BN":
            blocks += [nn.Linear(c_in, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(p)]
        elif placement in ("only before classifier", "no dropout"):
            blocks += [nn.Linear(c_in, width), nn.BatchNorm1d(width), nn.ReLU()]
        else:
            raise ValueError(f"unknown placement {placement!r}")
    if placement == "only before classifier":
        blocks.append(nn.Dropout(p))
    return nn.Sequential(*blocks, nn.Linear(width, num_classes))


@torch.no_grad()
def variance_shift(model: nn.Module, x: Tensor) -> list[float]:
    r"""Per BatchNorm layer, in order: mean over channels of :math:`\mathrm{Var}_\text{test}(\text{input})
    / \text{running\_var}`, measured on ``x`` in eval mode (dropout off). 1 means no shift.

    Works for ``BatchNorm1d`` on ``(N, C)`` inputs and ``BatchNorm2d`` on ``(N, C, H, W)``
    (variance over batch and positions, as BN computes it). The model is left in eval mode.
    """
    ratios: list[float] = []

    def hook(mod: nn.Module, inp: tuple[Tensor, ...], _out: Tensor) -> None:
        t = inp[0]
        dims = [0] + list(range(2, t.dim()))
        ratios.append((t.var(dims) / mod.running_var).mean().item())

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return ratios
