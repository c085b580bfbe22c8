r"""The loss around trained weights along random directions: a probe of sharp vs flat minima.

For weights :math:`w^*` and a direction :math:`d` the probe evaluates
:math:`L(w^* + \alpha d)` for a range of :math:`\alpha`. The direction is drawn at random and
rescaled *per parameter tensor* to that tensor's norm, :math:`d_l \leftarrow d_l\,\lVert
w_l\rVert / \lVert d_l\rVert`, so that layers of different scales are perturbed by the same
relative amount (a simplified form of the filter normalisation of Li et al., 2018; without it
"sharpness" changes when the weights of a ReLU network are rescaled layer by layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["layer_normalised_direction", "loss_along", "sharpness_curve"]


def layer_normalised_direction(
    model: nn.Module, generator: torch.Generator | None = None
) -> list[Tensor]:
    """A Gaussian direction, one tensor per parameter, each rescaled to that parameter's norm."""
    direction = []
    for p in model.parameters():
        d = torch.randn(p.shape, generator=generator).to(p.device, p.dtype)
        direction.append(d * p.detach().norm() / d.norm().clamp_min(1e-12))
    return direction


@torch.no_grad()
def loss_along(
    model: nn.Module,
    direction: Sequence[Tensor],
    alphas: Sequence[float] | np.ndarray,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> np.ndarray:
    """``L(w + alpha d)`` for each ``alpha`` (array of ``len(alphas)``), model in eval mode.

    The weights are restored afterwards (and the model's train/eval mode).
    """
    params = list(model.parameters())
    if len(direction) != len(params):
        raise ValueError(f"direction has {len(direction)} tensors, the model {len(params)}")
    base = [p.detach().clone() for p in params]
    was_training = model.training
    model.eval()
    out = []
    try:
        for a in alphas:
            for p, w0, d in zip(params, base, direction):
                p.copy_(w0 + float(a) * d)
            out.append(loss_fn(model(x), y).item())
    finally:
        for p, w0 in zip(params, base):
            p.copy_(w0)
        model.train(was_training)
    return np.array(out)


def sharpness_curve(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    alphas: Sequence[float] | np.ndarray,
    n_directions: int = 3,
    generator: torch.Generator | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
) -> np.ndarray:
    """Loss along ``n_directions`` random layer-normalised directions: shape ``(n_directions,
    len(alphas))``. Average over axis 0 for the curve, compare ``alpha = ±0.5`` with 0 for a
    single sharpness number."""
    return np.stack(
        [
            loss_along(model, layer_normalised_direction(model, generator), alphas, x, y, loss_fn)
            for _ in range(n_directions)
        ]
    )
