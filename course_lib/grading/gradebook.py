"""The course gradebook: every assignment's ``grades.csv`` joined with the roster.

``course-grade gradebook GRADING_ROOT --roster roster.csv --out DIR [--format csv|canvas|moodle]``
reads ``GRADING_ROOT/<assignment>/grades.csv`` (and ``report.json`` for the points possible) of
every assignment graded so far and writes ``DIR/gradebook.csv``::

    student_id, name, section, <assignment 1>, ..., total, max_total, percent, missing, note

One row per roster student (``missing`` lists the assignments without a submission; they count
0 in ``total``), then one row per submission whose id matches nobody on the roster (``note``:
``NOT ON ROSTER``, with the closest roster id when one looks like a typo): a misspelt file name
shows up here instead of vanishing. A submission matches a student when its id equals any of
the student's ids (``student_id``, Canvas ``ID``, SIS ids, email, username, ID number; email
case-insensitively). ``--format canvas`` / ``moodle`` also writes the LMS's import file
(``canvas_import.csv`` / ``moodle_import.csv``, see :mod:`course_lib.grading.lms`).
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from course_lib.grading import lms

Format = Literal["csv", "canvas", "moodle"]


@dataclass
class Assignment:
    """One assignment's grading output: ``totals[submission id]`` after any late penalty."""

    name: str
    max_total: float
    totals: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass
class Gradebook:
    roster: lms.Roster
    assignments: list[Assignment]
    scores: dict[str, dict[str, float | None]]  # roster student_id -> assignment -> points
    unmatched: list[tuple[str, str, str]]  # (assignment, submission id, closest roster id)
    duplicates: list[tuple[str, str, list[str]]]  # (assignment, student_id, submission ids)

    @property
    def max_total(self) -> float:
        return sum(a.max_total for a in self.assignments)


def read_assignment(folder: Path) -> Assignment:
    """The grades of one ``course-grade autograde --out`` folder (or a merged one)."""
    folder = Path(folder)
    report_path = folder / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    name = str(report.get("assignment") or folder.name)
    max_total = report.get("max_total")
    a = Assignment(name, float(max_total) if max_total is not None else 0.0)
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            sid = row["student_id"]
            a.totals[sid] = float(row["total"] or 0)
            a.statuses[sid] = row.get("status", "")
            if max_total is None and row.get("max_total"):
                a.max_total = float(row["max_total"])
    return a


def read_root(root: Path) -> list[Assignment]:
    """Every ``<root>/<assignment>/grades.csv``, in name order."""
    folders = sorted(p.parent for p in Path(root).glob("*/grades.csv"))
    if not folders:
        raise FileNotFoundError(f"no <assignment>/grades.csv under {root}")
    return [read_assignment(p) for p in folders]


def _norm(key: str) -> str:
    return key.strip().lower() if "@" in key else key.strip()


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one substituted, inserted or deleted character."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _closest(key: str, keys: list[str], owner: dict[str, str]) -> str:
    """The roster id(s) a mistyped id probably meant ("" when nothing is close)."""
    near = sorted({owner[k] for k in keys if _one_edit(key, k)})
    if not near:
        near = [owner[k] for k in difflib.get_close_matches(key, keys, n=1, cutoff=0.8)]
    return ", ".join(near[:3]) + (" or another" if len(near) > 3 else "")


def build(roster: lms.Roster, assignments: list[Assignment]) -> Gradebook:
    """Match every submission id to a roster student; collect the ones that match nobody."""
    owner: dict[str, str] = {}
    for s in roster.students:
        for k in s.keys():
            owner.setdefault(_norm(k), s.student_id)
    all_keys = sorted(owner)
    scores: dict[str, dict[str, float | None]] = {s.student_id: {} for s in roster.students}
    unmatched: list[tuple[str, str, str]] = []
    duplicates: list[tuple[str, str, list[str]]] = []
    for a in assignments:
        seen: dict[str, list[str]] = {}
        for sid, total in sorted(a.totals.items()):
            who = owner.get(_norm(sid))
            if who is None:
                unmatched.append((a.name, sid, _closest(_norm(sid), all_keys, owner)))
                continue
            seen.setdefault(who, []).append(sid)
            prev = scores[who].get(a.name)
            scores[who][a.name] = total if prev is None else max(prev, total)
        duplicates += [(a.name, who, ids) for who, ids in seen.items() if len(ids) > 1]
    return Gradebook(roster, assignments, scores, unmatched, duplicates)


