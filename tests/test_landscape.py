import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.landscape import layer_normalised_direction, loss_along, sharpness_curve


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))


def test_direction_has_each_parameters_norm():
    model = _model()
    d = layer_normalised_direction(model, torch.Generator().manual_seed(1))
    for p, t in zip(model.parameters(), d):
        assert t.shape == p.shape
        assert t.norm().item() == pytest.approx(p.norm().item(), rel=1e-5)


def test_loss_along_is_the_closed_form_quadratic_for_a_linear_least_squares_model():
    torch.manual_seed(0)
    x, y = torch.randn(50, 3), torch.randn(50, 1)
    lin = nn.Linear(3, 1, bias=False)
    w = lin.weight.detach().clone()
    d = [torch.randn_like(w)]
    alphas = np.linspace(-1, 1, 7)
    got = loss_along(lin, d, alphas, x, y, loss_fn=F.mse_loss)
    # L(w + a d) = mean((x (w + a d)^T - y)^2), computed directly
    want = [((x @ (w + a * d[0]).T - y) ** 2).mean().item() for a in alphas]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert torch.equal(lin.weight, w)  # weights restored


def test_loss_along_restores_weights_and_mode_and_checks_lengths():
    model = _model().train()
    before = [p.clone() for p in model.parameters()]
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    d = layer_normalised_direction(model)
    out = loss_along(model, d, [0.0, 0.5], x, y)
    assert out[0] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError):
        loss_along(model, d[:1], [0.0], x, y)


def test_sharpness_curve_shape_and_minimum_at_zero_for_a_fitted_model():
    torch.manual_seed(0)
    x = torch.randn(100, 3)
    y = (x[:, 0] > 0).long()
    model = nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    alphas = np.linspace(-1, 1, 5)
    curves = sharpness_curve(
        model, x, y, alphas, n_directions=4, generator=torch.Generator().manual_seed(0)
    )
    assert curves.shape == (4, 5)
    np.testing.assert_allclose(
        curves[:, 2], curves[0, 2]
    )  # alpha = 0: the same loss in every direction
    assert (curves.mean(0)[[0, 4]] > curves.mean(0)[2]).all()
