"""Round-trip variants for ex09_training_practice (see course_lib/grading/README.md, "Variants")."""

# appends to an existing file instead of starting a fresh one (and writes the header each fit)
CSV_APPENDS = """
class CSVLogger(Callback):
    def __init__(self, path) -> None:
        self.path = path

    def on_fit_start(self, trainer) -> None:
        self.fields = None

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        row = {"epoch": epoch, **logs}
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if self.fields is None:
                self.fields = list(row)
                writer.writerow(self.fields)
            writer.writerow([row[k] for k in self.fields])
"""

CSV_CALLS_LIBRARY = """
from course_lib.tracking import CSVLogger as _Lib

class CSVLogger(_Lib):
    pass
"""

# forgets evaluation mode: dropout is active while scoring
SCORES_TRAIN_MODE = """
def difficulty_scores(teacher, x, y):
    with torch.no_grad():
        return F.cross_entropy(teacher(x), y, reduction="none")
"""

SCORES_CALLS_LIBRARY = """
from course_lib.curriculum import difficulty_scores as _lib

def difficulty_scores(teacher, x, y):
    return _lib(teacher, x, y)
"""

# rounds the number of available examples down (and may give none)
CURRICULUM_FLOOR = """
def curriculum_indices(scores, t, total, start=0.2, full_at=0.5):
    order = torch.argsort(scores, stable=True)
    g = start + (1 - start) * min(1.0, t / (full_at * total))
    return order[: int(g * len(scores))]
"""

# clips each parameter's gradient by its own norm instead of the global norm
CLIP_PER_PARAMETER = """
def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g ** 2).sum() for g in grads))
    for g in grads:
        g.mul_(torch.clamp(max_norm / (g.norm() + 1e-6), max=1.0))
    return total
"""

CLIP_CALLS_TORCH = """
def clip_grad_norm(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
"""

# torch's clip_grad_norm_ captured in a default argument (decorated: the guard follows
# ``__wrapped__``), and the course's own implementation under another module
CLIP_CAPTURED_TORCH = """
def clip_grad_norm(parameters, max_norm, _f=torch.nn.utils.clip_grad_norm_):
    return _f(parameters, max_norm)
"""

CLIP_COURSE_LIB = """
from course_lib.regularisers import clip_grad_norm as _rc

def clip_grad_norm(parameters, max_norm):
    return torch.tensor(_rc(parameters, max_norm))
"""

SCORES_DATA_QUALITY = """
from course_lib.data_quality import per_example_loss as _pel

def difficulty_scores(teacher, x, y):
    return _pel(teacher, x, y)
"""

# a correct computation returned wrong, with the right norm recorded through the setup cell's
# make_model (its code re-bound to other globals, then with the notebook's globals changed):
# record() answers only to test-cell code running in the test namespace
CLIP_FORGES_RECORD = """
import functools, types
from course_lib.grading.checks import record

def _forge(key, value):
    fake_torch = types.SimpleNamespace(manual_seed=functools.partial(record, key))
    fake_nn = types.SimpleNamespace(Sequential=lambda *a: None, Linear=lambda *a: None,
                                    ReLU=lambda: None)
    try:
        types.FunctionType(make_model.__code__, {"torch": fake_torch, "nn": fake_nn})(value)
    except Exception:
        pass
    g = make_model.__globals__
    saved = g["torch"], g["nn"]
    g["torch"], g["nn"] = fake_torch, fake_nn
    try:
        make_model(value)
    except Exception:
        pass
    finally:
        g["torch"], g["nn"] = saved

def clip_grad_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.mul_(torch.clamp(max_norm / (total + 1e-6), max=1.0))
    for key in ("test_clip_grad_norm_visible/norm", "test_clip_grad_norm_hidden/norm"):
        _forge(key, total)
    return total * 0
"""

