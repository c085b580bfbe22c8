"""Fast unit tests of the grading pieces that run without a kernel."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from course_lib.grading import autograde, feedback, rebuild, sandbox, static, verify, worker

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
    assert not built.tampered and built.notes == []


def test_rebuild_detects_wrong_assignment(template):
    other = {"nbformat": 4, "cells": [{"cell_type": "code", "source": "1", "metadata": {}}]}
    assert rebuild.rebuild(template, other).status == "wrong-assignment"


def test_static_flags_name_the_route_and_the_line():
    targets = frozenset({"torch.nn.functional.softmax", "scipy.special.softmax", "aten._softmax"})
    src = (
        "import importlib\n"
        "import torch.nn.functional as F\n"
        "sp = importlib.import_module('sci' + 'py.special')\n"
        "f = getattr(sp, 'soft' + 'max')\n"
        "g = F.softmax\n"
        "from scipy.special import softmax as s2\n"
        "frame = sys._getframe(1).f_back\n"
        "x = In[-1]\n"
        "torch._C._nn.gelu\n"
        "def h(x, d=F.softmax): return eval('d(x)')\n"
    )
    flags = static.scan(src, targets, cell="softmax")
    want = [
        "softmax line 1: imports importlib",
        "softmax line 4: calls getattr() with a computed name",
        "softmax line 5: uses torch.nn.functional.softmax (forbidden in this exercise)",
        "softmax line 6: imports scipy.special.softmax",
        "softmax line 7: accesses ._getframe",
        "softmax line 8: uses In",
        "softmax line 9: accesses ._C",
        "softmax line 10: calls eval()",
    ]
    for w in want:
        assert w in flags, (w, flags)
    honest = "def softmax(x, dim=-1):\n    e = torch.exp(x - x.amax(dim, keepdim=True))\n    return e / e.sum(dim, keepdim=True)\n"
    assert static.scan(honest, targets) == []


def test_forbidden_targets_are_read_from_the_tests():
    src = (
        'FORBID = ("torch.nn.functional.softmax", "aten._softmax")\nwith forbidden(*FORBID): pass\n'
    )
    assert static.forbidden_targets([src]) == {"torch.nn.functional.softmax", "aten._softmax"}


def _entry(value, atol=1e-6, rtol=1e-5) -> dict:
    arr = np.ascontiguousarray(np.asarray(value))
    return {"dtype": arr.dtype.str, "shape": list(arr.shape), "atol": atol, "rtol": rtol,
            "data": base64.b64encode(arr.tobytes()).decode()}  # fmt: skip


def test_verify_uses_reference_tolerances_and_needs_every_key():
    R = {
        "t": verify.records_of(
            "t", {"records": {"a": _entry([1.0, 2.0], atol=0.1), "b": _entry([3, 4])}}
        )
    }
    S = {"t": verify.records_of("t", {"records": {"a": _entry([1.05, 2.0], atol=0.0)}})}
    ok, why = verify.compare(R, S, "t")  # b is missing; the student's own tolerance is ignored
    assert not ok and why.startswith("b: no result")
    S["t"]["b"] = verify.decode(_entry([3, 4]))
    assert verify.compare(R, S, "t") == (True, "")
    S["t"]["b"] = verify.decode(_entry([3, 5]))
    assert verify.compare(R, S, "t")[1] == "b: 1 of 2 entries differ"
    S["t"]["b"] = verify.decode(_entry(np.array([3.0, 4.0])))  # dtype differs
    assert "wrong dtype float64" in verify.compare(R, S, "t")[1]
    S["t"]["a"] = verify.decode(_entry([float("nan"), 2.0]))
    assert "NaN where a number is expected" in verify.compare(R, S, "t")[1]
    assert verify.compare(R, S, "no_records_for_this_cell") == (True, "")


def test_verify_rejects_malformed_and_object_records():
    good = _entry([1.0, 2.0])
    assert verify.decode(dict(good, dtype="|O")) is None
    assert verify.decode(dict(good, shape=[3])) is None  # size does not match the shape
    assert verify.decode(dict(good, data="not base64!")) is None
    assert verify.decode("junk") is None
    assert verify.decode({"dtype": "none", "atol": 0, "rtol": 0})[0] is None


def _plan_and_cells(template):
    src = rebuild.read_notebook(str(REPO / "solutions" / A / f"{A}.ipynb"))
    plan = autograde.make_plan(template, src)
    return plan, autograde.cells_to_run(plan, src)


@pytest.mark.parametrize(
    ("outcome", "memory", "status"),
    [
        ("done", False, "ok"),
        ("done", True, "out-of-memory"),
        ("timeout", True, "timeout"),  # the runner outcome wins over what the cells said
        ("kernel-died", False, "kernel-died"),
        ("tampered", False, "tampered"),
    ],
)
def test_status_is_decided_by_rule(template, outcome, memory, status):
    plan, cells = _plan_and_cells(template)
    tests = [c for c in cells if c.kind == "test"]
    results = {c.index: {"ok": True, "records": {}} for c in cells}
    results[tests[0].index] = {"ok": False, "ename": "MemoryError", "memory": memory}
    run = worker.Run(
        outcome, results=results if outcome == "done" else dict(list(results.items())[:3])
    )
    res, _ = autograde.merge("s", run, plan, cells, {}, set(), [], "ok")
    assert res.status == status
    assert res.tests[tests[0].gid]["points"] == 0
    if outcome == "done":  # no reference records here: every other test that ran passes
        assert res.tests[tests[1].gid]["points"] == template.tests[tests[1].gid]


def test_oracle_library_import_costs_the_part_it_was_imported_in(template):
    plan, cells = _plan_and_cells(template)
    results = {c.index: {"ok": True, "records": {}} for c in cells}
    answer = next(c for c in cells if c.gid == "log_softmax")
    results[answer.index]["imports"] = ["scipy", "scipy.special", "itertools"]
    res, _ = autograde.merge(
        "s", worker.Run("done", results=results), plan, cells, {}, set(), [], "ok"
    )
    assert res.tests["test_log_softmax_hidden"]["points"] == 0
    assert "scipy" in res.tests["test_log_softmax_hidden"]["message"]
    assert res.tests["test_softmax_hidden"]["points"] == 2
    assert any("imported itertools, scipy" in f for f in res.flags)


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
    assert {
        "--unshare-net",
        "--unshare-pid",
        "--die-with-parent",
        "--clearenv",
        "--new-session",
    } <= set(argv)
    binds = [argv[i + 1] for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert str(REPO) not in binds and str(REPO / "solutions") not in binds and "/" not in binds
    assert not [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]  # nothing of the host
    tmpfs = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert tmpfs == ["/tmp", str(tmp_path)]  # the only writable places, both sized
    assert all(argv[argv.index(t) - 1] == "--tmpfs" and argv[argv.index(t) - 3] == "--size"
               for t in tmpfs)  # fmt: skip
    env = sandbox.kernel_env(str(tmp_path))
    assert not any(k.startswith("NBGRADER") for k in env)


def test_fingerprint_covers_every_grading_file(tmp_path):
    src = tmp_path / "a.ipynb"
    src.write_text("{}")
    names = sorted(p.name for p in (REPO / "course_lib" / "grading").glob("*.py"))
    assert {"sandbox.py", "worker.py", "feedback.py", "runner.py"} <= set(names)
    assert autograde._fingerprint(src) == autograde._fingerprint(src)
