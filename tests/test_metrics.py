"""course_lib.metrics against scikit-learn and scipy (the oracles) on many random cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn
import sklearn.metrics as skm
import torch

from course_lib import metrics as M

ZERO_DIVISIONS = ["warn", 0.0, 1.0, np.nan]


@pytest.fixture(autouse=True)
def _fast_sklearn():
    """scikit-learn's argument validation dominates the runtime of these loops: skip it."""
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        yield


def _close(a, b, tol=1e-10):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=tol)


def _random_labels(rng, n_cases):
    """(y_true, y_pred) pairs: binary and multi-class, some classes never predicted."""
    for case in range(n_cases):
        k = int(rng.integers(2, 7))
        n = int(rng.integers(1, 60))
        y_true = rng.integers(0, k, n)
        if case % 3 == 0:  # the classifier never predicts some classes
            y_pred = rng.choice(rng.integers(0, k, 2), n)
        else:
            y_pred = rng.integers(0, k, n)
        yield y_true, y_pred


def test_label_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y_true, y_pred in _random_labels(rng, 150):
            assert M.accuracy_score(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)
            np.testing.assert_array_equal(
                M.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred)
            )
            assert M.matthews_corrcoef(y_true, y_pred) == pytest.approx(
                skm.matthews_corrcoef(y_true, y_pred), abs=1e-12
            )
            zd = ZERO_DIVISIONS[int(rng.integers(4))]
            averages = [None, "macro", "micro", "weighted"]
            if set(np.union1d(y_true, y_pred)) <= {0, 1}:
                averages.append("binary")
            for average in averages:
                ours = M.precision_recall_fscore_support(
                    y_true, y_pred, average=average, zero_division=zd
                )
                theirs = skm.precision_recall_fscore_support(
                    y_true, y_pred, average=average, zero_division=zd
                )
                for o, t in zip(ours[:3], theirs[:3]):
                    _close(o, t)
                if average is None:
                    np.testing.assert_array_equal(ours[3], theirs[3])
                else:
                    assert ours[3] is None
            # the thin wrappers, including beta != 1 and explicit labels
            labels = np.arange(int(max(y_true.max(), y_pred.max())) + 2)  # one unseen label
            for ours_fn, theirs_fn in [
                (M.precision_score, skm.precision_score),
                (M.recall_score, skm.recall_score),
                (M.f1_score, skm.f1_score),
            ]:
                _close(
                    ours_fn(y_true, y_pred, labels=labels, average="macro", zero_division=zd),
                    theirs_fn(y_true, y_pred, labels=labels, average="macro", zero_division=zd),
                )
            _close(
                M.fbeta_score(y_true, y_pred, beta=0.5, average="weighted", zero_division=zd),
                skm.fbeta_score(y_true, y_pred, beta=0.5, average="weighted", zero_division=zd),
            )
            for normalize in [("true", "pred", "all")[int(rng.integers(3))]]:
                _close(
                    M.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
                    skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize),
                )


