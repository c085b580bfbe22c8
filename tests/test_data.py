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


@pytest.mark.parametrize("name", list(EXPECTED))
def test_splits_are_deterministic_and_stratified(name):
    a, b = data.load_dataset(name, "val"), data.load_dataset(name, "val")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    counts = torch.bincount(a.y, minlength=10).float()
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


def test_unknown_names_are_clear_errors():
    with pytest.raises(ValueError, match="Offline: mnist5k"):
        data.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load_dataset("digits", "validation")


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
    with pytest.raises(data.DatasetUnavailableError, match="no network in tests"):
        data.load_dataset("mnist", root=tmp_path, download=True)


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
def test_augmentation_presets_keep_shape_and_range(name):
    x = torch.rand(3, 32, 32)
    torch.manual_seed(0)
    out = data.augmentation(name, 32)(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


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
