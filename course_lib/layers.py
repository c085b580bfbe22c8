"""From-scratch layers for teaching: convolution, pooling, dropout and normalisation.

Every function and module here mirrors the signature of its PyTorch twin
(``torch.nn.functional.conv2d``, ``torch.nn.BatchNorm2d``, ...) and matches it
numerically (forward values and gradients, checked in ``tests/test_layers.py``).
They are written with plain tensor operations so that autograd derives the
backward pass; the point is to read them, not to replace torch's kernels.

Shapes follow PyTorch's channels-first convention (BCHW): a batch of images is
``(N, C, H, W)``, a batch of 1-D signals is ``(N, C, L)``.

Output size of a convolution or pooling window along one axis::

    out = floor((in + 2 * padding - dilation * (kernel - 1) - 1) / stride) + 1
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "conv_output_size",
    "im2col",
    "conv2d",
    "conv2d_loops",
    "conv1d_toeplitz_matrix",
    "max_pool2d",
    "avg_pool2d",
    "dropout",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "InstanceNorm2d",
]

IntPair = int | tuple[int, int]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, Sequence) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (int(value[0]), int(value[1]))
    raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")


def _shape(t: Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """Length of the output of a convolution/pooling window along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------
def im2col(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> Tensor:
    """Cut every receptive window of ``input`` into a column ("image to columns").

    ``input`` is ``(N, C, H, W)``; the result is ``(N, C * kh * kw, L)`` with
    ``L = H_out * W_out`` windows, in the same order as ``torch.nn.functional.unfold``.
    Column ``l`` holds the ``C * kh * kw`` input values that output position ``l``
    sees, so a convolution becomes one matrix product: ``weight.view(C_out, -1) @ cols``.
    """
    if input.dim() != 4:
        raise ValueError(f"im2col expects input of shape (N, C, H, W), got {_shape(input)}")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    n, c, h, w = input.shape
    x = torch.nn.functional.pad(input, (pw, pw, ph, ph))
    # a dilated kernel spans (k - 1) * d + 1 pixels
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    # Tensor.unfold(dim, size, step) slides a window along one axis:
    # (N, C, H_out, W_out, span_h, span_w); keep every d-th pixel of each window
    windows = x.unfold(2, span_h, sh).unfold(3, span_w, sw)[..., ::dh, ::dw]
    h_out, w_out = windows.shape[2], windows.shape[3]
    # -> (N, C, kh, kw, H_out, W_out) -> (N, C*kh*kw, H_out*W_out)
    cols = windows.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h_out * w_out)
    return cols


