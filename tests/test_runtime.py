import os
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


def _fake_hardware(monkeypatch, cuda: bool, mps: bool, gpus: int = 1):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    "cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _fake_hardware(monkeypatch, cuda, mps)
    assert runtime.get_device() == torch.device(expected)
    assert runtime.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert runtime.get_device() == torch.device("cpu")


def test_get_device_gives_each_torchrun_process_its_gpu(monkeypatch):
    _fake_hardware(monkeypatch, cuda=True, mps=False, gpus=2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun sets it for the second process
    assert runtime.get_device() == torch.device("cuda", 1)
    assert runtime.get_device("cuda") == torch.device("cuda", 1)
    assert runtime.get_device("cuda:0") == torch.device("cuda", 0)  # an explicit index wins
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


def test_deterministic_mode_can_be_switched_off_again():
    try:
        runtime.seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        runtime.seed_everything(0)
        assert not torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.deterministic
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def test_seed_everything_does_not_pretend_to_set_hash_seed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    runtime.seed_everything(3)
    assert "PYTHONHASHSEED" not in os.environ  # str hashing is fixed at interpreter start


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
