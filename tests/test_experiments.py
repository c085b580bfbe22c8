import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from course_lib.data import TensorLoader
from course_lib.experiments import mean_spread, sweep, train_classifier


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + 3 * y[:, None].float()
    return x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_train_classifier_learns_and_builds_the_named_optimizer(optimizer):
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    trainer, hist = train_classifier(
        model,
        TensorLoader(x, y, batch_size=32, seed=0),
        TensorLoader(x, y, batch_size=200, shuffle=False),
        lr=0.05,
        epochs=5,
        optimizer=optimizer,
        device="cpu",
    )
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    assert type(trainer.optimizer) is expected[optimizer]
    assert hist.val_acc[-1] > 0.9 and hist.train_loss[-1] < hist.train_loss[0]


def test_train_classifier_stops_on_divergence_instead_of_raising():
    x, y = _blobs()
    x = x * 1e6
    torch.manual_seed(0)
    _, hist = train_classifier(
        nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 2)),
        TensorLoader(x, y, batch_size=32, seed=0),
        lr=1e3,
        epochs=5,
        device="cpu",
    )
    assert hist.stopped_reason is not None
    assert len(hist.train_loss) < 5 or not math.isfinite(hist.train_loss[-1])


def test_train_classifier_rejects_unknown_optimizer():
    x, y = _blobs(20)
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(nn.Linear(2, 2), TensorLoader(x, y), lr=0.1, epochs=1, optimizer="rmsprop")


def test_sweep_runs_every_point_and_seed_in_a_long_table():
    calls = []

    def fn(seed, lr, width):
        calls.append((seed, lr, width))
        return lr * width + seed

    df = sweep(fn, {"lr": [0.1, 1.0], "width": [2, 4, 8]}, seeds=(0, 1, 2))
    assert len(df) == 2 * 3 * 3 == len(set(calls))
    assert list(df.columns) == ["lr", "width", "seed", "value"]
    row = df[(df.lr == 1.0) & (df.width == 4) & (df.seed == 2)]
    assert row["value"].item() == pytest.approx(6.0)


def test_sweep_accepts_mappings_as_results():
    df = sweep(lambda seed, n: {"a": seed, "b": n * 10}, {"n": [1, 2]}, seeds=(0, 5))
    assert set(df.columns) == {"n", "seed", "a", "b"}
    assert df["b"].tolist() == [10, 10, 20, 20]


def test_mean_spread_matches_numpy_mean_and_sample_std():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        [
            {"norm": nrm, "bs": bs, "seed": s, "value": rng.normal()}
            for nrm in ("BN", "GN")
            for bs in (2, 8)
            for s in range(4)
        ]
    )
    table = mean_spread(df, "norm", "bs", fmt="{:.4f}")
    vals = df[(df.norm == "GN") & (df.bs == 8)]["value"].to_numpy()
    assert table.loc["GN", 8] == f"{vals.mean():.4f} ± {vals.std(ddof=1):.4f}"
    assert list(table.index) == ["BN", "GN"] and list(table.columns) == [2, 8]
    one = mean_spread(df, ["norm", "bs"])
    assert one.shape == (4, 1)


def test_mean_spread_with_several_values_gives_one_column_each():
    df = pd.DataFrame(
        {
            "name": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 1],
            "acc": [0.5, 0.7, 0.9, 0.9],
            "gap": [0.1, 0.3, 0.0, 0.2],
        }
    )
    table = mean_spread(df, "name", value=["acc", "gap"], fmt="{:.2f}")
    assert list(table.columns) == ["acc", "gap"] and list(table.index) == ["a", "b"]
    assert table.loc["a", "acc"] == f"0.60 ± {np.std([0.5, 0.7], ddof=1):.2f}"
    assert table.loc["b", "gap"] == f"0.10 ± {np.std([0.0, 0.2], ddof=1):.2f}"
    with pytest.raises(ValueError):
        mean_spread(df, "name", "seed", value=["acc", "gap"])
