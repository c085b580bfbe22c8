"""VGG networks (Simonyan & Zisserman, 2015), configurations A-E from the paper's table.

A configuration lists the conv layers in order: an int ``c`` is ``conv3-c`` (3x3, padding 1,
ReLU), ``("1x1", c)`` is ``conv1-c`` (only in C), ``"M"`` a 2x2 max-pool and ``"LRN"`` a local
response normalisation (A-LRN). Parameter counts of the ImageNet models (millions)::

    A, A-LRN: 132.9   B: 133.0   C: 133.6   D: 138.4   E: 143.7     (paper: 133 133 134 138 144)

A, B, D and E equal ``torchvision.models.vgg11/13/16/19`` (and their ``_bn`` twins with
``batch_norm=True``). Almost all of it sits in the first fully connected layer
(``512 * 7 * 7 * 4096 = 102.8M``); the 13 convolutions of D hold only 14.7M.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["VGG_CONFIGS", "VGG", "vgg", "vgg_features"]

_C3 = ("1x1", 256)
_C5 = ("1x1", 512)

#: The columns of the paper's Table 1.
VGG_CONFIGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, _C3, "M", 512, 512, _C5, "M", 512, 512, _C5, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}  # fmt: skip


def vgg_features(cfg: str | list, in_channels: int = 3, batch_norm: bool = False) -> nn.Sequential:
    """The convolutional part of a VGG configuration (a name from :data:`VGG_CONFIGS` or a list)."""
    spec = VGG_CONFIGS[cfg] if isinstance(cfg, str) else cfg
    layers: list[nn.Module] = []
    channels = in_channels
    for item in spec:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "LRN":
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            kernel, width = (1, item[1]) if isinstance(item, tuple) else (3, item)
            layers.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU(inplace=True))
            channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (conv stack) -> ``pool`` -> ``classifier``.

    ImageNet head: adaptive average pool to 7x7 (a no-op on 224x224 inputs), then
    ``FC-4096, ReLU, Dropout, FC-4096, ReLU, Dropout, FC-num_classes``.
    Small-input head (``small_input=True``, for 32x32 or 28x28): the last max-pool becomes a
    global average pool and a single ``FC-num_classes`` follows (512 features).
    """

    def __init__(
        self,
        cfg: str | list = "D",
        num_classes: int = 1000,
        small_input: bool = False,
        batch_norm: bool = False,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if isinstance(cfg, str) and cfg not in VGG_CONFIGS:
            raise ValueError(
                f"unknown VGG configuration {cfg!r}; choose one of {sorted(VGG_CONFIGS)}"
            )
        self.features = vgg_features(cfg, in_channels, batch_norm)
        width = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        if small_input:
            # 28x28 inputs reach 1x1 before the fifth pool: replace it by a global average pool
            if isinstance(self.features[-1], nn.MaxPool2d):
                self.features = self.features[:-1]
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, num_classes)
            )
        else:
            self.pool = nn.AdaptiveAvgPool2d(7)
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(width * 7 * 7, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(4096, 4096),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(4096, num_classes),
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"VGG expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        return self.classifier(self.pool(self.features(x)))


def vgg(
    cfg: str = "D",
    num_classes: int = 1000,
    small_input: bool = False,
    batch_norm: bool = False,
    in_channels: int = 3,
    dropout: float = 0.5,
) -> VGG:
    """VGG-``cfg``: A (11 weight layers), A-LRN, B (13), C (16, with 1x1 convs), D (16), E (19).

    ``small_input=True`` for CIFAR/MNIST-sized images (see :class:`VGG`). Tip: build the
    140M-parameter ImageNet models on the meta device to count parameters without memory::

        with torch.device("meta"):
            n = count_parameters(vgg("E"))
    """
    return VGG(cfg, num_classes, small_input, batch_norm, in_channels, dropout)
