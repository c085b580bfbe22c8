"""Round-trip variants for ex04_metrics_calibration (see course_lib/grading/README.md, "Variants")."""

# macro F1 computed as the F1 of the macro precision and macro recall (the classic wrong average);
# weighted F1 has the same mistake
PRF_F1_OF_MEANS = """
def precision_recall_f1(y_true, y_pred, num_classes, average="macro"):
    if average not in ("macro", "micro", "weighted", None):
        raise ValueError("bad average")

    def safe_div(a, b):
        return torch.where(b > 0, a / torch.where(b > 0, b, torch.ones_like(b)), torch.zeros_like(a))

    cm = confusion_matrix(y_true, y_pred, num_classes).double()
    tp, predicted, actual = cm.diag(), cm.sum(dim=0), cm.sum(dim=1)
    if average == "micro":
        tp, predicted, actual = tp.sum(), predicted.sum(), actual.sum()
    precision = safe_div(tp, predicted)
    recall = safe_div(tp, actual)
    if average is None or average == "micro":
        f1 = safe_div(2 * precision * recall, precision + recall)
        if average is None:
            return precision, recall, f1
        return float(precision), float(recall), float(f1)
    weights = torch.full_like(actual, 1.0 / num_classes) if average == "macro" else actual / actual.sum()
    p, r = float((weights * precision).sum()), float((weights * recall).sum())
    return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)
"""

PRF_CALLS_SKLEARN = """
from sklearn.metrics import precision_recall_fscore_support


def precision_recall_f1(y_true, y_pred, num_classes, average="macro"):
    p, r, f, _ = precision_recall_fscore_support(y_true.numpy(), y_pred.numpy(), labels=list(range(num_classes)),
                                                 average=average, zero_division=0)
    if average is None:
        return tuple(torch.tensor(v, dtype=torch.float64) for v in (p, r, f))
    return float(p), float(r), float(f)
"""

# ties counted as wins (strict > replaced by >=)
AUROC_TIES_AS_WINS = """
def auroc(y_true, scores):
    positive = y_true.bool()
    pos, neg = scores[positive].double(), scores[~positive].double()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("need both classes")
    return float((pos[:, None] >= neg[None, :]).double().mean())
"""

AUROC_CALLS_SKLEARN = """
import sklearn.metrics


def auroc(y_true, scores):
    return float(sklearn.metrics.roc_auc_score(y_true.numpy(), scores.numpy()))
"""

# left-closed bins [lo, hi): only differs when a confidence sits exactly on an edge
ECE_LEFT_CLOSED = """
def expected_calibration_error(probs, labels, n_bins=15):
    confidence, prediction = probs.double().max(dim=1)
    correct = (prediction == labels).double()
    bins = torch.floor(confidence * n_bins).long().clamp(0, n_bins - 1)
    ece = 0.0
    for m in range(n_bins):
        in_bin = bins == m
        if in_bin.any():
            ece += float(in_bin.double().mean()) * abs(float(correct[in_bin].mean()) - float(confidence[in_bin].mean()))
    return ece
"""

ECE_CALLS_COURSE_LIB = """
from course_lib.metrics import expected_calibration_error as _ece


def expected_calibration_error(probs, labels, n_bins=15):
    return _ece(labels.numpy(), probs.double().numpy(), n_bins=n_bins)
"""

VARIANTS = {
    "f1_of_mean_precision_and_recall": {
        "answers": {"precision_recall_f1": PRF_F1_OF_MEANS},
        "expect": {
            "test_precision_recall_f1_visible": 0,
            "test_precision_recall_f1_macro": 0,
            "test_precision_recall_f1_weighted": 0,
            "test_precision_recall_f1_zero_division": 0,
        },
    },
    "auroc_ties_count_as_wins": {
        "answers": {"auroc": AUROC_TIES_AS_WINS},
        "expect": {"test_auroc_ties": 0},
    },
    "ece_left_closed_bins": {
        "answers": {"expected_calibration_error": ECE_LEFT_CLOSED},
        "expect": {"test_ece_edge": 0},
    },
    "precision_recall_f1_calls_sklearn": {
        "answers": {"precision_recall_f1": PRF_CALLS_SKLEARN},
        "expect": {
            "test_precision_recall_f1_visible": 0,
            "test_precision_recall_f1_macro": 0,
            "test_precision_recall_f1_micro": 0,
            "test_precision_recall_f1_weighted": 0,
            "test_precision_recall_f1_per_class": 0,
            "test_precision_recall_f1_zero_division": 0,
        },
    },
    "auroc_calls_sklearn": {
        "answers": {"auroc": AUROC_CALLS_SKLEARN},
        "expect": {
            "test_auroc_visible": 0,
            "test_auroc_hidden": 0,
            "test_auroc_ties": 0,
            "test_auroc_edge": 0,
        },
    },
    "ece_calls_course_lib": {
        "answers": {"expected_calibration_error": ECE_CALLS_COURSE_LIB},
        "expect": {"test_ece_visible": 0, "test_ece_hidden": 0, "test_ece_edge": 0},
    },
}
