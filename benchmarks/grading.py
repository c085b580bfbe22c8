"""Benchmark: grade one class with ``course-grade`` and with plain sequential ``nbgrader autograde``.

    python benchmarks/grading.py [--n 40] [--jobs N] [--assignment ex01_losses_init]

Both grade the same ``--n`` submissions of the assignment (a mix of correct, partially correct
and wrong answers). ``course-grade`` runs them in parallel sandboxed runners (plus the reference
solution and the canary it grades in every batch); the baseline is one ``nbgrader autograde``
process over a plain course directory, one unsandboxed kernel after the other. With
``--repeats R`` the two alternate R times. Prints the wall times (median and spread), the
per-submission breakdown of course-grade (sandbox start, process start + imports, test
execution, parent verification), the machine's load, and ``ratio course-grade/nbgrader``
(below 1: course-grade is faster).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
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


def run_course_grade(assignment: str, subs: Path, out: Path, jobs: int | None):
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
    return seconds, summary.timings


def sandbox_start_seconds(n: int = 5) -> float:
    """Median wall time of starting and ending an empty bubblewrap sandbox (``true``)."""
    from course_lib.grading import sandbox

    if not sandbox.sandbox_available():
        return 0.0
    box = tempfile.mkdtemp(prefix="cg-bench-box-")
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(sandbox.bwrap_argv(box, ["/bin/true"]), check=True)
        times.append(time.perf_counter() - t0)
    shutil.rmtree(box, ignore_errors=True)
    return statistics.median(times)


def spread(xs: list[float]) -> str:
    return f"(spread {min(xs):.1f}-{max(xs):.1f})" if len(xs) > 1 else ""


def breakdown(timings: dict[str, dict[str, float]], sandbox_s: float) -> str:
    def med(key: str) -> float:
        return statistics.median(t.get(key, 0.0) for t in timings.values())

    return (
        f"per submission (median of {len(timings)}): sandbox start {sandbox_s:.2f} s, "
        f"process start + imports (torch, test modules) {med('start') - sandbox_s:.2f} s "
        f"(of which Python + torch import as seen inside {med('t_import'):.2f} s), "
        f"test execution {med('cells'):.2f} s, parent verification {med('verify') * 1000:.0f} ms, "
        f"total {med('total'):.2f} s"
    )


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
    p.add_argument("--repeats", type=int, default=1, help="alternating runs of both")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    try:
        students = make_class(args.assignment, args.n)
        subs = work / "submissions"
        subs.mkdir()
        for sid, nb in students.items():
            (subs / f"{sid}.ipynb").write_text(json.dumps(nb))
        print(f"{args.n} submissions of {args.assignment}, {os.cpu_count()} CPU(s), "
              f"load average before: {os.getloadavg()[0]:.2f}")  # fmt: skip
        cg, nbg, last = [], [], {}
        for r in range(args.repeats):
            t_cg, last = run_course_grade(args.assignment, subs, work / f"out{r}", args.jobs)
            cg.append(t_cg)
            nbg.append(run_nbgrader(args.assignment, students, work / f"course{r}"))
        print(
            f"course-grade (parallel, sandboxed, +reference +canary): {statistics.median(cg):7.1f} s {spread(cg)}"
        )
        print(
            f"nbgrader autograde (sequential, unsandboxed):           {statistics.median(nbg):7.1f} s {spread(nbg)}"
        )
        print(breakdown(last, sandbox_start_seconds()))
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        print(f"ratio course-grade/nbgrader: {statistics.median(cg) / statistics.median(nbg):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
