"""Mixed precision, measured: time per training step and activation memory under autocast.

``torch.autocast(device, dtype)`` runs matrix products and convolutions in a 16-bit format
(bf16: 8 exponent bits like fp32, 7 mantissa bits; fp16: 5 and 10, so fp16 needs a loss
scaler against underflowing gradients) while the weights stay in fp32. Two costs of a step:

* :func:`step_time` - median wall-clock seconds of one optimisation step (forward, backward,
  step), after warm-up steps, with CUDA synchronisation on a GPU;
* :func:`saved_activation_bytes` - the bytes of the tensors that autograd saves during one
  forward pass for the backward pass (hooked with ``torch.autograd.graph.saved_tensors_hooks``;
  parameters themselves excluded, each storage counted once): the memory that grows with the
  batch size, and the part a 16-bit format halves.
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["autocast", "step_time", "saved_activation_bytes"]


def autocast(device: torch.device | str, dtype: torch.dtype | None):
    """``torch.autocast(device.type, dtype)``, or a no-op context for ``dtype=None`` (fp32)."""
    device = torch.device(device)
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def step_time(
    model: nn.Module, x: Tensor, y: Tensor, dtype: torch.dtype | None, steps: int = 10,
    warmup: int = 3,
) -> float:  # fmt: skip
    """Median seconds of one SGD step on the batch ``(x, y)`` under :func:`autocast`."""
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    times = []
    for i in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast(device, dtype):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def saved_activation_bytes(model: nn.Module, x: Tensor, dtype: torch.dtype | None) -> int:
    """Bytes saved for backward by one forward pass of ``model(x)`` under :func:`autocast`."""
    device = next(model.parameters()).device
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(device, dtype):
        model(x.to(device)).sum()
    return sum(seen.values())
