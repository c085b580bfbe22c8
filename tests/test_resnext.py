"""course_lib.models.resnext: torchvision's ResNeXt-50 (count and outputs), the paper's counts."""

from __future__ import annotations

import pytest
import torch
import torchvision
from model_oracle import meta_count, torchvision_twin
from torch import nn

from course_lib import models as M
from course_lib.models import count_parameters
from course_lib.models.resnext import ResNeXtBlock, resnext50_32x4d, resnext_cifar


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_resnext50_count_equals_torchvision(num_classes):
    ours = meta_count(resnext50_32x4d, num_classes=num_classes)
    theirs = meta_count(torchvision.models.resnext50_32x4d, weights=None, num_classes=num_classes)
    assert ours == theirs
    if num_classes == 1000:
        assert ours == 25_028_904


def test_resnext50_gives_torchvision_outputs_with_its_weights():
    theirs = torchvision.models.resnext50_32x4d(weights=None)
    ours, theirs = torchvision_twin(resnext50_32x4d(), theirs)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)


def test_resnext_cifar_counts_match_xie_et_al():
    # Xie et al. (2017), CIFAR table: ResNeXt-29, 8x64d 34.4M; 16x64d 68.1M
    assert round(meta_count(resnext_cifar, 29, 8, 64) / 1e6, 1) == 34.4
    assert round(meta_count(resnext_cifar, 29, 16, 64) / 1e6, 1) == 68.2  # paper rounds to 68.1
    # cardinality 1 with d = width is the bottleneck ResNet with projection shortcuts
    assert meta_count(resnext_cifar, 29, 1, 16, width=16) == meta_count(
        M.ResNet, M.Bottleneck, [3, 3, 3], [16, 32, 64], shortcut="B"
    )


def test_block_is_a_grouped_bottleneck_and_the_template_keeps_the_budget():
    # C = 1, d = 64 is the ResNet bottleneck, tensor by tensor
    res, nxt = M.Bottleneck(256, 64), ResNeXtBlock(256, 64, cardinality=1, base_width=64)
    assert [v.shape for v in res.state_dict().values()] == [
        v.shape for v in nxt.state_dict().values()
    ]
    # the paper's template (Table 2): about the same parameters for C x d = 1x64 ... 32x4
    counts = {
        (c, d): count_parameters(ResNeXtBlock(256, 64, cardinality=c, base_width=d))
        for c, d in [(1, 64), (2, 40), (4, 24), (8, 14), (32, 4)]
    }
    assert max(counts.values()) / min(counts.values()) < 1.05
    # a grouped 3x3 conv: output group g depends only on input group g
    block = ResNeXtBlock(16, 4, cardinality=4, base_width=4, base_channels=4)
    conv = block.conv2
    assert conv.groups == 4 and conv.weight.shape == (16, 4, 3, 3)
    x = torch.randn(1, 16, 5, 5, requires_grad=True)
    (grad,) = torch.autograd.grad(conv(x)[0, :4].sum(), x)
    used = grad.abs().sum(dim=(0, 2, 3)) > 0
    assert used.nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_small_resnext_trains_on_digits_shapes():
    torch.manual_seed(0)
    model = resnext_cifar(29, cardinality=4, base_width=3, width=8, in_channels=1)
    assert model.stages[0][0].conv2.groups == 4
    assert [s[0].conv2.in_channels for s in model.stages] == [12, 24, 48]  # d doubles per stage
    x, y = torch.randn(4, 1, 14, 14), torch.tensor([0, 1, 2, 3])
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert model.eval()(x).shape == (4, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"9n \+ 2"):
        resnext_cifar(30)
    with pytest.raises(ValueError, match="less than one channel"):
        ResNeXtBlock(16, 4, base_width=4, base_channels=64)
