"""Regularisers: weight penalties, label smoothing, mixup/CutMix, stochastic depth, and
predictions that average over dropout masks or over several models.

Each idea is one short function (plus a module wrapper where it sits inside a network):

* penalties ``l1_penalty``, ``l2_penalty``, ``elastic_net_penalty`` and the choice of what to
  penalise (``decay_parameters``, ``no_decay_parameters``, ``param_groups``);
* ``label_smoothing_cross_entropy`` / ``LabelSmoothingCrossEntropy``;
* ``mixup``, ``cutmix`` and ``mixup_loss``;
* ``drop_path`` / ``DropPath`` (stochastic depth);
* ``mc_dropout_predict`` and ``ensemble_predict`` (mean probabilities + uncertainty);
* ``clip_grad_norm`` (reports the norm it saw).

Early stopping is a callback of the training loop: ``course_lib.train.EarlyStopping``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import layers

__all__ = [
    "l1_penalty",
    "l2_penalty",
    "elastic_net_penalty",
    "decay_parameters",
    "no_decay_parameters",
    "param_groups",
    "label_smoothing_cross_entropy",
    "LabelSmoothingCrossEntropy",
    "mixup",
    "cutmix",
    "mixup_loss",
    "drop_path",
    "DropPath",
    "Prediction",
    "predictive_entropy",
    "mc_dropout_predict",
    "ensemble_predict",
    "clip_grad_norm",
]


# ----------------------------------------------------------------------------------------------
# which parameters to regularise
# ----------------------------------------------------------------------------------------------


# Normalisation layers, torch's (BatchNorm*, InstanceNorm* share _NormBase) and our teaching ones.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    layers._BatchNorm,
    layers.LayerNorm,
    layers.GroupNorm,
    layers.InstanceNorm2d,
)


def _is_norm_layer(module: nn.Module) -> bool:
    """BatchNorm/LayerNorm/GroupNorm/InstanceNorm/RMSNorm, torch's or our own teaching ones.

    Decided by type (``isinstance``), never by class name: a model called ``NormNet`` is not
    a normalisation layer.
    """
    return isinstance(module, NORM_LAYERS)


def _split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decay, no_decay): biases, parameters with ndim <= 1 and norm-layer parameters get no decay.

    The rule is timm's: weight decay pulls weights towards 0, which makes sense for the weight
    matrices and kernels that carry the model's capacity, but not for biases (a shift, not a
    scale) or for the scale/shift of a normalisation layer (shrinking gamma towards 0 fights
    the normalisation). A parameter shared between modules is listed once.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            if p.ndim <= 1 or name.endswith("bias") or _is_norm_layer(module):
                no_decay.append(p)
            else:
                decay.append(p)
    return decay, no_decay


def decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters that should be weight-decayed / penalised: weights of conv and linear layers."""
    return _split_parameters(model)[0]


def no_decay_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters excluded from decay: biases and normalisation scales/shifts (ndim <= 1)."""
    return _split_parameters(model)[1]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two optimiser parameter groups: decayed weights and the rest with ``weight_decay=0``.

    Example: ``torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)``.
    """
    decay, no_decay = _split_parameters(model)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _tensors(params: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(params, nn.Module):
        return decay_parameters(params)
    if isinstance(params, Tensor):
        return [params]
    return list(params)


def l1_penalty(params: nn.Module | Iterable[Tensor]) -> Tensor:
    r"""L1 penalty Σ_i |w_i| (lasso; its gradient sign(w) pushes every weight towards 0 by the
    same amount, which makes small weights exactly 0: sparsity).

    ``params``: a model (its :func:`decay_parameters`: weights, no biases or norm parameters),
    one tensor, or any iterable of tensors. Returns a differentiable scalar; add
    ``lam * l1_penalty(model)`` to the data loss.
    """
    tensors = _tensors(params)
    if not tensors:
        return torch.zeros(())
    return sum(t.abs().sum() for t in tensors)


def l2_penalty(params: nn.Module | Iterable[Tensor]) -> Tensor:
    r"""L2 penalty ½ Σ_i w_i² (ridge). Its gradient is w, so adding ``lam * l2_penalty(model)``
    to the loss adds ``lam * w`` to each gradient: plain SGD then performs
    w ← w − η(∇L + λw) = (1 − ηλ)w − η∇L, i.e. weight decay by the factor (1 − ηλ).

    ``params``: a model (its :func:`decay_parameters`), one tensor, or an iterable of tensors.
    """
    tensors = _tensors(params)
    if not tensors:
        return torch.zeros(())
    return 0.5 * sum(t.pow(2).sum() for t in tensors)


def elastic_net_penalty(params: nn.Module | Iterable[Tensor], l1_ratio: float = 0.5) -> Tensor:
    r"""Elastic net Ω(w) = α ‖w‖₁ + (1 − α)/2 ‖w‖₂² with α = ``l1_ratio`` in [0, 1].

    α = 1 is :func:`l1_penalty`, α = 0 is :func:`l2_penalty`; in between it is sparse like L1
    but keeps groups of correlated weights together like L2.
    """
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}.")
    tensors = _tensors(params)
    return l1_ratio * l1_penalty(tensors) + (1.0 - l1_ratio) * l2_penalty(tensors)


