"""course_lib.interpret against independent oracles: Captum's attributions, a model whose
channel was zeroed by hand, scipy's Spearman correlation, the receptive-field recurrence."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from scipy.stats import spearmanr
from torch import nn

from course_lib import interpret
from course_lib.models import receptive_field

# Captum's Saliency says so when it switches on requires_grad for the input itself
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def small_model(seed: int = 0) -> nn.Sequential:
    """conv3x3(1->4) ReLU maxpool conv3x3(4->6) ReLU, GAP, linear(6->3); float64."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).double().eval()  # fmt: skip


@pytest.fixture
def model() -> nn.Sequential:
    return small_model()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(5, 1, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


TARGET = torch.tensor([0, 1, 2, 1, 0])


@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_matches_captum(model, x, use_abs):
    ours = interpret.saliency(model, x, TARGET, abs=use_abs)
    theirs = Saliency(model).attribute(x, target=TARGET, abs=use_abs)
    assert ours.shape == x.shape
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


def test_saliency_int_target_is_every_example(model, x):
    torch.testing.assert_close(
        interpret.saliency(model, x, 2), interpret.saliency(model, x, torch.full((5,), 2))
    )


@pytest.mark.parametrize("baseline", [None, 0.3])
def test_integrated_gradients_matches_captum_right_rule(model, x, baseline):
    ours = interpret.integrated_gradients(
        model, x, TARGET, baseline=baseline, steps=16, batch_size=7
    )
    theirs = IntegratedGradients(model).attribute(
        x, baselines=0.0 if baseline is None else baseline, target=TARGET, n_steps=16,
        method="riemann_right",
    )  # fmt: skip
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_integrated_gradients_completeness(model, x):
    ig = interpret.integrated_gradients(model, x, TARGET, steps=400)
    rows = torch.arange(5)
    with torch.no_grad():
        gap = model(x)[rows, TARGET] - model(torch.zeros_like(x))[rows, TARGET]
    torch.testing.assert_close(ig.sum(dim=(1, 2, 3)), gap, rtol=0.02, atol=1e-3)


@pytest.mark.parametrize("layer_index", [0, 4])
def test_grad_cam_matches_captum(model, x, layer_index):
    layer = model[layer_index]
    ours = interpret.grad_cam(model, layer, x, TARGET)
    theirs = LayerGradCam(model, layer).attribute(x, target=TARGET, relu_attributions=True)
    assert ours.shape == (5, *theirs.shape[2:])
    assert (ours > 0).any()
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_grad_cam_upsampled_matches_captum_interpolate(model, x, mode):
    layer = model[4]
    ours = interpret.grad_cam(model, layer, x, TARGET, upsample=mode)
    cam = LayerGradCam(model, layer).attribute(x, target=TARGET, relu_attributions=True)
    theirs = LayerAttribution.interpolate(cam, (12, 12), interpolate_mode=mode)
    assert ours.shape == (5, 12, 12)
    torch.testing.assert_close(ours, theirs[:, 0], rtol=1e-10, atol=1e-12)


def test_ablate_channels_equals_hand_zeroed_model(model, x):
    c = int(interpret.channel_responses(model, model[4], x, reduce="mean").mean(0).argmax())
    hand = small_model()
    with torch.no_grad():  # the most active channel of conv2 outputs exactly 0
        hand[3].weight[c] = 0
        hand[3].bias[c] = 0
    with interpret.ablate_channels(model[3], [c]):
        ablated = model(x)
    torch.testing.assert_close(ablated, hand(x), rtol=0, atol=1e-12)
    assert (model(x) - hand(x)).abs().max() > 1e-3  # the channel mattered, and the hook is gone
    assert len(model[3]._forward_hooks) == 0


def test_activations_and_channel_responses(model, x):
    a = interpret.activations(model, model[4], x)
    assert a.shape == (5, 6, 6, 6)
    r = interpret.channel_responses(model, model[4], x, reduce="max", batch_size=2)
    torch.testing.assert_close(r, a.amax(dim=(2, 3)))
    torch.testing.assert_close(
        interpret.channel_responses(model, model[4], x, reduce="mean"), a.mean(dim=(2, 3))
    )


def test_unit_gradient_stays_inside_the_receptive_field(model):
    x = torch.rand(1, 1, 21, 21, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grad = interpret.unit_input_gradient(model, model[3], x, position=(5, 5))[0, 0]
    size = receptive_field(list(model)[:4])  # conv3, pool2, conv3: 3 + 1 + 2*2 = 8
    rows, cols = torch.nonzero(grad, as_tuple=True)
    assert size == 8
    assert 0 < rows.max() - rows.min() + 1 <= size and 0 < cols.max() - cols.min() + 1 <= size


@pytest.mark.parametrize("decorrelate", [False, True])
@pytest.mark.parametrize("regularise", [False, True])
def test_activation_maximisation_beats_random_images(decorrelate, regularise):
    """A ReLU unit behind a horizontal-derivative kernel: the optimised image must excite it
    more than any of 256 random images, with its structure along x (vertical stripes)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-1.0, 0.0, 1.0]] * 3).view(1, 1, 3, 3))
        model[0].bias.zero_()
    rand = torch.rand(256, 1, 12, 12, generator=torch.Generator().manual_seed(5))
    best_random = interpret.activations(model, model[1], rand).mean(dim=(1, 2, 3)).max()
    kwargs = dict(jitter=1, blur_every=4, sigma=0.5) if regularise else {}
    img = interpret.activation_maximisation(
        model, model[1], 0, steps=40, lr=0.1, decorrelate=decorrelate, shape=(1, 12, 12), **kwargs
    )
    after = interpret.activations(model, model[1], img).mean()
    assert img.shape == (1, 1, 12, 12) and 0 <= img.min() and img.max() <= 1
    assert after > 1.5 * best_random
    dx = (img[..., :, 1:] - img[..., :, :-1]).abs().mean()
    dy = (img[..., 1:, :] - img[..., :-1, :]).abs().mean()
    assert dx > 2 * dy


def test_randomise_weights_full_and_cascading(model, x):
    full = interpret.randomise_weights(model, seed=1)
    top = interpret.randomise_weights(model, seed=1, n_layers=1)
    assert torch.equal(model[0].weight, small_model()[0].weight)  # original untouched
    assert torch.equal(top[0].weight, model[0].weight) and not torch.equal(
        top[7].weight, model[7].weight
    )
    assert all(not torch.equal(p, q) for p, q in zip(full.parameters(), model.parameters()))
    same = interpret.randomise_weights(model, seed=1, n_layers=0)
    rho_same = interpret.spearman(
        interpret.saliency(model, x, TARGET), interpret.saliency(same, x, TARGET)
    )
    rho_random = interpret.spearman(
        interpret.saliency(model, x, TARGET), interpret.saliency(full, x, TARGET)
    )
    assert torch.all(rho_same == 1.0)
    assert rho_random.mean() < 0.7


def test_randomise_weights_keeps_normalisation_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.LazyLinear(3))
    model(torch.rand(4, 1, 6, 6))  # materialise the lazy layer, update running statistics
    rand = interpret.randomise_weights(model, seed=0)
    assert not torch.equal(rand[0].weight, model[0].weight)
    assert not torch.equal(rand[3].weight, model[3].weight)
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(rand[1], key), getattr(model[1], key))
    with pytest.raises(ValueError):
        interpret.randomise_weights(model, n_layers=3)


def test_spearman_matches_scipy_with_ties():
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 5, (7, 7), generator=gen).double()  # many ties
    b = a + torch.randn(7, 7, generator=gen, dtype=torch.float64)
    assert interpret.spearman(a, b) == pytest.approx(
        spearmanr(a.flatten(), b.flatten())[0], abs=1e-12
    )
    batch = interpret.spearman(a.expand(3, 1, 7, 7), b.expand(3, 1, 7, 7))
    assert batch.shape == (3,)


def test_gratings_orientation():
    g = interpret.gratings(size=16, angles=(0, 90), wavelength=4.0, phases=2)
    assert g.shape == (4, 1, 16, 16) and g.min() >= 0 and g.max() <= 1
    vertical, horizontal = g[0, 0], g[2, 0]
    torch.testing.assert_close(vertical, vertical[0].expand(16, 16))  # constant along y
    torch.testing.assert_close(horizontal, horizontal[:, 0:1].expand(16, 16))  # constant along x
