import numpy as np
import pytest
import torch
import torchvision

from course_lib import data
from tests.fixtures.torchvision_files import write_cifar10, write_cifar100, write_mnist

EXPECTED = {  # name: (input shape, trainval size, test size)
    "mnist5k": ((1, 28, 28), 4000, 1000),
    "digits": ((1, 8, 8), 1438, 359),
    "mnist1d": ((1, 40), 4000, 1000),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_offline_datasets(name):
    shape, n_trainval, n_test = EXPECTED[name]
    parts = {s: data.load_dataset(name, s) for s in data.SPLITS}
    for split, ds in parts.items():
        assert ds.x.dtype == torch.float32 and ds.y.dtype == torch.int64
        assert ds.input_shape == shape and ds.num_classes == 10
        assert set(ds.y.unique().tolist()) == set(range(10)), split
        assert torch.isfinite(ds.x).all()
    assert len(parts["trainval"]) == n_trainval and len(parts["test"]) == n_test
    assert len(parts["train"]) + len(parts["val"]) == n_trainval
    if name != "mnist1d":  # images in [0, 1]; MNIST-1D is standardised by its generator
        assert parts["train"].x.min() >= 0 and parts["train"].x.max() <= 1
    # train and val are disjoint and together make trainval
    rows = lambda ds: {tuple(r) for r in ds.x.flatten(1).tolist()}  # noqa: E731
    assert not rows(parts["train"]) & rows(parts["val"])


# sha256 (first 16 hex digits) of the train/val split indices and, per split, of the labels
# and the quantised images in their stored order. Computed once (2026-12) in a fresh process:
# a change here means every split -- and every number in the book -- moved.
GOLDEN = {
    "mnist5k": {
        "indices": "9fb6b9877820ba23",
        "train": ("d393f793c5474007", "ba2b01571abbec8a"),
        "val": ("dd2aa690a51ce82e", "742f1f5343046386"),
        "test": ("bbdaed34ddb84891", "1a5661dced05e311"),
        "trainval": ("f2c7748a0e6d020e", "2bc299375efe218f"),
    },
    "digits": {
        "indices": "329f567b521779d1",
        "train": ("7513f9c3288e9152", "585b59f523aa68cf"),
        "val": ("f26e475e6d7ef283", "31bf687ff837ec8d"),
        "test": ("29016008eeee16c4", "9d329adc7810fe97"),
        "trainval": ("e4ca0de90d16fd9a", "ffb93a7b1ebe1f36"),
    },
    "mnist1d": {
        "indices": "ac1e766b30deb786",
        "train": ("4228387c4ef72fdd", "0cccb5dcf0c85bca"),
        "val": ("42c93187c2c9fda8", "e6191ca3283cbd01"),
        "test": ("8de99be3ff9dab15", "be21f32fac973679"),
        "trainval": ("d97dc7aecec8ad6b", "7f4c313fef01fb17"),
    },
}
QUANTISE = {  # exact grey levels for the image sets; MNIST-1D (floats) to 3 decimals
    "mnist5k": lambda x: (x * 255).round().astype(np.uint8),
    "digits": lambda x: (x * 16).round().astype(np.uint8),
    "mnist1d": lambda x: np.round(x.astype(np.float64), 3),
}


def _sha(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_splits_match_golden_hashes_and_are_stratified(name):
    trainval = data.load_dataset(name, "trainval")
    idx = data.stratified_split(trainval.y.numpy(), (0.9, 0.1))
    assert _sha(np.concatenate(idx).astype("<i8")) == GOLDEN[name]["indices"]
    for split in data.SPLITS:
        ds = data.load_dataset(name, split)
        labels, images = GOLDEN[name][split]
        assert _sha(ds.y.numpy().astype("<i8")) == labels, split
        assert _sha(QUANTISE[name](ds.x.numpy())) == images, split
    counts = torch.bincount(data.load_dataset(name, "val").y, minlength=10).float()
    assert counts.max() - counts.min() <= 0.25 * counts.mean() + 2


def test_mnist1d_matches_the_published_generator_and_keeps_numpy_state():
    from mnist1d.data import get_dataset_args, make_dataset

    np.random.seed(5)
    expected_next = np.random.rand()
    np.random.seed(5)
    ds = data.load_dataset("mnist1d", "test")
    assert np.random.rand() == expected_next  # loading did not reseed the global RNG
    ref = make_dataset(get_dataset_args())
    np.testing.assert_allclose(ds.x[:, 0].numpy(), ref["x_test"], rtol=1e-6)
    np.testing.assert_array_equal(ds.y.numpy(), ref["y_test"])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_mismatched_val_fractions_cannot_leak_validation_into_training(name, monkeypatch):
    monkeypatch.setattr(data, "_VAL_FRACTIONS", {})  # a fresh process
    train = data.load_dataset(name, "train", val_fraction=0.1)
    val = data.load_dataset(name, "val", val_fraction=0.1)
    rows = lambda ds: {tuple(r) for r in ds.x.flatten(1).tolist()}  # noqa: E731
    assert not rows(train) & rows(val)
    with pytest.raises(ValueError, match="val_fraction"):
        data.load_dataset(name, "val", val_fraction=0.2)  # would hold training examples
    with pytest.raises(ValueError, match="val_fraction"):
        data.load_dataset(name, "train", val_fraction=0.05)
    assert len(data.load_dataset(name, "trainval", val_fraction=0.3)) == EXPECTED[name][1]
    assert len(data.load_dataset(name, "test", val_fraction=0.3)) == EXPECTED[name][2]
    assert data.load_dataset(name, "val").meta["val_fraction"] == 0.1


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="Offline: mnist5k"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_dataset("digits", "validation")


def test_stratified_kfold_properties():
    rng = np.random.default_rng(7)
    y = rng.choice(4, size=203, p=[0.5, 0.3, 0.15, 0.05])
    folds = data.stratified_kfold(y, k=5, seed=1)
    assert len(folds) == 5
    tests = np.concatenate([t for _, t in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(y)))  # a partition
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(y)
    for c in range(4):
        per_fold = [np.sum(y[t] == c) for _, t in folds]
        assert max(per_fold) - min(per_fold) <= 1
    sizes = [len(t) for _, t in folds]
    assert max(sizes) - min(sizes) <= 1
    again = data.stratified_kfold(y, k=5, seed=1)
    assert all(np.array_equal(t1, t2) for (_, t1), (_, t2) in zip(folds, again))
    other = data.stratified_kfold(y, k=5, seed=2)
    assert not all(np.array_equal(t1, t2) for (_, t1), (_, t2) in zip(folds, other))
    with pytest.warns(UserWarning, match="fewer than k"):
        data.stratified_kfold([0, 0, 0, 1], k=3)


def test_time_series_split_matches_sklearn():
    from sklearn.model_selection import TimeSeriesSplit

    for n, k in [(10, 3), (100, 5), (37, 4), (6, 5)]:
        ours = data.time_series_split(n, k)
        theirs = list(TimeSeriesSplit(n_splits=k).split(np.zeros(n)))
        assert len(ours) == len(theirs)
        for (tr, te), (tr2, te2) in zip(ours, theirs):
            np.testing.assert_array_equal(tr, tr2)
            np.testing.assert_array_equal(te, te2)
            assert tr.max() < te.min()  # never train on the future
    with pytest.raises(ValueError):
        data.time_series_split(3, 5)


def test_subset_is_stratified_and_repeatable():
    ds = data.load_dataset("mnist5k", "train")
    s1, s2 = data.subset(ds, 200, seed=3), data.subset(ds, 200, seed=3)
    assert len(s1) == 200 and torch.equal(s1.y, s2.y)
    assert torch.bincount(s1.y).tolist() == [20] * 10
    assert data.subset(ds, 10**6) is ds


# -- torchvision datasets on fixture files in the real on-disk formats -----------------


@pytest.fixture
def cifar_no_md5(monkeypatch):
    """The fixtures cannot match the published MD5 sums; everything else is the real code."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(
        cifar, "check_integrity", lambda path, md5=None: __import__("os").path.isfile(path)
    )


def _labels_from_first_pixel(ds):
    return (ds.x[:, 0, 0, 0] * 255).round().long()


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_files(tmp_path, name, folder):
    write_mnist(tmp_path, folder)
    test = data.load_dataset(name, "test", root=tmp_path, download=False)
    assert test.x.shape == (20, 1, 28, 28) and test.x.dtype == torch.float32
    assert torch.equal(_labels_from_first_pixel(test), test.y)
    train, val = (
        data.load_dataset(name, s, root=tmp_path, download=False) for s in ("train", "val")
    )
    assert len(train) + len(val) == 60 and len(val) == 10  # 10 % of 6 per class rounds to 1
    assert torch.equal(_labels_from_first_pixel(train), train.y)
    if name == "fashion_mnist":
        assert train.classes[9] == "Ankle boot"


def test_cifar10_from_pickle_batches(tmp_path, cifar_no_md5):
    write_cifar10(tmp_path)
    train = data.load_dataset("cifar10", "trainval", root=tmp_path, download=False)
    assert train.x.shape == (100, 3, 32, 32)
    assert torch.equal(_labels_from_first_pixel(train), train.y)
    assert train.classes[0] == "airplane"
    # the channel-major layout survives: compare with torchvision's own HWC array
    tv = torchvision.datasets.CIFAR10(str(tmp_path), train=True, download=False)
    np.testing.assert_array_equal(
        (train.x[7] * 255).round().byte().permute(1, 2, 0).numpy(), tv.data[7]
    )


def test_cifar100_from_pickle_files(tmp_path, cifar_no_md5):
    write_cifar100(tmp_path)
    test = data.load_dataset("cifar100", "test", root=tmp_path, download=False)
    assert test.x.shape == (100, 3, 32, 32) and test.num_classes == 100
    assert torch.equal(_labels_from_first_pixel(test), test.y)


def test_missing_dataset_offline_names_the_alternatives(tmp_path):
    with pytest.raises(data.DatasetUnavailableError, match="mnist5k, digits, mnist1d"):
        data.load_dataset("cifar10", root=tmp_path, download=False)


def test_failed_download_is_reported_with_the_cause(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.mnist as mnist

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(mnist, "download_and_extract_archive", no_network)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    with pytest.raises(data.DatasetUnavailableError, match="no network in tests"):
        data.load_dataset("mnist", root=tmp_path, download=True)


def test_course_offline_wins_over_download_true(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as mnist

    attempts = []
    monkeypatch.setattr(mnist, "download_and_extract_archive", lambda *a, **k: attempts.append(a))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(data.DatasetUnavailableError, match="COURSE_OFFLINE=1 forbids"):
        data.load_dataset("mnist", root=tmp_path, download=True)
    assert attempts == []
    write_mnist(tmp_path, "MNIST")  # cached files are still read
    assert len(data.load_dataset("mnist", "test", root=tmp_path, download=True)) == 20


def test_data_root_respects_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert data.data_root() == tmp_path


# -- statistics, augmentation, loaders ---------------------------------------------------


def test_channel_stats_and_standardize():
    train, test = data.load_dataset("digits", "train"), data.load_dataset("digits", "test")
    mean, std = data.channel_stats(train)
    assert torch.allclose(mean, train.x.mean().reshape(1)) and mean.shape == (1,)
    s_train, s_test = data.standardize(train, test)
    assert abs(float(s_train.x.mean())) < 1e-5 and abs(float(s_train.x.std()) - 1) < 1e-3
    assert torch.allclose(s_test.x, (test.x - mean) / std)  # test set uses train statistics
    module = data.Standardize(mean, std)
    assert torch.allclose(module(test.x), s_test.x) and torch.allclose(
        module(test.x[0]), s_test.x[0]
    )


@pytest.mark.parametrize("name", data.AUGMENTATIONS)
def test_augmentation_presets_change_images_and_keep_shape_and_range(name):
    x = torch.rand(3, 32, 32)
    torch.manual_seed(0)
    preset = data.augmentation(name, 32)
    outs = [preset(x) for _ in range(8)]
    for out in outs:
        assert out.shape == x.shape and out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
    changed = [not torch.allclose(out, x, atol=1 / 255) for out in outs]
    if name == "none":
        assert not any(changed)
    else:  # a random transform: almost every draw differs from the input, and draws differ
        assert sum(changed) >= 6, changed
        assert len({tuple(out.flatten()[:64].tolist()) for out in outs}) >= 6


@pytest.mark.parametrize("name", ["randaugment", "trivialaugment"])
def test_uint8_presets_clamp_rounding_and_refuse_standardised_images(name):
    x = torch.rand(3, 16, 16)
    x[:, :4] = 1.0
    over = x.clone()
    over[:, :4] = 1.003  # e.g. after a resize: an overshoot below one grey level stays white
    preset = data.augmentation(name, 16, padding=2)
    torch.manual_seed(1)
    out = preset(over)
    torch.manual_seed(1)
    assert torch.equal(out, preset(x))
    standardised = (x - 0.5) / 0.25
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        preset(standardised)


def test_random_crop_flip_matches_a_per_example_crop():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    g = torch.Generator().manual_seed(0)
    out = data.random_crop_flip(x, padding=2, flip=False, generator=g)
    g = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(0, 5, (2,), generator=g), torch.randint(0, 5, (2,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 5])


def test_tensor_loader_covers_every_example_once_per_epoch():
    x, y = torch.arange(10).float().view(10, 1), torch.arange(10)
    loader = data.TensorLoader(x, y, batch_size=4, seed=1)
    assert len(loader) == 3
    epoch1 = torch.cat([yb for _, yb in loader])
    epoch2 = torch.cat([yb for _, yb in loader])
    assert sorted(epoch1.tolist()) == list(range(10)) and not torch.equal(epoch1, epoch2)
    loader.set_epoch(0)
    assert torch.equal(torch.cat([yb for _, yb in loader]), epoch1)  # order = f(seed, epoch)
    ordered = data.TensorLoader(x, y, batch_size=4, shuffle=False, drop_last=True)
    assert len(ordered) == 2 and torch.cat([yb for _, yb in ordered]).tolist() == list(range(8))


def test_tensor_loader_shards_for_distributed_training():
    x, y = torch.arange(11).float().view(11, 1), torch.arange(11)
    loader = data.TensorLoader(x, y, batch_size=2, seed=5)
    shards = [loader.shard(r, 3) for r in range(3)]
    seen = [torch.cat([yb for _, yb in s]).tolist() for s in shards]
    assert [len(s) for s in seen] == [4, 4, 4]  # padded to equal length: same number of steps
    assert set(sum(seen, [])) == set(range(11))
    evals = [loader.__class__(x, y, batch_size=2, shuffle=False).shard(r, 3) for r in range(3)]
    flat = sorted(sum((torch.cat([yb for _, yb in e]).tolist() for e in evals), []))
    assert flat == list(range(11))  # evaluation shards: disjoint, nothing repeated


def test_make_loaders():
    ds = data.load_dataset("digits", "train")
    train, val = data.make_loaders(
        ds, data.load_dataset("digits", "val"), batch_size=32, device="cpu"
    )
    xb, yb = next(iter(train))
    assert xb.shape == (32, 1, 8, 8) and yb.shape == (32,)
    assert train.num_workers == 0 and not train.pin_memory
    assert len(val.dataset) == 145


@pytest.mark.gpu
def test_tensor_loader_on_gpu():
    ds = data.load_dataset("mnist5k", "train")
    loader = data.TensorLoader(ds, batch_size=256, device="cuda", transform=data.random_crop_flip)
    xb, yb = next(iter(loader))
    assert xb.is_cuda and yb.is_cuda and xb.shape == (256, 1, 28, 28)


# -- TensorLoader seeding, state and sharding -------------------------------------------


def _epoch_order(loader) -> list[int]:
    return torch.cat([yb for _, yb in loader]).tolist()


def _xy(n=50):
    return torch.arange(n).float().view(n, 1), torch.arange(n)


def test_tensor_loader_default_seed_follows_seed_everything():
    from course_lib.runtime import seed_everything

    x, y = _xy()

    def order(s, **kw):
        seed_everything(s)
        return _epoch_order(data.TensorLoader(x, y, batch_size=7, **kw))

    assert order(1) == order(1)  # seed_everything(s) then building the loader repeats
    assert order(1) != order(2)  # ... and another global seed gives another order
    assert order(1, seed=5) == order(2, seed=5)  # an explicit seed wins over the global one


def test_tensor_loader_explicit_seed_order_is_unchanged():
    """seed=s, epoch e: torch.randperm(n) from a generator seeded s + 1_000_003 e (as before)."""
    x, y = _xy(23)
    loader = data.TensorLoader(x, y, batch_size=5, seed=7)
    for epoch in range(3):
        g = torch.Generator().manual_seed(7 + 1_000_003 * epoch)
        assert _epoch_order(loader) == torch.randperm(23, generator=g).tolist()


def test_unshuffled_tensor_loader_draws_nothing_from_the_global_rng():
    from course_lib.runtime import seed_everything

    seed_everything(3)
    expected = torch.rand(3)
    seed_everything(3)
    data.TensorLoader(*_xy(), batch_size=8, shuffle=False)
    assert torch.equal(torch.rand(3), expected)


def test_tensor_loader_state_dict_resumes_the_same_order():
    from course_lib.runtime import seed_everything

    x, y = _xy()
    seed_everything(11)
    first = data.TensorLoader(x, y, batch_size=8)
    _epoch_order(first)
    state = first.state_dict()
    later = [_epoch_order(first) for _ in range(2)]
    seed_everything(12)  # another session: another drawn seed until the state is loaded
    resumed = data.TensorLoader(x, y, batch_size=8)
    resumed.load_state_dict(state)
    assert [_epoch_order(resumed) for _ in range(2)] == later
    assert state == {"seed": first.seed, "epoch": 1}


def test_tensor_loader_shards_agree_on_one_permutation():
    x, y = _xy(11)
    loader = data.TensorLoader(x, y, batch_size=2, seed=5)
    g = torch.Generator().manual_seed(5)
    perm = torch.randperm(11, generator=g).tolist()
    padded = perm + perm[:1]  # 3 ranks x 4 examples
    for rank in range(3):
        assert _epoch_order(loader.shard(rank, 3)) == padded[rank::3]
    # evaluation shards of a shuffling loader: in order, disjoint, unpadded
    evals = [_epoch_order(loader.shard(r, 3, train=False)) for r in range(3)]
    assert evals == [list(range(r, 11, 3)) for r in range(3)]
    assert [len(loader.shard(r, 3, train=False)) for r in range(3)] == [2, 2, 2]


def test_tensor_loader_to_device_copies_only_when_needed():
    loader = data.TensorLoader(*_xy(), batch_size=8, seed=1)
    assert loader.to("cpu") is loader
    meta = loader.to("meta")
    assert meta.x.device.type == "meta" and meta.seed == 1 and loader.x.device.type == "cpu"


DDP_SEED_SCRIPT = """
import json, sys, torch, torch.distributed as dist
from course_lib import data
from course_lib.runtime import seed_everything
rank, out = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=f"file://{out}/store", rank=rank, world_size=2)
seed_everything(100 + rank)  # ranks seeded differently on purpose
x, y = torch.arange(21).float().view(21, 1), torch.arange(21)
shard = data.TensorLoader(x, y, batch_size=4).shard(rank, 2)
orders = [torch.cat([yb for _, yb in shard]).tolist() for _ in range(2)]
json.dump(orders, open(f"{out}/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_tensor_loader_shards_agree_across_processes_seeded_differently(tmp_path):
    import json
    import subprocess
    import sys

    script = tmp_path / "shards.py"
    script.write_text(DDP_SEED_SCRIPT)
    procs = [
        subprocess.Popen([sys.executable, str(script), str(r), str(tmp_path)]) for r in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    for epoch in range(2):  # together the two shards cover every example: one permutation
        assert set(r0[epoch] + r1[epoch]) == set(range(21))
    assert r0[0] != r0[1]  # and a new order every epoch


def test_make_loaders_default_seed_follows_seed_everything():
    from course_lib.runtime import seed_everything

    ds = data.ArrayDataset(*_xy(40), classes=[str(i) for i in range(40)])

    def order(s, **kw):
        seed_everything(s)
        (train,) = data.make_loaders(ds, batch_size=8, device="cpu", **kw)
        return _epoch_order(train)

    assert order(1) == order(1) and order(1) != order(2)
    assert order(1, seed=4) == order(2, seed=4)
