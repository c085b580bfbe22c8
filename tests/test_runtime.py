import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from course_lib import runtime


def test_profile_default_follows_device(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert runtime.profile() == expected


@pytest.mark.parametrize("value", ["ci", "cpu", "gpu", " CPU "])
def test_profile_reads_environment(monkeypatch, value):
    monkeypatch.setenv("COURSE_PROFILE", value)
    assert runtime.profile() == value.strip().lower()


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match="ci, cpu, gpu"):
        runtime.profile()


def test_get_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    dev = runtime.get_device()
    assert dev.type == ("cuda" if torch.cuda.is_available() else dev.type)
    assert runtime.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_seed_everything_repeats_all_generators():
    runtime.seed_everything(123)
    a = _draws()
    runtime.seed_everything(123)
    assert _draws() == a
    runtime.seed_everything(124)
    assert _draws() != a


class _NumpyNoise(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.tensor([i, np.random.randint(1_000_000)])


def _epoch(seed):
    g = runtime.seed_everything(seed)
    loader = DataLoader(
        _NumpyNoise(), batch_size=2, shuffle=True, num_workers=2,
        worker_init_fn=runtime.seed_worker, generator=g,
    )  # fmt: skip
    return torch.cat(list(loader)).tolist()


def test_dataloader_workers_are_seeded():
    first, second = _epoch(7), _epoch(7)
    assert first == second  # same shuffling order and same NumPy draws in the workers
    noise = [row[1] for row in first]
    assert len(set(noise)) > 1, "workers must not share one NumPy stream"


def test_report_prints_versions(capsys):
    info = runtime.report()
    out = capsys.readouterr().out
    for key in ("torch", "torchvision", "device", "profile"):
        assert key in info and info[key] in out
