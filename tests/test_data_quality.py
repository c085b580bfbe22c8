import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors
from torch import nn

from course_lib.data_quality import (
    class_histogram,
    domain_auroc,
    exact_duplicates,
    image_hashes,
    inject_label_noise,
    near_duplicates,
    nearest_neighbours,
    per_example_loss,
    pixel_histogram,
    pixel_stat_distance,
    precision_at_k,
)


def _images(n, seed=0):
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def test_histograms_match_numpy():
    y = torch.tensor([0, 2, 2, 3, 3, 3])
    np.testing.assert_allclose(class_histogram(y, 5, normalise=False), [1, 0, 2, 3, 0])
    np.testing.assert_allclose(class_histogram(y, 5), np.array([1, 0, 2, 3, 0]) / 6)
    x = _images(20)
    dens, edges = pixel_histogram(x, bins=8)
    ref, ref_edges = np.histogram(x.numpy().ravel(), bins=8, range=(0, 1), density=True)
    np.testing.assert_allclose(dens, ref)
    np.testing.assert_allclose(edges, ref_edges)


def test_exact_duplicates_find_planted_copies_only():
    train, test = _images(50, 0), _images(30, 1)
    test[[3, 17]] = train[[10, 42]]
    test[5] = train[7] + 0.05  # near, not exact
    assert exact_duplicates(train, test) == [(3, 10), (17, 42)]
    hashes = image_hashes(train)
    assert len(set(hashes)) == 50 and all(len(h) == 40 for h in hashes)


@pytest.mark.parametrize("k", [1, 3])
def test_nearest_neighbours_agree_with_sklearn(k):
    ref, query = _images(200, 2), _images(40, 3)
    d, i = nearest_neighbours(query, ref, k=k, chunk=7)
    nn_ = NearestNeighbors(n_neighbors=k).fit(ref.reshape(200, -1).numpy().astype(np.float64))
    d_ref, i_ref = nn_.kneighbors(query.reshape(40, -1).numpy().astype(np.float64))
    np.testing.assert_allclose(d.numpy(), d_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(i.numpy(), i_ref)


def test_near_duplicates_use_the_threshold():
    train, test = _images(60, 4), _images(20, 5)
    test[2] = train[11] + 0.01
    test[9] = train[30]
    found, j, d = near_duplicates(train, test, threshold=0.5)
    assert found.tolist() == [2, 9] and j.tolist() == [11, 30]
    assert d[1] == pytest.approx(0.0, abs=1e-3) and d[0] == pytest.approx(0.06, abs=1e-3)
    assert len(near_duplicates(train, test, threshold=0.0)[0]) == 0


def test_label_noise_flips_the_requested_share_to_other_classes():
    y = torch.arange(1000) % 10
    noisy, flipped = inject_label_noise(y, 0.2, 10, seed=1)
    assert int(flipped.sum()) == 200
    assert bool((noisy[flipped] != y[flipped]).all()) and bool(
        (noisy[~flipped] == y[~flipped]).all()
    )
    assert int(noisy.min()) >= 0 and int(noisy.max()) <= 9


def test_per_example_loss_is_cross_entropy_and_precision_counts_hits():
    torch.manual_seed(0)
    model, x, y = nn.Linear(4, 3), torch.randn(10, 4), torch.randint(0, 3, (10,))
    ref = nn.CrossEntropyLoss(reduction="none")(model(x), y).detach()
    torch.testing.assert_close(per_example_loss(model, x, y, batch_size=3), ref)
    scores = torch.tensor([0.1, 5.0, 0.2, 4.0, 3.0])
    positive = torch.tensor([False, True, False, False, True])
    assert precision_at_k(scores, positive, [1, 2, 3, 5]) == {1: 1.0, 2: 0.5, 3: 2 / 3, 5: 0.4}


def test_shift_measures_see_a_brightness_shift_and_not_a_random_split():
    x = _images(600, 6)
    a, b = x[:300], x[300:]
    assert domain_auroc(a, b) < 0.62
    shifted = (b + 0.15).clamp(0, 1)
    assert domain_auroc(a, shifted) > 0.95
    dist = pixel_stat_distance(a, shifted)
    fa, fb = a.reshape(300, -1).numpy(), shifted.reshape(300, -1).numpy()
    assert dist["mean_rms"] == pytest.approx(
        np.sqrt(((fa.mean(0) - fb.mean(0)) ** 2).mean()), rel=1e-6
    )
    sd = np.sqrt(((fa.std(0, ddof=1) - fb.std(0, ddof=1)) ** 2).mean())
    assert dist["std_rms"] == pytest.approx(sd, rel=1e-5)
    assert dist["mean_abs"] == pytest.approx(abs(fa.mean() - fb.mean()), rel=1e-5)
    assert roc_auc_score([0, 1], [0.2, 0.9]) == 1.0  # the oracle's convention: 1 = separable
