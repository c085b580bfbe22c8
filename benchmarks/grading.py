"""Benchmark: grade one class with ``course-grade`` and with plain sequential ``nbgrader autograde``.

    python benchmarks/grading.py [--n 40] [--jobs N] [--assignment ex01_losses_init]

Both grade the same ``--n`` submissions of the assignment (a mix of correct, partially correct
and wrong answers). ``course-grade`` runs them in parallel sandboxed kernels (plus the reference
solution and the canary it grades in every batch); the baseline is one ``nbgrader autograde``
process over a plain course directory, one unsandboxed kernel after the other. Prints both wall
times and ``ratio course-grade/nbgrader`` (below 1: course-grade is faster).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_class(assignment: str, n: int) -> dict[str, dict]:
    release = json.loads((REPO / "exercises" / assignment / f"{assignment}.ipynb").read_text())
    source = json.loads((REPO / "solutions" / assignment / f"{assignment}.ipynb").read_text())
    answers = {
        c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
        for c in source["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }
    names = list(answers)
    students = {}
    for i in range(n):
        nb = copy.deepcopy(release)
        keep = {g for j, g in enumerate(names) if (i + j) % 4 != 0} if i % 3 else set(names)
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("solution") and meta["grade_id"] in keep:
                cell["source"] = answers[meta["grade_id"]]
        students[f"student{i:03d}"] = nb
    return students


def run_course_grade(assignment: str, subs: Path, out: Path, jobs: int | None) -> float:
    from course_lib.grading.autograde import autograde

    t0 = time.perf_counter()
    summary = autograde(
        assignment,
        subs,
        out,
        jobs=jobs,
        timeout=300,
        solutions=REPO / "solutions",
        exercises=REPO / "exercises",
        progress=False,
    )
    seconds = time.perf_counter() - t0
    statuses = {r.status for r in summary.results.values()}
    assert statuses <= {"ok"}, statuses
    return seconds


def run_nbgrader(assignment: str, students: dict[str, dict], course: Path) -> float:
    (course / "source" / assignment).mkdir(parents=True)
    shutil.copy(
        REPO / "solutions" / assignment / f"{assignment}.ipynb", course / "source" / assignment
    )
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\nc.CourseDirectory.course_id = 'bench'\nc.Execute.timeout = 300\n"
    )
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run(
        [*nbgrader, "generate_assignment", assignment, "--force"],
        cwd=course,
        env=env,
        check=True,
        capture_output=True,
    )
    for sid, nb in students.items():
        folder = course / "submitted" / sid / assignment
        folder.mkdir(parents=True)
        (folder / f"{assignment}.ipynb").write_text(json.dumps(nb))
    t0 = time.perf_counter()
    subprocess.run(
        [*nbgrader, "autograde", assignment, "--force"],
        cwd=course,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=40, help="number of submissions")
    p.add_argument("--jobs", type=int, default=None, help="course-grade workers (default: CPUs)")
    p.add_argument("--assignment", default="ex01_losses_init")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    try:
        students = make_class(args.assignment, args.n)
        subs = work / "submissions"
        subs.mkdir()
        for sid, nb in students.items():
            (subs / f"{sid}.ipynb").write_text(json.dumps(nb))
        print(f"{args.n} submissions of {args.assignment}, {os.cpu_count()} CPU(s)")
        t_cg = run_course_grade(args.assignment, subs, work / "out", args.jobs)
        print(f"course-grade (parallel, sandboxed, +reference +canary): {t_cg:7.1f} s")
        t_nb = run_nbgrader(args.assignment, students, work / "course")
        print(f"nbgrader autograde (sequential, unsandboxed):           {t_nb:7.1f} s")
        print(f"ratio course-grade/nbgrader: {t_cg / t_nb:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
