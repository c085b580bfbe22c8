"""GoogLeNet (Szegedy et al., 2014) built from the paper's table, row by row.

Each ``inception`` row of the table gives the six widths of an
:class:`~course_lib.models.blocks.Inception` module, in column order
``#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj``. The auxiliary classifiers and the
local response normalisations of the paper are left out; ``batch_norm=True`` adds BatchNorm
after every convolution (the modern way to train it without auxiliary heads).
"""

from __future__ import annotations

from torch import Tensor, nn

from course_lib.models.blocks import Inception

__all__ = ["GOOGLENET_TABLE", "GoogLeNet", "googlenet"]

#: name -> (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), or "M" for a 3x3/2 max-pool.
GOOGLENET_TABLE: list[tuple[str, tuple[int, ...] | str]] = [
    ("3a", (64, 96, 128, 16, 32, 32)),
    ("3b", (128, 128, 192, 32, 96, 64)),
    ("pool3", "M"),
    ("4a", (192, 96, 208, 16, 48, 64)),
    ("4b", (160, 112, 224, 24, 64, 64)),
    ("4c", (128, 128, 256, 24, 64, 64)),
    ("4d", (112, 144, 288, 32, 64, 64)),
    ("4e", (256, 160, 320, 32, 128, 128)),
    ("pool4", "M"),
    ("5a", (256, 160, 320, 32, 128, 128)),
    ("5b", (384, 192, 384, 48, 128, 128)),
]


class GoogLeNet(nn.Module):
    """Stem (7x7/2 conv, pool, 1x1 conv, 3x3 conv, pool) -> nine inception modules -> global
    average pool -> dropout (40%) -> linear. ``(N, C, 224, 224) -> (N, num_classes)``; any input
    down to 28x28 works (padded 3x3/2 pools, global average pool)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=not batch_norm)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            return layers + [nn.ReLU(inplace=True)]

        self.stem = nn.Sequential(
            *conv(in_channels, 64, 7, 2),
            nn.MaxPool2d(3, 2, padding=1),
            *conv(64, 64, 1),
            *conv(64, 192, 3),
            nn.MaxPool2d(3, 2, padding=1),
        )
        blocks = nn.Sequential()
        channels = 192
        for name, spec in GOOGLENET_TABLE:
            if spec == "M":
                blocks.add_module(name, nn.MaxPool2d(3, 2, padding=1))
            else:
                module = Inception(channels, *spec, batch_norm=batch_norm)
                blocks.add_module(name, module)
                channels = module.out_channels
        self.inception = blocks
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(channels, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"GoogLeNet expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        return self.head(self.inception(self.stem(x)))


def googlenet(num_classes: int = 1000, in_channels: int = 3, batch_norm: bool = False) -> GoogLeNet:
    """GoogLeNet without auxiliary heads: about 7.0M parameters (the paper quotes 6.8M)."""
    return GoogLeNet(num_classes, in_channels, batch_norm)
