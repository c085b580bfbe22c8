"""DenseNets (Huang et al., 2017): every layer of a block sees all earlier feature maps.

Inside a dense block, layer ``l`` computes ``k`` new channels (the *growth rate*) from the
concatenation of the block input and all earlier layers' outputs,
``x_l = H_l([x_0, x_1, ..., x_{l-1}])``; a transition (BN-ReLU-1x1 conv, 2x2 average pool)
between blocks compresses the channels by ``compression`` (theta) and halves the resolution.
The blocks are :class:`~course_lib.models.blocks.DenseLayer`,
:class:`~course_lib.models.blocks.DenseBlock` and :class:`~course_lib.models.blocks.Transition`.

Parameter counts::

    densenet121()                        7,978,856   (= torchvision.models.densenet121)
    densenet_cifar(40, 12, bc=False)     1.0M        DenseNet (L=40, k=12), paper: 1.0M
    densenet_cifar(100, 12)              0.8M        DenseNet-BC (L=100, k=12), paper: 0.8M
    densenet_cifar(250, 24)              15.3M       DenseNet-BC (L=250, k=24), paper: 15.3M

``densenet121()`` registers its tensors in torchvision's order, so the values of a
torchvision ``state_dict`` load position by position and give identical outputs.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from course_lib.models.blocks import DenseBlock, Transition

__all__ = ["DenseNet", "densenet121", "densenet_cifar"]


class DenseNet(nn.Module):
    """Stem -> (dense block, transition) x (B - 1) -> dense block -> BN-ReLU -> pool -> linear.

    ``block_config[i]`` dense layers in block ``i``, each adding ``growth_rate`` channels
    (``bottleneck=True``: DenseNet-B layers with a 1x1 conv to ``4 * growth_rate`` first).
    A transition maps ``c`` channels to ``floor(compression * c)`` (DenseNet-C for
    ``compression < 1``). ``stem="cifar"`` is one 3x3 conv to ``stem_width`` channels;
    ``stem="imagenet"`` a 7x7/2 conv, BN, ReLU and a 3x3/2 max-pool.
    ``(N, in_channels, H, W) -> (N, num_classes)``.
    """

    def __init__(
        self,
        growth_rate: int,
        block_config: tuple[int, ...],
        stem_width: int,
        stem: Literal["cifar", "imagenet"] = "cifar",
        bottleneck: bool = True,
        compression: float = 0.5,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 < compression <= 1:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        if stem == "cifar":
            layers: list[nn.Module] = [nn.Conv2d(in_channels, stem_width, 3, padding=1, bias=False)]
        elif stem == "imagenet":
            layers = [
                nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        else:
            raise ValueError(f'stem must be "cifar" or "imagenet", got {stem!r}')
        channels = stem_width
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(channels, growth_rate, num_layers, bottleneck, dropout)
            layers.append(block)
            channels = block.out_channels
            if i < len(block_config) - 1:
                out = int(compression * channels)
                layers.append(Transition(channels, out))
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.out_features = channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"DenseNet expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def densenet121(num_classes: int = 1000, in_channels: int = 3) -> DenseNet:
    """DenseNet-121 for 224x224 inputs: growth rate 32, blocks of 6, 12, 24, 16 bottleneck
    layers, a 64-channel stem, compression 0.5. 7,978,856 parameters, as torchvision's."""
    return DenseNet(32, (6, 12, 24, 16), 64, "imagenet", True, 0.5, num_classes, in_channels)


def densenet_cifar(
    depth: int = 100,
    growth_rate: int = 12,
    bc: bool = True,
    num_classes: int = 10,
    in_channels: int = 3,
) -> DenseNet:
    """CIFAR DenseNet of the paper: three dense blocks on 32x32, 16x16 and 8x8 maps.

    ``bc=True`` (DenseNet-BC: bottleneck layers and compression 0.5): ``(depth - 4) / 6``
    layers per block and a ``2 * growth_rate``-channel stem; ``bc=False`` (the basic
    DenseNet): ``(depth - 4) / 3`` layers per block, a 16-channel stem, no compression.
    ``depth`` counts the convolutions and the classifier, as in the paper (L = 40, 100, ...).
    """
    per_layer = 6 if bc else 3  # a BC layer holds two convolutions
    if depth <= 4 or (depth - 4) % per_layer != 0:
        raise ValueError(
            f"densenet_cifar depth must be {per_layer}n + 4 "
            f"({'DenseNet-BC' if bc else 'DenseNet'}), got {depth}"
        )
    n = (depth - 4) // per_layer
    return DenseNet(
        growth_rate,
        (n, n, n),
        stem_width=2 * growth_rate if bc else 16,
        stem="cifar",
        bottleneck=bc,
        compression=0.5 if bc else 1.0,
        num_classes=num_classes,
        in_channels=in_channels,
    )
