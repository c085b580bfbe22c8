"""One ``course-grade autograde`` run per assignment, shared by the test modules of a session.

For every assignment the class holds its round-trip variants (``tests/exercise_variants/<a>.py``);
for ex01_losses_init it also holds the honest students and the adversarial catalogue. Results are
memoised per process so test_exercises.py and test_grading.py pay for one run, not two.
"""

from __future__ import annotations

import atexit
import csv
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import catalogue

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = float(os.environ.get("COURSE_GRADE_TEST_TIMEOUT", "60"))
MEMORY_MB = 1024
_RUNS: dict[str, ClassRun] = {}


@dataclass
class ClassRun:
    assignment: str
    submissions: Path  # folder of submissions (files and folders)
    out: Path  # --out folder
    report: dict
    rows: dict[str, dict]  # grades.csv rows by student id
    expected: dict[str, tuple[str, float]]  # student id -> (status, total) for catalogue students
    variants: dict[str, dict]  # name -> variant spec (ids are "v_<name>")
    exit_code: int


def load_variants(assignment: str) -> dict[str, dict]:
    path = REPO / "tests" / "exercise_variants" / f"{assignment}.py"
    if not path.is_file():
        return {}
    spec = importlib.util.spec_from_file_location(f"_variants_{assignment}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "VARIANTS", {}))


def variant_notebook(assignment: str, answers: dict[str, str]) -> bytes:
    release = json.loads((REPO / "exercises" / assignment / f"{assignment}.ipynb").read_text())
    source = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    merged = dict(catalogue._answers(source))
    merged.update(answers)
    return json.dumps(catalogue.student_notebook(release, merged), indent=1).encode()


def class_run(assignment: str) -> ClassRun:
    """Grade the whole test class of ``assignment`` once per process (cached)."""
    if assignment in _RUNS:
        return _RUNS[assignment]
    from course_lib.grading.cli import main

    root = Path(tempfile.mkdtemp(prefix=f"cg-test-{assignment}-"))
    atexit.register(shutil.rmtree, root, True)
    subs = root / "submissions"
    subs.mkdir()
    expected: dict[str, tuple[str, float]] = {}
    files: dict[str, bytes] = {}
    if assignment == catalogue.ASSIGNMENT:
        for sid, (raw, status, total) in catalogue.build_class(REPO).items():
            files[sid] = raw
            expected[sid] = (status, total)
    variants = load_variants(assignment)
    for name, spec in variants.items():
        files[f"v_{name}"] = variant_notebook(assignment, spec["answers"])
    for i, (sid, raw) in enumerate(sorted(files.items())):
        if i % 3 == 0:  # LMS-style folder layout for a third of the class
            (subs / sid).mkdir()
            (subs / sid / f"{assignment}.ipynb").write_bytes(raw)
        else:
            (subs / f"{sid}.ipynb").write_bytes(raw)
    if assignment == catalogue.ASSIGNMENT:
        (subs / "no_notebook").mkdir()
        (subs / "no_notebook" / "README.txt").write_text("forgot to attach it")
        expected["no_notebook"] = ("no-notebook", 0.0)
    out = root / "out"
    code = main(
        [
            "autograde",
            assignment,
            str(subs),
            "--out",
            str(out),
            "--timeout",
            str(TIMEOUT),
            "--memory",
            str(MEMORY_MB),
            "--quiet",
            "--solutions",
            str(REPO / "solutions"),
            "--exercises",
            str(REPO / "exercises"),
        ]
    )
    report = json.loads((out / "report.json").read_text())
    with open(out / "grades.csv") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    run = ClassRun(assignment, subs, out, report, rows, expected, variants, code)
    _RUNS[assignment] = run
    return run