def test_never_predicted_class_zero_division():
    y_true = [0, 1, 2, 2, 1, 0]
    y_pred = [0, 1, 1, 1, 1, 0]  # class 2 is never predicted: its precision is 0/0
    with pytest.warns(M.UndefinedMetricWarning, match="zero_division"):
        p = M.precision_score(y_true, y_pred, average=None)
    _close(p, [1.0, 0.5, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit zero_division must not warn
        _close(M.precision_score(y_true, y_pred, average=None, zero_division=1.0), [1, 0.5, 1])
        # nan entries are left out of the macro average
        assert M.precision_score(y_true, y_pred, average="macro", zero_division=np.nan) == 0.75
        # recall is well defined, so recall_score does not warn even with "warn"
        _close(M.recall_score(y_true, y_pred, average=None), [1.0, 1.0, 0.0])


def test_binary_average_and_label_errors():
    assert M.f1_score([0, 1, 1, 0], [0, 1, 0, 0]) == pytest.approx(2 / 3)
    assert M.f1_score([1, 2, 2], [1, 2, 1], pos_label=2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="average='binary'"):
        M.f1_score([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label"):
        M.precision_score([2, 3, 3], [2, 3, 2])
    with pytest.raises(ValueError, match="empty"):
        M.accuracy_score([], [])
    with pytest.raises(ValueError, match="samples"):
        M.accuracy_score([0, 1], [0, 1, 1])


def test_torch_inputs_give_floats():
    y = torch.tensor([0, 1, 2, 2])
    logits = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [2.0, 0, 0]], requires_grad=True)
    acc = M.accuracy_score(y, logits.argmax(1))
    assert type(acc) is float and acc == 0.75
    assert type(M.log_loss(y, torch.softmax(logits, 1))) is float
    assert isinstance(M.confusion_matrix(y, logits.argmax(1)), np.ndarray)


def _random_scores(rng, n, k, ties):
    logits = rng.normal(size=(n, k)) * 2
    if ties:
        logits = np.round(logits)  # many exactly tied scores
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_binary_score_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    for case in range(150):
        n = int(rng.integers(2, 80))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]  # both classes present
        score = rng.random(n)
        if case % 2:
            score = np.round(score, 1)  # ties between positives and negatives
        assert M.roc_auc_score(y, score) == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
        for drop in (True, False):
            for a, b in zip(
                M.roc_curve(y, score, drop_intermediate=drop),
                skm.roc_curve(y, score, drop_intermediate=drop),
            ):
                _close(a, b)
            for a, b in zip(
                M.precision_recall_curve(y, score, drop_intermediate=drop),
                skm.precision_recall_curve(y, score, drop_intermediate=drop),
            ):
                _close(a, b)
        _close(M.average_precision_score(y, score), skm.average_precision_score(y, score))
        _close(M.log_loss(y, score), skm.log_loss(y, score))
        _close(M.brier_score_loss(y, score), skm.brier_score_loss(y, score))
        _close(M.top_k_accuracy_score(y, score, k=1), skm.top_k_accuracy_score(y, score, k=1))
        two_col = np.stack([1 - score, score], 1)
        _close(M.roc_auc_score(y, two_col), skm.roc_auc_score(y, score))
        _close(M.brier_score_loss(y, two_col), skm.brier_score_loss(y, two_col))


def test_multiclass_score_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    for case in range(80):
        k = int(rng.integers(3, 7))
        n = int(rng.integers(k, 80))
        y = np.r_[np.arange(k), rng.integers(0, k, n - k)]  # every class present
        prob = _random_scores(rng, n, k, ties=case % 2 == 1)
        for average in ("macro", "weighted", "micro", None):
            _close(
                M.roc_auc_score(y, prob, multi_class="ovr", average=average),
                skm.roc_auc_score(y, prob, multi_class="ovr", average=average),
            )
        for average in ("macro", "weighted", "micro", None):
            _close(
                M.average_precision_score(y, prob, average=average),
                skm.average_precision_score(y, prob, average=average),
            )
        for kk in range(1, k):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _close(
                    M.top_k_accuracy_score(y, prob, k=kk), skm.top_k_accuracy_score(y, prob, k=kk)
                )
        _close(M.log_loss(y, prob), skm.log_loss(y, prob))
        prob32 = prob.astype(np.float32)
        prob32[0] = np.eye(k)[(y[0] + 1) % k]  # a confident mistake: clipped at float32 eps
        _close(M.log_loss(y, prob32), skm.log_loss(y, prob32), tol=1e-6)
        _close(M.brier_score_loss(y, prob), skm.brier_score_loss(y, prob))
        labels = np.arange(k + 1)  # a class with probability column but no samples
        prob_extra = np.c_[prob * 0.9, np.full(n, 0.1)]
        _close(M.log_loss(y, prob_extra), skm.log_loss(y, prob_extra, labels=labels))


def test_top_k_tie_breaking_matches_sklearn():
    y = np.array([3, 3, 2, 0, 1])
    scores = np.full((5, 4), 0.25)  # all tied: the larger class index ranks first
    expected = {1: 0.4, 2: 0.6, 3: 0.8}
    for k in (1, 2, 3):
        assert M.top_k_accuracy_score(y, scores, k=k) == expected[k]
        assert skm.top_k_accuracy_score(y, scores, k=k) == expected[k]


def test_auroc_undefined_cases_raise():
    with pytest.raises(ValueError, match="Only one class"):
        M.roc_auc_score([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="Only one class"):
        M.roc_curve([0, 0], [0.2, 0.5])
    prob = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match="never occur"):
        M.roc_auc_score([0, 1, 1, 0], prob, multi_class="ovr")
    with pytest.raises(ValueError, match="multi_class='ovr'"):
        M.roc_auc_score([0, 1, 2, 0], prob)
    with pytest.raises(ValueError, match="no positive"):
        M.average_precision_score([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="empty"):
        M.roc_auc_score([], [])
    with pytest.raises(ValueError, match="softmax"):
        M.log_loss([0, 1], [[2.0, -1.0], [0.5, 0.3]])  # logits instead of probabilities


def _reference_ece(y, prob, n_bins, worst=False):
    """ECE / MCE written the plain way: loop over bins (lo, hi]."""
    conf, pred = prob.max(1), prob.argmax(1)
    edges = np.linspace(0, 1, n_bins + 1)
    total, gaps = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if lo == 0:
            in_bin |= conf == 0
        if in_bin.sum() == 0:
            continue
        gap = abs((pred[in_bin] == y[in_bin]).mean() - conf[in_bin].mean())
        total += in_bin.sum() / len(y) * gap
        gaps.append(gap)
    return max(gaps) if worst else total


def _reference_adaece(y, prob, n_bins):
    conf, pred = prob.max(1), prob.argmax(1)
    order = np.argsort(conf, kind="stable")  # tied confidences keep their sample order
    total = 0.0
    for chunk in np.array_split(order, n_bins):
        if len(chunk):
            total += (
                len(chunk) / len(y) * abs((pred[chunk] == y[chunk]).mean() - conf[chunk].mean())
            )
    return total


def test_calibration_errors_match_reference():
    rng = np.random.default_rng(3)
    for case in range(100):
        n, k = int(rng.integers(1, 200)), int(rng.integers(2, 6))
        y = rng.integers(0, k, n)
        prob = _random_scores(rng, n, k, ties=case % 3 == 0)
        n_bins = int(rng.integers(1, 20))
        _close(M.expected_calibration_error(y, prob, n_bins), _reference_ece(y, prob, n_bins))
        _close(M.maximum_calibration_error(y, prob, n_bins), _reference_ece(y, prob, n_bins, True))
        _close(M.adaptive_calibration_error(y, prob, n_bins), _reference_adaece(y, prob, n_bins))
        curve = M.reliability_curve(y, prob, n_bins)
        assert curve.count.sum() == n and len(curve.edges) == n_bins + 1
        filled = curve.count > 0
        ece = (curve.count[filled] / n * abs(curve.accuracy - curve.confidence)[filled]).sum()
        _close(ece, M.expected_calibration_error(y, prob, n_bins))
        q = M.reliability_curve(y, prob, n_bins, strategy="quantile")
        assert q.count.sum() == n and q.count.max() - q.count.min() <= 1
        assert np.all(np.diff(q.edges) >= 0) and q.edges[0] == 0 and q.edges[-1] == 1


def test_ece_binary_vector_equals_two_columns():
    rng = np.random.default_rng(4)
    y, p = rng.integers(0, 2, 300), rng.random(300)
    two = np.stack([1 - p, p], 1)
    _close(M.expected_calibration_error(y, p), M.expected_calibration_error(y, two))
    assert M.expected_calibration_error([1, 1], [[0.0, 1.0], [0.0, 1.0]]) == 0.0


@pytest.mark.parametrize(
    "classes", [np.array([3, 5, 7]), np.array(["cat", "dog", "eel"]), np.array([-1, 1])]
)
def test_calibration_accepts_arbitrary_label_values(classes):
    """Column k is the k-th smallest label, as in scikit-learn; the result equals the 0..K-1 case."""
    rng = np.random.default_rng(8)
    k, n = len(classes), 400
    codes = rng.integers(0, k, n)
    prob = _random_scores(rng, n, k, ties=False)
    y = classes[codes]
    for fn in (M.expected_calibration_error, M.maximum_calibration_error,
               M.adaptive_calibration_error):  # fmt: skip
        assert fn(y, prob, n_bins=10) == pytest.approx(fn(codes, prob, n_bins=10), abs=1e-12)
    curve = M.reliability_curve(y, prob, n_bins=10)
    accuracy = (curve.accuracy * curve.count)[curve.count > 0].sum() / n
    assert accuracy == pytest.approx(skm.accuracy_score(y, classes[prob.argmax(1)]))
    if k == 2:  # (N,) = probability of the larger label
        assert M.expected_calibration_error(y, prob[:, 1]) == pytest.approx(
            M.expected_calibration_error(codes, prob[:, 1])
        )
    # temperature scaling: the NLL it reports is scikit-learn's log loss on these labels
    logits = torch.randn(n, k, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits[torch.arange(n), torch.as_tensor(codes)] += 2.0
    scaler = M.TemperatureScaler().fit(3 * logits, y)
    assert scaler.temperature == pytest.approx(
        M.TemperatureScaler().fit(3 * logits, codes).temperature
    )
    assert scaler.nll_after == pytest.approx(skm.log_loss(y, scaler.predict_proba(3 * logits)))
    assert scaler.nll_before == pytest.approx(skm.log_loss(y, torch.softmax(3 * logits, 1).numpy()))


def test_calibration_labels_that_do_not_name_the_columns_are_an_error():
    prob = np.full((4, 3), 1 / 3)
    y = np.array([1, 3, 3, 3])  # 1-based labels, not all present: which column is which?
    for fn in (M.expected_calibration_error, M.reliability_curve):
        with pytest.raises(ValueError, match="labels="):
            fn(y, prob)
        with pytest.raises(ValueError, match="not in"):
            fn(np.array([0, 4, 1, 1]), prob, labels=[0, 1, 2])
    assert M.expected_calibration_error(y, prob, labels=[1, 2, 3]) == pytest.approx(
        M.expected_calibration_error(y - 1, prob)
    )
    with pytest.raises(ValueError, match="labels="):
        M.TemperatureScaler().fit(np.zeros((4, 3)), y)


def test_temperature_scaling_reduces_ece_of_overconfident_model():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 5, generator=g) * 1.5
    y = torch.multinomial(torch.softmax(true_logits, 1), 1, generator=g).squeeze(1)
    logits = 3.0 * true_logits  # an overconfident model: same ranking, too sharp
    val, test = slice(0, 2000), slice(2000, None)
    scaler = M.TemperatureScaler().fit(logits[val], y[val])
    assert scaler.temperature == pytest.approx(3.0, rel=0.15)
    assert scaler.nll_after < scaler.nll_before
    before = M.expected_calibration_error(y[test], torch.softmax(logits[test], 1))
    after = M.expected_calibration_error(y[test], scaler.predict_proba(logits[test]))
    assert after < before / 3 and after < 0.05
    scaled = scaler.transform(logits[test])
    assert isinstance(scaled, torch.Tensor)
    assert torch.equal(scaled.argmax(1), logits[test].argmax(1))  # accuracy unchanged
    # binary logits of shape (N,) are handled as sigmoid logits
    z = 4.0 * torch.randn(3000, generator=g)
    yb = (torch.rand(3000, generator=g) < torch.sigmoid(z / 4)).long()
    assert M.TemperatureScaler().fit(z, yb).temperature == pytest.approx(4.0, rel=0.2)


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(5)
    for case in range(120):
        n = int(rng.integers(5, 40))
        a = rng.random(n)
        b = a + rng.normal(0.03 * (case % 3 - 1), 0.05, n)
        if case % 2:  # ties among |d| and zero differences
            a, b = np.round(a, 2), np.round(b, 2)
        for zero_method in ("wilcox", "zsplit"):
            d = b - a
            if zero_method == "wilcox" and (d == 0).all():
                continue
            ours = M.wilcoxon_signed_rank(a, b, exact=False, zero_method=zero_method)
            ref = scipy.stats.wilcoxon(
                b, a, zero_method=zero_method, correction=False, method="asymptotic"
            )
            assert ours.statistic == pytest.approx(ref.statistic, abs=1e-9)
            assert ours.z == pytest.approx(ref.zstatistic, abs=1e-9)
            assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-12)
            no_ties = len(np.unique(np.abs(d))) == n and (d != 0).all()
            # scipy is exact without ties (a table) and for n <= 13 (it enumerates all 2^n
            # sign flips, slowly: only a few such cases)
            if no_ties or (n <= 10 and case < 40):
                exact = M.wilcoxon_signed_rank(a, b, exact=True, zero_method=zero_method)
                method = "exact" if no_ties else "auto"
                ref = scipy.stats.wilcoxon(b, a, zero_method=zero_method, method=method)
                assert exact.p_value == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-12)


