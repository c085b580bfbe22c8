"""Round-trip variants for ex02_convolution (see course_lib/grading/README.md, "Variants")."""

CONV2D_NO_DILATION = """
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    h_out = conv_output_size(h, kh, sh, ph)
    w_out = conv_output_size(w, kw, sw, pw)
    xp = F.pad(x, (pw, pw, ph, ph))
    out = x.new_zeros(n, c_out, h_out, w_out)
    for u in range(kh):
        for v in range(kw):
            patch = xp[:, :, u : u + sh * (h_out - 1) + 1 : sh, v : v + sw * (w_out - 1) + 1 : sw]
            out = out + torch.einsum("nchw,oc->nohw", patch, weight[:, :, u, v])
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
"""

POOL_ZERO_PADDING = """
def max_pool2d(x, kernel_size, stride=None, padding=0):
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride) if stride is not None else (kh, kw)
    ph, pw = pair(padding)
    xp = F.pad(x, (pw, pw, ph, ph))  # zeros: wrong when a window is all negative
    return xp.unfold(2, kh, sh).unfold(3, kw, sw).amax(dim=(-2, -1))
"""

RF_NO_DILATION = """
def receptive_field(layers) -> int:
    field, jump = 1, 1
    for kernel, stride, dilation in layers:
        field += (kernel - 1) * jump
        jump *= stride
    return field
"""

CONV2D_CALLS_TORCH = """
import torch.nn.functional as F

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    return F.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
"""

CONV2D_CALLS_MODULE = """
from torch import nn

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    layer = nn.Conv2d(weight.shape[1], weight.shape[0], weight.shape[2:], stride=stride,
                      padding=padding, dilation=dilation, bias=bias is not None).to(x.dtype)
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return layer(x).detach()
"""

POOL_CALLS_TORCH = """
def max_pool2d(x, kernel_size, stride=None, padding=0):
    return torch.nn.MaxPool2d(kernel_size, stride, padding)(x)
"""

CONV2D_ZERO = {
    "test_conv2d_visible": 0,
    "test_conv2d_hidden": 0,
    "test_conv2d_stride": 0,
    "test_conv2d_padding": 0,
    "test_conv2d_dilation": 0,
    "test_conv2d_general": 0,
}

VARIANTS = {
    "conv2d_ignores_dilation": {
        "answers": {"conv2d": CONV2D_NO_DILATION},
        "expect": {"test_conv2d_dilation": 0, "test_conv2d_general": 0},
    },
    "max_pool_pads_with_zeros": {
        "answers": {"max_pool2d": POOL_ZERO_PADDING},
        "expect": {"test_max_pool2d_padding": 0},
    },
    "receptive_field_ignores_dilation": {
        "answers": {"receptive_field": RF_NO_DILATION},
        "expect": {"test_receptive_field_visible": 0, "test_receptive_field_hidden": 0},
    },
    "conv2d_calls_reference": {"answers": {"conv2d": CONV2D_CALLS_TORCH}, "expect": CONV2D_ZERO},
    "conv2d_uses_nn_conv2d": {"answers": {"conv2d": CONV2D_CALLS_MODULE}, "expect": CONV2D_ZERO},
    "max_pool_calls_reference": {
        "answers": {"max_pool2d": POOL_CALLS_TORCH},
        "expect": {
            "test_max_pool2d_visible": 0,
            "test_max_pool2d_hidden": 0,
            "test_max_pool2d_stride": 0,
            "test_max_pool2d_padding": 0,
        },
    },
}
