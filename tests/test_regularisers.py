"""course_lib.regularisers against torch's own implementations and hand-computed values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from course_lib import regularisers as R


def _small_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4 * 5 * 5, 8),
        nn.LayerNorm(8),
        nn.Linear(8, 3, bias=False),
    )


def test_decay_parameter_split():
    net = _small_net()
    decay, no_decay = R.decay_parameters(net), R.no_decay_parameters(net)
    assert [tuple(p.shape) for p in decay] == [(4, 1, 3, 3), (8, 100), (3, 8)]
    assert {id(p) for p in decay}.isdisjoint(id(p) for p in no_decay)
    assert len(decay) + len(no_decay) == len(list(net.parameters()))
    assert all(p.ndim == 1 for p in no_decay)  # biases, BatchNorm and LayerNorm gamma/beta
    groups = R.param_groups(net, 5e-4)
    assert groups[0]["weight_decay"] == 5e-4 and groups[1]["weight_decay"] == 0.0
    torch.optim.AdamW(groups, lr=1e-3)  # accepted by torch as it is
    shared = nn.Linear(3, 3)
    assert len(R.decay_parameters(nn.Sequential(shared, shared))) == 1


def test_penalties_values_and_gradients():
    w = torch.tensor([[1.0, -2.0], [0.5, 0.0]], requires_grad=True)
    b = torch.tensor([3.0, -1.0], requires_grad=True)
    assert R.l1_penalty([w, b]).item() == pytest.approx(3.5 + 4.0)
    assert R.l2_penalty([w, b]).item() == pytest.approx(0.5 * (5.25 + 10.0))
    en = R.elastic_net_penalty(w, l1_ratio=0.3)
    assert en.item() == pytest.approx(0.3 * 3.5 + 0.7 * 0.5 * 5.25)
    (grad,) = torch.autograd.grad(R.l2_penalty(w), w)
    assert torch.equal(grad, w.detach())  # d/dw ½ w² = w
    (grad,) = torch.autograd.grad(R.l1_penalty(w), w)
    assert torch.equal(grad, torch.sign(w.detach()))
    # a model: only its decay parameters are penalised
    net = _small_net()
    expected = sum(0.5 * (p**2).sum() for p in R.decay_parameters(net))
    assert torch.allclose(R.l2_penalty(net), expected)
    with pytest.raises(ValueError):
        R.elastic_net_penalty(w, l1_ratio=1.5)


def test_l2_penalty_equals_sgd_weight_decay():
    """Loss + λ·l2_penalty with plain SGD = torch.optim.SGD(weight_decay=λ)."""
    torch.manual_seed(1)
    x, y = torch.randn(32, 5), torch.randint(0, 3, (32,))
    a, b = nn.Linear(5, 3, bias=False), nn.Linear(5, 3, bias=False)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(20):
        opt_a.zero_grad()
        (F.cross_entropy(a(x), y) + 0.01 * R.l2_penalty(a)).backward()
        opt_a.step()
        opt_b.zero_grad()
        F.cross_entropy(b(x), y).backward()
        opt_b.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
def test_label_smoothing_equals_torch(eps):
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(50, 7, generator=g), torch.randint(0, 7, (50,), generator=g)
    for reduction in ("mean", "sum", "none"):
        ours = R.label_smoothing_cross_entropy(logits, target, eps, reduction)
        ref = F.cross_entropy(logits, target, label_smoothing=eps, reduction=reduction)
        assert torch.allclose(ours, ref, atol=1e-6)
    module = R.LabelSmoothingCrossEntropy(eps)
    assert torch.allclose(
        module(logits, target), F.cross_entropy(logits, target, label_smoothing=eps)
    )


def test_mixup_and_loss():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 3, 8, 8, generator=g), torch.randint(0, 5, (16,), generator=g)
    xm, y_a, y_b, lam = R.mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert 0.0 <= lam <= 1.0 and torch.equal(y_a, y)
    assert 0.0 < lam < 1.0
    # every mixed image is λ x_i + (1 − λ) x_j for one partner j, and y_b[i] = y[j]
    partner_part = (xm - lam * x) / (1 - lam)  # (16, 3, 8, 8): should be some x_j
    dist = (partner_part.flatten(1)[:, None, :] - x.flatten(1)[None, :, :]).abs().amax(-1)
    j = dist.argmin(1)
    assert torch.all(dist[torch.arange(16), j] < 1e-4)
    assert sorted(j.tolist()) == list(range(16))  # a permutation of the batch
    assert torch.equal(y_b, y[j])
    again = R.mixup(x, y, alpha=0.4, generator=torch.Generator().manual_seed(0))
    assert again[3] == lam and torch.equal(again[0], xm)  # reproducible from the generator
    assert R.mixup(x, y, alpha=0.0)[3] == 1.0
    # the loss equals the cross-entropy with the mixed soft label
    logits = torch.randn(16, 5, generator=g)
    soft = lam * F.one_hot(y_a, 5) + (1 - lam) * F.one_hot(y_b, 5)
    assert torch.allclose(
        R.mixup_loss(logits, y_a, y_b, lam), F.cross_entropy(logits, soft.float())
    )


def test_cutmix_box_and_lambda():
    g = torch.Generator().manual_seed(4)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 16, 16).clone()  # image i is all i
    y = torch.arange(4)
    for seed in range(20):
        xm, y_a, y_b, lam = R.cutmix(x, y, alpha=1.0, generator=g.manual_seed(seed))
        assert torch.equal(x[:, 0, 0, 0], torch.arange(4.0))  # input untouched
        for i in range(4):
            own = (xm[i] == i).float().mean().item()
            if y_b[i] != i:
                assert own == pytest.approx(lam)  # λ = fraction of the image still its own
            assert torch.all((xm[i] == i) | (xm[i] == y_b[i].float()))
    with pytest.raises(ValueError, match="N, C, H, W"):
        R.cutmix(torch.randn(4, 10), y)


def test_drop_path_matches_torchvision_stochastic_depth():
    x = torch.randn(64, 3, 4, 4)
    for p in (0.0, 0.2, 0.5, 1.0):
        torch.manual_seed(5)
        ours = R.drop_path(x, p, training=True)
        torch.manual_seed(5)
        ref = torchvision.ops.stochastic_depth(x, p, "row", training=True)
        assert torch.equal(ours, ref)
    assert torch.equal(R.drop_path(x, 0.5, training=False), x)
    out = R.DropPath(0.5).train()(x)
    kept = out.flatten(1).abs().sum(1) > 0
    assert torch.allclose(out[kept], 2 * x[kept])  # whole samples dropped, survivors × 1/(1-p)
    assert 10 < kept.sum() < 54
    assert torch.equal(R.DropPath(0.5).eval()(x), x)


def test_mc_dropout_keeps_batchnorm_in_eval_and_restores_modes():
    net = _small_net()
    x = torch.randn(10, 1, 5, 5)
    net.train()
    net(torch.randn(32, 1, 5, 5))  # give BatchNorm some running statistics
    bn = net[1]
    running = bn.running_mean.clone()
    pred = R.mc_dropout_predict(net, x, n_samples=40)
    assert torch.equal(bn.running_mean, running)  # BatchNorm did not update
    assert all(m.training for m in net.modules())  # modes restored
    assert pred.mean.shape == (10, 3) and torch.allclose(pred.mean.sum(1), torch.ones(10))
    assert (pred.mutual_information > 0).all()  # the masks disagree
    assert (pred.mutual_information <= pred.entropy + 1e-6).all()
    # without dropout active the passes agree with plain eval-mode inference
    net[4].p = 0.0
    pred0 = R.mc_dropout_predict(net, x, n_samples=3)
    net.eval()
    assert torch.allclose(pred0.mean, torch.softmax(net(x), 1), atol=1e-6)
    assert torch.allclose(pred0.mutual_information, torch.zeros(10), atol=1e-6)


def test_ensemble_predict():
    torch.manual_seed(6)
    models = [nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)) for _ in range(3)]
    x = torch.randn(5, 4)
    pred = R.ensemble_predict(models, x)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m.eval()(x), 1) for m in models]).mean(0)
    assert torch.allclose(pred.mean, expected)
    assert torch.allclose(pred.entropy, -(expected * expected.log()).sum(1), atol=1e-6)
    assert torch.allclose(R.ensemble_predict(models[:1], x).mutual_information, torch.zeros(5))
    with pytest.raises(ValueError):
        R.ensemble_predict([], x)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        R.ensemble_predict([nn.Sequential(nn.Linear(4, 1), nn.Flatten(0))], x)


@pytest.mark.parametrize("max_norm", [0.01, 1.0, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch.manual_seed(7)
    a = _small_net()
    b = _small_net()
    x = torch.randn(8, 1, 5, 5)
    for net in (a, b):
        net.eval()(x).pow(2).sum().backward()  # eval: no dropout, same forward pass
    ours = R.clip_grad_norm(a.parameters(), max_norm, norm_type)
    ref = torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm, norm_type)
    assert ours == pytest.approx(float(ref), rel=1e-6)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-5, atol=1e-8)
    assert R.clip_grad_norm([torch.zeros(2, requires_grad=True)], 1.0) == 0.0  # no gradients


def test_regularisers_does_not_reexport_early_stopping():
    assert not hasattr(R, "EarlyStopping") and "EarlyStopping" not in R.__all__


class DropoutMLP(nn.Module):
    """A model whose class NAME contains "dropout": it is not a dropout layer."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.0))
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_mc_dropout_finds_dropout_layers_by_type_not_by_name():
    torch.manual_seed(2)
    net = DropoutMLP()
    net.train()
    net(torch.randn(32, 6))  # BatchNorm running statistics
    running = net.body[1].running_mean.clone()
    x = torch.randn(7, 6)
    pred = R.mc_dropout_predict(net, x, n_samples=3)
    assert torch.equal(net.body[1].running_mean, running)  # BatchNorm stayed in eval mode
    with torch.no_grad():
        expected = torch.softmax(net.eval()(x), 1)
    assert torch.allclose(pred.mean, expected, atol=1e-6)  # p = 0: every pass is eval-mode


