"""Sharding loaders for DDP without a process group: each rank's part, checked by hand.

The two-process runs with torchrun live in test_train.py (test_ddp_*)."""

import pytest
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    SequentialSampler,
    TensorDataset,
    WeightedRandomSampler,
)
from torch.utils.data.distributed import DistributedSampler

from course_lib.data import TensorLoader
from course_lib.distributed import ShardSampler, distributed_env, shard_loader

N = 11  # odd: the shards of 2 processes differ in length


def _ds():
    return TensorDataset(torch.arange(N).float().unsqueeze(1), torch.arange(N))


def _labels(loader):
    return torch.cat([yb for _, yb in loader]).tolist()


def test_distributed_env(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert distributed_env() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_env() == (3, 4, 1)


def test_one_process_keeps_the_loader():
    loader = DataLoader(_ds(), batch_size=4, shuffle=True)
    assert shard_loader(loader, 0, 1, train=True) is loader


@pytest.mark.parametrize("kind", ["dataloader", "tensor"])
def test_evaluation_shards_are_disjoint_unpadded_and_in_order(kind):
    """Even a validation loader left at shuffle=True: every example exactly once."""
    if kind == "dataloader":
        loader = DataLoader(_ds(), batch_size=4, shuffle=True)
    else:
        loader = TensorLoader(_ds().tensors[0], _ds().tensors[1], batch_size=4, shuffle=True)
    shards = [_labels(shard_loader(loader, r, 2, train=False)) for r in (0, 1)]
    assert shards == [list(range(0, N, 2)), list(range(1, N, 2))]


@pytest.mark.parametrize("kind", ["dataloader", "tensor"])
def test_training_shards_are_shuffled_and_equally_long(kind):
    if kind == "dataloader":
        loader = DataLoader(_ds(), batch_size=4, shuffle=True, generator=torch.Generator())
    else:
        loader = TensorLoader(_ds().tensors[0], _ds().tensors[1], batch_size=4, seed=0)
    shards = [_labels(shard_loader(loader, r, 2, train=True)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 6  # ceil(11 / 2): one example repeated
    assert set(shards[0]) | set(shards[1]) == set(range(N))
    assert shards[0] != list(range(0, N, 2))  # shuffled


def test_a_rebuilt_dataloader_keeps_its_settings():
    def init(worker_id):  # pragma: no cover - only identity matters
        pass

    def collate(batch):  # pragma: no cover
        return batch

    g = torch.Generator().manual_seed(5)
    loader = DataLoader(
        _ds(), batch_size=4, shuffle=True, num_workers=2, worker_init_fn=init,
        generator=g, persistent_workers=True, prefetch_factor=3, pin_memory=False,
        collate_fn=collate, drop_last=True, timeout=7,
    )  # fmt: skip
    for train in (True, False):
        other = shard_loader(loader, 1, 2, train=train)
        assert other.generator is g and other.worker_init_fn is init
        assert other.collate_fn is collate and other.timeout == 7
        assert other.persistent_workers and other.prefetch_factor == 3
        assert other.num_workers == 2 and other.batch_size == 4
        assert other.drop_last == train  # evaluation never drops examples
        sampler_type = DistributedSampler if train else ShardSampler
        assert isinstance(other.sampler, sampler_type)
    # DistributedSampler shuffles with the loader's seed, as the same code on every rank has
    assert shard_loader(loader, 1, 2, train=True).sampler.seed == 5


def test_a_loader_sharded_by_the_user_is_kept():
    ds = _ds()
    loader = DataLoader(ds, batch_size=4, sampler=DistributedSampler(ds, 2, 0))
    assert shard_loader(loader, 0, 2, train=True) is loader


def test_custom_samplers_are_refused_with_a_clear_error():
    ds = _ds()
    weighted = DataLoader(ds, batch_size=4, sampler=WeightedRandomSampler(torch.ones(N), N))
    with pytest.raises(ValueError, match="custom sampler.*WeightedRandomSampler"):
        shard_loader(weighted, 0, 2, train=True)
    batches = DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), 3, False))
    with pytest.raises(ValueError, match="custom sampler or batch_sampler"):
        shard_loader(batches, 0, 2, train=False)
