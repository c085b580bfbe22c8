"""Residual networks: CIFAR ResNets (He et al., 2016), their plain twins, pre-activation
ResNets (v2), bottlenecks, Wide ResNets (Zagoruyko & Komodakis, 2016), stochastic depth, and
the ImageNet ResNet-18/34/50 (same parameter counts as ``torchvision.models``).

The whole idea fits in one line of :class:`BasicBlock.forward`::

    out = relu(F(x) + shortcut(x))        # F = conv-BN-ReLU-conv-BN

so ``d out / d x = d F / d x + 1`` (before the ReLU): the "+1" carries the gradient through
any depth. ``plain=True`` builds the same layers without the ``+ shortcut(x)``.

Shortcut options when a block changes the shape (stride 2 and/or more channels):

- ``"A"``: parameter-free; subsample by 2 and pad the new channels with zeros (CIFAR paper).
- ``"B"``: a 1x1 convolution (+ BN) projection (ImageNet models, torchvision).

Identity shortcuts are used everywhere else in both options.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.models.blocks import ResidualBlock
from course_lib.regularisers import DropPath

__all__ = [
    "PadShortcut",
    "BasicBlock",
    "Bottleneck",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "resnet_cifar",
    "wide_resnet",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet1d",
]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Option-A shortcut: keep every ``stride``-th pixel and append zero channels.

    ``(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))`` with no parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra))  # pad the channel dimension at the end


def make_shortcut(
    in_channels: int, out_channels: int, stride: int, kind: str, batch_norm: bool = True
) -> nn.Module:
    """Identity if the shape is unchanged, else option ``"A"`` (pad) or ``"B"`` (1x1 projection)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "A":
        return PadShortcut(in_channels, out_channels, stride)
    if kind == "B":
        if batch_norm:
            return nn.Sequential(
                conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels)
            )
        return conv1x1(in_channels, out_channels, stride)
    raise ValueError(f'shortcut must be "A" (zero padding) or "B" (1x1 projection), got {kind!r}')


