"""Round-trip variants for ex05_regularisation (see course_lib/grading/README.md, "Variants")."""

# forgets the 1 / (1 - p) scaling of the kept values
DROPOUT_NOT_INVERTED = """
def dropout(x, p, training=True, generator=None):
    if not 0.0 <= p <= 1.0:
        raise ValueError("p must be in [0, 1]")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator) >= p
    return x * keep
"""

DROPOUT_CALLS_TORCH = """
def dropout(x, p, training=True, generator=None):
    return F.dropout(x, p, training=training)
"""

# L2 without the 1/2
PENALTIES_NO_HALF = """
def l1_penalty(params):
    return sum((w.abs().sum() for w in params), torch.zeros(()))


def l2_penalty(params):
    return sum(((w * w).sum() for w in params), torch.zeros(()))
"""

# spreads eps over the K - 1 wrong classes only (another convention, not torch's)
LS_WRONG_CLASSES_ONLY = """
def label_smoothing_cross_entropy(logits, target, eps=0.1):
    k = logits.shape[-1]
    log_p = F.log_softmax(logits, dim=-1)
    q = F.one_hot(target, k).to(log_p.dtype) * (1 - eps - eps / (k - 1)) + eps / (k - 1)
    return -(q * log_p).sum(dim=-1).mean()
"""

LS_CALLS_TORCH = """
def label_smoothing_cross_entropy(logits, target, eps=0.1):
    return torch.nn.CrossEntropyLoss(label_smoothing=eps)(logits, target)
"""

# an equal value counts as an improvement
ES_TIES_IMPROVE = """
class EarlyStopping:
    def __init__(self, patience=5, min_delta=0.0, mode="min"):
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best = math.inf if mode == "min" else -math.inf
        self.best_step, self.num_bad, self.num_steps = -1, 0, 0

    def step(self, value):
        if self.mode == "min":
            improved = value <= self.best - self.min_delta
        else:
            improved = value >= self.best + self.min_delta
        if improved:
            self.best, self.best_step, self.num_bad = value, self.num_steps, 0
        else:
            self.num_bad += 1
        self.num_steps += 1
        return self.num_bad >= self.patience
"""

ES_SUBCLASSES_COURSE_LIB = """
from course_lib.train import EarlyStopping as _Base


class EarlyStopping(_Base):
    def __init__(self, patience=5, min_delta=0.0, mode="min"):
        super().__init__(monitor="val_loss", patience=patience, min_delta=min_delta, mode=mode)

    @property
    def best_step(self):
        return self.best_epoch - 1
"""

VARIANTS = {
    "dropout_not_inverted": {
        "answers": {"dropout": DROPOUT_NOT_INVERTED},
        "expect": {"test_dropout_visible": 0, "test_dropout_train": 0},
    },
    "l2_penalty_without_half": {
        "answers": {"penalties": PENALTIES_NO_HALF},
        "expect": {"test_penalties_visible": 0, "test_penalties_hidden": 0},
    },
    "label_smoothing_wrong_classes_only": {
        "answers": {"label_smoothing_cross_entropy": LS_WRONG_CLASSES_ONLY},
        "expect": {
            "test_label_smoothing_visible": 0,
            "test_label_smoothing_hidden": 0,
            "test_label_smoothing_edge": 0,
        },
    },
    "early_stopping_ties_improve": {
        "answers": {"EarlyStopping": ES_TIES_IMPROVE},
        "expect": {"test_early_stopping_hidden": 0},
    },
    "dropout_calls_reference": {
        "answers": {"dropout": DROPOUT_CALLS_TORCH},
        "expect": {"test_dropout_visible": 0, "test_dropout_train": 0, "test_dropout_eval": 0},
    },
    "label_smoothing_calls_reference": {
        "answers": {"label_smoothing_cross_entropy": LS_CALLS_TORCH},
        "expect": {
            "test_label_smoothing_visible": 0,
            "test_label_smoothing_hidden": 0,
            "test_label_smoothing_edge": 0,
        },
    },
    "early_stopping_subclasses_course_lib": {
        "answers": {"EarlyStopping": ES_SUBCLASSES_COURSE_LIB},
        "expect": {
            "test_early_stopping_visible": 0,
            "test_early_stopping_hidden": 0,
            "test_early_stopping_mode": 0,
        },
    },
}