def test_wilcoxon_seed_formula_and_decision():
    rng = np.random.default_rng(6)
    a = rng.random(30)
    b = a + 0.02 + 0.001 * rng.random(30)  # B wins on every dataset
    res = M.wilcoxon_signed_rank(a, b, exact=False)
    n = 30
    z = (0 - n * (n + 1) / 4) / np.sqrt(n * (n + 1) * (2 * n + 1) / 24)  # T = R- = 0
    assert res.statistic == 0 and res.z == pytest.approx(z) and res.z < -1.96
    assert res.reject and res.better == "b" and "B is better" in res.decision
    assert M.wilcoxon_signed_rank(b, a).better == "a"
    same = M.wilcoxon_signed_rank(a, a + rng.normal(0, 0.01, 30))
    assert same.method == "approx" and isinstance(same.reject, bool)
    with pytest.raises(ValueError, match="all differences are zero"):
        M.wilcoxon_signed_rank(a, a)
    with pytest.raises(ValueError, match="pair up"):
        M.wilcoxon_signed_rank(a, a[:5])


def test_package_has_one_module_per_idea_and_one_home_per_name():
    from course_lib.metrics import (
        calibration,
        classification,
        comparison,
        ranking,
        recalibration,
    )

    modules = (calibration, classification, comparison, ranking, recalibration)
    homes = {m.__name__: set(m.__all__) for m in modules}
    assert sorted(set().union(*homes.values())) == sorted(M.__all__)
    for name in M.__all__:  # defined in the submodule that lists it, the same object here
        obj = getattr(M, name)
        assert name in homes[obj.__module__], name
    assert not hasattr(M, "stratified_kfold") and not hasattr(M, "time_series_split")  # data.py
