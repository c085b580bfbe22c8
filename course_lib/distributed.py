"""Data-parallel training with ``torchrun``: who am I, which device, which part of the data.

``torchrun --nproc_per_node=N script.py`` starts N copies of a script and tells each its
place through environment variables: ``RANK`` (0..N-1 over all machines), ``WORLD_SIZE``
(N) and ``LOCAL_RANK`` (the index on this machine, which is also the GPU it should use).
This module reads them in one place:

- :func:`distributed_env` — ``(rank, world_size, local_rank)``;
- :func:`init_distributed` — join the process group (gloo on CPU, nccl on CUDA);
- :func:`shard_loader` — give each process its own part of a loader's data;
- :func:`all_reduce_sum` — add a tensor over all processes.

:func:`course_lib.runtime.get_device` uses ``LOCAL_RANK`` to give each process its own GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)
from torch.utils.data.distributed import DistributedSampler


def distributed_env() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment; ``(0, 1, 0)`` alone."""
    return (
        int(os.environ.get("RANK", 0)),
        int(os.environ.get("WORLD_SIZE", 1)),
        int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_distributed() -> tuple[int, int]:
    """Join the process group started by ``torchrun``; return ``(rank, world_size)``.

    The backend is nccl when CUDA is available (each process then uses GPU ``LOCAL_RANK``)
    and gloo otherwise. Alone (no torchrun) this does nothing and returns ``(0, 1)``.
    """
    import torch.distributed as dist

    rank, world, local = distributed_env()
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return rank, world


def all_reduce_sum(t: Tensor) -> Tensor:
    """``t`` summed over all processes (in place); ``t`` itself without a process group."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2 world, ...`` of ``range(n)``.

    The shards of all processes are disjoint, cover every index once and are not padded
    (their lengths differ by at most one): summing per-process totals gives exact metrics.
    """

    def __init__(self, n: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _plain_sampler(loader: DataLoader) -> bool:
    """Whether ``loader`` samples with ``shuffle=True/False`` and the default batching."""
    sampler = loader.sampler
    plain = type(sampler) is SequentialSampler or (
        type(sampler) is RandomSampler
        and not sampler.replacement
        and sampler._num_samples is None  # num_samples not set: one pass over the data
    )
    return plain and type(loader.batch_sampler) is BatchSampler and loader.batch_size is not None


def shard_loader(loader: Iterable, rank: int, world: int, train: bool) -> Iterable:
    """The part of ``loader`` that process ``rank`` of ``world`` should see.

    - Training: every process gets a different shuffled shard of equal length (padded by
      repeating a few examples), so all run the same number of steps.
    - Evaluation (``train=False``): disjoint, unpadded, unshuffled shards, so the sums
      all-reduced over processes give the exact metrics of the whole data set.

    A ``TensorLoader`` shards itself (:meth:`course_lib.data.TensorLoader.shard`). A
    ``DataLoader`` built with ``shuffle=True/False`` is rebuilt around a
    ``DistributedSampler`` (training) or a :class:`ShardSampler` (evaluation), keeping its
    other settings (workers, ``worker_init_fn``, ``generator``, ``persistent_workers``,
    ``prefetch_factor``, ``pin_memory``, ``collate_fn``, ...). A ``DataLoader`` whose sampler
    is already a ``DistributedSampler`` is returned as it is. Custom samplers and batch
    samplers cannot be sharded without changing what they mean: they raise ``ValueError``.
    Any other iterable is returned unchanged (it must shard itself).
    """
    if world == 1:
        return loader
    if hasattr(loader, "shard"):  # TensorLoader
        return loader.shard(rank, world, train=train)
    if not isinstance(loader, DataLoader):
        return loader
    if isinstance(loader.sampler, DistributedSampler):
        return loader
    if isinstance(loader.dataset, IterableDataset):
        raise ValueError(
            "cannot shard a DataLoader over an IterableDataset: split the stream by "
            "torch.distributed.get_rank() inside the dataset instead"
        )
    if not _plain_sampler(loader):
        raise ValueError(
            f"cannot shard a DataLoader with a custom sampler or batch_sampler "
            f"({type(loader.sampler).__name__}, {type(loader.batch_sampler).__name__}) for "
            f"DDP: give each process its own sampler (e.g. a DistributedSampler) and pass "
            f"that DataLoader instead"
        )
    if train:
        g = loader.generator
        seed = (g.initial_seed() if g is not None else torch.initial_seed()) % 2**62
        shuffle = isinstance(loader.sampler, RandomSampler)
        sampler = DistributedSampler(loader.dataset, world, rank, shuffle=shuffle, seed=seed)
    else:
        sampler = ShardSampler(len(loader.dataset), rank, world)
    workers = loader.num_workers
    in_order = {"in_order": loader.in_order} if hasattr(loader, "in_order") else {}  # torch>=2.6
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last and train,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context if workers > 0 else None,
        generator=loader.generator,
        prefetch_factor=loader.prefetch_factor if workers > 0 else None,
        persistent_workers=loader.persistent_workers,
        pin_memory_device=loader.pin_memory_device,
        **in_order,
    )
