"""Counting parameters, per-layer summaries and receptive fields.

- :func:`count_parameters` - how many numbers the optimiser updates.
- :func:`summary` - one row per layer: output shape, parameters, multiply-adds.
- :func:`receptive_field` - how many input pixels one output pixel of a conv/pool stack sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

__all__ = [
    "count_parameters",
    "summary",
    "receptive_field",
    "receptive_field_table",
    "RFLayer",
]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of scalar parameters of ``model`` (shared tensors counted once).

    ``trainable_only=True`` counts only tensors with ``requires_grad``; buffers (BatchNorm's
    running statistics) are never counted, as in the papers' tables.
    Works on models built on the ``meta`` device (no memory is needed to count).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------
# summary table
# ---------------------------------------------------------------------------
def _mult_adds(module: nn.Module, out: torch.Tensor) -> int:
    """Multiply-adds for one example of a conv or linear layer (0 for everything else).

    Convolution: every output value is a dot product of length ``C_in / groups * prod(kernel)``.
    Linear: every output value is a dot product of length ``in_features``.
    A module with its own ``mult_adds(out)`` method (e.g. LeNet's partial C3) counts itself.
    """
    if hasattr(module, "mult_adds"):
        return int(module.mult_adds(out))
    per_example = out[0].numel() if out.dim() > 0 else out.numel()
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        k = 1
        for s in module.kernel_size:
            k *= s
        return per_example * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return per_example * module.in_features
    return 0


def summary(
    model: nn.Module,
    input_size: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Run one example through ``model`` and tabulate every layer.

    ``input_size`` is the shape of ONE example without the batch dimension, e.g. ``(3, 32, 32)``.
    Returns a DataFrame with one row per leaf module (and per module owning parameters
    directly) in call order, columns ``layer`` (dotted name), ``type``, ``output_shape``
    (without batch dimension), ``params`` (own parameters), ``mult_adds`` (per example; conv
    and linear layers only), and a final ``total`` row. The model is run in ``eval()`` mode
    under ``torch.no_grad()`` and put back in its previous mode afterwards.

    Example::

        >>> print(summary(resnet_cifar(20), (3, 32, 32)).to_string(index=False))

    A model built under ``with torch.device("meta"):`` is summarised without memory or
    compute (shapes only), e.g. VGG-16's 15.5 G multiply-adds in a fraction of a second.
    """
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    rows: list[dict] = []
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, torch.Tensor):
                return
            rows.append(
                {
                    "layer": name,
                    "type": type(module).__name__,
                    "output_shape": tuple(out.shape[1:]),
                    "params": sum(p.numel() for p in module.parameters(recurse=False)),
                    "mult_adds": _mult_adds(module, out),
                }
            )

        return hook

    for name, module in model.named_modules():
        is_leaf = len(list(module.children())) == 0
        owns_params = len(list(module.parameters(recurse=False))) > 0
        if is_leaf or owns_params:
            handles.append(module.register_forward_hook(make_hook(name or type(model).__name__)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size, dtype=dtype, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    table = pd.DataFrame(rows, columns=["layer", "type", "output_shape", "params", "mult_adds"])
    total = {
        "layer": "total",
        "type": "",
        "output_shape": table["output_shape"].iloc[-1] if len(table) else (),
        "params": count_parameters(model, trainable_only=False),
        "mult_adds": int(table["mult_adds"].sum()),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


# ---------------------------------------------------------------------------
# receptive field
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class RFLayer:
    """Receptive-field bookkeeping after one layer (all in input pixels).

    ``size``: side of the receptive field; ``jump``: distance in the input between two
    neighbouring output pixels (product of strides); ``start``: input coordinate of the
    centre of the first output pixel's receptive field.
    """

    name: str
    size: int
    jump: int
    start: float


def _spatial_geometry(module: nn.Module) -> tuple[int, int, int, int] | None:
    """(kernel, stride, padding, dilation) along the first spatial axis, or None if neutral."""

    def first(v) -> int:
        return int(v[0]) if isinstance(v, (tuple, list)) else int(v)

    if isinstance(module, nn.modules.conv._ConvNd):
        if isinstance(module.padding, str):
            pad = (
                0
                if module.padding == "valid"
                else first(module.dilation) * (first(module.kernel_size) - 1) // 2
            )
        else:
            pad = first(module.padding)
        return (
            first(module.kernel_size),
            first(module.stride),
            pad,
            first(module.dilation),
        )
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        return (
            first(module.kernel_size),
            first(stride),
            first(module.padding),
            first(module.dilation),
        )
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        stride = module.stride if module.stride is not None else module.kernel_size
        return (first(module.kernel_size), first(stride), first(module.padding), 1)
    return None


def _flatten(layers: Iterable) -> list[tuple[str, tuple[int, int, int, int]]]:
    out: list[tuple[str, tuple[int, int, int, int]]] = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Module):
            children = list(layer.named_children())
            if children and _spatial_geometry(layer) is None:
                for name, sub in _flatten_named(layer):
                    out.append((name, sub))
                continue
            geometry = _spatial_geometry(layer)
            if geometry is not None:
                out.append((type(layer).__name__, geometry))
        else:
            values = tuple(int(v) for v in layer)
            if len(values) not in (2, 3, 4):
                raise ValueError(
                    "receptive_field expects (kernel, stride[, padding[, dilation]]) tuples, "
                    f"got {layer!r} at position {i}"
                )
            values = values + (0, 1)[len(values) - 2 :]
            out.append((f"layer{i}", values))  # type: ignore[arg-type]
    return out


def _flatten_named(module: nn.Module) -> list[tuple[str, tuple[int, int, int, int]]]:
    out = []
    for name, sub in module.named_modules():
        if len(list(sub.children())) == 0:
            geometry = _spatial_geometry(sub)
            if geometry is not None:
                out.append((name, geometry))
    return out


def receptive_field_table(layers: Iterable) -> list[RFLayer]:
    """Receptive field after each layer of a sequential stack (see :func:`receptive_field`).

    Recurrence (sizes in input pixels, ``k_eff = dilation * (k - 1) + 1``)::

        size_l  = size_{l-1} + (k_eff - 1) * jump_{l-1}
        jump_l  = jump_{l-1} * stride
        start_l = start_{l-1} + ((k_eff - 1) / 2 - padding) * jump_{l-1}
    """
    size, jump, start = 1, 1, 0.5
    table = []
    for name, (k, s, p, d) in _flatten(layers):
        k_eff = d * (k - 1) + 1
        size = size + (k_eff - 1) * jump
        start = start + ((k_eff - 1) / 2 - p) * jump
        jump = jump * s
        table.append(RFLayer(name, size, jump, start))
    return table


def receptive_field(layers: Iterable) -> int:
    """Side length (in input pixels) of the receptive field of one output pixel of a stack.

    ``layers`` is a sequence of ``(kernel, stride, padding, dilation)`` tuples (padding and
    dilation may be omitted) or of ``nn.Module`` s (convolutions and pooling layers count;
    activations, normalisation and other shape-preserving modules are skipped; containers
    such as ``nn.Sequential`` are walked in registration order, so only pass *sequential*
    stacks - branches and shortcuts are not modelled). Square kernels are assumed.

    >>> receptive_field([(3, 1, 1, 1), (3, 1, 1, 1)])   # two stacked 3x3 convs see 5x5
    5
    """
    table = receptive_field_table(layers)
    return table[-1].size if table else 1
