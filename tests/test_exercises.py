"""Round trip of every assignment in solutions/ (generic: new assignments are covered automatically).

For each assignment, ONE ``course-grade autograde`` run grades the reference solution, the
untouched release (canary) and the variants of ``tests/exercise_variants/<a>.py``:
- the source notebook earns full marks, the release earns 0 on every test cell,
- each variant earns exactly the listed points (subtly wrong -> partial, forbidden call -> 0
  for that part), every unlisted test cell full points,
- ``exercises/`` equals what ``course-grade release`` generates from ``solutions/``.
"""

from __future__ import annotations

import json
import shutil

import pytest
from adversarial.runner import REPO, class_run, load_variants

from course_lib.grading import rebuild
from course_lib.grading.release import assignments, generate

ASSIGNMENTS = assignments(REPO / "solutions")
pytestmark = pytest.mark.slow


def test_there_are_assignments():
    assert "ex01_losses_init" in ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_is_up_to_date(assignment, tmp_path):
    gen = generate(assignment, REPO / "solutions", tmp_path)
    committed = REPO / "exercises" / assignment
    assert committed.is_dir(), (
        f"exercises/{assignment} missing: run `course-grade release {assignment}`"
    )
    produced = sorted(p.name for p in gen.release.parent.iterdir())
    assert sorted(p.name for p in committed.iterdir()) == produced
    new = json.loads(gen.release.read_text())
    old = json.loads((committed / f"{assignment}.ipynb").read_text())
    assert new == old, (
        f"exercises/{assignment} is out of date: run `course-grade release {assignment}`"
    )
    shutil.rmtree(gen.course)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_structure(assignment):
    """Hidden tests carry most points; answer cells, test cells and grade ids are well formed."""
    nb = rebuild.read_notebook(str(REPO / "solutions" / assignment / f"{assignment}.ipynb"))
    template = rebuild.Template.from_notebook(nb)
    assert 3 <= len(template.answers), "an assignment asks for 3-6 functions or modules"
    hidden = {
        rebuild.nbgrader_meta(c)["grade_id"]
        for c in nb.cells
        if "BEGIN HIDDEN TESTS" in rebuild.cell_source(c)
    }
    hidden_points = sum(template.tests[g] for g in hidden if g in template.tests)
    assert hidden_points > template.max_total / 2, "hidden tests should be worth most of the points"
    intro = " ".join(rebuild.cell_source(c) for c in nb.cells[:3] if c.cell_type == "markdown")
    assert "../../book/" in intro, "the intro should link to the chapter (../../book/...)"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_reference_full_marks_and_canary_zero(assignment):
    run = class_run(assignment)
    ref, canary = run.report["reference"], run.report["canary"]
    assert ref["total"] == run.report["max_total"]
    assert canary["total"] == 0
    assert all(t["points"] == 0 for t in canary["tests"].values())
    assert run.exit_code == 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_test_cell_records_its_outputs(assignment):
    """Parent-side verification needs records: every test cell must record at least one value."""
    run = class_run(assignment)
    missing = [g for g, n in run.report["reference_records"].items() if n == 0]
    assert not missing, f"test cells that record nothing (call checks.record): {missing}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_variants_earn_exact_points(assignment):
    variants = load_variants(assignment)
    assert len(variants) >= 2, (
        f"tests/exercise_variants/{assignment}.py needs a subtly wrong and a forbidden-call variant"
    )
    run = class_run(assignment)
    max_total = run.report["max_total"]
    partial = False
    for name, spec in variants.items():
        row = run.report["students"][f"v_{name}"]
        assert row["status"] == "ok", (name, row["status"], row["notes"])
        for gid, test in row["tests"].items():
            want = spec["expect"].get(gid, test["max"])
            assert test["points"] == want, (
                f"variant {name}: {gid} earned {test['points']}, expected {want}"
            )
        partial = partial or 0 < row["total"] < max_total
    assert partial, "at least one variant should earn partial marks"


def test_variant_files_name_real_cells():
    for assignment in ASSIGNMENTS:
        nb = rebuild.read_notebook(str(REPO / "solutions" / assignment / f"{assignment}.ipynb"))
        template = rebuild.Template.from_notebook(nb)
        for name, spec in load_variants(assignment).items():
            assert set(spec["answers"]) <= set(template.answers), (assignment, name)
            assert set(spec["expect"]) <= set(template.tests), (assignment, name)


def test_solutions_hold_only_the_notebook():
    for assignment in ASSIGNMENTS:
        files = sorted(p.name for p in (REPO / "solutions" / assignment).iterdir())
        assert files == [f"{assignment}.ipynb"], f"solutions/{assignment}/ holds {files}"