# ----------------------------------------------------------------------------------------------
# label smoothing
# ----------------------------------------------------------------------------------------------


def label_smoothing_cross_entropy(
    logits: Tensor, target: Tensor, eps: float = 0.1, reduction: str = "mean"
) -> Tensor:
    r"""Cross-entropy against smoothed targets y_smooth = (1 − ε) onehot(y) + ε / K.

    Per sample: (1 − ε)·(−log p_y) + ε · mean_k(−log p_k). ``logits`` (N, K), ``target`` (N,)
    class indices. Equals ``F.cross_entropy(logits, target, label_smoothing=eps)``.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (N, K), got {tuple(logits.shape)}.")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1], got {eps}.")
    log_p = F.log_softmax(logits, dim=1)
    nll = -log_p.gather(1, target[:, None]).squeeze(1)  # −log p_y
    uniform = -log_p.mean(dim=1)  # cross-entropy with the uniform distribution
    loss = (1.0 - eps) * nll + eps * uniform
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy` (usable as a Trainer ``loss_fn``)."""

    def __init__(self, eps: float = 0.1, reduction: str = "mean") -> None:
        super().__init__()
        self.eps, self.reduction = eps, reduction

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(logits, target, self.eps, self.reduction)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


# ----------------------------------------------------------------------------------------------
# mixup and CutMix
# ----------------------------------------------------------------------------------------------


