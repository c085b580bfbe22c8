"""Evaluation metrics, calibration and classifier comparison, written out in numpy.

One module per idea, all re-collected here (``from course_lib import metrics as M``, then
``M.f1_score``; or ``from course_lib.metrics import f1_score``):

* :mod:`course_lib.metrics.classification`: accuracy, top-k accuracy, the confusion matrix,
  precision, recall and F-beta (binary, macro, micro, weighted averages), MCC;
* :mod:`course_lib.metrics.ranking`: ROC and precision-recall curves, AUROC, average precision;
* :mod:`course_lib.metrics.calibration`: log loss, Brier score, reliability curve, ECE, MCE,
  adaptive ECE, temperature scaling;
* :mod:`course_lib.metrics.recalibration`: one-vs-rest Platt scaling and isotonic calibration
  of logits (the per-class alternatives to temperature scaling);
* :mod:`course_lib.metrics.comparison`: the Wilcoxon signed-rank test for two classifiers.

Train/validation/test splits and cross-validation folds are data, not metrics: they live in
:mod:`course_lib.data` (``stratified_split``, ``stratified_kfold``, ``time_series_split``).

Every function that scikit-learn also has uses scikit-learn's name and argument order, so a
student can swap ``from course_lib.metrics import f1_score`` for
``from sklearn.metrics import f1_score`` and get the same number (the test suite checks this on
hundreds of random cases). The code is here to be read: each metric is a few lines of counting.

Conventions
-----------
* Inputs may be numpy arrays, torch tensors (any device) or lists; outputs are Python floats
  or numpy arrays.
* ``y_true`` holds class labels, shape ``(N,)``. ``y_pred`` holds predicted labels, shape ``(N,)``.
* ``y_prob`` / ``y_score`` is either ``(N, K)`` (one column per class, probabilities for the
  calibration and log-loss functions) or ``(N,)`` (the score or probability of the positive
  class in a binary problem).

Edge cases (the same rules everywhere)
--------------------------------------
* **Empty input** raises ``ValueError``.
* **A class that is never predicted** makes its precision 0/0. As in scikit-learn,
  ``zero_division="warn"`` (the default) uses 0 and emits an :class:`UndefinedMetricWarning`;
  pass ``zero_division=0.0``, ``1.0`` or ``np.nan`` to choose the value and silence the warning
  (``np.nan`` entries are then left out of averages). The same holds for recall of a class that
  never occurs in ``y_true`` (only possible when you pass ``labels``) and for an F-score whose
  precision and recall are both undefined.
* **A single class in y_true** leaves AUROC (and the ROC curve, average precision and the PR
  curve when there is no positive) undefined: we raise ``ValueError``. *scikit-learn differs
  here*: it warns and returns ``nan``.
* **Tied scores** are handled exactly as in scikit-learn: a tie between a positive and a
  negative counts one half towards AUROC (the ROC curve takes one diagonal step through the
  tied block), and top-k accuracy breaks ties in favour of the class with the larger index.
* **Probabilities** passed to ``log_loss``, ``brier_score_loss`` and the calibration functions
  must lie in [0, 1] and rows must sum to 1 (``ValueError`` otherwise, e.g. when logits are
  passed by mistake; scikit-learn only warns about the sum).
"""

from course_lib.metrics.calibration import (
    ReliabilityCurve,
    TemperatureScaler,
    adaptive_calibration_error,
    brier_score_loss,
    expected_calibration_error,
    log_loss,
    maximum_calibration_error,
    reliability_curve,
)
from course_lib.metrics.classification import (
    UndefinedMetricWarning,
    accuracy_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)
from course_lib.metrics.comparison import WilcoxonResult, wilcoxon_signed_rank
from course_lib.metrics.ranking import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from course_lib.metrics.recalibration import IsotonicCalibrator, PlattScaler

__all__ = [
    # classification
    "UndefinedMetricWarning",
    "accuracy_score",
    "top_k_accuracy_score",
    "confusion_matrix",
    "precision_recall_fscore_support",
    "precision_score",
    "recall_score",
    "f1_score",
    "fbeta_score",
    "matthews_corrcoef",
    # ranking
    "roc_curve",
    "auc",
    "roc_auc_score",
    "precision_recall_curve",
    "average_precision_score",
    # calibration
    "log_loss",
    "brier_score_loss",
    "ReliabilityCurve",
    "reliability_curve",
    "expected_calibration_error",
    "maximum_calibration_error",
    "adaptive_calibration_error",
    "TemperatureScaler",
    # recalibration
    "PlattScaler",
    "IsotonicCalibrator",
    # comparison
    "WilcoxonResult",
    "wilcoxon_signed_rank",
]
