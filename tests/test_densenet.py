"""course_lib.models.densenet: torchvision's DenseNet-121 (count and outputs), the paper's counts."""

from __future__ import annotations

import pytest
import torch
import torchvision
from model_oracle import meta_count, torchvision_twin
from torch import nn

from course_lib.models.blocks import DenseBlock, Transition
from course_lib.models.densenet import DenseNet, densenet121, densenet_cifar


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_densenet121_count_equals_torchvision(num_classes):
    ours = meta_count(densenet121, num_classes=num_classes)
    assert ours == meta_count(torchvision.models.densenet121, weights=None, num_classes=num_classes)
    if num_classes == 1000:
        assert ours == 7_978_856


def test_densenet121_gives_torchvision_outputs_with_its_weights():
    ours, theirs = torchvision_twin(densenet121(), torchvision.models.densenet121(weights=None))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "depth,k,bc,millions",
    [(40, 12, False, 1.0), (100, 24, False, 27.2), (100, 12, True, 0.8), (250, 24, True, 15.3),
     (190, 40, True, 25.6)],
)  # fmt: skip
def test_densenet_cifar_counts_match_huang_et_al(depth, k, bc, millions):
    assert round(meta_count(densenet_cifar, depth, k, bc) / 1e6, 1) == millions


def test_densenet_reuses_the_blocks_and_channels_add_up():
    model = densenet_cifar(40, 12, bc=True, in_channels=1)  # 6 layers per block, stem 24
    blocks = [m for m in model.features if isinstance(m, DenseBlock)]
    transitions = [m for m in model.features if isinstance(m, Transition)]
    assert [len(b.layers) for b in blocks] == [6, 6, 6] and len(transitions) == 2
    assert [b.out_channels for b in blocks] == [24 + 72, 48 + 72, 60 + 72]  # theta = 0.5
    assert model.out_features == 132
    torch.manual_seed(0)
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
    with pytest.raises(ValueError, match=r"6n \+ 4"):
        densenet_cifar(41)
    with pytest.raises(ValueError, match=r"3n \+ 4"):
        densenet_cifar(41, bc=False)
    with pytest.raises(ValueError, match="compression"):
        DenseNet(12, (2, 2), 16, compression=0.0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        densenet_cifar(40)(torch.randn(3, 32, 32))
