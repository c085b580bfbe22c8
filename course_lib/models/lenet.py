"""LeNet-5 (LeCun et al., 1998), in its modern form and in a faithful reconstruction.

Layer names follow the paper: ``c1, s2, c3, s4, c5, f6, output``, so that
``count_parameters(model.c3)`` reads straight off the paper's table::

    layer   faithful   modern
    C1          156       156   6 maps, 5x5 conv on 1 channel
    S2           12         0   trainable subsampling (coefficient + bias per map) | max-pool
    C3        1,516     2,416   partial S2->C3 connection table (60 of 96 pairs) | full conv
    S4           32         0
    C5       48,120    48,120   120 units, 5x5 conv over 16 maps = linear 400 -> 120
    F6       10,164    10,164   84 units
    output        0       850   fixed RBF prototypes (not trained) | linear 84 -> 10
    total    60,000    61,706

The faithful model uses the scaled tanh ``1.7159 tanh(2x/3)`` and outputs the NEGATIVE squared
Euclidean distances to ten fixed +-1 prototypes (so ``F.cross_entropy`` can train it). The paper's
prototypes were stylised 7x12 bitmaps of the characters; here they are random +-1 codes drawn
from a fixed seed (buffer ``output.prototypes``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LENET_C3_TABLE", "ScaledTanh", "Subsampling", "PartialConv2d", "RBFOutput", "lenet5"]


def _c3_table() -> list[list[int]]:
    """Which S2 maps feed each C3 map (Table I of LeCun et al., 1998)."""
    table = [[(j + i) % 6 for i in range(3)] for j in range(6)]  # maps 0-5: 3 neighbours
    table += [[(j + i) % 6 for i in range(4)] for j in range(6)]  # maps 6-11: 4 neighbours
    table += [[0, 1, 3, 4], [1, 2, 4, 5], [0, 2, 3, 5]]  # maps 12-14: 4, not contiguous
    table += [list(range(6))]  # map 15: all six
    return table


#: ``LENET_C3_TABLE[j]`` lists the S2 feature maps that C3 feature map ``j`` reads (60 pairs).
LENET_C3_TABLE: list[list[int]] = _c3_table()


class ScaledTanh(nn.Module):
    """LeCun's squashing function ``A tanh(S x)`` with ``A = 1.7159``, ``S = 2/3`` (f(1) = 1)."""

    def forward(self, x: Tensor) -> Tensor:
        return 1.7159 * torch.tanh(2.0 / 3.0 * x)


class Subsampling(nn.Module):
    """Trainable subsampling: the sum of each non-overlapping 2x2 window, times a trainable
    coefficient, plus a trainable bias, per feature map (2 parameters per map)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        window_sum = 4.0 * F.avg_pool2d(x, 2)
        return window_sum * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """A convolution in which output map ``j`` reads only the input maps ``table[j]``.

    Only the connected kernels are parameters (``weight`` has one ``k x k`` kernel per
    connection); they are scattered into a full ``(C_out, C_in, k, k)`` weight at each call.
    """

    def __init__(self, table: list[list[int]], in_channels: int, kernel_size: int) -> None:
        super().__init__()
        rows = [j for j, inputs in enumerate(table) for _ in inputs]
        cols = [i for inputs in table for i in inputs]
        self.in_channels, self.out_channels, self.kernel_size = in_channels, len(table), kernel_size
        self.register_buffer("rows", torch.tensor(rows), persistent=False)
        self.register_buffer("cols", torch.tensor(cols), persistent=False)
        fan_in = (
            torch.tensor([len(t) for t in table], dtype=torch.float32)[self.rows] * kernel_size**2
        )
        bound = (1.0 / fan_in).sqrt().view(-1, 1, 1)
        self.weight = nn.Parameter(
            (torch.rand(len(rows), kernel_size, kernel_size) * 2 - 1) * bound
        )
        self.bias = nn.Parameter(torch.zeros(len(table)))

    def full_weight(self) -> Tensor:
        k = self.kernel_size
        full = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return full.index_put((self.rows, self.cols), self.weight)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)

    def mult_adds(self, out: Tensor) -> int:
        """Per example: one ``k x k`` dot product per connection and output position."""
        return self.rows.numel() * self.kernel_size**2 * out.shape[-2] * out.shape[-1]


class RBFOutput(nn.Module):
    """Euclidean RBF output units with FIXED prototypes: ``logit_k = -||x - w_k||^2``."""

    def __init__(self, in_features: int, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        codes = torch.randint(0, 2, (num_classes, in_features), generator=g).float() * 2 - 1
        self.register_buffer("prototypes", codes)

    def forward(self, x: Tensor) -> Tensor:
        return -(x.unsqueeze(1) - self.prototypes.to(x.dtype)).pow(2).sum(-1)


def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    faithful: bool = False,
    input_size: int = 28,
) -> nn.Sequential:
    """LeNet-5 for ``(N, in_channels, input_size, input_size)`` images.

    ``input_size`` is 32 (the paper's padded digits) or 28 (MNIST; C1 then pads by 2 so that
    the feature maps keep the paper's sizes 28 -> 14 -> 10 -> 5 -> 1).

    Modern form (``faithful=False``): ReLU, 2x2 max-pooling, a full C3 and a linear output
    layer. Faithful form: scaled tanh, trainable subsampling, the partial C3 connection
    table and fixed RBF outputs. See the module docstring for the per-layer counts.
    """
    if input_size not in (28, 32):
        raise ValueError(f"lenet5 supports input_size 28 or 32, got {input_size}")
    pad = (32 - input_size) // 2
    if faithful:
        if in_channels != 1:
            raise ValueError(
                "the faithful LeNet-5 (and its parameter table) is defined for 1 input channel"
            )
        if num_classes != 10:
            raise ValueError(
                "the faithful LeNet-5 has 10 RBF output units; use faithful=False for other heads"
            )
        layers = OrderedDict(
            c1=nn.Conv2d(1, 6, 5, padding=pad),
            act1=ScaledTanh(),
            s2=Subsampling(6),
            act2=ScaledTanh(),
            c3=PartialConv2d(LENET_C3_TABLE, 6, 5),
            act3=ScaledTanh(),
            s4=Subsampling(16),
            act4=ScaledTanh(),
            c5=nn.Conv2d(16, 120, 5),
            act5=ScaledTanh(),
            flatten=nn.Flatten(),
            f6=nn.Linear(120, 84),
            act6=ScaledTanh(),
            output=RBFOutput(84, num_classes),
        )
    else:
        layers = OrderedDict(
            c1=nn.Conv2d(in_channels, 6, 5, padding=pad),
            act1=nn.ReLU(),
            s2=nn.MaxPool2d(2),
            c3=nn.Conv2d(6, 16, 5),
            act3=nn.ReLU(),
            s4=nn.MaxPool2d(2),
            flatten=nn.Flatten(),
            c5=nn.Linear(16 * 5 * 5, 120),
            act5=nn.ReLU(),
            f6=nn.Linear(120, 84),
            act6=nn.ReLU(),
            output=nn.Linear(84, num_classes),
        )
    return nn.Sequential(layers)
