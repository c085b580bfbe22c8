import math

import pytest
import torch
from torch import nn

from course_lib.data import TensorLoader
from course_lib.red_flags import curve_symptoms, forgotten_eval, largest_drop, red_flag_runs
from course_lib.train import History


def test_largest_drop_is_the_biggest_fall_between_neighbours():
    assert largest_drop([0.5, 0.7, 0.6, 0.65, 0.4]) == pytest.approx(0.25)
    assert largest_drop([0.1, 0.2, 0.3]) == 0.0
    assert largest_drop([0.3]) == 0.0


def test_curve_symptoms_reads_the_history():
    h = History(train_loss=[2.0, 1.0, 0.5, 0.4], val_acc=[0.2, 0.6, 0.9, 0.7])
    s = curve_symptoms(h, skip=1)
    assert s["epochs"] == 4 and s["train loss"] == 0.4 and s["val acc"] == 0.7
    assert (s["val acc min"], s["val acc max"]) == (0.6, 0.9)
    assert s["largest drop"] == pytest.approx(0.2) and s["stopped"] == ""
    empty = curve_symptoms(History(stopped_reason="non-finite loss"))
    assert empty["epochs"] == 0 and math.isnan(empty["train loss"]) and empty["stopped"]


def _blobs(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 2, generator=g) + 3 * y[:, None].float()
    return x, y


class _FirstBatch(nn.Module):
    """A linear classifier that remembers the first batch it trains on."""

    def __init__(self):
        super().__init__()
        self.lin, self.first = nn.Linear(2, 2), None

    def forward(self, x):
        if self.training and self.first is None:
            self.first = x.detach().clone()
        return self.lin(x)


def test_red_flag_runs_reproduces_each_symptom():
    x, y = _blobs()
    val = TensorLoader(x, y, batch_size=120, shuffle=False)
    made = []

    def make():
        made.append(_FirstBatch())
        return made[-1]

    runs = {
        "reference": {},
        "reference again": {},
        "over-regularised": dict(optimizer="sgd", lr=0.01, weight_decay=100.0),
        "sorted, unshuffled": dict(shuffle=False, sort_by_class=True),
    }
    table = red_flag_runs(make, x, y, val, runs, epochs=6, lr=0.05, batch_size=16, device="cpu")
    assert list(table.index) == list(runs)
    ref, again = table.loc["reference"], table.loc["reference again"]
    assert ref.equals(again) and ref["val acc"] > 0.9 and ref["stopped"] == ""
    # weight decay 100 pins the weights near 0: the loss stays at chance, ln 2
    assert table.loc["over-regularised", "train loss"] == pytest.approx(math.log(2), abs=0.05)
    sorted_first = made[-1].first
    assert torch.equal(sorted_first, x[torch.argsort(y, stable=True)][:16])
    assert (y[:16] == 0).sum() < 16  # the data themselves are not sorted
    with pytest.raises(ValueError, match="unknown"):
        red_flag_runs(make, x, y, val, {"bad": {"momentum": 0.5}}, epochs=1)


def test_red_flag_runs_stops_a_diverging_run():
    x, y = _blobs()
    x = x * 1e4
    val = TensorLoader(x, y, batch_size=120, shuffle=False)

    def make():
        return nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2))

    table = red_flag_runs(
        make, x, y, val, {"lr far too high": dict(optimizer="sgd", lr=1e4)}, epochs=3, device="cpu"
    )
    assert table.loc["lr far too high", "stopped"] == "NaN loss"


def test_forgotten_eval_uses_batch_statistics_and_updates_the_running_ones():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2  # interleaved: sorting matters
    x = (4 * y.float() - 2 + 0.1 * torch.randn(200, generator=g))[:, None]  # -2 or +2
    model = nn.Sequential(nn.BatchNorm1d(1), nn.Linear(1, 2))
    with torch.no_grad():  # class 1 iff the normalised input is positive
        model[1].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model[1].bias.zero_()
    out = forgotten_eval(model, x, y, batch_size=50)
    # each training-mode batch holds one class; BN centres it, so about half its examples flip
    assert 0.3 < out["train mode"] < 0.7
    assert out["eval mode afterwards"] == 1.0 and not model.training
    # the running mean followed the four class-sorted batches (momentum 0.1)
    xs = x[torch.argsort(y, stable=True)]
    mean = 0.0
    for i in range(0, 200, 50):
        mean = 0.9 * mean + 0.1 * xs[i : i + 50].mean().item()
    assert model[0].running_mean.item() == pytest.approx(mean, abs=1e-5)