def write_csv(book: Gradebook, path: Path) -> None:
    names = [a.name for a in book.assignments]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["student_id", "name", "section", *names, "total", "max_total", "percent", "missing"]
            + ["note"]
        )
        for s in book.roster.students:
            got = book.scores[s.student_id]
            missing = [n for n in names if got.get(n) is None]
            total = sum(v for v in got.values() if v is not None)
            pct = 100 * total / book.max_total if book.max_total else 0.0
            w.writerow(
                [s.student_id, s.name, s.section]
                + [lms._fmt(got.get(n)) for n in names]
                + [lms._fmt(total), lms._fmt(book.max_total), f"{pct:.1f}", ";".join(missing), ""]
            )
        for assignment, sid, close in book.unmatched:
            got = {
                assignment: next(a for a in book.assignments if a.name == assignment).totals[sid]
            }
            note = "NOT ON ROSTER" + (f" (did you mean {close}?)" if close else "")
            w.writerow(
                [sid, "", ""] + [lms._fmt(got.get(n)) for n in names] + ["", "", "", "", note]
            )


def gradebook(
    root: Path,
    roster_path: Path,
    out: Path,
    fmt: Format = "csv",
    moodle_id: lms.MoodleId = "email",
) -> tuple[Gradebook, list[Path]]:
    """Read, join and write; returns the book and the files written."""
    roster = lms.read_roster(roster_path)
    book = build(roster, read_root(root))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "gradebook.csv"]
    write_csv(book, written[0])
    columns = [(a.name, a.max_total) for a in book.assignments]
    if fmt == "canvas":
        written.append(out / "canvas_import.csv")
        lms.write_canvas(written[-1], roster.students, book.scores, columns, roster)
    elif fmt == "moodle":
        written.append(out / "moodle_import.csv")
        lms.write_moodle(written[-1], roster.students, book.scores, columns, moodle_id, roster)
    elif fmt != "csv":
        raise ValueError(f"unknown format {fmt!r}")
    return book, written


def cmd_gradebook(args: argparse.Namespace) -> int:
    """``course-grade gradebook``: exit 0, or 4 when some submissions match nobody."""
    book, written = gradebook(args.root, args.roster, args.out, args.format, args.moodle_id)
    n_missing = sum(
        1
        for s in book.roster.students
        for a in book.assignments
        if s.student_id and book.scores[s.student_id].get(a.name) is None
    )
    print(
        f"{len(book.roster.students)} students x {len(book.assignments)} assignments "
        f"({', '.join(a.name for a in book.assignments)}); {n_missing} missing submission(s)"
    )
    for path in written:
        print(f"wrote {path}")
    if args.format == "canvas":
        by_name = [
            s.student_id
            for s in book.roster.students
            if not (s.canvas_id or s.sis_user_id or s.sis_login_id)
        ]
        if by_name:
            print(
                f"WARNING: {len(by_name)} student(s) have no Canvas ID or SIS id in the roster "
                f"({', '.join(by_name[:5])}): Canvas can only match them by name"
            )
    for assignment, sid, close in book.unmatched:
        hint = f" (did you mean {close}?)" if close else ""
        print(f"WARNING: {assignment}: submission {sid!r} matches nobody on the roster{hint}")
    for assignment, who, ids in book.duplicates:
        print(
            f"WARNING: {assignment}: {who} has {len(ids)} submissions ({', '.join(ids)}); best kept"
        )
    return 4 if book.unmatched else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``course-grade gradebook`` on an argparse sub-parser collection."""
    g = sub.add_parser("gradebook", help="join every assignment's grades with the roster")
    g.add_argument(
        "root", type=Path, help="folder holding one autograde --out folder per assignment"
    )
    g.add_argument(
        "--roster", type=Path, required=True, help="roster CSV, or a Canvas/Moodle export"
    )
    g.add_argument("--out", type=Path, required=True, help="output folder (gradebook.csv, ...)")
    g.add_argument("--format", choices=["csv", "canvas", "moodle"], default="csv")
    g.add_argument(
        "--moodle-id",
        choices=sorted(lms.MOODLE_ID_HEADER),
        default="email",
        help="Moodle identifier column (map it to useremail/username/useridnumber on import)",
    )
    g.set_defaults(func=cmd_gradebook)
