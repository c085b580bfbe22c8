import json
import subprocess
import sys

import pytest

from course_lib.history import History


def test_history_round_trips_and_finds_the_best_epoch():
    h = History()
    for e, (loss, acc) in enumerate([(1.0, 0.5), (0.6, 0.8), (0.7, 0.7)], start=1):
        h.append({"epoch": e, "train_loss": loss, "val_acc": acc, "grad_norm": 2.0 * e})
    assert len(h) == 3 and h.extra == {"grad_norm": [2.0, 4.0, 6.0]}
    assert h.best("val_acc") == (2, 0.8)
    assert h.best("train_loss", mode="min") == (2, 0.6)
    assert h.best("grad_norm", mode="min") == (1, 2.0)
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    assert list(h.to_frame().columns) == ["train_loss", "val_acc", "grad_norm"]


@pytest.mark.parametrize("module", ["course_lib.history", "course_lib.train"])
def test_the_training_modules_do_not_import_matplotlib(module):
    code = f"import sys, {module}; assert 'matplotlib' not in sys.modules, 'matplotlib'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
