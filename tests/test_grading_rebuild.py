"""Fast unit tests of the grading pieces that run without a kernel."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

from course_lib.grading import feedback, rebuild, sandbox, verify

REPO = Path(__file__).resolve().parents[1]
A = "ex01_losses_init"


@pytest.fixture(scope="module")
def template():
    nb = rebuild.read_notebook(str(REPO / "exercises" / A / f"{A}.ipynb"))
    return rebuild.Template.from_notebook(nb)


def _release() -> dict:
    return json.loads((REPO / "exercises" / A / f"{A}.ipynb").read_text())


def _index(nb: dict, grade_id: str) -> int:
    return next(
        i
        for i, c in enumerate(nb["cells"])
        if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id
    )


def test_template_knows_answers_tests_and_points(template):
    assert template.answers[:2] == ["softmax", "log_softmax"]
    assert template.max_total == 20
    assert template.tests["test_hinge_hidden"] == 3


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"{", "malformed-json"),
        (b"[1, 2]", "not-a-notebook"),
        (b'{"cells": [], "nbformat": 3}', "not-a-notebook"),
        (b'{"cells": [42], "nbformat": 4}', "not-a-notebook"),
        (b"\xff\xfe", "malformed-json"),
    ],
)
def test_parse_rejects_what_is_not_a_v4_notebook(raw, status):
    nb, got, detail = rebuild.parse(raw)
    assert nb is None and got == status and detail


def test_rebuild_keeps_answers_and_restores_everything_else(template):
    nb = _release()
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade_id") == "softmax":
            cell["source"] = "def softmax(x, dim=-1):\n    return x\n"
        if meta.get("grade"):
            meta["points"] = 1000
            cell["source"] = "pass"
    nb["cells"].append(copy.deepcopy(nb["cells"][_index(nb, "test_softmax_visible")]))  # duplicated
    built = rebuild.rebuild(template, nb)
    assert built.tampered and built.status == "ok"
    graded = {rebuild.nbgrader_meta(c).get("grade_id"): c for c in built.notebook.cells}
    assert graded["softmax"].source.endswith("return x\n")
    assert graded["test_softmax_visible"].metadata.nbgrader["points"] == 1
    assert "assert_close" in graded["test_softmax_visible"].source
    assert any("edited" in n for n in built.notes) and any(
        "appears" in n or "duplicated" in n for n in built.notes
    )


def test_rebuild_untouched_release_is_clean(template):
    built = rebuild.rebuild(template, _release())
    assert not built.tampered and built.notes == [] and built.flags == []


def test_rebuild_detects_wrong_assignment(template):
    other = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "1", "metadata": {}}]}
    assert rebuild.rebuild(template, other).status == "wrong-assignment"


def test_rebuild_flags_suspicious_answers(template):
    nb = _release()
    nb["cells"][_index(nb, "softmax")]["source"] = (
        "import course_lib.grading.checks as c\nget_ipython()\n"
    )
    flags = rebuild.rebuild(template, nb).flags
    assert "course_lib.grading" in flags and "get_ipython" in flags


def _save(root: Path, gid: str, name: str, value, atol=1e-6, rtol=1e-5) -> None:
    (root / gid).mkdir(parents=True, exist_ok=True)
    np.save(root / gid / f"{name}.npy", np.asarray(value), allow_pickle=False)
    (root / gid / f"{name}.json").write_text(json.dumps({"atol": atol, "rtol": rtol}))


def test_verify_uses_reference_tolerances_and_needs_every_key(tmp_path):
    ref, stu = tmp_path / "ref", tmp_path / "stu"
    _save(ref, "t", "a", [1.0, 2.0], atol=0.1)
    _save(ref, "t", "b", [3, 4])
    _save(stu, "t", "a", [1.05, 2.0], atol=0.0)  # the student's own tolerance is ignored
    R, S = verify.load(ref), verify.load(stu)
    assert verify.compare(R, S, "t") == (False, verify.compare(R, S, "t")[1])  # b is missing
    _save(stu, "t", "b", [3, 4])
    assert verify.compare(R, verify.load(stu), "t")[0]
    _save(stu, "t", "b", [3, 5])
    assert not verify.compare(R, verify.load(stu), "t")[0]
    _save(stu, "t", "b", np.array([3.0, 4.0]))  # dtype differs
    assert not verify.compare(R, verify.load(stu), "t")[0]
    assert verify.compare(R, S, "no_records_for_this_cell") == (True, "")


def test_verify_ignores_symlinks_and_pickles(tmp_path):
    ref, stu = tmp_path / "ref", tmp_path / "stu"
    _save(ref, "t", "a", [1.0])
    (stu / "t").mkdir(parents=True)
    os.symlink(ref / "t" / "a.npy", stu / "t" / "a.npy")  # point at the reference's own file
    assert "t" not in verify.load(stu) or "a" not in verify.load(stu)["t"]
    os.remove(stu / "t" / "a.npy")
    np.save(stu / "t" / "a.npy", np.array([object()], dtype=object), allow_pickle=True)
    assert verify.load(stu).get("t", {}).get("a") is None


def test_feedback_strips_hidden_regions_and_escapes_html():
    src = "visible()\n### BEGIN HIDDEN TESTS\nsecret_input = 42\n### END HIDDEN TESTS\n"
    assert "secret_input" not in feedback.strip_hidden(src)
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": src,
                "metadata": {"nbgrader": {"grade_id": "t", "grade": True}},
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": "secret_input = 42"},
                    {
                        "output_type": "error",
                        "ename": "AssertionError",
                        "evalue": "<script>x</script>",
                        "traceback": ["secret"],
                    },
                ],
            },
        ]
    }
    page = feedback.render(
        "s<1>", A, "ok", 0, 1, {"t": {"points": 0, "max": 1, "message": "m"}}, [], nb, {"t"}
    )
    assert "secret_input" not in page and "<script>" not in page and "s&lt;1&gt;" in page
    assert "AssertionError" in page


@pytest.mark.skipif(not sandbox.sandbox_available(), reason="bubblewrap not installed")
def test_sandbox_command_line_is_a_whitelist(tmp_path):
    argv = sandbox.bwrap_argv(str(tmp_path), ["python"])
    assert {"--unshare-net", "--unshare-pid", "--die-with-parent", "--clearenv"} <= set(argv)
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert str(REPO) not in binds and str(REPO / "solutions") not in binds and "/" not in binds
    writable = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert writable == [str(tmp_path)]
    env = sandbox.kernel_env(str(tmp_path))
    assert not any(k.startswith("NBGRADER") for k in env)
