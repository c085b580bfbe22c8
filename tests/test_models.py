"""course_lib.models: published parameter counts, shapes, training steps, blocks, utilities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from model_oracle import META, meta_count
from torch import nn

from course_lib import models as M
from course_lib.models import count_parameters, receptive_field, receptive_field_table, summary
from course_lib.models.blocks import (
    DenseBlock,
    DepthwiseSeparableConv,
    HighwayBlock,
    Inception,
    NaiveInception,
    ResidualBlock,
)
from course_lib.models.inception import GOOGLENET_TABLE
from course_lib.models.init import init_weights, kaiming_init_, signal_stats, xavier_init_
from course_lib.models.lenet import LENET_C3_TABLE
from course_lib.regularisers import DropPath


# ---------------------------------------------------------------------------
# published parameter counts
# ---------------------------------------------------------------------------
def test_lenet5_faithful_per_layer_counts_equal_the_paper():
    model = M.lenet5(faithful=True)
    table = {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164, "output": 0}
    assert {name: count_parameters(getattr(model, name)) for name in table} == table
    assert count_parameters(model) == 60_000
    assert count_parameters(M.lenet5()) == 61_706  # modern form: full C3, linear output


def test_lenet5_c3_connection_table():
    assert sum(len(inputs) for inputs in LENET_C3_TABLE) == 60
    assert [len(inputs) for inputs in LENET_C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    c3 = M.lenet5(faithful=True).c3
    # C3 map j must not depend on S2 maps outside table[j]: their gradients are exactly zero
    x = torch.randn(1, 6, 14, 14, requires_grad=True)
    for j, inputs in enumerate(LENET_C3_TABLE):
        (grad,) = torch.autograd.grad(c3(x)[0, j].sum(), x)
        used = grad.abs().sum(dim=(0, 2, 3)) > 0
        assert used.nonzero().flatten().tolist() == sorted(inputs)


SEED_VGG_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}
TORCHVISION_VGG = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}


@pytest.mark.parametrize("cfg", list(SEED_VGG_MILLIONS))
def test_vgg_imagenet_counts_match_the_paper_and_torchvision(cfg):
    n = meta_count(M.vgg, cfg)
    assert round(n / 1e6) == SEED_VGG_MILLIONS[cfg]
    if cfg in TORCHVISION_VGG:
        name = TORCHVISION_VGG[cfg]
        assert n == meta_count(getattr(torchvision.models, name))
        assert meta_count(M.vgg, cfg, batch_norm=True) == meta_count(
            getattr(torchvision.models, name + "_bn")
        )
        assert meta_count(M.vgg, cfg, num_classes=10) == meta_count(
            getattr(torchvision.models, name), num_classes=10
        )


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
@pytest.mark.parametrize("num_classes", [1000, 10])
def test_imagenet_resnets_equal_torchvision(name, num_classes):
    ours = meta_count(getattr(M, name), num_classes=num_classes)
    assert ours == meta_count(
        getattr(torchvision.models, name), weights=None, num_classes=num_classes
    )


def test_cifar_resnet_counts_match_he_et_al():
    # He et al. (2016), CIFAR-10 table: ResNet-20 0.27M, 32 0.46M, 44 0.66M, 56 0.85M, 110 1.7M
    paper = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7"}
    for depth, millions in paper.items():
        n = meta_count(M.resnet_cifar, depth)
        decimals = len(millions.split(".")[1])  # compare at the paper's precision
        assert round(n / 1e6, decimals) == float(millions), (depth, n)
    # the plain twin with option-A shortcuts has exactly the same parameters (and names)
    res, plain = M.resnet_cifar(20), M.resnet_cifar(20, plain=True)
    assert [(k, v.shape) for k, v in res.state_dict().items()] == [
        (k, v.shape) for k, v in plain.state_dict().items()
    ]
    # option B adds the two 1x1 projections (+BN): 16->32 and 32->64
    extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert count_parameters(M.resnet_cifar(20, shortcut="B")) == count_parameters(res) + extra
    # ResNet-164 with pre-activation bottlenecks: 1.7M (He et al., 2016b)
    assert round(meta_count(M.resnet_cifar, 164, preact=True, bottleneck=True) / 1e6, 1) == 1.7


def test_wide_resnet_counts_match_zagoruyko_komodakis():
    # WRN paper, CIFAR table: WRN-40-4 8.9M, WRN-16-8 11.0M, WRN-28-10 36.5M
    for (depth, k), millions in {(40, 4): 8.9, (16, 8): 11.0, (28, 10): 36.5}.items():
        assert round(meta_count(M.wide_resnet, depth, k) / 1e6, 1) == millions


def test_review_lecture_mlp_and_small_convnet_counts():
    assert count_parameters(M.mlp()) == 1_645_950
    assert count_parameters(M.small_convnet()) == 17_020
    assert count_parameters(M.small_convnet(batch_norm=False)) == 17_020 - 3 * 2 * 15


def test_alexnet_and_googlenet_counts():
    assert meta_count(M.alexnet) == 62_378_344
    assert round(meta_count(M.alexnet, groups=2) / 1e6) == 61  # "60 million" on two GPUs
    assert round(meta_count(M.googlenet) / 1e6, 1) == 7.0  # paper: 6.8M (with its own rounding)


def test_googlenet_inception_modules_follow_the_table():
    depths = {
        "3a": 256,
        "3b": 480,
        "4a": 512,
        "4b": 512,
        "4c": 512,
        "4d": 528,
        "4e": 832,
        "5a": 832,
        "5b": 1024,
    }
    model = M.googlenet()
    channels = 192
    for name, spec in GOOGLENET_TABLE:
        if spec == "M":
            continue
        module = getattr(model.inception, name)
        assert module.out_channels == depths[name]
        c1, r3, c3, r5, c5, pp = spec
        weights = (
            channels * c1
            + channels * r3
            + r3 * c3 * 9
            + channels * r5
            + r5 * c5 * 25
            + channels * pp
        )
        biases = c1 + r3 + c3 + r5 + c5 + pp
        assert count_parameters(module) == weights + biases
        channels = module.out_channels


# ---------------------------------------------------------------------------
# shapes and one training step for every model
# ---------------------------------------------------------------------------
def small_models(in_channels: int) -> dict[str, nn.Module]:
    c = in_channels
    return {
        "mlp": M.mlp(in_features=c * (28 if c == 1 else 32) ** 2),
        "mlp-bn-dropout": M.mlp(
            c * (28 if c == 1 else 32) ** 2, hidden=(64, 32), batch_norm=True, dropout=0.2
        ),
        "small_convnet": M.small_convnet(in_channels=c),
        "lenet5": M.lenet5(in_channels=c, input_size=28 if c == 1 else 32),
        "vgg-A-small": M.vgg("A", num_classes=10, small_input=True, in_channels=c),
        "vgg-B-small-bn": M.vgg(
            "B", num_classes=10, small_input=True, batch_norm=True, in_channels=c
        ),
        "resnet20": M.resnet_cifar(20, in_channels=c),
        "resnet20-plain": M.resnet_cifar(20, plain=True, in_channels=c),
        "resnet20-B-preact": M.resnet_cifar(20, preact=True, shortcut="B", in_channels=c),
        "resnet29-bottleneck": M.resnet_cifar(29, bottleneck=True, drop_path=0.2, in_channels=c),
        "wrn-10-2": M.wide_resnet(10, 2, dropout=0.3, in_channels=c),
        "googlenet": M.googlenet(num_classes=10, in_channels=c, batch_norm=True),
    }


def sgd_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = F.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert sum(changed) >= 0.9 * len(changed)  # (almost) every tensor moved


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)], ids=["1x28x28", "3x32x32"])
def test_small_models_shapes_and_one_training_step(shape):
    torch.manual_seed(0)
    x = torch.randn(2, *shape)
    y = torch.tensor([0, 1])
    for name, model in small_models(shape[0]).items():
        model.eval()
        with torch.no_grad():
            assert model(x[:1]).shape == (1, 10), name
        sgd_step(model, x, y)


def test_faithful_lenet_and_resnet1d_train():
    torch.manual_seed(0)
    sgd_step(M.lenet5(faithful=True), torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    sgd_step(
        M.lenet5(faithful=True, input_size=32),
        torch.randn(4, 1, 32, 32),
        torch.tensor([0, 1, 2, 3]),
    )
    for plain in (False, True):
        model = M.resnet1d(plain=plain)
        assert model(torch.randn(2, 1, 40)).shape == (2, 10)  # MNIST-1D signals
        sgd_step(model, torch.randn(4, 1, 40), torch.tensor([0, 1, 2, 3]))


def test_imagenet_models_224_shapes():
    x = torch.empty(1, 3, 224, 224, device=META)
    with META:  # shape propagation only: no memory, no compute
        for cfg in SEED_VGG_MILLIONS:
            assert M.vgg(cfg)(x).shape == (1, 1000)
        assert M.vgg("D", batch_norm=True, num_classes=7)(x).shape == (1, 7)
        assert M.resnet34()(x).shape == (1, 1000)
        assert M.resnet50(num_classes=5)(x).shape == (1, 5)
        assert M.alexnet()(x).shape == (1, 1000)
        assert M.googlenet()(x).shape == (1, 1000)
        feats = M.vgg("D").features(x)
        assert feats.shape == (1, 512, 7, 7)
        assert M.resnet50().forward_features(x).shape == (1, 2048)


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_imagenet_resnets_one_training_step(name):
    torch.manual_seed(0)
    model = getattr(M, name)(num_classes=10)
    sgd_step(model, torch.randn(2, 3, 64, 64), torch.tensor([1, 2]))


def test_channels_last_and_bfloat16_autocast():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    for model in (
        M.resnet_cifar(20, preact=True),
        M.small_convnet(),
        M.vgg("A", 10, small_input=True),
    ):
        model.eval()
        with torch.no_grad():
            ref = model(x)
            cl = model.to(memory_format=torch.channels_last)(
                x.to(memory_format=torch.channels_last)
            )
            torch.testing.assert_close(cl, ref, atol=1e-4, rtol=1e-4)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = model(x)
        assert low.dtype == torch.bfloat16
        assert (low.float() - ref).abs().max() < 0.1 * ref.abs().max() + 0.05
        model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x.to(memory_format=torch.channels_last)), y)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_torch_compile_traces_without_graph_breaks():
    # dynamo captures the whole model as one graph (fullgraph=True fails on any graph break);
    # the "eager" backend skips code generation, which on CPU alone takes ~90 s (see below)
    torch._dynamo.reset()
    x = torch.randn(2, 1, 28, 28)
    model = M.lenet5(faithful=True).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="inductor on CPU compiles C++ for ~90 s")
def test_torch_compile_inductor_smoke():
    torch._dynamo.reset()
    model = M.small_convnet(in_channels=1).cuda().eval()
    x = torch.randn(2, 1, 28, 28, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_models_train_on_cuda_with_channels_last_and_autocast():
    x = torch.randn(4, 1, 28, 28, device="cuda").to(memory_format=torch.channels_last)
    y = torch.tensor([0, 1, 2, 3], device="cuda")
    for model in (
        M.lenet5(faithful=True),
        M.resnet_cifar(20, in_channels=1),
        M.googlenet(10, 1, True),
    ):
        model = model.cuda().to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        assert torch.isfinite(loss)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match=r"6n \+ 2"):
        M.resnet_cifar(21)
    with pytest.raises(ValueError, match=r"9n \+ 2"):
        M.resnet_cifar(26, bottleneck=True)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        M.wide_resnet(27, 10)
    with pytest.raises(ValueError, match="unknown VGG configuration"):
        M.vgg("F")
    with pytest.raises(ValueError, match='"A"'):
        M.resnet_cifar(20, shortcut="C")
    with pytest.raises(ValueError, match="plain"):
        M.resnet_cifar(20, plain=True, drop_path=0.1)
    with pytest.raises(ValueError, match=r"784 values per example"):
        M.mlp(784)(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        M.resnet_cifar(20)(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="1 input channel"):
        M.lenet5(faithful=True, in_channels=3)


# ---------------------------------------------------------------------------
# blocks
# ---------------------------------------------------------------------------
def test_highway_gates():
    torch.manual_seed(0)
    block = HighwayBlock(8)
    x = torch.randn(5, 8)
    t = block.transform_gate(x)
    h = block.activation(block.transform(x))
    torch.testing.assert_close(block(x), t * h + (1 - t) * x)  # carry gate = 1 - T
    assert ((t > 0) & (t < 1)).all()
    assert t.mean() < 0.5  # negative gate bias: starts closer to carrying the input
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.bias.fill_(-30.0)  # T = 0: pure carry, the block is the identity
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.gate.bias.fill_(30.0)  # T = 1: pure transform, a plain layer
    torch.testing.assert_close(block(x), h)


def test_inception_modules_concatenate_branches():
    x = torch.randn(2, 192, 12, 12)
    naive = NaiveInception(192, 64, 128, 32)
    assert naive(x).shape == (2, 64 + 128 + 32 + 192, 12, 12)
    reduced = Inception(192, 64, 96, 128, 16, 32, 32)  # GoogLeNet 3a
    assert reduced(x).shape == (2, 256, 12, 12)
    assert count_parameters(reduced) < count_parameters(NaiveInception(192, 64, 128, 32)) / 2


def test_depthwise_separable_equals_a_rank_one_full_convolution():
    torch.manual_seed(0)
    block = DepthwiseSeparableConv(4, 6, kernel_size=3, stride=2).double()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    dw, pw = block.depthwise, block.pointwise
    assert count_parameters(block) == 4 * 9 + 4 + 4 * 6 + 6
    # full weight W[o, c] = pw[o, c] * dw[c]; bias = pw @ b_dw + b_pw
    weight = pw.weight[:, :, 0, 0, None, None] * dw.weight[:, 0][None]
    bias = pw.weight[:, :, 0, 0] @ dw.bias + pw.bias
    torch.testing.assert_close(block(x), F.conv2d(x, weight, bias, stride=2, padding=1))


def test_dense_block_concatenates_and_grows():
    block = DenseBlock(in_channels=8, growth_rate=4, num_layers=3, bottleneck=True)
    x = torch.randn(2, 8, 6, 6)
    out = block(x)
    assert out.shape == (2, 8 + 3 * 4, 6, 6)
    assert torch.equal(out[:, :8], x)  # the input is kept, not overwritten
    assert [layer.body[-1].in_channels for layer in block.layers] == [
        16,
        16,
        16,
    ]  # 1x1 -> 4k, 3x3 -> k
    assert [layer.body[2].in_channels for layer in block.layers] == [8, 12, 16]


def test_residual_block_1d_and_2d():
    b1 = ResidualBlock(4, 8, stride=2, dim=1)
    assert b1(torch.randn(2, 4, 40)).shape == (2, 8, 20)
    b2 = ResidualBlock(4, dim=2)
    assert b2(torch.randn(2, 4, 10, 10)).shape == (2, 4, 10, 10)
    plain = ResidualBlock(4, 8, stride=2, dim=2, residual=False)
    assert count_parameters(plain) < count_parameters(ResidualBlock(4, 8, stride=2, dim=2))
    # with F(x) = 0 (zero last BN scale) the block is relu(x): the identity for x >= 0
    with torch.no_grad():
        b2.bn2.weight.zero_()
    x = torch.rand(2, 4, 10, 10)
    torch.testing.assert_close(b2.eval()(x), x)
    with pytest.raises(ValueError, match=r"\(N, C, L\)"):
        b1(torch.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match="dim must be"):
        ResidualBlock(4, dim=3)


def test_drop_path_has_one_home():
    from course_lib.models import blocks

    assert not hasattr(blocks, "DropPath") and not hasattr(M, "DropPath")  # no re-export shims
    assert type(M.resnet_cifar(8, drop_path=0.1).stages[0][0].drop_path) is DropPath


def test_drop_path_drops_whole_examples():
    torch.manual_seed(0)
    layer = DropPath(0.5)
    x = torch.ones(1000, 3, 4, 4)
    y = layer(x)
    per_example = y.flatten(1)
    assert set(per_example.unique().tolist()) == {0.0, 2.0}
    assert (per_example.min(1).values == per_example.max(1).values).all()  # all-or-nothing
    assert abs(y.mean().item() - 1.0) < 0.1
    assert torch.equal(layer.eval()(x), x)
    depths = [b.drop_path.p for stage in M.resnet_cifar(20, drop_path=0.3).stages for b in stage]
    assert depths == pytest.approx([0.3 * (i + 1) / 9 for i in range(9)])  # linear decay rule


# ---------------------------------------------------------------------------
# utilities: summary, receptive field, initialisation, signal statistics
# ---------------------------------------------------------------------------
def test_summary_matches_torchvision_flops_and_counts():
    model = M.resnet18()
    table = summary(model, (3, 224, 224))
    total = table.iloc[-1]
    assert total["layer"] == "total"
    assert total["params"] == count_parameters(model) == table["params"].iloc[:-1].sum()
    assert total["output_shape"] == (1000,)
    # torchvision's published GFLOPS (multiply-adds) for ResNet-18: 1.814
    ops = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]
    assert round(total["mult_adds"] / 1e9, 3) == ops
    first = table.iloc[0]
    assert (first["layer"], first["output_shape"], first["params"]) == (
        "stem.0",
        (64, 112, 112),
        64 * 3 * 49,
    )
    assert first["mult_adds"] == 112 * 112 * 64 * 3 * 49
    assert model.training  # mode restored


def test_summary_on_the_meta_device_gives_vgg16_flops():
    with META:
        model = M.vgg("D")
    total = summary(model, (3, 224, 224)).iloc[-1]
    assert (
        round(total["mult_adds"] / 1e9, 2)
        == torchvision.models.VGG16_Weights.IMAGENET1K_V1.meta["_ops"]
    )
    assert total["params"] == 138_357_544


def test_summary_of_lenet_lists_every_layer():
    table = summary(M.lenet5(faithful=True), (1, 28, 28))
    rows = table.set_index("layer")
    assert rows.loc["c1", "output_shape"] == (6, 28, 28)
    assert rows.loc["s2", "output_shape"] == (6, 14, 14)
    assert rows.loc["c3", "output_shape"] == (16, 10, 10)
    assert rows.loc["c5", "output_shape"] == (120, 1, 1)
    assert rows.loc["c3", "params"] == 1516
    assert rows.loc["total", "params"] == 60_000


def empirical_receptive_field(geometry, size):
    """Side of the input region whose pixels change the centre output pixel (gradient != 0).

    Every layer becomes a 1-channel conv with all-ones weights (pools keep their geometry),
    so a pixel inside the receptive field always gets a strictly positive gradient."""
    layers = []
    for k, s, p, d in geometry:
        conv = nn.Conv2d(1, 1, k, s, p, d, bias=False).double()
        nn.init.ones_(conv.weight)
        layers.append(conv)
    net = nn.Sequential(*layers)
    x = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = net(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, 0, i, j], x)
    rows = grad[0, 0].abs().sum(1).nonzero().flatten()
    cols = grad[0, 0].abs().sum(0).nonzero().flatten()
    assert rows[0] > 0 and rows[-1] < size - 1, "receptive field clipped: use a larger input"
    assert rows[-1] - rows[0] == cols[-1] - cols[0]
    return int(rows[-1] - rows[0] + 1)


VGG16_GEOMETRY = []
for _n in (2, 2, 3, 3, 3):
    VGG16_GEOMETRY += [(3, 1, 1, 1)] * _n + [(2, 2, 0, 1)]


@pytest.mark.parametrize(
    "geometry,expected",
    [
        ([(3, 1, 1, 1)] * 2, 5),  # two stacked 3x3 see 5x5
        ([(3, 1, 1, 1)] * 3, 7),  # three see 7x7
        ([(3, 1, 1, 1), (2, 2, 0, 1), (3, 1, 1, 1)], 8),
        (
            [(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)],
            15,
        ),  # dilated (a-trous) stack grows exponentially
        ([(7, 2, 3, 1), (3, 2, 1, 1), (3, 1, 1, 1), (3, 1, 1, 1)], 27),  # ResNet stem + one block
        (VGG16_GEOMETRY[:-1], 196),  # VGG-16 conv5_3
        (VGG16_GEOMETRY, 212),  # VGG-16 after pool5
    ],
)
def test_receptive_field_known_values_and_gradient_check(geometry, expected):
    assert receptive_field(geometry) == expected
    assert empirical_receptive_field(geometry, size=expected + 40) == expected


def test_receptive_field_of_modules():
    with META:
        features = M.vgg("D").features
    assert receptive_field(features) == 212
    assert receptive_field(list(features)[:-1]) == 196
    assert (
        receptive_field([nn.Conv2d(1, 1, 3, padding=1), nn.ReLU(), nn.Conv2d(1, 1, 3, padding=1)])
        == 5
    )
    assert receptive_field([(3, 1), (3, 1)]) == 5  # padding and dilation may be omitted
    table = receptive_field_table(VGG16_GEOMETRY)
    assert [row.jump for row in table if row.name.startswith("layer")][-1] == 32
    with pytest.raises(ValueError, match="kernel, stride"):
        receptive_field([(3,)])


def test_init_helpers_set_the_textbook_variances():
    torch.manual_seed(0)
    layer = nn.Sequential(nn.Linear(400, 600))
    kaiming_init_(layer)
    assert abs(layer[0].weight.std().item() - math.sqrt(2 / 400)) < 0.002
    assert torch.count_nonzero(layer[0].bias) == 0
    xavier_init_(layer)
    assert abs(layer[0].weight.std().item() - math.sqrt(2 / (400 + 600))) < 0.002
    init_weights(layer, "normal", std=0.01)
    assert abs(layer[0].weight.std().item() - 0.01) < 0.0005
    init_weights(layer, "kaiming", distribution="uniform")
    assert abs(layer[0].weight.std().item() - math.sqrt(2 / 400)) < 0.002
    with pytest.raises(ValueError, match="scheme"):
        init_weights(layer, "orthogonal")


class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.Tanh())

    def forward(self, x):
        return x + self.f(x)


def test_signal_stats_shows_vanishing_gradients_and_the_residual_plus_one():
    torch.manual_seed(0)
    depth, width = 20, 32
    plain = nn.Sequential(
        *[nn.Sequential(nn.Linear(width, width), nn.Tanh()) for _ in range(depth)]
    )
    residual = nn.Sequential(*[_Residual(width) for _ in range(depth)])
    for net in (plain, residual):
        init_weights(net, "normal", std=0.05)  # too small: a plain stack loses the signal
    x = torch.randn(16, width)
    s_plain = signal_stats(plain, x)
    s_res = signal_stats(residual, x, modules=_Residual)
    s_res["weight_grad_norm"] = signal_stats(residual, x)["weight_grad_norm"]  # its Linear layers
    assert len(s_plain) == depth and list(s_plain["type"].unique()) == ["Linear"]
    assert len(s_res) == depth
    # plain: activations and the gradient reaching the first layer collapse
    assert s_plain["act_std"].iloc[-1] < 1e-6 * s_plain["act_std"].iloc[0]
    assert s_plain["grad_norm"].iloc[0] < 1e-6 * s_plain["grad_norm"].iloc[-1]
    assert s_res["weight_grad_norm"].iloc[0] > 1e3 * s_plain["weight_grad_norm"].iloc[0]
    # residual: dy/dx = 1 + dF/dx keeps both alive
    assert s_res["act_std"].iloc[-1] > 0.5 * s_res["act_std"].iloc[0]
    assert s_res["grad_norm"].iloc[0] > 0.5 * s_res["grad_norm"].iloc[-1]
    assert all(p.grad is None for p in plain.parameters())  # gradients cleared afterwards


def test_signal_stats_with_targets_and_names():
    model = M.resnet_cifar(8)
    stats = signal_stats(
        model, torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3]), modules=["stem.0", "fc"]
    )
    assert list(stats["layer"]) == ["stem.0", "fc"]
    assert stats[["act_std", "grad_norm", "weight_grad_norm"]].notna().all().all()
    with pytest.raises(ValueError, match="no submodule named"):
        signal_stats(model, torch.randn(2, 3, 32, 32), modules=["nope"])


def test_faithful_lenet_c3_multiply_adds_count_only_connected_kernels():
    from course_lib.models import lenet5, summary

    table = summary(lenet5(faithful=True, input_size=32), (1, 32, 32))
    c3 = table[table["layer"].str.endswith("c3")].iloc[0]
    assert c3["mult_adds"] == 60 * 5 * 5 * 10 * 10  # 60 connections, 5x5 kernels, 10x10 outputs


def test_batched_mlp_replicas_are_independent_linear_stacks():
    from course_lib.models import BatchedMLP, count_linear_regions, fit_batched

    torch.manual_seed(0)
    model = BatchedMLP(3, 4, 8, 2, depth=2)
    x = torch.randn(5, 4)
    out = model(x)
    assert out.shape == (3, 5, 2)
    for r in range(3):  # replica r equals an nn.Linear stack holding its weights
        layers = []
        for w, b in zip(model.w, model.b):
            lin = torch.nn.Linear(*w.shape[1:])
            lin.weight.data, lin.bias.data = w[r].T.detach(), b[r, 0].detach()
            layers += [lin, torch.nn.ReLU()]
        ref = torch.nn.Sequential(*layers[:-1])
        assert torch.allclose(out[r], ref(x), atol=1e-6)
    y = torch.randn(5, 2)
    before = torch.nn.functional.mse_loss(model(x), y.expand(3, 5, 2)).item()
    fit_batched(model, x, y, steps=50)
    assert torch.nn.functional.mse_loss(model(x), y.expand(3, 5, 2)).item() < before
    # a ReLU net with one hidden unit switching at x = 0.25 has two linear pieces on [-1, 1]
    one = BatchedMLP(1, 1, 1, 1)
    with torch.no_grad():
        one.w[0].fill_(1.0)
        one.b[0].fill_(-0.25)
    assert count_linear_regions(one) == 2
