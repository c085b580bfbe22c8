"""ResNeXt (Xie et al., 2017): residual bottlenecks whose 3x3 convolution is split into groups.

A ResNeXt block aggregates ``C`` parallel paths (the *cardinality*), each a small bottleneck
``1x1 (to d channels) -> 3x3 -> 1x1``, and adds their sum to the shortcut::

    y = ReLU(x + sum_{i=1..C} T_i(x))

The ``C`` paths are computed at once as one grouped convolution ("form (c)" of the paper):
``1x1 (C_in -> C*d)``, a 3x3 convolution with ``groups=C`` (each group sees only its own ``d``
channels), ``1x1 (C*d -> C_out)``. A grouped 3x3 convolution has ``C`` times fewer weights than
a dense one of the same width, so at the same parameter budget a block with more paths can be
wider: the paper's template (a 256-channel block, about 70k parameters) is

    C x d :  1 x 64 (the ResNet bottleneck),  2 x 40,  4 x 24,  8 x 14,  32 x 4.

``cardinality=1, base_width=64`` is exactly the ResNet bottleneck. :func:`resnext50_32x4d`
has the parameter count of ``torchvision.models.resnext50_32x4d`` (25,028,904) and the same
tensors in the same order (its ``state_dict`` values load in order and give identical
outputs); :func:`resnext_cifar` is the paper's CIFAR family (ResNeXt-29, 8x64d: 34.4M) and,
with a small ``width``, the network trained at CPU scale in chapter 4.
"""

from __future__ import annotations

from torch import Tensor, nn

from course_lib.models.resnet import ResNet, conv1x1, make_shortcut
from course_lib.regularisers import DropPath

__all__ = ["ResNeXtBlock", "resnext50_32x4d", "resnext_cifar"]


class ResNeXtBlock(nn.Module):
    """ResNeXt bottleneck: ``1x1 -> grouped 3x3 (groups = cardinality) -> 1x1 (x4)``, + shortcut.

    ``(N, C_in, H, W) -> (N, 4 * channels, H / stride, W / stride)``. The inner width is
    ``cardinality * d`` with ``d = channels * base_width // base_channels`` channels per group:
    ``d = base_width`` in a stage whose ``channels`` equal ``base_channels`` (64, the first
    ImageNet stage) and doubling with the width of later stages, as in torchvision.
    Post-activation (BN after every conv, ReLU after the addition); the stride sits on the
    3x3 convolution. ``residual=False`` gives the plain twin.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        cardinality: int = 32,
        base_width: int = 4,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        group_width = channels * base_width // base_channels
        if group_width < 1:
            raise ValueError(
                f"ResNeXtBlock: {channels} channels with base_width={base_width} and "
                f"base_channels={base_channels} leave less than one channel per group"
            )
        width = cardinality * group_width
        out_channels = channels * self.expansion
        self.cardinality, self.group_width = cardinality, group_width
        self.conv1 = conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        self.shortcut = (
            make_shortcut(in_channels, out_channels, stride, shortcut) if residual else None
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))  # C independent 3x3 convs, one per group
        out = self.bn3(self.conv3(self.dropout(out)))
        if self.residual:
            out = self.drop_path(out) + self.shortcut(x)
        return self.relu(out)


def resnext50_32x4d(
    num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0
) -> ResNet:
    """ResNeXt-50 (32x4d) for 224x224 inputs: ResNet-50's layout (3, 4, 6, 3 blocks) with
    32 groups of 4 channels in the first stage (inner widths 128, 256, 512, 1024).

    25,028,904 parameters, as ``torchvision.models.resnext50_32x4d`` (ResNet-50: 25,557,032).
    """
    return ResNet(ResNeXtBlock, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels,
                  stem="imagenet", shortcut="B", drop_path=drop_path,
                  block_kwargs=dict(cardinality=32, base_width=4))  # fmt: skip


def resnext_cifar(
    depth: int = 29,
    cardinality: int = 8,
    base_width: int = 64,
    width: int = 64,
    num_classes: int = 10,
    in_channels: int = 3,
    plain: bool = False,
) -> ResNet:
    """CIFAR ResNeXt-``depth`` (``C x d``): 3 stages of ``(depth - 2) / 9`` ResNeXt blocks.

    A 3x3 stem conv to ``width`` channels; stage ``i`` has ``channels = width * 2**i``
    (outputs ``4 * channels``), ``d = base_width`` channels per group in the first stage and
    twice as many in each later one; projection shortcuts (option B). ``width=64`` is the
    paper's network: ResNeXt-29, 8x64d has 34.4M parameters (paper: 34.4M). A small
    ``width`` scales everything down: ``base_width`` then still counts the channels per group
    of the first stage (``resnext_cifar(29, 4, 3, width=8)``: 4 groups of 3 channels).
    ``cardinality=1, base_width=width`` is the bottleneck ResNet of the same depth
    (``resnet_cifar(depth, bottleneck=True, shortcut="B", width=width)`` with a
    ``width``-channel stem).
    """
    if depth < 11 or (depth - 2) % 9 != 0:
        raise ValueError(f"resnext_cifar depth must be 9n + 2 (e.g. 29, 38, 47), got {depth}")
    n = (depth - 2) // 9
    return ResNet(
        ResNeXtBlock,
        [n, n, n],
        [width, 2 * width, 4 * width],
        num_classes=num_classes,
        in_channels=in_channels,
        stem="cifar",
        shortcut="B",
        plain=plain,
        block_kwargs=dict(cardinality=cardinality, base_width=base_width, base_channels=width),
    )
