"""The learning-management system's files: rosters in, grade imports out, submission names read.

Three kinds of file, each in the shape the LMS documents or produces itself:

* **Rosters.** ``read_roster`` accepts a plain CSV (``student_id`` plus optional ``name``,
  ``email``, ``username``, ``sis_user_id``, ``sis_login_id``, ``section``, ``canvas_id``), a
  *Canvas gradebook export* (``Student, ID, SIS User ID, SIS Login ID, Section``, a
  ``Points Possible`` row, one ``<title> (<assignment id>)`` column per assignment) or a *Moodle
  grade export* (``First name, Last name, ID number, Institution, Department, Email address``,
  one ``<Activity>: <name>`` column per grade item). The assignment columns of an LMS export are
  kept, so grades go back under the exact header the LMS matches on.
* **Grade imports.** ``write_canvas`` writes Canvas's gradebook import (the export's own layout:
  the five identity columns, one column per assignment, ``    Points Possible`` as the second
  row; Canvas matches students on ``ID``, ``SIS User ID``, ``SIS Login ID`` or the name, and
  assignments on the ``(id)`` in the header or the title). ``write_moodle`` writes Moodle's
  grade-import CSV: one identifier column (``Email address``, ``Username`` or ``ID number``,
  mapped on import to ``useremail``, ``username`` or ``useridnumber``) plus one column per grade
  item. Both are UTF-8, RFC 4180 quoting (a name with a comma is quoted), a blank cell for a
  student without a submission (the LMS then leaves that grade alone).
* **Submission downloads.** ``identify`` reads what an LMS's bulk download says about one
  top-level entry:

  - Canvas "Download Submissions": ``<sortablename>[_LATE]_<user id>_<file id>_<file name>``
    (Canvas's ``ContentZipper``: the name lower-cased with non-word characters removed, ``LATE``
    when Canvas counted the submission late, ``anon_<id>`` for anonymous grading; a resubmitted
    file gets ``-1``, ``-2`` before the extension). The zip carries **no submission time** (its
    entries are stamped when the zip is built), only the ``LATE`` marker.
  - Moodle "Download all submissions" (in folders): ``<Full name>_<participant id>_assignsubmission_file_/``.
    The time is in Moodle's *grading worksheet* (``Identifier = "Participant <id>"``,
    ``Last modified (submission)``): put the worksheet CSV next to the folders.
  - nbgrader's exchange (``nbgrader collect``): ``<student>/[<assignment>/]timestamp.txt``
    holding ``YYYY-MM-DD HH:MM:SS.ffffff UTC``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

MoodleId = Literal["email", "username", "idnumber"]
Worksheet = dict[str, tuple[str, datetime | None]]  # Moodle participant id -> (email, time)
MOODLE_ID_HEADER: dict[str, str] = {
    "email": "Email address",
    "username": "Username",
    "idnumber": "ID number",
}
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
POINTS_POSSIBLE = "    Points Possible"  # Canvas writes the label indented by four spaces
_CANVAS_TOTALS = re.compile(
    r"^(Current|Final|Unposted Current|Unposted Final) (Score|Points|Grade)$"
    r"|.* (Current|Final|Unposted Current|Unposted Final) (Score|Points)$"
)
_CANVAS_COLUMN = re.compile(r"^(?P<title>.*?)\s*\((?P<id>\d+)\)$")
_CANVAS_FILE = re.compile(
    r"^(?:(?P<name>\w*?)_)??(?P<late>LATE_)?(?P<uid>\d+|anon_[A-Za-z0-9]+)_(?P<fid>\d+)_(?P<file>.+)$"
)
_MOODLE_FOLDER = re.compile(r"^(?P<name>.*)_(?P<pid>\d+)_assign(submission|feedback)_[a-z]+_?$")
_MOODLE_TIME_FORMATS = (
    "%A, %d %B %Y, %I:%M %p",  # "Tuesday, 1 December 2026, 11:59 PM" (strftimedaydatetime)
    "%d %B %Y, %I:%M %p",  # "1 December 2026, 11:59 PM" (strftimedatetime)
)


# ----------------------------------------------------------------------------------------------
# rosters
# ----------------------------------------------------------------------------------------------
@dataclass
class Student:
    """One roster row. ``keys()`` are every id a submission may be filed under."""

    student_id: str
    name: str = ""
    email: str = ""
    username: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    canvas_id: str = ""
    idnumber: str = ""

    def keys(self) -> list[str]:
        ids = [
            self.student_id,
            self.canvas_id,
            self.sis_user_id,
            self.sis_login_id,
            self.email,
            self.username,
            self.idnumber,
        ]
        return [k for k in dict.fromkeys(ids) if k]


@dataclass
class Roster:
    students: list[Student]
    kind: Literal["csv", "canvas", "moodle"] = "csv"
    columns: dict[str, str] = field(default_factory=dict)  # assignment title -> LMS header
    points: dict[str, str] = field(default_factory=dict)  # LMS header -> points possible


def _rows(path: Path) -> list[list[str]]:
    text = Path(path).read_text(encoding="utf-8-sig")  # LMS exports may start with a BOM
    return [r for r in csv.reader(io.StringIO(text, newline=""))]


def _cell(row: list[str], idx: dict[str, int], key: str) -> str:
    i = idx.get(key)
    return row[i].strip() if i is not None and i < len(row) else ""


def canvas_title(header: str) -> str:
    """``"ex01_losses_init (123456)"`` -> ``"ex01_losses_init"``."""
    m = _CANVAS_COLUMN.match(header.strip())
    return m.group("title") if m else header.strip()


def read_roster(path: Path) -> Roster:
    """A roster from a plain CSV, a Canvas gradebook export or a Moodle grade export."""
    rows = _rows(path)
    if not rows:
        raise ValueError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    if "student_id" in header:
        idx = {h: i for i, h in enumerate(header)}
        students = []
        for r in rows[1:]:
            if not any(c.strip() for c in r):
                continue
            students.append(
                Student(
                    _cell(r, idx, "student_id"),
                    _cell(r, idx, "name"),
                    _cell(r, idx, "email"),
                    _cell(r, idx, "username"),
                    _cell(r, idx, "sis_user_id"),
                    _cell(r, idx, "sis_login_id"),
                    _cell(r, idx, "section"),
                    _cell(r, idx, "canvas_id"),
                    _cell(r, idx, "idnumber"),
                )
            )
        return Roster(students, "csv")
    if header[:2] == ["Student", "ID"]:
        return _read_canvas(header, rows[1:])
    if "Email address" in header and ("First name" in header or "ID number" in header):
        return _read_moodle(header, rows[1:])
    raise ValueError(
        f"{path}: not a roster (needs a student_id column, or a Canvas/Moodle gradebook export)"
    )


def _read_canvas(header: list[str], rows: list[list[str]]) -> Roster:
    idx = {h: i for i, h in enumerate(header)}
    identity = set(CANVAS_IDENTITY) | {"Root Account", "Integration ID"}
    roster = Roster([], "canvas")
    points_row: list[str] = []
    for r in rows:
        first = r[0].strip() if r else ""
        if first == "Points Possible":
            points_row = r
            continue
        if not first and not any(c.strip() for c in r[1:4]):  # "Muted"/"Manual Posting" rows
            continue
        cid = _cell(r, idx, "ID")
        if first == "Student, Test" and not _cell(r, idx, "SIS User ID"):
            continue  # Canvas's Test Student
        roster.students.append(
            Student(
                student_id=cid,
                name=first,
                sis_user_id=_cell(r, idx, "SIS User ID"),
                sis_login_id=_cell(r, idx, "SIS Login ID"),
                section=_cell(r, idx, "Section"),
                canvas_id=cid,
            )
        )
    for i, h in enumerate(header):
        if h in identity or _CANVAS_TOTALS.match(h):
            continue
        possible = points_row[i].strip() if i < len(points_row) else ""
        if possible == "(read only)":
            continue
        roster.columns[canvas_title(h)] = h
        roster.points[h] = possible
    return roster


def _read_moodle(header: list[str], rows: list[list[str]]) -> Roster:
    idx = {h: i for i, h in enumerate(header)}
    last = "Last name" if "Last name" in idx else "Surname"
    identity = {"First name", last, "ID number", "Institution", "Department", "Email address"}
    identity |= {"Username", "Course total", "Last downloaded from this course"}
    roster = Roster([], "moodle")
    for r in rows:
        if not any(c.strip() for c in r):
            continue
        ident = (
            _cell(r, idx, "ID number")
            or _cell(r, idx, "Username")
            or _cell(r, idx, "Email address")
        )
        roster.students.append(
            Student(
                student_id=ident,
                name=f"{_cell(r, idx, 'First name')} {_cell(r, idx, last)}".strip(),
                email=_cell(r, idx, "Email address"),
                username=_cell(r, idx, "Username"),
                idnumber=_cell(r, idx, "ID number"),
            )
        )
    for h in header:
        title = re.sub(r"\s*\((Real|Percentage|Letter)\)$", "", h)  # the export's display type
        if title in identity or h.startswith("Feedback: ") or title.endswith(" total"):
            continue
        title = title.split(": ", 1)[1] if ": " in title else title  # "Assignment: ex01" -> "ex01"
        roster.columns[title] = h
    return roster


# ----------------------------------------------------------------------------------------------
# grade imports
# ----------------------------------------------------------------------------------------------
def _fmt(x: float | None) -> str:
    return "" if x is None else f"{round(x, 4):g}"


def write_canvas(
    path: Path,
    students: Iterable[Student],
    scores: dict[str, dict[str, float | None]],
    assignments: list[tuple[str, float]],
    roster: Roster | None = None,
) -> list[str]:
    """Canvas gradebook import; ``scores[student_id][assignment]``; returns the header.

    ``assignments`` is ``[(name, points possible)]``; a name found in a Canvas export used as
    the roster is written under that export's exact header (``title (id)``).
    """
    columns = roster.columns if roster is not None and roster.kind == "canvas" else {}
    heads = [columns.get(name, name) for name, _ in assignments]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(CANVAS_IDENTITY + heads)
        w.writerow([POINTS_POSSIBLE, "", "", "", ""] + [_fmt(p) for _, p in assignments])
        for s in students:
            row = [s.name, s.canvas_id, s.sis_user_id, s.sis_login_id, s.section]
            w.writerow(row + [_fmt(scores.get(s.student_id, {}).get(n)) for n, _ in assignments])
    return CANVAS_IDENTITY + heads


def write_moodle(
    path: Path,
    students: Iterable[Student],
    scores: dict[str, dict[str, float | None]],
    assignments: list[tuple[str, float]],
    identifier: MoodleId = "email",
    roster: Roster | None = None,
) -> list[str]:
    """Moodle grade-import CSV: the identifier column, ``Full name``, one column per grade item."""
    if identifier not in MOODLE_ID_HEADER:
        raise ValueError(f"identifier must be one of {sorted(MOODLE_ID_HEADER)}")
    attr = {"email": "email", "username": "username", "idnumber": "idnumber"}[identifier]
    columns = roster.columns if roster is not None and roster.kind == "moodle" else {}
    heads = [columns.get(name, name) for name, _ in assignments]
    header = [MOODLE_ID_HEADER[identifier], "Full name"] + heads
    blank = [s.student_id for s in students if not (getattr(s, attr) or s.student_id)]
    if blank:
        raise ValueError(f"students without an identifier: {blank}")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for s in students:
            ident = getattr(s, attr) or (s.student_id if identifier == "idnumber" else "")
            if not ident:
                raise ValueError(
                    f"{s.student_id} has no {identifier}: add it to the roster or choose "
                    f"another --moodle-id"
                )
            w.writerow(
                [ident, s.name]
                + [_fmt(scores.get(s.student_id, {}).get(n)) for n, _ in assignments]
            )
    return header


# ----------------------------------------------------------------------------------------------
# submission downloads
# ----------------------------------------------------------------------------------------------
@dataclass
class Entry:
    """What an LMS download says about one top-level submission entry."""

    student_id: str | None = None  # None: the name is not an LMS download name
    submitted_at: datetime | None = None
    late_marker: bool | None = None  # Canvas's LATE; None when the export has no such marker
    source: str = ""  # "canvas", "moodle", "moodle-worksheet", "nbgrader"


def identify(entry: Path, worksheet: Worksheet | None = None) -> Entry:
    """Read the student id (and time, when the export has one) from one entry's name.

    ``worksheet``: :func:`moodle_worksheet` of the entry's folder (read when not given).
    """
    name = entry.name
    if entry.is_file() or entry.suffix == ".ipynb":
        m = _CANVAS_FILE.match(name)
        if m:
            return Entry(m.group("uid"), None, bool(m.group("late")), "canvas")
        return Entry()
    m = _MOODLE_FOLDER.match(name)
    if m:
        pid = m.group("pid")
        sheet = (moodle_worksheet(entry.parent) if worksheet is None else worksheet).get(pid)
        if sheet is not None:
            return Entry(sheet[0] or f"participant{pid}", sheet[1], None, "moodle-worksheet")
        return Entry(f"participant{pid}", None, None, "moodle")
    stamp = nbgrader_timestamp(entry)
    if stamp is not None:
        return Entry(None, stamp, None, "nbgrader")
    return Entry()


def nbgrader_timestamp(folder: Path) -> datetime | None:
    """nbgrader's ``timestamp.txt`` in ``folder`` or one level below (``<student>/<assignment>/``)."""
    for cand in [folder / "timestamp.txt", *sorted(folder.glob("*/timestamp.txt"))]:
        if cand.is_file() and not cand.is_symlink():
            text = cand.read_text(errors="replace").strip()
            for fmt in ("%Y-%m-%d %H:%M:%S.%f %Z", "%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S.%f"):
                try:
                    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
                except ValueError:
                    continue
    return None