def _beta_sample(alpha: float, generator: torch.Generator | None) -> float:
    """λ ~ Beta(α, α), reproducible from a torch generator (or torch's global RNG)."""
    if alpha <= 0:
        return 1.0
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _permutation(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.randperm(n, generator=generator).to(device)


def mixup(
    x: Tensor, y: Tensor, alpha: float = 0.2, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, float]:
    r"""Mixup (Zhang et al., 2018): blend each example with a random partner from the batch.

    x̃ = λ x + (1 − λ) x[perm], with one λ ~ Beta(α, α) per batch. Returns
    ``(x_mixed, y_a, y_b, lam)`` with ``y_a = y`` and ``y_b = y[perm]``; train with
    :func:`mixup_loss`. ``alpha <= 0`` disables mixing (λ = 1).
    """
    lam = _beta_sample(alpha, generator)
    perm = _permutation(x.shape[0], generator, x.device)
    return lam * x + (1.0 - lam) * x[perm], y, y[perm], lam


def cutmix(
    x: Tensor, y: Tensor, alpha: float = 1.0, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor, float]:
    r"""CutMix (Yun et al., 2019): paste a random box from a partner image.

    ``x`` (N, C, H, W). λ ~ Beta(α, α); a box of area ≈ (1 − λ)·H·W with a uniformly random
    centre (clipped at the borders) is copied from ``x[perm]``. λ is then recomputed as the
    fraction of each image that is still its own, so the labels mix in the true proportion.
    Returns ``(x_mixed, y_a, y_b, lam)`` like :func:`mixup`; the input is not modified.
    """
    if x.ndim != 4:
        raise ValueError(f"cutmix needs images of shape (N, C, H, W), got {tuple(x.shape)}.")
    lam = _beta_sample(alpha, generator)
    perm = _permutation(x.shape[0], generator, x.device)
    h, w = x.shape[-2:]
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(h * ratio), int(w * ratio)
    cy = int(torch.randint(0, h, (1,), generator=generator))
    cx = int(torch.randint(0, w, (1,), generator=generator))
    y1, y2 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x1, x2 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = x.clone()
    mixed[:, :, y1:y2, x1:x2] = x[perm, :, y1:y2, x1:x2]
    lam = 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
    return mixed, y, y[perm], lam


def mixup_loss(
    logits: Tensor,
    y_a: Tensor,
    y_b: Tensor,
    lam: float,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> Tensor:
    r"""Loss for a mixed batch: λ·loss(logits, y_a) + (1 − λ)·loss(logits, y_b).

    For cross-entropy this equals the cross-entropy against the mixed soft label
    λ onehot(y_a) + (1 − λ) onehot(y_b). Works for mixup and CutMix alike.
    """
    return lam * loss_fn(logits, y_a) + (1.0 - lam) * loss_fn(logits, y_b)


# ----------------------------------------------------------------------------------------------
# stochastic depth
# ----------------------------------------------------------------------------------------------


def drop_path(
    x: Tensor, p: float = 0.0, training: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    r"""Stochastic depth (Huang et al., 2016): zero a residual branch for whole samples.

    Each sample of the batch keeps its branch output with probability 1 − p and the survivors
    are scaled by 1/(1 − p) so that the expectation is unchanged (identity at eval time).
    Use on the residual branch: ``out = x + drop_path(f(x), p, self.training)``. Same result
    as ``torchvision.ops.stochastic_depth(x, p, "row", training)`` for the same RNG state.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability must be in [0, 1], got {p}.")
    if not training or p == 0.0:
        return x
    survival = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one coin per sample, broadcast over the rest
    keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(
        survival, generator=generator
    )
    if survival > 0.0:
        keep.div_(survival)
    return x * keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`, active only in ``train()`` mode."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"drop probability must be in [0, 1], got {p}.")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ----------------------------------------------------------------------------------------------
# averaging predictions: MC dropout and ensembles
# ----------------------------------------------------------------------------------------------


class Prediction(NamedTuple):
    """Averaged prediction of several stochastic passes or ensemble members.

    * ``mean`` (N, K): mean predicted probabilities p̄ = (1/S) Σ_s p_s;
    * ``entropy`` (N,): predictive entropy H[p̄] = −Σ_k p̄_k log p̄_k (total uncertainty);
    * ``mutual_information`` (N,): H[p̄] − (1/S) Σ_s H[p_s] ≥ 0, the part of the uncertainty
      that comes from the members disagreeing (epistemic; 0 when all agree).
    """

    mean: Tensor
    entropy: Tensor
    mutual_information: Tensor


def predictive_entropy(probs: Tensor) -> Tensor:
    """Entropy −Σ_k p_k log p_k along the last dimension, with 0·log 0 = 0 (in nats)."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def _summarise(prob_samples: Tensor) -> Prediction:
    """(S, N, K) probabilities -> :class:`Prediction`."""
    mean = prob_samples.mean(dim=0)
    entropy = predictive_entropy(mean)
    expected = predictive_entropy(prob_samples).mean(dim=0)
    return Prediction(mean, entropy, (entropy - expected).clamp_min(0.0))


def _probabilities(model: nn.Module, x: Tensor) -> Tensor:
    logits = model(x)
    if logits.ndim != 2:
        raise ValueError(
            f"the model must return logits of shape (N, K), got {tuple(logits.shape)}; for a "
            "binary model with one output use torch.cat([torch.zeros_like(z), z], 1)."
        )
    return torch.softmax(logits, dim=-1)


def _dropout_layers() -> tuple[type[nn.Module], ...]:
    """torch's Dropout family, our layers.Dropout, DropPath and torchvision's StochasticDepth."""
    from torchvision.ops import StochasticDepth

    return (nn.modules.dropout._DropoutNd, layers.Dropout, DropPath, StochasticDepth)


def _is_dropout(module: nn.Module) -> bool:
    """Whether ``module`` is a dropout layer, by type (``isinstance``), never by class name."""
    return isinstance(module, _dropout_layers())


@torch.no_grad()
def mc_dropout_predict(model: nn.Module, x: Tensor, n_samples: int = 30) -> Prediction:
    r"""Monte Carlo dropout (Gal & Ghahramani, 2016): average ``n_samples`` stochastic passes.

    The model is put in eval mode (BatchNorm uses its running statistics and does not update
    them) and then only the dropout layers are switched back to train mode, so each pass
    samples a new dropout mask. ``x`` is one batch; returns :class:`Prediction` of softmax
    probabilities (N, K). The model's original train/eval flags are restored afterwards.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    modes = {m: m.training for m in model.modules()}
    model.eval()
    dropouts = [m for m in model.modules() if _is_dropout(m)]
    for m in dropouts:
        m.train()
    try:
        samples = torch.stack([_probabilities(model, x) for _ in range(n_samples)])
    finally:
        for m, was_training in modes.items():
            m.train(was_training)
    return _summarise(samples.float())


@torch.no_grad()
def ensemble_predict(models: Sequence[nn.Module], x: Tensor) -> Prediction:
    r"""Average the softmax probabilities of several models (each in eval mode) on batch ``x``.

    Independently trained members make partly uncorrelated errors, so the mean is usually both
    more accurate and better calibrated than one member. Returns :class:`Prediction`; the
    models' train/eval flags are restored afterwards.
    """
    if len(models) == 0:
        raise ValueError("ensemble_predict needs at least one model.")
    outputs = []
    for model in models:
        was_training = model.training
        model.eval()
        try:
            outputs.append(_probabilities(model, x))
        finally:
            model.train(was_training)
    return _summarise(torch.stack(outputs).float())


# ----------------------------------------------------------------------------------------------
# gradient clipping
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def clip_grad_norm(
    parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0
) -> float:
    r"""Rescale gradients so that their global norm is at most ``max_norm``; return the norm.

    total = ‖(‖g_1‖, …, ‖g_n‖)‖_p over all gradients (one long vector). If total > max_norm,
    every gradient is multiplied by max_norm / (total + 1e-6): the direction is kept, only the
    step length shrinks. Returns the norm *before* clipping (log it: spikes show instability).
    Same result as ``torch.nn.utils.clip_grad_norm_``.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return 0.0
    norms = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])
    total = torch.linalg.vector_norm(norms, norm_type)
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return float(total)
