import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import regularisers as reg
from course_lib.ablation import (
    MixBatches,
    dropout_bn_mlp,
    per_example,
    train_variant,
    variance_shift,
    variant_scores,
)
from course_lib.data import TensorLoader
from course_lib.train import Callback, Trainer


@pytest.mark.parametrize("mix,fn", [("mixup", reg.mixup), ("cutmix", reg.cutmix)])
def test_mix_batches_gives_the_mixed_batch_and_soft_targets_of_the_regulariser(mix, fn):
    x, y = torch.rand(8, 1, 6, 6), torch.arange(8) % 3
    cb = MixBatches(mix, 1.0, num_classes=3, generator=torch.Generator().manual_seed(5))
    xm, soft = cb.on_batch_start(None, x, y)
    xr, ya, yb, lam = fn(x, y, 1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(xm, xr)
    assert soft.shape == (8, 3) and torch.allclose(soft.sum(1), torch.ones(8))
    logits = torch.randn(8, 3)
    # cross-entropy with the soft targets == the regulariser's two-term mixup loss
    assert F.cross_entropy(logits, soft).item() == pytest.approx(
        reg.mixup_loss(logits, ya, yb, lam).item(), rel=1e-5
    )


def test_mix_batches_rejects_unknown_mix():
    with pytest.raises(ValueError):
        MixBatches("mosaic", 1.0, 10)


def _digits(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.rand(n, 1, 8, 8, generator=g) * 0.3
    for c in range(4):  # class c: a bright quadrant
        x[y == c, :, (c // 2) * 4 : (c // 2) * 4 + 4, (c % 2) * 4 : (c % 2) * 4 + 4] += 0.7
    return x, y


def _small_net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32, 4),
    )


@pytest.mark.skipif(
    not hasattr(Callback, "on_batch_start"), reason="Trainer batch hook not available"
)
def test_trainer_trains_on_the_mixed_batches():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _small_net()

        def forward(self, x):
            if self.training:
                seen.append(x.detach().clone())
            return self.net(x)

    x, y = _digits()
    model = Spy()
    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        device="cpu",
        callbacks=[MixBatches("cutmix", 1.0, 4, generator=torch.Generator().manual_seed(0))],
    )
    trainer.fit(TensorLoader(x, y, batch_size=64, shuffle=False), epochs=1)
    assert len(seen) == 1 and not torch.equal(seen[0], x)  # the forward pass saw the CutMix batch


def test_train_variant_is_reproducible_and_learns():
    x, y = _digits()
    val = TensorLoader(x, y, batch_size=64, shuffle=False)
    runs = [
        train_variant(
            _small_net,
            x,
            y,
            val,
            epochs=15,
            lr=0.1,
            seed=s,
            batch_size=16,
            patience=None,
            device="cpu",
        )
        for s in (0, 0, 1)
    ]
    w = [next(m.parameters()).detach() for m, _ in runs]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    scores = variant_scores(runs[0][1], val, val)
    assert scores["test acc"] > 0.9 and scores["epochs"] == 15
    assert scores["test acc"] == pytest.approx(runs[0][1].evaluate(val)["acc"])
    assert scores["gap"] == pytest.approx(scores["train acc"] - scores["test acc"])
    assert 0.25 <= scores["mean confidence"] <= 1


def test_train_variant_early_stopping_and_label_smoothing_reach_the_trainer():
    x, y = _digits()
    val = TensorLoader(x, y, batch_size=64, shuffle=False)
    model, trainer = train_variant(
        _small_net,
        x,
        y,
        val,
        epochs=3,
        lr=0.05,
        label_smoothing=0.2,
        weight_decay=1e-3,
        device="cpu",
    )
    logits, yb = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 0])
    assert trainer.loss_fn(logits, yb).item() == pytest.approx(
        F.cross_entropy(logits, yb, label_smoothing=0.2).item()
    )
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 1e-3
    assert any(type(cb).__name__ == "EarlyStopping" for cb in trainer.callbacks)


def test_per_example_applies_the_transform_to_each_image():
    xb = torch.arange(12.0).reshape(3, 1, 2, 2)
    out = per_example(lambda img: img.flip(-1))(xb)
    assert torch.equal(out, xb.flip(-1))


@pytest.mark.parametrize(
    "placement,where",
    [
        ("before BN", ["Linear", "Dropout", "BatchNorm1d"]),
        ("after BN", ["BatchNorm1d", "ReLU", "Dropout"]),
    ],
)
def test_dropout_bn_mlp_places_dropout(placement, where):
    names = [type(m).__name__ for m in dropout_bn_mlp(placement, 10, 3, width=8)]
    i = names.index("Dropout")
    assert names[i - where.index("Dropout") : i - where.index("Dropout") + 3] == where
    assert names.count("Dropout") == 3 and names.count("BatchNorm1d") == 3


def test_dropout_bn_mlp_only_before_classifier_and_none():
    names = [type(m).__name__ for m in dropout_bn_mlp("only before classifier", 10, 3, width=8)]
    assert names[-2:] == ["Dropout", "Linear"] and names.count("Dropout") == 1
    assert "Dropout" not in [type(m).__name__ for m in dropout_bn_mlp("no dropout", 10, 3)]
    with pytest.raises(ValueError):
        dropout_bn_mlp("everywhere", 10, 3)


def test_variance_shift_is_test_variance_over_running_variance():
    torch.manual_seed(0)
    bn1, bn2 = nn.BatchNorm1d(4), nn.BatchNorm2d(2)
    bn1.running_var.fill_(2.0)
    bn2.running_var.copy_(torch.tensor([1.0, 4.0]))
    x = torch.randn(5000, 4)
    img = torch.randn(500, 2, 3, 3)
    assert variance_shift(bn1, x) == [pytest.approx(0.5, rel=0.05)]
    assert variance_shift(bn2, img) == [pytest.approx((1 + 0.25) / 2, rel=0.05)]
    assert not bn1.training


def test_dropout_before_bn_shifts_the_variance_after_training_mode_statistics():
    torch.manual_seed(0)
    model = dropout_bn_mlp("before BN", 20, 3, p=0.5, width=32)
    x = torch.randn(512, 20)
    model.train()
    with torch.no_grad():
        for _ in range(50):  # collect running statistics with dropout on
            model(x)
    shift = variance_shift(model, x)
    assert len(shift) == 3 and shift[0] < 0.8  # inverted dropout p=0.5 raises train variance
    clean = dropout_bn_mlp("no dropout", 20, 3, width=32).train()
    with torch.no_grad():
        for _ in range(50):
            clean(x)
    assert variance_shift(clean, x)[0] == pytest.approx(1.0, abs=0.05)
