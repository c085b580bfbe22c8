"""One-vs-rest Platt scaling and isotonic calibration against scikit-learn's CalibratedClassifierCV."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from course_lib.metrics import IsotonicCalibrator, PlattScaler


class _LogitModel(ClassifierMixin, BaseEstimator):
    """A 'model' whose input *is* its logits: decision_function(X) = X (oracle plumbing)."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        return np.asarray(X, dtype=np.float64)

    def predict(self, X):
        return self.classes_[np.argmax(X, axis=1)]


def _logits(n, k, seed, scale=3.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(0, 1, (n, k))
    z[np.arange(n), y] += rng.uniform(0, 2, n)  # informative but noisy
    return scale * z, y


def _sklearn(method, z_val, y_val, z_test):
    model = _LogitModel().fit(z_val, y_val)
    cal = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(z_val, y_val)
    return cal.predict_proba(z_test)


@pytest.mark.parametrize("seed,k,scale", [(0, 3, 1.0), (1, 5, 3.0), (2, 10, 3.0), (3, 4, 20.0)])
def test_platt_matches_sklearn_sigmoid(seed, k, scale):
    z_val, y_val = _logits(300, k, seed, scale)
    z_test, _ = _logits(200, k, seed + 100, scale)
    ours = PlattScaler().fit(z_val, y_val).predict_proba(z_test)
    np.testing.assert_allclose(ours, _sklearn("sigmoid", z_val, y_val, z_test), atol=2e-5)
    np.testing.assert_allclose(ours.sum(1), 1.0)


@pytest.mark.parametrize("seed,k", [(0, 3), (1, 5), (2, 10)])
def test_isotonic_matches_sklearn_isotonic(seed, k):
    z_val, y_val = _logits(300, k, seed)
    z_test, _ = _logits(200, k, seed + 100, scale=4.0)  # wider range: exercises clipping
    ours = IsotonicCalibrator().fit(z_val, y_val).predict_proba(z_test)
    np.testing.assert_allclose(ours, _sklearn("isotonic", z_val, y_val, z_test), atol=1e-12)


def test_isotonic_can_change_the_argmax_and_platt_slopes_are_positive():
    z_val, y_val = _logits(400, 10, 7)
    z_test, _ = _logits(400, 10, 8)
    cal = IsotonicCalibrator().fit(z_val, y_val)
    iso = cal.predict_proba(z_test)
    assert (iso.argmax(1) != z_test.argmax(1)).any()  # per-class maps reorder classes
    step = cal.calibrators_[0].predict(z_test[:, 0])
    assert len(np.unique(step)) < len(z_test) / 4  # a step function: many tied values
    platt = PlattScaler().fit(z_val, y_val)
    assert (platt.a_ > 0).all()  # larger logit, larger probability


def test_input_checks():
    z, y = _logits(50, 4, 0)
    with pytest.raises(RuntimeError):
        PlattScaler().predict_proba(z)
    with pytest.raises(RuntimeError):
        IsotonicCalibrator().predict_proba(z)
    with pytest.raises(ValueError):
        PlattScaler().fit(z[:, :2], y % 2)  # K = 2 is not one-vs-rest territory
    with pytest.raises(ValueError):
        IsotonicCalibrator().fit(z, y + 4)  # labels outside 0..K-1
    with pytest.raises(ValueError):
        PlattScaler().fit(z, y[:10])
