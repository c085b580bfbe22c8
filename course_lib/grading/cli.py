"""``course-grade``: release, autograde and validate nbgrader assignments.

course-grade release [ASSIGNMENT]                 regenerate exercises/ from solutions/
course-grade autograde ASSIGNMENT SUBMISSIONS --out DIR [--jobs N --timeout S --memory MB]
course-grade validate NOTEBOOK                    a student's check before submitting
course-grade gradebook GRADING_ROOT --roster R --out DIR [--format csv|canvas|moodle]
course-grade similarity ASSIGNMENT SUBMISSIONS --out DIR   pairs sharing code
course-grade merge OUT_DIR SHARD_DIR...           combine autograde --shard I/N outputs
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from course_lib.grading import gradebook, hints, late, rebuild, shards, similarity  # term: issue 14
from course_lib.grading.release import assignments, release


def _cmd_release(args: argparse.Namespace) -> int:
    names = [args.assignment] if args.assignment else assignments(args.solutions)
    if not names:
        print(f"no assignments found in {args.solutions}/", file=sys.stderr)
        return 1
    for name in names:
        dest = release(name, args.solutions, args.exercises)
        print(f"released {name} -> {dest}")
    return 0


def _cmd_autograde(args: argparse.Namespace) -> int:
    from course_lib.grading.autograde import GradingSetupError, autograde, print_summary

    try:  # term: late policy and shard options
        term = {
            "late_options": late.Options.from_args(args.due, args.late_policy, args.extensions),
            "shard": shards.parse(args.shard),
        }
    except ValueError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    try:
        summary = autograde(
            args.assignment,
            args.submissions,
            args.out,
            jobs=args.jobs,
            timeout=args.timeout,
            memory_mb=args.memory,
            solutions=args.solutions,
            exercises=args.exercises,
            force=args.force,
            progress=not args.quiet,
            keep_workdir=args.keep_workdir,
            **term,  # term:
        )
    except (GradingSetupError, hints.HintError) as exc:  # term: a hint that leaks
        print(f"ERROR: {exc}", file=sys.stderr)
        return 3
    print_summary(summary)
    return 2 if summary.canary is not None and summary.canary.total > 0 else 0


def _find_template(nb: dict, path: Path, exercises: Path, assignment: str | None):
    candidates = (
        [assignment] if assignment else assignments(exercises) if exercises.is_dir() else []
    )
    best, best_hits = None, 0
    ids = {rebuild.nbgrader_meta(c).get("grade_id") for c in nb["cells"]} - {None}
    for name in candidates:
        tpath = exercises / name / f"{name}.ipynb"
        if not tpath.is_file():
            continue
        template = rebuild.Template.from_notebook(rebuild.read_notebook(str(tpath)))
        hits = len(ids & (set(template.answers) | set(template.tests)))
        if hits > best_hits or (hits == best_hits and name == path.stem):
            best, best_hits = (name, template), hits
    return best


def _cmd_validate(args: argparse.Namespace) -> int:
    """Run the student's notebook as grading does (sandboxed runner), visible tests only."""
    import tempfile

    import nbformat

    from course_lib.grading import sandbox, worker

    path = Path(args.notebook)
    nb_json, status, detail = rebuild.parse(path.read_bytes())
    if nb_json is None:
        print(f"FAIL: {path} cannot be graded: {status} ({detail})")
        return 2
    found = _find_template(nb_json, path, Path(args.exercises), args.assignment)
    problems = 0
    if found is not None:
        name, template = found
        built = rebuild.rebuild(template, nb_json)
        if built.notebook is None:
            print(f"FAIL: {path} is not an {name} notebook ({'; '.join(built.notes)})")
            return 2
        print(f"assignment: {name}")
        for note in built.notes:
            print(f"  note: {note}")
        problems += int(built.tampered)
        nb = built.notebook
    else:
        print(
            "note: no released template found (run inside the course repository or pass "
            "--exercises); checking the notebook as it is"
        )
        nb = nbformat.from_dict(nb_json)
    sandboxed = sandbox.sandbox_available()
    if not sandboxed:
        print("note: bubblewrap is not installed here: your notebook runs without the sandbox")
    cells, hidden = [], set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = rebuild.nbgrader_meta(cell)
        gid = meta.get("grade_id") or ""
        src = rebuild.cell_source(cell)
        kind = "answer" if meta.get("solution") else "test" if meta.get("grade") else "setup"
        if kind == "test" and (not src.strip() or "hidden tests" in src.lower()):
            hidden.add(gid)  # the release's hidden-test cells are empty: they run at grading
        cells.append(worker.Cell(i, kind, gid, src))
    with tempfile.TemporaryDirectory(prefix="cg-validate-") as box:
        run = worker.run_cells(
            cells, sandbox_dir=box, timeout=args.timeout, memory_mb=4096, sandboxed=sandboxed
        )
    if run.outcome != "done":
        print(f"FAIL: the notebook did not run to the end ({run.outcome}: {run.detail})")
        return 1
    failed = 0
    for cell in cells:
        result = run.results.get(cell.index, {})
        err = f"{result.get('ename')}: {str(result.get('evalue'))[:300]}"
        if cell.kind == "test":
            if cell.gid in hidden and result.get("ok"):
                print(f"  runs at grading {cell.gid} (hidden tests)")
            elif not result.get("ok"):
                failed += 1
                print(f"  FAILED {cell.gid}: {err}")
            else:
                print(f"  passed {cell.gid}")
        elif not result.get("ok") and cell.kind == "answer":
            print(f"  error in answer cell {cell.gid}: {err[:200]}")
            failed += 1
    if failed or problems:
        print(
            f"FAIL: {failed} failing cell(s){', restored/ignored cells (see notes)' if problems else ''}"
        )
        return 1
    print("OK: all visible tests pass (hidden tests run at grading)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--solutions",
        type=Path,
        default=Path("solutions"),
        help="source notebooks (default: solutions)",
    )
    common.add_argument(
        "--exercises",
        type=Path,
        default=Path("exercises"),
        help="student versions (default: exercises)",
    )
    p = argparse.ArgumentParser(
        prog="course-grade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser(
        "release",
        parents=[common],
        help="regenerate exercises/<a>/ from solutions/<a>/ (all when no name)",
    )
    r.add_argument("assignment", nargs="?")
    r.set_defaults(func=_cmd_release)

    a = sub.add_parser("autograde", parents=[common], help="grade a folder or zip of submissions")
    a.add_argument("assignment")
    a.add_argument(
        "submissions", type=Path, help="folder or zip: <id>.ipynb files or <id>/ folders"
    )
    a.add_argument(
        "--out", type=Path, required=True, help="output folder (grades.csv, feedback/, report.json)"
    )
    a.add_argument("--jobs", type=int, default=None, help="parallel workers (default: CPU count)")
    a.add_argument("--timeout", type=float, default=120.0, help="wall-clock seconds per submission")
    a.add_argument(
        "--memory", type=int, default=2048, help="memory per kernel in MB (on top of torch)"
    )
    a.add_argument(
        "--force", action="store_true", help="regrade everything, not only new/changed files"
    )
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    a.add_argument(
        "--keep-workdir", action="store_true", help="keep the temporary course dirs (debugging)"
    )
    a.set_defaults(func=_cmd_autograde)
    late.add_arguments(a)  # term: --due --extensions --late-policy
    shards.add_arguments(a)  # term: --shard I/N

    v = sub.add_parser(
        "validate",
        parents=[common],
        help="check a notebook before submitting (exit 1 when a test fails)",
    )
    v.add_argument("notebook")
    v.add_argument("--assignment", default=None)
    v.add_argument("--timeout", type=int, default=120)
    v.set_defaults(func=_cmd_validate)
    gradebook.add_parser(sub)  # term: course-grade gradebook
    similarity.add_parser(sub, [common])  # term: course-grade similarity
    shards.add_parser(sub)  # term: course-grade merge
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser"]
