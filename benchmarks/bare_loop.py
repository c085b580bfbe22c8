"""What the Trainer benchmarks measure against: the small CNN and the loop a student writes.

Shared by ``trainer_overhead.py`` and ``trainer_peers.py`` so that both compare the Trainer
with the same bare loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def small_cnn() -> nn.Module:
    """Two conv-ReLU-pool stages and a linear head for 1x28x28 inputs (MNIST 5k)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip


def bare_epoch(model, opt, loader, device, amp_dtype=None, memory_format=None) -> float:
    """One epoch of forward, loss, backward, step, with running loss and accuracy on the device.

    The epoch's numbers reach the host at the end, as in a log; returns the mean loss.
    """
    model.train()
    loss_sum, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        if memory_format is not None:
            xb = xb.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * yb.shape[0]
        correct += (logits.argmax(1) == yb).sum()
        n += yb.shape[0]
    float(correct)
    return float(loss_sum) / n
