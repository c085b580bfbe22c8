"""Leaky data generators and the nested-vs-flat helper of course_lib.validation."""

import numpy as np
import pytest
from scipy import ndimage
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from course_lib.validation import drifting_series, jittered_copies, nested_vs_flat


def test_jittered_copies_shapes_groups_and_identity():
    imgs = np.random.default_rng(0).uniform(0, 16, (7, 8, 8))
    labels = np.arange(7) % 3
    X, y, g = jittered_copies(imgs, labels, n_copies=4, max_shift=0.0, noise=0.0)
    assert X.shape == (28, 64) and y.shape == g.shape == (28,)
    np.testing.assert_array_equal(g, np.repeat(np.arange(7), 4))
    np.testing.assert_array_equal(y, np.repeat(labels, 4))
    np.testing.assert_allclose(X.reshape(7, 4, 8, 8), np.repeat(imgs[:, None], 4, axis=1))


def test_jittered_copies_move_the_centre_of_mass_by_the_shift():
    img = np.zeros((16, 16))
    img[6:10, 6:10] = 1.0  # a blob far from the border: a sub-pixel shift moves its centre by s
    X, _, _ = jittered_copies(
        img[None], np.array([0]), n_copies=20, max_shift=1.0, noise=0.0, seed=3
    )
    centres = np.array([ndimage.center_of_mass(x.reshape(16, 16)) for x in X])
    rng = np.random.default_rng(3)
    shifts = rng.uniform(-1.0, 1.0, (1, 20, 2))[0]  # the generator's draws, in the same order
    np.testing.assert_allclose(centres - np.array([7.5, 7.5]), shifts, atol=1e-9)
    assert len(np.unique(X.round(6), axis=0)) == 20  # all copies differ


def test_jittered_copies_noise_level_and_checks():
    X, _, _ = jittered_copies(np.zeros((50, 8, 8)), np.zeros(50), n_copies=10, noise=2.0)
    assert abs(X.std() - 2.0) < 0.05
    with pytest.raises(ValueError):
        jittered_copies(np.zeros((3, 64)), np.zeros(3), 2)
    with pytest.raises(ValueError):
        jittered_copies(np.zeros((3, 8, 8)), np.zeros(3), 0)


def test_drifting_series_structure():
    X, y = drifting_series(20000, n_features=3, persistence=0.9, drift=0.1, noise=0.3, seed=1)
    assert X.shape == (20000, 3) and y.shape == (20000,)
    for j in range(3):  # AR(1) coefficient = lag-1 autocorrelation
        assert abs(np.corrcoef(X[1:, j], X[:-1, j])[0, 1] - 0.9) < 0.02
    # the residual of the known linear part is a random walk plus white noise: its increments have
    # variance drift² + 2 noise², and its lag-1 increments covariance is −noise²
    d = np.diff(y - X @ np.array([1.0, -0.5, 0.5]))
    assert abs(d.var() - (0.1**2 + 2 * 0.3**2)) < 0.01
    assert abs(np.mean(d[1:] * d[:-1]) + 0.3**2) < 0.01
    with pytest.raises(ValueError):
        drifting_series(100, persistence=1.0)


def test_nested_vs_flat_matches_an_explicit_loop():
    X, y = load_digits(return_X_y=True)
    X, y, X_fresh, y_fresh = X[:120], y[:120], X[120:400], y[120:400]
    grid = {"n_neighbors": [1, 3, 5]}
    got = nested_vs_flat(KNeighborsClassifier(), grid, X, y, X_fresh, y_fresh, k=3, seed=5)
    inner = StratifiedKFold(3, shuffle=True, random_state=5)
    outer = StratifiedKFold(3, shuffle=True, random_state=6)
    search = GridSearchCV(KNeighborsClassifier(), grid, cv=inner).fit(X, y)
    outer_scores = []
    for tr, te in outer.split(X, y):  # the selection is redone inside every outer training part
        s = GridSearchCV(KNeighborsClassifier(), grid, cv=inner).fit(X[tr], y[tr])
        outer_scores.append((s.predict(X[te]) == y[te]).mean())
    assert got["flat"] == pytest.approx(search.best_score_)
    assert got["nested"] == pytest.approx(np.mean(outer_scores))
    assert got["fresh"] == pytest.approx((search.predict(X_fresh) == y_fresh).mean())
