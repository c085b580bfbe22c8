"""Small convolutional networks: the review lecture's BatchNorm ConvNet and AlexNet.

:func:`small_convnet` - seven 3x3 convs of width 15, four of them with stride 2, BatchNorm
after three of them, then two linear layers: 17,020 parameters on CIFAR-10 (vs 1,645,950 for
the MLP baseline), and it generalises better.

:func:`alexnet` - Krizhevsky et al. (2012): 5 convs + 3 FC layers, ~60M parameters.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SmallConvNet", "small_convnet", "alexnet"]


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
