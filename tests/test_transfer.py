import math

import pytest
import torch
from torch import nn

from course_lib.data import ArrayDataset
from course_lib.models import small_convnet
from course_lib.transfer import few_shot_run, fresh_head, frozen_features, replace_output_layer


def _quadrants(n=80, seed=0):
    """16x16 images; class c (0..3) has a bright quadrant c."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.rand(n, 1, 16, 16, generator=g) * 0.3
    for c in range(4):
        x[y == c, :, (c // 2) * 8 : (c // 2) * 8 + 8, (c % 2) * 8 : (c % 2) * 8 + 8] += 0.7
    return ArrayDataset(x, y, [str(c) for c in range(4)], name="quadrants")


def _net(batch_norm=True):
    return small_convnet(in_channels=1, num_classes=4, width=4, batch_norm=batch_norm)


def _accuracy(model, ds):
    model.eval()
    with torch.no_grad():
        return (model(ds.x).argmax(1) == ds.y).float().mean().item()


def test_frozen_features_are_the_pooled_body_output_in_eval_mode():
    torch.manual_seed(0)
    model = _net().train()
    with torch.no_grad():  # non-trivial running statistics, so eval and train mode differ
        model.features[3].running_mean.fill_(0.5)
    x = torch.rand(7, 1, 16, 16)
    feats = frozen_features(model, x, batch_size=3)  # several batches
    model.eval()
    with torch.no_grad():
        expected = model.pool(model.features(x))
    assert torch.allclose(feats, expected, atol=1e-6)
    assert isinstance(model.classifier, nn.Sequential)  # the model itself keeps its head
    assert not feats.requires_grad


def test_fresh_head_draws_like_the_layers_written_by_hand():
    head = _net().classifier  # Flatten, Linear(16, 16), Linear(16, 4)
    torch.manual_seed(3)
    new = fresh_head(head, num_classes=6)
    torch.manual_seed(3)
    by_hand = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Linear(16, 6))
    assert [type(m) for m in new] == [type(m) for m in by_hand]
    for a, b in zip(new.parameters(), by_hand.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(new[1].weight, head[1].weight)
    lin = fresh_head(nn.Linear(5, 2, bias=False), 3)
    assert lin.weight.shape == (3, 5) and lin.bias is None
    with pytest.raises(TypeError):
        fresh_head(nn.Sequential(nn.Conv2d(1, 1, 1), nn.Linear(2, 2)), 2)


def test_replace_output_layer_keeps_the_hidden_layer():
    model = _net()
    hidden = model.classifier[1].weight.clone()
    replace_output_layer(model, 7)
    assert torch.equal(model.classifier[1].weight, hidden)
    assert model(torch.rand(2, 1, 16, 16)).shape == (2, 7)
    fc_model = nn.Module()
    fc_model.fc = nn.Linear(4, 10)
    replace_output_layer(fc_model, 3, head="fc")
    assert fc_model.fc.out_features == 3


@pytest.mark.parametrize("strategy", ["head only", "whole network", "from scratch"])
def test_with_zero_learning_rate_each_strategy_starts_where_it_should(strategy):
    # No BatchNorm: with lr 0 the trained model is exactly its starting point.
    torch.manual_seed(0)
    pre = _net(batch_norm=False)
    pool, test = _quadrants(40, seed=1), _quadrants(40, seed=2)
    before = {k: v.clone() for k, v in pre.state_dict().items()}
    acc = few_shot_run(
        strategy,
        pre,
        lambda: _net(False),
        pool,
        test,
        k=2,
        seed=5,
        steps=3,
        lr=0.0,
        head_lr=0.0,
        device="cpu",
    )["test acc"]
    torch.manual_seed(5)  # the oracle: the same starting model, written by hand
    if strategy == "head only":
        head = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.Linear(16, 4))
        with torch.no_grad():
            expected = (head(pre.pool(pre.features(test.x))).argmax(1) == test.y).float().mean()
        expected = expected.item()
    else:
        start = _net(False)
        if strategy == "whole network":
            start.load_state_dict(pre.state_dict())
            start.classifier[-1] = nn.Linear(16, 4)
        expected = _accuracy(start, test)
    assert acc == pytest.approx(expected)
    assert all(torch.equal(v, before[k]) for k, v in pre.state_dict().items())


def test_runs_whole_epochs_until_the_steps_are_done(monkeypatch):
    calls = []
    original = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    pool = _quadrants(40)
    out = few_shot_run(
        "from scratch", _net(), _net, pool, pool, k=3, seed=0, steps=5, batch_size=5, device="cpu"
    )
    batches = math.ceil(4 * 3 / 5)  # 12 labelled examples in batches of 5: 3 per epoch
    assert len(calls) == out["steps"] == math.ceil(5 / batches) * batches == 6


def test_few_shot_run_is_reproducible_and_learns():
    torch.manual_seed(0)
    pre = _net()
    pool, test = _quadrants(200, seed=1), _quadrants(100, seed=2)
    runs = [
        few_shot_run("from scratch", pre, _net, pool, test, k=20, seed=s, steps=60, device="cpu")
        for s in (0, 0, 1)
    ]
    assert runs[0] == runs[1]
    assert runs[0]["test acc"] > 0.8  # 4 easy classes: far above chance (0.25)
    with pytest.raises(ValueError, match="strategy"):
        few_shot_run("linear probe", pre, _net, pool, test, k=2, seed=0, steps=1, device="cpu")