def _check_conv_args(
    name: str,
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntPair,
    padding: IntPair | str,
    dilation: IntPair,
    groups: int,
) -> tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int], tuple[int, int], int, int]:
    """Validate conv2d arguments; return stride, (top, bottom, left, right) padding, dilation, output size."""
    if weight.dim() != 4:
        raise ValueError(
            f"{name} expects weight of shape (C_out, C_in / groups, kH, kW), got {_shape(weight)}"
        )
    c_out, c_in_g, kh, kw = weight.shape
    if groups < 1 or c_out % groups != 0:
        raise ValueError(f"{name}: C_out={c_out} must be divisible by groups={groups}")
    c_in = c_in_g * groups
    if input.dim() != 4 or input.shape[1] != c_in:
        raise ValueError(
            f"{name} expects input of shape (N, C_in, H, W) with C_in={c_in}, got {_shape(input)}"
        )
    if bias is not None and _shape(bias) != (c_out,):
        raise ValueError(f"{name} expects bias of shape ({c_out},), got {_shape(bias)}")
    s = _pair(stride, "stride")
    d = _pair(dilation, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if s != (1, 1):
                raise ValueError(f"{name}: padding='same' needs stride=1, got stride={stride}")
            # total padding d*(k-1); torch puts the odd pixel at the end (bottom/right)
            th, tw = d[0] * (kh - 1), d[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(
                f"{name}: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
            )
    else:
        ph, pw = _pair(padding, "padding")
        pads = (ph, ph, pw, pw)
    h, w = input.shape[2], input.shape[3]
    h_out = (h + pads[0] + pads[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    w_out = (w + pads[2] + pads[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    if h_out < 1 or w_out < 1:
        raise ValueError(
            f"{name}: input of spatial size ({h}, {w}) is too small for a {kh}x{kw} kernel with "
            f"dilation {d} and padding {padding}; the output would be ({h_out}, {w_out})"
        )
    return s, pads, d, (kh, kw), h_out, w_out


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation as im2col + matrix product (what ``F.conv2d`` computes).

    Shapes: ``input (N, C_in, H, W)``, ``weight (C_out, C_in / groups, kH, kW)``,
    ``bias (C_out,)`` -> ``(N, C_out, H_out, W_out)``.

    ``out[n, o, i, j] = bias[o] + sum_{c, u, v} weight[o, c, u, v] *
    x_pad[n, g(o) * C_in/groups + c, i * stride + u * dilation, j * stride + v * dilation]``

    With ``groups = g`` the channels are split into ``g`` independent convolutions;
    ``groups = C_in`` is a depthwise convolution.
    """
    s, pads, d, k, h_out, w_out = _check_conv_args(
        "conv2d", input, weight, bias, stride, padding, dilation, groups
    )
    x = torch.nn.functional.pad(input, (pads[2], pads[3], pads[0], pads[1]))
    n = input.shape[0]
    c_out = weight.shape[0]
    cols = im2col(x, k, s, 0, d)  # (N, C_in * kh * kw, L)
    # split channels into groups: (N, g, C_in/g * kh * kw, L) and (g, C_out/g, C_in/g * kh * kw)
    cols = cols.reshape(n, groups, -1, h_out * w_out)
    w = weight.reshape(groups, c_out // groups, -1)
    out = torch.einsum("gok,ngkl->ngol", w, cols).reshape(n, c_out, h_out, w_out)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def conv2d_loops(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair | str = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> Tensor:
    """The same convolution written as explicit loops over output positions (slow, for reading).

    For each output pixel ``(i, j)`` and each group, take the (dilated) window of the padded
    input that the kernel covers and contract it with the kernel over channels and kernel
    positions. Use it only on tiny inputs: it runs ``H_out * W_out * groups`` Python iterations.
    """
    s, pads, d, (kh, kw), h_out, w_out = _check_conv_args(
        "conv2d_loops", input, weight, bias, stride, padding, dilation, groups
    )
    x = torch.nn.functional.pad(input, (pads[2], pads[3], pads[0], pads[1]))
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    c_out_g = c_out // groups
    rows = []
    for i in range(h_out):
        row = []
        for j in range(w_out):
            top, left = i * s[0], j * s[1]
            per_group = []
            for g in range(groups):
                window = x[
                    :,
                    g * c_in_g : (g + 1) * c_in_g,
                    top : top + d[0] * (kh - 1) + 1 : d[0],
                    left : left + d[1] * (kw - 1) + 1 : d[1],
                ]  # (N, C_in/g, kh, kw)
                w_g = weight[g * c_out_g : (g + 1) * c_out_g]  # (C_out/g, C_in/g, kh, kw)
                per_group.append((window.unsqueeze(1) * w_g).sum(dim=(2, 3, 4)))  # (N, C_out/g)
            row.append(torch.cat(per_group, dim=1))  # (N, C_out)
        rows.append(torch.stack(row, dim=-1))  # (N, C_out, W_out)
    out = torch.stack(rows, dim=-2)  # (N, C_out, H_out, W_out)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out


def conv1d_toeplitz_matrix(
    kernel: Tensor,
    input_length: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    flip: bool = False,
) -> Tensor:
    """The matrix ``T`` of a 1-D convolution, so that ``y = T @ x``.

    ``kernel`` has shape ``(K,)``; ``T`` has shape ``(L_out, input_length)``. Row ``i`` holds the
    kernel shifted to start at ``i * stride - padding`` (zero padding simply drops the columns
    that fall outside the input). With ``flip=False`` this is the cross-correlation that
    ``F.conv1d`` computes; ``flip=True`` gives the mathematical convolution (kernel reversed).
    For a kernel ``[k1, k2, k3]`` and 4 inputs::

        [[k1, k2, k3, 0 ],
         [0,  k1, k2, k3]]

    Each row is a shifted copy of the previous one (constant diagonals: a Toeplitz matrix),
    and most entries are zero: a convolution is a sparse, weight-shared linear layer.
    The result is differentiable with respect to ``kernel``.
    """
    if kernel.dim() != 1:
        raise ValueError(
            f"conv1d_toeplitz_matrix expects kernel of shape (K,), got {_shape(kernel)}"
        )
    k = kernel.shape[0]
    l_out = conv_output_size(input_length, k, stride, padding, dilation)
    if l_out < 1:
        raise ValueError(
            f"input_length={input_length} is too short for a kernel of size {k} "
            f"(dilation {dilation}, padding {padding})"
        )
    taps = kernel.flip(0) if flip else kernel
    rows = torch.arange(l_out).repeat_interleave(k)  # output index i, once per tap
    tap = torch.arange(k).repeat(l_out)  # tap index j
    cols = rows * stride + tap * dilation - padding  # input position that tap j of row i reads
    keep = (cols >= 0) & (cols < input_length)
    matrix = kernel.new_zeros(l_out, input_length)
    return matrix.index_put((rows[keep], cols[keep]), taps[tap[keep]])


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
def _pool_windows(
    name: str,
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    fill: float,
) -> Tensor:
    if input.dim() != 4:
        raise ValueError(f"{name} expects input of shape (N, C, H, W), got {_shape(input)}")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride, "stride") if stride is not None else (kh, kw)
    ph, pw = _pair(padding, "padding")
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"{name}: padding {padding} must be at most half the kernel size {kernel_size}"
        )
    h, w = input.shape[2] + 2 * ph, input.shape[3] + 2 * pw
    if h < kh or w < kw:
        raise ValueError(
            f"{name}: input of spatial size {tuple(input.shape[2:])} is smaller than the kernel {(kh, kw)}"
        )
    x = torch.nn.functional.pad(input, (pw, pw, ph, ph), value=fill)
    return x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, H_out, W_out, kh, kw)


def max_pool2d(
    input: Tensor, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
) -> Tensor:
    """Maximum over each ``kernel_size`` window: ``(N, C, H, W) -> (N, C, H_out, W_out)``.

    ``stride`` defaults to ``kernel_size`` (non-overlapping windows). Padding uses ``-inf`` so
    that padded pixels never win. The gradient flows only to the arg-max of each window.
    """
    windows = _pool_windows("max_pool2d", input, kernel_size, stride, padding, float("-inf"))
    return windows.flatten(-2).max(dim=-1).values


def avg_pool2d(
    input: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> Tensor:
    """Mean over each ``kernel_size`` window: ``(N, C, H, W) -> (N, C, H_out, W_out)``.

    As in torch, padded zeros count in the denominator unless ``count_include_pad=False``.
    """
    windows = _pool_windows("avg_pool2d", input, kernel_size, stride, padding, 0.0)
    total = windows.sum(dim=(-2, -1))
    if count_include_pad:
        return total / (windows.shape[-2] * windows.shape[-1])
    ones = torch.ones_like(input[:1, :1])
    counts = _pool_windows("avg_pool2d", ones, kernel_size, stride, padding, 0.0).sum(dim=(-2, -1))
    return total / counts


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability ``p`` and scale survivors by ``1/(1-p)``.

    The scaling keeps ``E[output] = input`` during training, so evaluation is the identity
    (no rescaling at test time).
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = torch.empty_like(input).bernoulli_(1.0 - p)  # 1 with probability 1 - p
    return input * keep / (1.0 - p)


class Dropout(nn.Module):
    """Module form of :func:`dropout`; active in ``train()`` mode, identity in ``eval()`` mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------
def _normalise(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    return (x - mean) / torch.sqrt(var + eps)


def _affine_parameters(module: nn.Module, shape, affine: bool) -> None:
    """Learnable scale ``weight`` (ones) and shift ``bias`` (zeros) of ``shape``, or ``None``."""
    if affine:
        module.weight = nn.Parameter(torch.ones(shape))
        module.bias = nn.Parameter(torch.zeros(shape))
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


class _BatchNorm(nn.Module):
    """Shared code of BatchNorm1d/2d. Statistics are per channel (dimension 1).

    Training: ``y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta`` with the batch mean and
    the *biased* batch variance (divide by ``m``, the number of values per channel), and the
    running estimates move towards the batch statistics::

        running_mean <- (1 - momentum) * running_mean + momentum * mean_B
        running_var  <- (1 - momentum) * running_var  + momentum * var_B * m / (m - 1)

    (the running variance uses the *unbiased* estimate). Evaluation normalises with the running
    estimates instead, so one example's output no longer depends on the rest of the batch.
    ``momentum=None`` uses a cumulative average ``1 / num_batches_tracked``, as in torch.
    Parameter and buffer names equal torch's, so state dicts load in both directions.
    """

    _expected = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        _affine_parameters(self, num_features, affine)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def _check_input(self, x: Tensor) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        dims = [0] + list(range(2, x.dim()))  # every dimension except the channel one
        shape = [1, -1] + [1] * (x.dim() - 2)  # broadcast per-channel vectors
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            m = x.numel() // x.shape[1]
            if self.training and m < 2:
                raise ValueError(
                    f"{type(self).__name__} needs more than one value per channel in training mode, "
                    f"got input of shape {_shape(x)}"
                )
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked += 1
                    if self.momentum is None:
                        factor = 1.0 / float(self.num_batches_tracked)
                    else:
                        factor = self.momentum
                    unbiased = var * m / (m - 1)
                    self.running_mean.mul_(1 - factor).add_(factor * mean)
                    self.running_var.mul_(1 - factor).add_(factor * unbiased)
        else:
            mean, var = self.running_mean, self.running_var
        y = _normalise(x, mean.view(shape), var.view(shape), self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` features or ``(N, C, L)`` sequences (stats over N [and L])."""

    def _check_input(self, x: Tensor) -> None:
        if x.dim() not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d expects input of shape (N, C) or (N, C, L) with C={self.num_features}, "
                f"got {_shape(x)}"
            )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` images: statistics over N, H and W per channel."""

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm2d expects input of shape (N, C, H, W) with C={self.num_features}, "
                f"got {_shape(x)}"
            )


class LayerNorm(nn.Module):
    """Normalise each example over its last ``len(normalized_shape)`` dimensions.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` with the biased variance; the
    statistics never mix examples, so training and evaluation behave the same.
    ``weight`` and ``bias`` have shape ``normalized_shape`` (one value per element).
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(self.normalized_shape))
            self.bias = nn.Parameter(torch.zeros(self.normalized_shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        k = len(self.normalized_shape)
        if x.dim() < k or _shape(x)[-k:] != self.normalized_shape:
            raise ValueError(
                f"LayerNorm expects input of shape (*, {', '.join(map(str, self.normalized_shape))}), "
                f"got {_shape(x)}"
            )
        dims = tuple(range(-k, 0))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        y = _normalise(x, mean, var, self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(nn.Module):
    """Split the ``C`` channels into ``num_groups`` groups and normalise each group of each example.

    Input ``(N, C, *)``; statistics over the ``C / G`` channels of a group and all positions.
    ``num_groups = 1`` is LayerNorm over ``(C, H, W)``; ``num_groups = C`` is InstanceNorm.
    The affine ``weight`` and ``bias`` are per channel.
    """

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError(
                f"num_channels={num_channels} must be divisible by num_groups={num_groups}"
            )
        self.num_groups = num_groups
        self.num_channels = num_channels
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, num_channels, affine)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm expects input of shape (N, C, *) with C={self.num_channels}, got {_shape(x)}"
            )
        n = x.shape[0]
        groups = x.reshape(n, self.num_groups, -1)  # (N, G, C/G * positions)
        mean = groups.mean(dim=-1, keepdim=True)
        var = groups.var(dim=-1, unbiased=False, keepdim=True)
        y = _normalise(groups, mean, var, self.eps).reshape(x.shape)
        if self.affine:
            shape = [1, -1] + [1] * (x.dim() - 2)
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class InstanceNorm2d(nn.Module):
    """Normalise each channel of each image over its ``H x W`` positions.

    Input ``(N, C, H, W)``. As in torch, ``affine`` defaults to ``False`` and no running
    statistics are kept: training and evaluation compute the same thing.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.affine = affine
        _affine_parameters(self, num_features, affine)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"InstanceNorm2d expects input of shape (N, C, H, W) with C={self.num_features}, "
                f"got {_shape(x)}"
            )
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
        y = _normalise(x, mean, var, self.eps)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"