class BasicBlock(nn.Module):
    """Two 3x3 convs (post-activation, ResNet v1): ``y = ReLU(BN(conv(ReLU(BN(conv(x))))) + s(x))``.

    ``(N, C_in, H, W) -> (N, channels, H / stride, W / stride)``.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        self.shortcut = make_shortcut(in_channels, channels, stride, shortcut) if residual else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(self.dropout(out)))
        if self.residual:
            out = self.drop_path(out) + self.shortcut(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand x4), post-activation; stride on the 3x3 as in torchvision.

    ``(N, C_in, H, W) -> (N, 4 * channels, H / stride, W / stride)``.
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
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = conv1x1(in_channels, channels)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels)
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
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.dropout(out)))
        if self.residual:
            out = self.drop_path(out) + self.shortcut(x)
        return self.relu(out)


class PreActBlock(nn.Module):
    """Pre-activation block (ResNet v2, also Wide ResNet's block)::

        y = x + conv(ReLU(BN(dropout(conv(ReLU(BN(x)))))))

    Nothing follows the addition, so the shortcut path from block to block is a pure identity.
    A projection shortcut (when the shape changes) reads the pre-activated ``ReLU(BN(x))``.
    """

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        shortcut: str = "B",
        residual: bool = True,
        drop_path: float = 0.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv3x3(in_channels, channels, stride)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels)
        self.relu = nn.ReLU(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        self.shortcut = (
            make_shortcut(in_channels, channels, stride, shortcut, batch_norm=False)
            if residual
            else None
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.relu(self.bn2(out))))
        if not self.residual:
            return out
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        return self.drop_path(out) + skip


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck: ``BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4)`` plus identity."""

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
    ) -> None:
        super().__init__()
        out_channels = channels * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = conv1x1(in_channels, channels)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv2 = conv3x3(channels, channels, stride)
        self.bn3 = nn.BatchNorm2d(channels)
        self.conv3 = conv1x1(channels, out_channels)
        self.relu = nn.ReLU(inplace=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.residual = residual
        self.shortcut = (
            make_shortcut(in_channels, out_channels, stride, shortcut, batch_norm=False)
            if residual
            else None
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.dropout(self.relu(self.bn3(out))))
        if not self.residual:
            return out
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        return self.drop_path(out) + skip


class ResNet(nn.Module):
    """Stem -> stages of residual blocks -> global average pool -> linear classifier.

    ``blocks_per_stage[i]`` blocks of width ``widths[i]``; the first block of every stage
    after the first halves the resolution (stride 2). ``stem="cifar"`` is one 3x3 conv
    (32x32 inputs); ``stem="imagenet"`` is a 7x7/2 conv and a 3x3/2 max-pool (224x224 inputs).
    Pre-activation blocks get a final BN-ReLU before pooling. ``drop_path`` is the drop
    probability of the LAST block; earlier blocks use a linear ramp ``drop_path * l / L``.
    ``block_kwargs`` go to every block (e.g. ResNeXt's ``cardinality`` and ``base_width``).
    """

    def __init__(
        self,
        block: type[nn.Module],
        blocks_per_stage: list[int],
        widths: list[int],
        num_classes: int = 10,
        in_channels: int = 3,
        stem: str = "cifar",
        stem_width: int | None = None,
        shortcut: str = "A",
        plain: bool = False,
        drop_path: float = 0.0,
        dropout: float = 0.0,
        block_kwargs: dict | None = None,
    ) -> None:
        super().__init__()
        if plain and drop_path > 0:
            raise ValueError("drop_path needs shortcuts: a plain network would drop its only path")
        preact = block in (PreActBlock, PreActBottleneck)
        stem_width = stem_width or widths[0]
        if stem == "cifar":
            layers: list[nn.Module] = [conv3x3(in_channels, stem_width)]
            if not preact:
                layers += [nn.BatchNorm2d(stem_width), nn.ReLU(inplace=True)]
        elif stem == "imagenet":
            layers = [
                nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        else:
            raise ValueError(f'stem must be "cifar" or "imagenet", got {stem!r}')
        self.stem = nn.Sequential(*layers)

        total = sum(blocks_per_stage)
        index = 0
        channels = stem_width
        stages = []
        for i, (n, width) in enumerate(zip(blocks_per_stage, widths)):
            blocks = []
            for j in range(n):
                index += 1
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    block(
                        channels,
                        width,
                        stride=stride,
                        shortcut=shortcut,
                        residual=not plain,
                        drop_path=drop_path * index / total,
                        dropout=dropout,
                        **(block_kwargs or {}),
                    )
                )
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final = (
            nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            if preact
            else nn.Identity()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.out_features = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: Tensor) -> Tensor:
        """Everything up to the pooled feature vector ``(N, out_features)``."""
        if x.dim() != 4:
            raise ValueError(f"ResNet expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        x = self.final(self.stages(self.stem(x)))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.forward_features(x))


def resnet_cifar(
    depth: int,
    num_classes: int = 10,
    plain: bool = False,
    preact: bool = False,
    shortcut: str = "A",
    bottleneck: bool = False,
    drop_path: float = 0.0,
    in_channels: int = 3,
    width: int = 16,
) -> ResNet:
    """CIFAR ResNet of He et al.: 3 stages of widths 16, 32, 64 on 32x32 inputs.

    Basic blocks: ``depth = 6n + 2`` (20, 32, 44, 56, 110 -> n = 3, 5, 7, 9, 18).
    Bottleneck blocks (``bottleneck=True``, ResNet v2 paper): ``depth = 9n + 2`` (164, 1001).
    ``plain=True`` gives the plain twin (identical layers, no shortcuts),
    ``preact=True`` the pre-activation (v2) blocks. Also works on 1x28x28 (``in_channels=1``).
    ResNet-20 has 0.27M and ResNet-56 0.86M parameters (paper: 0.27M, 0.85M).
    """
    per_block = 9 if bottleneck else 6
    if depth < per_block + 2 or (depth - 2) % per_block != 0:
        valid = [per_block * n + 2 for n in (1, 2, 3, 5, 7, 9, 18)]
        raise ValueError(
            f"resnet_cifar depth must be {per_block}n + 2 for "
            f"{'bottleneck' if bottleneck else 'basic'} blocks (e.g. {valid}), got {depth}"
        )
    n = (depth - 2) // per_block
    if bottleneck:
        block = PreActBottleneck if preact else Bottleneck
    else:
        block = PreActBlock if preact else BasicBlock
    return ResNet(
        block,
        [n, n, n],
        [width, 2 * width, 4 * width],
        num_classes=num_classes,
        in_channels=in_channels,
        stem="cifar",
        shortcut=shortcut,
        plain=plain,
        drop_path=drop_path,
    )


def wide_resnet(
    depth: int,
    widen_factor: int,
    num_classes: int = 10,
    dropout: float = 0.0,
    in_channels: int = 3,
) -> ResNet:
    """Wide ResNet WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis, 2016).

    Pre-activation basic blocks, ``depth = 6n + 4``, stage widths ``16k, 32k, 64k`` after a
    16-channel stem, projection shortcuts, optional dropout between the two convs of a block.
    WRN-40-4: 8.9M, WRN-16-8: 11.0M, WRN-28-10: 36.5M parameters (CIFAR-10).
    """
    if depth < 10 or (depth - 4) % 6 != 0:
        raise ValueError(f"wide_resnet depth must be 6n + 4 (e.g. 16, 22, 28, 40), got {depth}")
    n = (depth - 4) // 6
    k = widen_factor
    return ResNet(
        PreActBlock,
        [n, n, n],
        [16 * k, 32 * k, 64 * k],
        num_classes=num_classes,
        in_channels=in_channels,
        stem="cifar",
        stem_width=16,
        shortcut="B",
        dropout=dropout,
    )


def resnet18(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    """ResNet-18 for 224x224 inputs; same parameter count as ``torchvision.models.resnet18``."""
    return ResNet(BasicBlock, [2, 2, 2, 2], [64, 128, 256, 512], num_classes, in_channels,
                  stem="imagenet", shortcut="B", drop_path=drop_path)  # fmt: skip


def resnet34(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    """ResNet-34 for 224x224 inputs; same parameter count as ``torchvision.models.resnet34``."""
    return ResNet(BasicBlock, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels,
                  stem="imagenet", shortcut="B", drop_path=drop_path)  # fmt: skip


def resnet50(num_classes: int = 1000, in_channels: int = 3, drop_path: float = 0.0) -> ResNet:
    """ResNet-50 (bottlenecks, stride on the 3x3); same parameter count as torchvision's."""
    return ResNet(Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], num_classes, in_channels,
                  stem="imagenet", shortcut="B", drop_path=drop_path)  # fmt: skip


def resnet1d(
    in_channels: int = 1,
    num_classes: int = 10,
    widths: tuple[int, ...] = (32, 64, 128),
    plain: bool = False,
) -> nn.Sequential:
    """A small 1-D ResNet for signals ``(N, C, L)`` such as MNIST-1D (``(N, 1, 40)``).

    Stem conv (k=5) -> one :class:`ResidualBlock` (``dim=1``) per width, stride 2 from the
    second on -> global average pool -> linear. ``plain=True`` removes the shortcuts.
    """
    layers: list[nn.Module] = [
        nn.Conv1d(in_channels, widths[0], 5, padding=2, bias=False),
        nn.BatchNorm1d(widths[0]),
        nn.ReLU(inplace=True),
    ]
    channels = widths[0]
    for i, width in enumerate(widths):
        layers.append(
            ResidualBlock(channels, width, stride=1 if i == 0 else 2, dim=1, residual=not plain)
        )
        channels = width
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(channels, num_classes)]
    return nn.Sequential(*layers)
