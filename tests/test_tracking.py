import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from course_lib.data import TensorLoader
from course_lib.tracking import CSVLogger, GradNormLogger, TensorBoardLogger, read_scalars
from course_lib.train import Trainer


def _fit(callbacks, epochs=3, grad_clip=None):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (96,), generator=g)
    x = torch.randn(96, 3, generator=g) + 2 * y[:, None].float()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    trainer = Trainer(
        model, torch.optim.SGD(model.parameters(), lr=0.1), device="cpu",
        callbacks=callbacks, grad_clip=grad_clip, progress=False,
    )  # fmt: skip
    hist = trainer.fit(
        TensorLoader(x, y, batch_size=32, seed=0), TensorLoader(x, y, shuffle=False), epochs
    )
    return trainer, hist


def test_csv_and_tensorboard_logs_read_back_equal_the_history(tmp_path):
    tb = TensorBoardLogger(tmp_path / "tb", every_n_steps=1, hparams={"lr": 0.1})
    _, hist = _fit([CSVLogger(tmp_path / "log.csv"), tb])
    frame = hist.to_frame()
    csv = pd.read_csv(tmp_path / "log.csv").set_index("epoch")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        np.testing.assert_allclose(csv[key].to_numpy(), frame[key].to_numpy(), rtol=1e-12)
    scalars = read_scalars(tmp_path / "tb")
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "time"):
        got = scalars[f"epoch/{key}"].dropna()
        assert got.index.tolist() == [1, 2, 3]
        np.testing.assert_allclose(got.to_numpy(), np.float32(getattr(hist, key)), rtol=1e-6)
    assert scalars["step/train_loss"].dropna().index.tolist() == list(range(1, 10))


def test_csv_logger_overwrites_unless_appending(tmp_path):
    path = tmp_path / "log.csv"
    _fit([CSVLogger(path)], epochs=2)
    _fit([CSVLogger(path)], epochs=2)
    assert len(pd.read_csv(path)) == 2
    _fit([CSVLogger(path, append=True)], epochs=2)
    assert pd.read_csv(path)["epoch"].tolist() == [1, 2, 1, 2]


def test_grad_norm_logger_sees_the_norm_before_clipping():
    seen = []

    class Probe(GradNormLogger):
        def on_after_backward(self, trainer, step):
            super().on_after_backward(trainer, step)
            grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters()])
            seen.append(float(grads.norm()))

    probe = Probe()
    _, hist = _fit([probe], epochs=2, grad_clip=1e-3)
    np.testing.assert_allclose(probe.norms, seen, rtol=1e-5)
    assert len(probe.norms) == 6 and max(probe.norms) > 1e-3  # unclipped values
    assert hist.extra["grad_norm_max"] == pytest.approx([max(seen[:3]), max(seen[3:])])
    assert all(math.isfinite(v) for v in probe.norms)
