"""The teaching layers of course_lib.layers against torch's own layers (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import layers as L

DT = torch.float64


def _grads(fn, tensors, upstream):
    """Output of ``fn(*tensors)`` and the gradients of ``<output, upstream>`` w.r.t. ``tensors``."""
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    grads = torch.autograd.grad((out * upstream).sum(), leaves)
    return out.detach(), grads


def assert_same_function(ours, theirs, tensors, atol=1e-10):
    """Forward values and gradients (w.r.t. every tensor) of two functions agree."""
    ref = theirs(*tensors)
    upstream = torch.randn_like(ref)
    out_a, g_a = _grads(ours, tensors, upstream)
    out_b, g_b = _grads(theirs, tensors, upstream)
    assert out_a.shape == out_b.shape
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=0)
    for ga, gb in zip(g_a, g_b):
        torch.testing.assert_close(ga, gb, atol=atol, rtol=0)


# ---------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------
CONV_CASES = [
    # (N, C_in, H, W, C_out, k, stride, padding, dilation, groups, bias)
    (2, 3, 8, 8, 4, 3, 1, 0, 1, 1, True),
    (1, 1, 5, 7, 2, 3, 1, 1, 1, 1, False),
    (2, 4, 9, 8, 6, 3, 2, 1, 1, 2, True),
    (3, 6, 10, 10, 6, 3, 1, 2, 2, 6, True),  # depthwise, dilated
    (2, 2, 7, 9, 3, (3, 2), (2, 1), (1, 0), (1, 2), 1, True),  # rectangular everything
    (1, 3, 6, 6, 5, 1, 1, 0, 1, 1, True),  # 1x1 conv
    (2, 3, 11, 11, 4, 5, 3, 2, 1, 1, False),
    (1, 4, 8, 8, 4, 3, 1, "same", 2, 2, True),
    (2, 3, 8, 7, 2, 4, 1, "same", 1, 1, True),  # even kernel: asymmetric "same" padding
    (2, 3, 6, 6, 2, 3, 1, "valid", 1, 1, True),
]


def _conv_inputs(case, dtype=DT):
    n, c_in, h, w, c_out, k, stride, padding, dilation, groups, bias = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(n, c_in, h, w, dtype=dtype)
    weight = torch.randn(c_out, c_in // groups, kh, kw, dtype=dtype)
    b = torch.randn(c_out, dtype=dtype) if bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, b, kwargs


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_matches_torch_values_and_gradients(case):
    torch.manual_seed(0)
    x, weight, b, kw = _conv_inputs(case)
    tensors = [x, weight] + ([b] if b is not None else [])

    def ours(*t):
        return L.conv2d(t[0], t[1], t[2] if len(t) > 2 else None, **kw)

    def theirs(*t):
        return F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None, **kw)

    assert_same_function(ours, theirs, tensors)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("case", CONV_CASES[:5] + CONV_CASES[7:9])
def test_conv2d_loops_matches_torch(case):
    torch.manual_seed(1)
    x, weight, b, kw = _conv_inputs(case)
    tensors = [x, weight] + ([b] if b is not None else [])

    def ours(*t):
        return L.conv2d_loops(t[0], t[1], t[2] if len(t) > 2 else None, **kw)

    def theirs(*t):
        return F.conv2d(t[0], t[1], t[2] if len(t) > 2 else None, **kw)

    assert_same_function(ours, theirs, tensors)


def test_conv2d_float32_within_1e5():
    torch.manual_seed(2)
    x, weight, b, kw = _conv_inputs((4, 8, 16, 16, 16, 3, 1, 1, 1, 1, True), dtype=torch.float32)
    torch.testing.assert_close(
        L.conv2d(x, weight, b, **kw), F.conv2d(x, weight, b, **kw), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(
    "k,s,p,d", [(3, 1, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), (1, 0), (2, 1)), (1, 1, 0, 1)]
)
def test_im2col_matches_unfold(k, s, p, d):
    x = torch.randn(2, 3, 7, 8, dtype=DT)
    torch.testing.assert_close(
        L.im2col(x, k, s, p, d), F.unfold(x, k, dilation=d, padding=p, stride=s)
    )


def test_conv2d_bad_shapes_name_the_expected_shape():
    w = torch.randn(5, 3, 3, 3)
    with pytest.raises(ValueError, match=r"\(N, C_in, H, W\) with C_in=3, got \(2, 4, 8, 8\)"):
        L.conv2d(torch.randn(2, 4, 8, 8), w)
    with pytest.raises(ValueError, match=r"\(N, C_in, H, W\) with C_in=3, got \(3, 8, 8\)"):
        L.conv2d(torch.randn(3, 8, 8), w)
    with pytest.raises(ValueError, match=r"bias of shape \(5,\)"):
        L.conv2d(torch.randn(1, 3, 8, 8), w, torch.randn(4))
    with pytest.raises(ValueError, match="too small"):
        L.conv2d(torch.randn(1, 3, 2, 2), w)
    with pytest.raises(ValueError, match="groups"):
        L.conv2d(torch.randn(1, 6, 8, 8), torch.randn(5, 3, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"\(C_out, C_in / groups, kH, kW\)"):
        L.conv2d_loops(torch.randn(1, 3, 8, 8), torch.randn(5, 3, 3))


# ---------------------------------------------------------------------------
# Toeplitz matrix
# ---------------------------------------------------------------------------
def test_toeplitz_matrix_of_the_lecture_example():
    k1, k2, k3 = 1.0, 2.0, 3.0
    T = L.conv1d_toeplitz_matrix(torch.tensor([k1, k2, k3]), 4)
    expected = torch.tensor([[k1, k2, k3, 0.0], [0.0, k1, k2, k3]])
    torch.testing.assert_close(T, expected)


@pytest.mark.parametrize(
    "k,length,stride,padding,dilation",
    [
        (3, 10, 1, 0, 1),
        (3, 10, 2, 1, 1),
        (5, 12, 1, 2, 1),
        (3, 15, 3, 2, 2),
        (1, 5, 1, 0, 1),
        (4, 9, 1, 3, 1),
    ],
)
def test_toeplitz_matrix_times_signal_is_conv1d(k, length, stride, padding, dilation):
    torch.manual_seed(3)
    kernel = torch.randn(k, dtype=DT)
    x = torch.randn(length, dtype=DT)
    T = L.conv1d_toeplitz_matrix(kernel, length, stride, padding, dilation)
    ref = F.conv1d(
        x.view(1, 1, -1), kernel.view(1, 1, -1), stride=stride, padding=padding, dilation=dilation
    )
    assert T.shape == (ref.shape[-1], length)
    torch.testing.assert_close(T @ x, ref.flatten())
    # gradients w.r.t. the kernel agree too (the matrix is built from the kernel differentiably)
    assert_same_function(
        lambda w: L.conv1d_toeplitz_matrix(w, length, stride, padding, dilation) @ x,
        lambda w: F.conv1d(
            x.view(1, 1, -1), w.view(1, 1, -1), stride=stride, padding=padding, dilation=dilation
        ).flatten(),  # fmt: skip
        [kernel],
    )


def test_toeplitz_flip_is_true_convolution():
    kernel = torch.tensor([1.0, -2.0, 0.5], dtype=DT)
    x = torch.randn(9, dtype=DT)
    T = L.conv1d_toeplitz_matrix(kernel, 9, flip=True)
    expected = np.convolve(x.numpy(), kernel.numpy(), mode="valid")
    np.testing.assert_allclose((T @ x).numpy(), expected, atol=1e-12)


def test_toeplitz_bad_kernel_shape():
    with pytest.raises(ValueError, match=r"kernel of shape \(K,\)"):
        L.conv1d_toeplitz_matrix(torch.ones(1, 3), 5)


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0),
    ((1, 2, 7, 9), 3, 2, 1),
    ((2, 1, 6, 5), (2, 3), (1, 2), (1, 1)),
    ((1, 4, 5, 5), 3, 1, 0),
]


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
def test_max_pool2d_matches_torch(shape, k, s, p):
    torch.manual_seed(4)
    x = torch.randn(*shape, dtype=DT)
    assert_same_function(
        lambda t: L.max_pool2d(t, k, s, p), lambda t: F.max_pool2d(t, k, s, p), [x]
    )


@pytest.mark.parametrize("shape,k,s,p", POOL_CASES)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_torch(shape, k, s, p, count_include_pad):
    torch.manual_seed(5)
    x = torch.randn(*shape, dtype=DT)
    assert_same_function(
        lambda t: L.avg_pool2d(t, k, s, p, count_include_pad=count_include_pad),
        lambda t: F.avg_pool2d(t, k, s, p, count_include_pad=count_include_pad),
        [x],
    )


def test_pool_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(8, 8\)"):
        L.max_pool2d(torch.randn(8, 8), 2)
    with pytest.raises(ValueError, match="at most half"):
        L.avg_pool2d(torch.randn(1, 1, 8, 8), 2, padding=2)


# ---------------------------------------------------------------------------
# dropout
# ---------------------------------------------------------------------------
def test_dropout_equals_torch_dropout_with_the_same_seed():
    x = torch.randn(4, 5, 6, dtype=DT)
    torch.manual_seed(7)
    ref = F.dropout(x, 0.3, training=True)
    torch.manual_seed(7)
    ours = L.Dropout(0.3).train()(x)
    torch.testing.assert_close(ours, ref)


def test_dropout_is_inverted_and_identity_in_eval():
    torch.manual_seed(8)
    p = 0.25
    layer = L.Dropout(p)
    x = torch.full((200_000,), 2.0, requires_grad=True)
    y = layer(x)
    kept = y != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.01  # fraction dropped close to p
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / (1 - p)))  # survivors scaled
    assert abs(y.mean().item() - 2.0) < 0.02  # expectation preserved
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))  # gradient = mask / (1 - p)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(L.Dropout(0.0)(x), x)
    assert torch.count_nonzero(L.Dropout(1.0)(x)) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.Dropout(1.5)


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------
def _randomise_affine(*modules):
    g = torch.Generator().manual_seed(11)
    for m in modules[1:]:
        m.load_state_dict(modules[0].state_dict())
    if getattr(modules[0], "weight", None) is not None:
        w = torch.randn(modules[0].weight.shape, generator=g, dtype=DT)
        b = torch.randn(modules[0].weight.shape, generator=g, dtype=DT)
        for m in modules:
            with torch.no_grad():
                m.weight.copy_(w)
                m.bias.copy_(b)


def _module_step(module, x, upstream):
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    params = [p for p in module.parameters()]
    grads = torch.autograd.grad((out * upstream).sum(), [x] + params)
    return out.detach(), grads


@pytest.mark.parametrize(
    "ours_cls,torch_cls,shape",
    [
        (L.BatchNorm2d, nn.BatchNorm2d, (4, 3, 5, 6)),
        (L.BatchNorm1d, nn.BatchNorm1d, (8, 5)),
        (L.BatchNorm1d, nn.BatchNorm1d, (4, 3, 7)),
    ],
)
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm_training_running_stats_and_eval_match_torch(
    ours_cls, torch_cls, shape, momentum
):
    torch.manual_seed(12)
    c = shape[1]
    ours = ours_cls(c, eps=1e-5, momentum=momentum).double()
    ref = torch_cls(c, eps=1e-5, momentum=momentum).double()
    _randomise_affine(ours, ref)
    for step in range(3):  # three training steps: outputs, gradients and running estimates
        x = torch.randn(*shape, dtype=DT) * (step + 1) + step
        up = torch.randn(*shape, dtype=DT)
        out_a, g_a = _module_step(ours, x, up)
        out_b, g_b = _module_step(ref, x, up)
        torch.testing.assert_close(out_a, out_b)
        for ga, gb in zip(g_a, g_b):
            torch.testing.assert_close(ga, gb)
        torch.testing.assert_close(ours.running_mean, ref.running_mean)
        torch.testing.assert_close(ours.running_var, ref.running_var)
    assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == 3
    ours.eval()
    ref.eval()
    x = torch.randn(*shape, dtype=DT)
    up = torch.randn(*shape, dtype=DT)
    out_a, g_a = _module_step(ours, x, up)
    out_b, g_b = _module_step(ref, x, up)
    torch.testing.assert_close(out_a, out_b)
    for ga, gb in zip(g_a, g_b):
        torch.testing.assert_close(ga, gb)


def test_batchnorm_state_dict_is_interchangeable_with_torch():
    ref = nn.BatchNorm2d(4)
    ref.train()(torch.randn(8, 4, 3, 3))
    ours = L.BatchNorm2d(4)
    ours.load_state_dict(ref.state_dict())  # same keys, same shapes
    assert set(ours.state_dict()) == set(ref.state_dict())
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(ours.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-5)


def test_batchnorm_bad_shapes():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with C=3, got \(2, 4, 5, 5\)"):
        L.BatchNorm2d(3)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match=r"\(N, C\) or \(N, C, L\) with C=3"):
        L.BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="more than one value per channel"):
        L.BatchNorm1d(3).train()(torch.randn(1, 3))


@pytest.mark.parametrize(
    "ours,ref,shape",
    [
        (L.LayerNorm(6), nn.LayerNorm(6), (4, 6)),
        (L.LayerNorm((3, 4, 5)), nn.LayerNorm((3, 4, 5)), (2, 3, 4, 5)),
        (L.LayerNorm([5]), nn.LayerNorm([5]), (2, 3, 4, 5)),
        (L.GroupNorm(2, 6), nn.GroupNorm(2, 6), (3, 6, 4, 5)),
        (L.GroupNorm(1, 4), nn.GroupNorm(1, 4), (2, 4, 3, 3)),
        (L.GroupNorm(4, 4), nn.GroupNorm(4, 4), (2, 4, 7)),
        (L.InstanceNorm2d(3), nn.InstanceNorm2d(3), (2, 3, 5, 4)),
        (L.InstanceNorm2d(3, affine=True), nn.InstanceNorm2d(3, affine=True), (2, 3, 5, 4)),
    ],
    ids=["ln-1d", "ln-3d", "ln-last", "gn-2", "gn-1", "gn-c", "in", "in-affine"],
)
def test_layer_group_instance_norm_match_torch(ours, ref, shape):
    torch.manual_seed(13)
    ours, ref = ours.double(), ref.double()
    _randomise_affine(ours, ref)
    x = torch.randn(*shape, dtype=DT) * 3 + 1
    up = torch.randn(*shape, dtype=DT)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        out_a, g_a = _module_step(ours, x, up)
        out_b, g_b = _module_step(ref, x, up)
        torch.testing.assert_close(out_a, out_b)
        assert len(g_a) == len(g_b)
        for ga, gb in zip(g_a, g_b):
            torch.testing.assert_close(ga, gb)


def test_norm_bad_shapes():
    with pytest.raises(ValueError, match=r"\(\*, 3, 4\), got \(2, 4, 3\)"):
        L.LayerNorm((3, 4))(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match=r"\(N, C, \*\) with C=6"):
        L.GroupNorm(2, 6)(torch.randn(2, 4, 3))
    with pytest.raises(ValueError, match="divisible"):
        L.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with C=3"):
        L.InstanceNorm2d(3)(torch.randn(3, 5, 5))


def test_group_norm_extremes_are_layer_and_instance_norm():
    x = torch.randn(2, 4, 5, 5, dtype=DT)
    torch.testing.assert_close(
        L.GroupNorm(1, 4, affine=False)(x), L.LayerNorm((4, 5, 5), elementwise_affine=False)(x)
    )
    torch.testing.assert_close(L.GroupNorm(4, 4, affine=False)(x), L.InstanceNorm2d(4)(x))
