"""Building blocks of the architectures in the course, one small class per idea.

- :class:`HighwayBlock`            gated skip: ``y = T * H(x) + (1 - T) * x`` (Srivastava et al., 2015)
- :class:`NaiveInception`          parallel 1x1, 3x3, 5x5 convs and a pool, concatenated
- :class:`Inception`               the same with 1x1 "reduce" convs (GoogLeNet, Szegedy et al., 2014)
- :class:`DepthwiseSeparableConv`  depthwise kxk conv + pointwise 1x1 conv (MobileNet)
- :class:`DenseLayer`, :class:`DenseBlock`, :class:`Transition`   DenseNet (Huang et al., 2017)
- :class:`ResidualBlock`           ``y = relu(x + F(x))`` in 1-D (signals) or 2-D (images)

Stochastic depth (``DropPath``) is a regulariser: :class:`course_lib.regularisers.DropPath`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "HighwayBlock",
    "NaiveInception",
    "Inception",
    "DepthwiseSeparableConv",
    "DenseLayer",
    "DenseBlock",
    "Transition",
    "ResidualBlock",
]


class HighwayBlock(nn.Module):
    """Highway layer on feature vectors ``(N, features)``.

    ``H(x) = act(W_H x + b_H)`` is the transformation, ``T(x) = sigmoid(W_T x + b_T)`` the
    transform gate and ``C(x) = 1 - T(x)`` the carry gate::

        y = T(x) * H(x) + (1 - T(x)) * x

    ``gate_bias`` initialises ``b_T`` negative so that the block starts close to the identity
    (carry), which is what lets very deep highway stacks train. With ``T = 1`` the block is a
    plain layer; a ResNet block replaces the gates by ``y = H(x) + x``.
    """

    def __init__(
        self, features: int, activation: type[nn.Module] = nn.ReLU, gate_bias: float = -1.0
    ) -> None:
        super().__init__()
        self.transform = nn.Linear(features, features)
        self.gate = nn.Linear(features, features)
        self.activation = activation()
        nn.init.constant_(self.gate.bias, gate_bias)

    def transform_gate(self, x: Tensor) -> Tensor:
        """``T(x)`` in (0, 1), same shape as ``x``."""
        return torch.sigmoid(self.gate(x))

    def forward(self, x: Tensor) -> Tensor:
        h = self.activation(self.transform(x))
        t = self.transform_gate(x)
        return t * h + (1.0 - t) * x


def _conv_relu(
    in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm
        )
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class NaiveInception(nn.Module):
    """Inception module, naive version: 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool in
    parallel on the same input, concatenated along channels.

    ``(N, C_in, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + C_in, H, W)``. The pool branch keeps all
    ``C_in`` channels, so the width grows at every module and the 5x5 convs on wide inputs
    are expensive: the reason for the 1x1 reductions of :class:`Inception`.
    """

    def __init__(
        self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, batch_norm: bool = False
    ) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, ch1x1, 1, batch_norm)
        self.branch3 = _conv_relu(in_channels, ch3x3, 3, batch_norm)
        self.branch5 = _conv_relu(in_channels, ch5x5, 5, batch_norm)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_channels

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.pool(x)], dim=1)


class Inception(nn.Module):
    """Inception module with dimension reductions (GoogLeNet's table columns, in order).

    Four branches on the same input, concatenated along channels:
    ``1x1`` | ``1x1 (ch3x3red) -> 3x3`` | ``1x1 (ch5x5red) -> 5x5`` | ``3x3 max-pool -> 1x1 (pool_proj)``.
    ``(N, C_in, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)``.
    The cheap 1x1 convs shrink the channels before the expensive 3x3/5x5 convs.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.branch1 = _conv_relu(in_channels, ch1x1, 1, batch_norm)
        self.branch3 = nn.Sequential(
            _conv_relu(in_channels, ch3x3red, 1, batch_norm),
            _conv_relu(ch3x3red, ch3x3, 3, batch_norm),
        )
        self.branch5 = nn.Sequential(
            _conv_relu(in_channels, ch5x5red, 1, batch_norm),
            _conv_relu(ch5x5red, ch5x5, 5, batch_norm),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1), _conv_relu(in_channels, pool_proj, 1, batch_norm)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


class DepthwiseSeparableConv(nn.Module):
    """A ``k x k`` convolution factorised into a depthwise and a pointwise step.

    1. depthwise: one ``k x k`` filter per input channel (``groups = C_in``), no channel mixing;
    2. pointwise: a ``1 x 1`` convolution that mixes channels.

    Parameters ``C_in * k^2 + C_in * C_out`` (+ biases) instead of ``C_in * C_out * k^2``;
    multiply-adds shrink by the same factor ``1 / C_out + 1 / k^2``.
    ``(N, C_in, H, W) -> (N, C_out, H_out, W_out)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if padding is None:
            padding = dilation * (kernel_size - 1) // 2
        self.depthwise = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups=in_channels,
            bias=bias,
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class DenseLayer(nn.Module):
    """One DenseNet layer: ``BN-ReLU-Conv3x3`` producing ``growth_rate`` new channels.

    With ``bottleneck=True`` (DenseNet-B) a ``BN-ReLU-Conv1x1`` to ``4 * growth_rate`` channels
    comes first. Returns only the NEW channels ``(N, growth_rate, H, W)``;
    :class:`DenseBlock` concatenates them to its running input.
    """

    def __init__(
        self, in_channels: int, growth_rate: int, bottleneck: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        if bottleneck:
            layers += [
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(channels, 4 * growth_rate, 1, bias=False),
            ]
            channels = 4 * growth_rate
        layers += [
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, growth_rate, 3, padding=1, bias=False),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; layer ``l`` sees the concatenation of the block input and
    all earlier layers' outputs: ``x_l = H_l([x_0, x_1, ..., x_{l-1}])``.

    ``(N, C_in, H, W) -> (N, C_in + num_layers * growth_rate, H, W)``; the first ``C_in``
    output channels ARE the input (features are reused, never overwritten).
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        num_layers: int,
        bottleneck: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck, dropout)
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        features = x
        for layer in self.layers:
            features = torch.cat([features, layer(features)], dim=1)
        return features


class Transition(nn.Module):
    """DenseNet transition between blocks: ``BN-ReLU-Conv1x1`` (compress channels) + 2x2 avg-pool."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """Basic residual block for 1-D signals (``dim=1``, input ``(N, C, L)``) or images
    (``dim=2``, input ``(N, C, H, W)``)::

        F(x) = BN(conv(ReLU(BN(conv(x)))))        y = ReLU(F(x) + shortcut(x))

    ``shortcut`` is the identity when shapes agree and a strided ``1x1`` conv + BN otherwise.
    ``residual=False`` removes the shortcut (the "plain" twin, ``y = ReLU(F(x))``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        kernel_size: int = 3,
        stride: int = 1,
        dim: int = 2,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(
                f"dim must be 1 (signals N x C x L) or 2 (images N x C x H x W), got {dim}"
            )
        conv = nn.Conv1d if dim == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d
        out_channels = out_channels or in_channels
        pad = kernel_size // 2
        self.dim = dim
        self.residual = residual
        self.conv1 = conv(in_channels, out_channels, kernel_size, stride, pad, bias=False)
        self.bn1 = norm(out_channels)
        self.conv2 = conv(out_channels, out_channels, kernel_size, 1, pad, bias=False)
        self.bn2 = norm(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if residual and (stride != 1 or in_channels != out_channels):
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, 1, stride, bias=False), norm(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        expected = self.dim + 2
        if x.dim() != expected:
            layout = "(N, C, L)" if self.dim == 1 else "(N, C, H, W)"
            raise ValueError(
                f"ResidualBlock(dim={self.dim}) expects input of shape {layout}, got {tuple(x.shape)}"
            )
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            out = out + self.shortcut(x)
        return self.relu(out)
