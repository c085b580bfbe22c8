"""Weight initialisation and a signal probe for vanishing/exploding activations and gradients.

Variance-preserving initialisation chooses the weight variance so that a layer keeps the
variance of its input (forward) or of its incoming gradient (backward)::

    Xavier/Glorot (tanh, linear):  Var(w) = 2 / (fan_in + fan_out)
    Kaiming/He (ReLU):             Var(w) = 2 / fan_in        (ReLU zeroes half the signal)

:func:`signal_stats` shows what happens otherwise: it records each layer's activation mean/std
and the gradient norm that reaches it, so a plot over depth shows signals dying out or
blowing up, and the residual "+1" keeping the gradient alive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["init_weights", "xavier_init_", "kaiming_init_", "signal_stats"]

_WEIGHTED = (nn.Linear, nn.modules.conv._ConvNd)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def init_weights(
    model: nn.Module,
    scheme: str = "kaiming",
    distribution: str = "normal",
    nonlinearity: str = "relu",
    std: float = 0.01,
) -> nn.Module:
    """Re-initialise every Linear/Conv layer of ``model`` in place and return it.

    ``scheme``: ``"kaiming"`` (He, fan-in mode), ``"xavier"`` (Glorot), ``"normal"``
    (``N(0, std^2)``, e.g. ``std=0.01`` as in early VGG) or ``"zeros"`` (to show symmetry:
    every unit of a layer then stays identical). ``distribution``: ``"normal"`` or
    ``"uniform"`` (same variance). Biases are set to zero; normalisation layers to
    weight 1, bias 0.
    """
    if scheme not in ("kaiming", "xavier", "normal", "zeros"):
        raise ValueError(f"scheme must be 'kaiming', 'xavier', 'normal' or 'zeros', got {scheme!r}")
    if distribution not in ("normal", "uniform"):
        raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}")
    for m in model.modules():
        if isinstance(m, _WEIGHTED):
            w = m.weight
            if scheme == "kaiming":
                if distribution == "normal":
                    nn.init.kaiming_normal_(w, nonlinearity=nonlinearity)
                else:
                    nn.init.kaiming_uniform_(w, nonlinearity=nonlinearity)
            elif scheme == "xavier":
                gain = (
                    nn.init.calculate_gain(nonlinearity)
                    if nonlinearity in ("tanh", "sigmoid")
                    else 1.0
                )
                if distribution == "normal":
                    nn.init.xavier_normal_(w, gain=gain)
                else:
                    nn.init.xavier_uniform_(w, gain=gain)
            elif scheme == "normal":
                if distribution == "normal":
                    nn.init.normal_(w, 0.0, std)
                else:
                    bound = std * 3**0.5
                    nn.init.uniform_(w, -bound, bound)
            else:
                nn.init.zeros_(w)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def xavier_init_(
    model: nn.Module, distribution: str = "normal", nonlinearity: str = "linear"
) -> nn.Module:
    """Glorot initialisation of all Linear/Conv layers: ``Var(w) = 2 / (fan_in + fan_out)``."""
    return init_weights(model, "xavier", distribution, nonlinearity)


def kaiming_init_(
    model: nn.Module, distribution: str = "normal", nonlinearity: str = "relu"
) -> nn.Module:
    """He initialisation of all Linear/Conv layers: ``Var(w) = 2 / fan_in`` for ReLU."""
    return init_weights(model, "kaiming", distribution, nonlinearity)


def _select(model: nn.Module, modules) -> list[tuple[str, nn.Module]]:
    named = list(model.named_modules())
    if modules is None:
        return [(n, m) for n, m in named if isinstance(m, _WEIGHTED)]
    if isinstance(modules, type) or (
        isinstance(modules, tuple) and all(isinstance(t, type) for t in modules)
    ):
        return [(n, m) for n, m in named if isinstance(m, modules) and m is not model]
    if isinstance(modules, Sequence):
        lookup = dict(named)
        missing = [n for n in modules if n not in lookup]
        if missing:
            raise ValueError(
                f"signal_stats: no submodule named {missing}; names look like {list(lookup)[1:4]}"
            )
        return [(n, lookup[n]) for n in modules]
    raise ValueError("modules must be None, a module class, a tuple of classes or a list of names")


def signal_stats(
    model: nn.Module,
    x: Tensor,
    target: Tensor | None = None,
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    modules: type | tuple[type, ...] | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Forward ``x``, backward a loss, and report per-layer signal statistics.

    ``modules`` selects the layers: ``None`` = every Linear/Conv layer, a class (or tuple of
    classes, e.g. ``BasicBlock``) or a list of submodule names. The loss is
    ``loss_fn(model(x), target)``, or ``model(x).sum()`` when ``target`` is None.

    Returns a DataFrame with one row per selected module in forward order:
    ``layer``, ``type``, ``act_mean``, ``act_std`` (of the module's output), ``grad_norm``
    (L2 norm of d loss / d output, per example: divided by sqrt(batch)), ``weight_grad_norm``
    (L2 norm of the gradient of the module's own ``weight``, NaN if it has none).
    The model's mode (train/eval) is left as it is; parameter gradients are cleared afterwards.
    """
    selected = _select(model, modules)
    records: dict[str, dict] = {}
    order: list[str] = []
    handles = []

    def make_hook(name: str, module: nn.Module):
        def hook(mod: nn.Module, inputs, output) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, Tensor):
                return
            if name not in records:
                order.append(name)
            rec = {
                "layer": name,
                "type": type(module).__name__,
                "act_mean": out.detach().float().mean().item(),
                "act_std": out.detach().float().std().item() if out.numel() > 1 else 0.0,
                "grad_norm": float("nan"),
            }
            records[name] = rec
            if out.requires_grad:

                def grad_hook(g: Tensor, rec=rec) -> None:
                    rec["grad_norm"] = g.detach().float().norm().item() / max(g.shape[0], 1) ** 0.5

                out.register_hook(grad_hook)

        return hook

    for name, module in selected:
        handles.append(module.register_forward_hook(make_hook(name, module)))
    model.zero_grad(set_to_none=True)
    try:
        out = model(x)
        loss = out.sum() if target is None else loss_fn(out, target)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    for name, module in selected:
        if name in records:
            w = getattr(module, "weight", None)
            g = w.grad if isinstance(w, Tensor) else None
            records[name]["weight_grad_norm"] = g.norm().item() if g is not None else float("nan")
    model.zero_grad(set_to_none=True)
    columns = ["layer", "type", "act_mean", "act_std", "grad_norm", "weight_grad_norm"]
    return pd.DataFrame([records[n] for n in order], columns=columns)