def test_mc_dropout_switches_every_kind_of_dropout_layer():
    from course_lib import layers

    kinds = [nn.Dropout(0.5), nn.Dropout1d(0.5), nn.AlphaDropout(0.5), layers.Dropout(0.5),
             R.DropPath(0.5), torchvision.ops.StochasticDepth(0.5, "row")]  # fmt: skip
    x = torch.randn(16, 4, 5)
    for layer in kinds:
        net = nn.Sequential(layer, nn.Flatten(), nn.Linear(20, 3))
        pred = R.mc_dropout_predict(net, x, n_samples=6)
        assert (pred.mutual_information > 0).any(), type(layer).__name__


class Denormalizer(nn.Module):
    """A class NAME containing "norm", holding a weight matrix that should be decayed."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x @ self.weight


def test_norm_layers_are_recognised_by_type_not_by_name():
    from course_lib import layers

    net = nn.Sequential(Denormalizer(), nn.LayerNorm([2, 2]), layers.LayerNorm([2, 2]),
                        layers.BatchNorm2d(4), nn.GroupNorm(2, 4))  # fmt: skip
    decay = {id(p) for p in R.decay_parameters(net)}
    assert decay == {id(net[0].weight)}  # (2, 2) LayerNorm scales are not decayed
    assert len(R.no_decay_parameters(net)) == len(list(net.parameters())) - 1