def moodle_worksheet(folder: Path, tz=None) -> Worksheet:
    """Participant id -> (email, last modified) from a Moodle grading worksheet in ``folder``.

    Moodle writes the time in the teacher's time zone without naming it; ``tz`` (default: the
    grading machine's local zone) is attached to it.
    """
    found: Worksheet = {}
    for csv_path in sorted(folder.glob("*.csv")):
        rows = _rows(csv_path)
        if not rows or "Last modified (submission)" not in rows[0]:
            continue
        idx = {h: i for i, h in enumerate(rows[0])}
        for r in rows[1:]:
            if len(r) < len(idx):
                continue
            m = re.search(r"(\d+)\s*$", r[idx["Identifier"]]) if "Identifier" in idx else None
            if not m:
                continue
            when = parse_moodle_time(r[idx["Last modified (submission)"]], tz)
            email = r[idx["Email address"]].strip() if "Email address" in idx else ""
            found[m.group(1)] = (email, when)
    return found


def parse_moodle_time(text: str, tz=None) -> datetime | None:
    """``"Tuesday, 1 December 2026, 11:59 PM"`` -> an aware datetime (``-`` -> None)."""
    text = text.strip()
    for fmt in _MOODLE_TIME_FORMATS:
        try:
            naive = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
    return None


def apply_names(subs: list, root: Path, sanitize) -> None:
    """Give LMS-named submissions their LMS id; attach what the name says as ``sub.lms``.

    ``subs`` are ``autograde.Submission`` objects collected from the top-level entries of
    ``root``, named ``sanitize(<entry name or stem>)``. A Canvas file
    ``doejane_LATE_52001_880001_ex01.ipynb`` becomes student ``52001`` (Canvas's ``ID``), a
    Moodle folder the email of the grading worksheet (else ``participant<id>``).
    """
    worksheet = moodle_worksheet(root)
    entries: dict[str, Path] = {}
    for child in sorted(Path(root).iterdir()):
        if child.name.startswith(".") or child.is_symlink():
            continue
        key = child.stem if child.is_file() and child.suffix == ".ipynb" else child.name
        entries.setdefault(sanitize(key), child)
    for sub in subs:
        child = entries.get(sub.student_id)
        if child is None:
            continue
        e = identify(child, worksheet)
        if e.source:
            sub.lms = e
        if e.student_id:
            sub.student_id = sanitize(e.student_id)
