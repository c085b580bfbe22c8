import pytest
import torch
from torch import nn

from course_lib.models import count_parameters
from course_lib.models.convnet import factorised_convnet, norm_convnet


def _factorised_count(c, k, w1, w2, bn):
    """Parameters of factorised_convnet by hand: kernels, biases (no bias before BN), BN gamma/beta."""

    def conv(c_in, c_out, kh, kw):
        return c_in * c_out * kh * kw + (2 * c_out if bn else c_out)

    block = lambda a, b: conv(a, b, 1, 3) + conv(b, b, 3, 1)  # noqa: E731
    return (
        block(c, w1)
        + block(w1, w1)
        + conv(w1, w1, 3, 3)
        + block(w1, w2)
        + block(w2, w2)
        + conv(w2, w2, 3, 3)
        + w2 * k
        + k
    )


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("c,k,widths", [(3, 100, (32, 128)), (1, 10, (16, 32))])
def test_factorised_convnet_parameter_count_and_shape(bn, c, k, widths):
    net = factorised_convnet(c, k, widths, batch_norm=bn)
    assert count_parameters(net) == _factorised_count(c, k, *widths, bn)
    assert net(torch.randn(2, c, 16, 16)).shape == (2, k)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 10 and all((m.bias is None) == bn for m in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == (10 if bn else 0)


def test_factorised_convnet_is_he_initialised_and_has_dropout():
    torch.manual_seed(0)
    net = factorised_convnet(3, 10, (32, 64), dropout=0.3)
    w = [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1].weight
    assert w.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.1)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.3]


@pytest.mark.parametrize(
    "norm,kind",
    [
        (None, nn.Identity),
        (nn.BatchNorm2d, nn.BatchNorm2d),
        (lambda ch: nn.GroupNorm(4, ch), nn.GroupNorm),
    ],
)
def test_norm_convnet_plugs_in_the_normalisation(norm, kind):
    net = norm_convnet(norm, width=8)
    assert net(torch.randn(3, 1, 14, 14)).shape == (3, 10)
    assert sum(isinstance(m, kind) for m in net.modules()) == 3
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [8, 16, 16]
    assert all((m.bias is not None) == (norm is None) for m in convs)


def test_norm_convnet_batchnorm_layers_see_batch_statistics():
    net = norm_convnet(nn.BatchNorm2d, width=4).train()
    net(torch.randn(16, 1, 8, 8) * 5 + 3)
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 1