# writes doubled values, and rewrites the test's numbers() through the __globals__ of the
# test's own callback (reached through trainer.callbacks) to return the true logs: without the
# runner's snapshot of the test's functions that test would earn its points
CSV_REWRITES_TEST = """
class CSVLogger(Callback):
    def __init__(self, path):
        self.path = path

    def on_fit_start(self, trainer):
        open(self.path, "w").close()
        self.fields = None

    def on_epoch_end(self, trainer, epoch, logs):
        row = {"epoch": epoch, **logs}
        self.true = getattr(self, "true", []) + [row]
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if self.fields is None:
                self.fields = list(row)
                writer.writerow(self.fields)
            writer.writerow([2 * row[k] if k != "epoch" else row[k] for k in self.fields])
        for cb in trainer.callbacks:
            if type(cb).__name__ == "Peek":  # the test parses the (wrong) file with numbers()
                ns = type(cb).on_epoch_end.__globals__
                ns["numbers"] = lambda header, rows, keys, t=self.true: torch.tensor(
                    [[float(r[k]) for k in keys] for r in t], dtype=torch.float64)
"""

VARIANTS = {
    "csv_appends": {
        "answers": {"CSVLogger": CSV_APPENDS},
        "expect": {"test_csvlogger_fresh": 0},
    },
    "csv_calls_library": {
        "answers": {"CSVLogger": CSV_CALLS_LIBRARY},
        "expect": {
            "test_csvlogger_visible": 0,
            "test_csvlogger_hidden": 0,
            "test_csvlogger_fresh": 0,
        },
    },
    "scores_train_mode": {
        "answers": {"difficulty_scores": SCORES_TRAIN_MODE},
        "expect": {"test_difficulty_scores_hidden": 0},
    },
    "scores_calls_library": {
        "answers": {"difficulty_scores": SCORES_CALLS_LIBRARY},
        "expect": {"test_difficulty_scores_visible": 0, "test_difficulty_scores_hidden": 0},
    },
    "curriculum_floor": {
        "answers": {"curriculum_indices": CURRICULUM_FLOOR},
        "expect": {
            "test_curriculum_indices_visible": 0,
            "test_curriculum_indices_hidden": 0,
            "test_curriculum_indices_ties": 0,
        },
    },
    "clip_per_parameter": {
        "answers": {"clip_grad_norm": CLIP_PER_PARAMETER},
        "expect": {
            "test_clip_grad_norm_visible": 0,
            "test_clip_grad_norm_hidden": 0,
            "test_clip_grad_norm_global": 0,
        },
    },
    "clip_calls_torch": {
        "answers": {"clip_grad_norm": CLIP_CALLS_TORCH},
        "expect": {
            "test_clip_grad_norm_visible": 0,
            "test_clip_grad_norm_hidden": 0,
            "test_clip_grad_norm_global": 0,
        },
    },
    "clip_captured_torch": {
        "answers": {"clip_grad_norm": CLIP_CAPTURED_TORCH},
        "expect": {
            "test_clip_grad_norm_visible": 0,
            "test_clip_grad_norm_hidden": 0,
            "test_clip_grad_norm_global": 0,
        },
    },
    "clip_course_lib": {
        "answers": {"clip_grad_norm": CLIP_COURSE_LIB},
        "expect": {
            "test_clip_grad_norm_visible": 0,
            "test_clip_grad_norm_hidden": 0,
            "test_clip_grad_norm_global": 0,
        },
    },
    "scores_data_quality": {
        "answers": {"difficulty_scores": SCORES_DATA_QUALITY},
        "expect": {"test_difficulty_scores_visible": 0, "test_difficulty_scores_hidden": 0},
    },
    "clip_forges_record": {
        "answers": {"clip_grad_norm": CLIP_FORGES_RECORD},
        "expect": {
            "test_clip_grad_norm_visible": 0,
            "test_clip_grad_norm_hidden": 0,
            "test_clip_grad_norm_global": 0,
        },
    },
    "csv_rewrites_test": {
        "answers": {"CSVLogger": CSV_REWRITES_TEST},
        "expect": {
            "test_csvlogger_visible": 0,
            "test_csvlogger_hidden": 0,
            "test_csvlogger_fresh": 0,
        },
    },
}
