"""Test-time augmentation with crops: one centre crop, 5 shifted crops, 5 and 10 crops.

A network trained on random ``size x size`` crops of larger images is tested on crops too.
:func:`crop_views` returns the views of each test image, :func:`tta_predict` averages the
softmax over them, :math:`\\bar p(x) = \\frac1V \\sum_{v=1}^{V} \\mathrm{softmax}(f(x_v))`:

* ``"center"``: the centre crop alone (V = 1, no TTA);
* ``"shift5"``: the centre crop and the crops shifted by one pixel up, down, left, right (V = 5);
* ``"five"``: the four corner crops and the centre crop (torchvision ``FiveCrop``, V = 5);
* ``"ten"``: those five and their horizontal mirror images (torchvision ``TenCrop``, V = 10;
  the lecture's 10-crop testing). Mirroring only helps where the training data were mirrored
  too (photos), not for digits.

:func:`random_crops` is the training side: an independent random crop for every image.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

__all__ = ["random_crops", "crop_views", "tta_predict"]

Views = Literal["center", "shift5", "five", "ten"]


def random_crops(x: Tensor, size: int, generator: torch.Generator | None = None) -> Tensor:
    """One random ``size x size`` crop per image of ``x`` ``(N, C, H, W)`` -> ``(N, C, size, size)``."""
    n, _, h, w = x.shape
    top = torch.randint(0, h - size + 1, (n,), generator=generator)
    left = torch.randint(0, w - size + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(size))[:, None, :, None]  # (N, 1, size, 1)
    cols = (left[:, None] + torch.arange(size))[:, None, None, :]  # (N, 1, 1, size)
    batch = torch.arange(n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return x[batch, chans, rows.to(x.device), cols.to(x.device)]


def crop_views(x: Tensor, size: int, views: Views) -> list[Tensor]:
    """The test views of ``x`` ``(N, C, H, W)``: a list of ``V`` tensors ``(N, C, size, size)``."""
    if views == "center":
        return [TF.center_crop(x, [size, size])]
    if views == "five":
        return list(TF.five_crop(x, [size, size]))
    if views == "ten":
        return list(TF.ten_crop(x, [size, size]))
    if views == "shift5":
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        shifts = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
        return [TF.crop(x, top + dy, left + dx, size, size) for dy, dx in shifts]
    raise ValueError(f"views must be 'center', 'shift5', 'five' or 'ten', got {views!r}")


@torch.no_grad()
def tta_predict(
    model: nn.Module, x: Tensor, size: int, views: Views, batch_size: int = 1000
) -> Tensor:
    """Class probabilities ``(N, K)`` averaged over the views (model in eval mode, on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        vs = crop_views(x[start : start + batch_size], size, views)
        probs = [model(v.to(device)).float().softmax(1).cpu() for v in vs]
        out.append(torch.stack(probs).mean(0))
    return torch.cat(out)
