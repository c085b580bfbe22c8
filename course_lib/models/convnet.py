"""Small convolutional networks: the review lecture's BatchNorm ConvNet and AlexNet.

:func:`small_convnet` - seven 3x3 convs of width 15, four of them with stride 2, BatchNorm
after three of them, then two linear layers: 17,020 parameters on CIFAR-10 (vs 1,645,950 for
the MLP baseline); chapter 2 trains both on digits brought to 3x32x32.

:func:`alexnet` - Krizhevsky et al. (2012): 5 convs + 3 FC layers, ~60M parameters.

:func:`norm_convnet` - three ``conv3x3 -> norm -> ReLU -> maxpool`` blocks with a pluggable
normalisation layer (chapter 9 compares none, BatchNorm, GroupNorm, ... in one network).

:func:`factorised_convnet` - the network of the CIFAR-100 regularisation ablation in the
lecture *CNN architectures and training* (chapter 8): ConvBlocks of 1x3 and 3x1 convolutions.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from course_lib.models.init import kaiming_init_

__all__ = ["SmallConvNet", "small_convnet", "alexnet", "norm_convnet", "factorised_convnet"]


class SmallConvNet(nn.Module):
    """``conv-ReLU, conv/2-BN-ReLU`` repeated (see :func:`small_convnet`), then an adaptive
    average pool to 2x2 (a no-op for 32x32 and 28x28 inputs, which both arrive at 2x2),
    ``Linear(4 * width, 4 * width)`` and ``Linear(4 * width, num_classes)``.
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 10, width: int = 15, batch_norm: bool = True
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        # (stride, BatchNorm?) of the seven convolutions
        plan = [(1, False), (2, True), (1, False), (2, True), (1, False), (2, True), (2, False)]
        layers += [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU(inplace=True)]
        channels = width
        for stride, bn in plan[1:]:
            layers.append(nn.Conv2d(channels, width, 3, stride, 1))
            if bn and batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(4 * width, 4 * width), nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(
                f"SmallConvNet expects input of shape (N, C, H, W), got {tuple(x.shape)}"
            )
        return self.classifier(self.pool(self.features(x)))


def small_convnet(
    in_channels: int = 3, num_classes: int = 10, width: int = 15, batch_norm: bool = True
) -> SmallConvNet:
    """The review lecture's "DeeperBNConvNet": 17,020 parameters for 3x32x32 CIFAR-10 inputs.

    Layers (width 15): conv, conv/2-BN, conv, conv/2-BN, conv, conv/2-BN, conv/2, all 3x3 with
    ReLU; 32 -> 16 -> 8 -> 4 -> 2 pixels; ``Linear(60, 60)``, ``Linear(60, 10)``.
    ``batch_norm=False`` removes the three BatchNorm layers (the ablation).
    """
    return SmallConvNet(in_channels, num_classes, width, batch_norm)


def alexnet(
    num_classes: int = 1000, in_channels: int = 3, groups: int = 1, dropout: float = 0.5
) -> nn.Sequential:
    """AlexNet for 224x224 inputs (Krizhevsky et al., 2012): conv 96x11/4, 256x5, 384x3, 384x3,
    256x3 with 3x3/2 max-pools, then FC-4096, FC-4096, FC-num_classes with dropout.

    ``groups=2`` splits conv2, conv4 and conv5 into two halves as on the paper's two GPUs
    (60.97M parameters, the paper's "60 million"); ``groups=1`` (one device): 62.38M.
    Local response normalisation follows conv1 and conv2 as in the paper.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=groups),
        nn.ReLU(inplace=True),
        nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1, groups=groups),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),
        nn.AdaptiveAvgPool2d(6),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


def norm_convnet(
    norm: Callable[[int], nn.Module] | None = None,
    width: int = 16,
    in_channels: int = 1,
    num_classes: int = 10,
) -> nn.Sequential:
    """Three ``conv3x3 -> norm -> ReLU -> maxpool2`` blocks, global average pool, linear.

    Channels ``in_channels -> width -> 2 width -> 2 width``; ``norm(channels)`` builds the
    normalisation layer of each block (``nn.BatchNorm2d``, ``lambda c: nn.GroupNorm(4, c)``,
    ...); ``None`` means no normalisation, and then the convolutions keep their bias (a
    bias before a normalisation layer is removed by its mean subtraction, so it is dropped).
    Input ``(N, in_channels, H, W)`` with ``H, W >= 8``; output ``(N, num_classes)``.
    """

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm is None),
            norm(c_out) if norm is not None else nn.Identity(),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *block(in_channels, width),
        *block(width, 2 * width),
        *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


def _conv_norm_relu(
    c_in: int, c_out: int, kernel: tuple[int, int], stride: int, batch_norm: bool
) -> list[nn.Module]:
    pad = (kernel[0] // 2, kernel[1] // 2)
    conv = nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=not batch_norm)
    return [conv, *([nn.BatchNorm2d(c_out)] if batch_norm else []), nn.ReLU()]


def factorised_convnet(
    in_channels: int = 3,
    num_classes: int = 100,
    widths: tuple[int, int] = (32, 128),
    batch_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """The lecture's CIFAR-100 ablation network, one 1x3/3x1 pair per ConvBlock, He-initialised.

    =========================  ==========  ====================
    operator                   resolution  channels
    =========================  ==========  ====================
    ConvBlock x 2              H x W       ``w1 = widths[0]``
    Sub (3x3, stride 2)        H/2         w1
    ConvBlock x 2              H/2         ``w2 = widths[1]``
    Sub (3x3, stride 2)        H/4         w2
    avg pool, dropout, linear  1 x 1       ``num_classes``
    =========================  ==========  ====================

    A ConvBlock is ``conv 1x3 -> [BN] -> ReLU -> conv 3x1 -> [BN] -> ReLU`` (the lecture
    repeats the pair twice). Convolutions followed by BatchNorm have no bias. For
    ``widths=(32, 128)``, 3 input channels and 100 classes: 339,620 parameters without BatchNorm.
    """
    w1, w2 = widths

    def conv_block(c_in: int, c_out: int) -> list[nn.Module]:
        return _conv_norm_relu(c_in, c_out, (1, 3), 1, batch_norm) + _conv_norm_relu(
            c_out, c_out, (3, 1), 1, batch_norm
        )

    net = nn.Sequential(
        *conv_block(in_channels, w1),
        *conv_block(w1, w1),
        *_conv_norm_relu(w1, w1, (3, 3), 2, batch_norm),
        *conv_block(w1, w2),
        *conv_block(w2, w2),
        *_conv_norm_relu(w2, w2, (3, 3), 2, batch_norm),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(w2, num_classes),
    )
    return kaiming_init_(net)
