"""LMS files against fixtures in each LMS's own export shape (tests/fixtures/lms/).

Canvas: the gradebook export layout (``Student, ID, SIS User ID, SIS Login ID, Section``, then
``<title> (<id>)`` columns, a ``    Points Possible`` row with ``(read only)`` total columns, the
Test Student), which is also its import layout. Moodle: the grade export of Moodle's own
gradeimport_csv tests (``First name, Last name, ID number, Institution, Department, Email
address, <Activity>: <name>``) and the assignment grading worksheet. Names carry commas, quotes
and non-ASCII letters.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from course_lib.grading import lms

FIX = Path(__file__).parent / "fixtures" / "lms"
CANVAS = FIX / "canvas_gradebook_export.csv"
MOODLE = FIX / "moodle_grade_export.csv"
WORKSHEET = FIX / "moodle_grading_worksheet.csv"


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_canvas_export_is_read_as_a_roster_with_its_assignment_headers():
    roster = lms.read_roster(CANVAS)
    assert roster.kind == "canvas"
    names = [s.name for s in roster.students]
    assert names == ["Doe, Jane", "Ünal, Zoë", 'O\'Brien, Seán "Shay"', "Nguyễn, Thị Minh"]
    jane = roster.students[0]
    assert (jane.canvas_id, jane.sis_user_id, jane.sis_login_id) == ("52001", "S1001", "jdoe")
    assert roster.students[2].section == "DL 2026 - Section B, evening"
    # the read-only total columns are not assignments; the (id) stays in the header
    assert roster.columns == {
        "ex01_losses_init": "ex01_losses_init (1001)",
        "ex02_autograd": "ex02_autograd (1002)",
    }


def test_canvas_import_has_the_export_layout_with_points_possible_second(tmp_path):
    roster = lms.read_roster(CANVAS)
    scores = {"52001": {"ex01_losses_init": 11.5}, "52002": {"ex01_losses_init": 12.0}}
    scores["52003"] = {"ex01_losses_init": 0.0, "ex02_autograd": 8.0}
    out = tmp_path / "canvas_import.csv"
    lms.write_canvas(
        out,
        roster.students,
        scores,
        [("ex01_losses_init", 12.0), ("ex02_autograd", 8.0)],
        roster,
    )
    rows = _csv(out)
    export = _csv(CANVAS)
    assert (
        rows[0][:5] == export[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    )
    assert rows[0][5:] == export[0][5:7]  # assignments under the export's exact "title (id)"
    assert rows[1] == ["    Points Possible", "", "", "", "", "12", "8"]
    body = {r[1]: r for r in rows[2:]}
    for line in export[2:6]:  # every student keeps the export's identity cells verbatim
        assert body[line[1]][:5] == line[:5]
    assert body["52001"][5:] == ["11.5", ""]
    assert body["52003"][5:] == ["0", "8"]
    assert body["52004"][5:] == ["", ""]  # no submission: blank, Canvas leaves it alone
    assert "52999" not in body  # the Test Student is not a student
    raw = out.read_bytes()
    assert '"Ünal, Zoë"'.encode() in raw and b'"O\'Brien, Se\xc3\xa1n ""Shay"""' in raw
    assert raw.count(b"\r\n") == len(rows)
    # Canvas's import is its export shape: reading our file as an export gives the same roster
    again = lms.read_roster(out)
    assert [s.__dict__ for s in again.students] == [s.__dict__ for s in roster.students]
    assert again.columns == roster.columns


def test_canvas_import_from_a_plain_roster_uses_assignment_names(tmp_path):
    roster_csv = tmp_path / "roster.csv"
    roster_csv.write_text(
        "student_id,name,sis_user_id,sis_login_id,section,canvas_id\n"
        '52001,"Doe, Jane",S1001,jdoe,A,52001\n'
    )
    roster = lms.read_roster(roster_csv)
    out = tmp_path / "c.csv"
    lms.write_canvas(out, roster.students, {"52001": {"ex01": 3}}, [("ex01", 12)], roster)
    assert _csv(out) == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "ex01"],
        ["    Points Possible", "", "", "", "", "12"],
        ["Doe, Jane", "52001", "S1001", "jdoe", "A", "3"],
    ]


def test_moodle_export_is_read_as_a_roster():
    roster = lms.read_roster(MOODLE)
    assert roster.kind == "moodle"
    assert [s.email for s in roster.students][:2] == [
        "jane.doe@example.edu",
        "zoe.unal@example.edu",
    ]
    assert roster.students[2].name == 'Seán "Shay" O\'Brien, Jr'
    assert roster.students[1].idnumber == "S1002" and roster.students[1].student_id == "S1002"
    assert roster.columns == {
        "ex01_losses_init": "Assignment: ex01_losses_init (Real)",
        "ex02_autograd": "Assignment: ex02_autograd (Real)",
    }


@pytest.mark.parametrize(
    "ident, header, key",
    [("email", "Email address", "email"), ("idnumber", "ID number", "idnumber")],
)
def test_moodle_import_has_one_identifier_column_and_grade_items(tmp_path, ident, header, key):
    roster = lms.read_roster(MOODLE)
    out = tmp_path / "moodle_import.csv"
    scores = {"S1001": {"ex01_losses_init": 7.25}, "S1003": {"ex02_autograd": 8}}
    lms.write_moodle(
        out,
        roster.students,
        scores,
        [("ex01_losses_init", 12), ("ex02_autograd", 8)],
        ident,
        roster,
    )
    rows = _csv(out)
    export = _csv(MOODLE)
    assert rows[0] == [header, "Full name"] + export[0][6:8]
    col = export[0].index(header)
    assert [r[0] for r in rows[1:]] == [r[col] for r in export[1:]]  # Moodle's own values
    assert rows[1][2:] == ["7.25", ""] and rows[3][2:] == ["", "8"]
    assert rows[3][1] == 'Seán "Shay" O\'Brien, Jr'
    assert all(getattr(s, key) for s in roster.students)


def test_moodle_import_refuses_a_missing_identifier(tmp_path):
    roster = lms.read_roster(MOODLE)  # a grade export has no Username column
    with pytest.raises(ValueError, match="has no username"):
        lms.write_moodle(tmp_path / "m.csv", roster.students, {}, [("a", 1)], "username", roster)


@pytest.mark.parametrize(
    "name, sid, late",
    [
        ("doejane_52001_880001_ex01_losses_init.ipynb", "52001", False),
        ("ünalzoë_LATE_52002_880002_ex01_losses_init-1.ipynb", "52002", True),  # resubmitted
        ("obrienseanshay_52003_880003_my_notebook.ipynb", "52003", False),
        ("LATE_anon_x7Yz2_880004_ex01.ipynb", "anon_x7Yz2", True),  # anonymous grading
        ("alice.ipynb", None, None),  # not a Canvas name: the file name is the id
    ],
)
def test_canvas_submission_download_names(tmp_path, name, sid, late):
    path = tmp_path / name
    path.write_text("{}")
    e = lms.identify(path)
    assert (e.student_id, e.late_marker, e.submitted_at) == (sid, late, None)


def test_moodle_folders_take_time_and_email_from_the_grading_worksheet(tmp_path):
    (tmp_path / "worksheet.csv").write_bytes(WORKSHEET.read_bytes())
    jane = tmp_path / "Jane Doe_3101_assignsubmission_file_"
    other = tmp_path / "Max Muster_3199_assignsubmission_file_"
    for d in (jane, other):
        d.mkdir()
    cet = timezone(timedelta(hours=1))
    e = lms.identify(jane, lms.moodle_worksheet(tmp_path, tz=cet))
    assert (e.student_id, e.source) == ("jane.doe@example.edu", "moodle-worksheet")
    assert e.submitted_at == datetime(2026, 12, 1, 23, 59, tzinfo=cet)
    e = lms.identify(other)  # not in the worksheet: id from the folder, no time
    assert (e.student_id, e.submitted_at, e.source) == ("participant3199", None, "moodle")
    (tmp_path / "worksheet.csv").unlink()
    assert lms.identify(jane).student_id == "participant3101"  # no worksheet: the folder's id


def test_nbgrader_exchange_timestamp(tmp_path):
    d = tmp_path / "alice" / "ex01_losses_init"
    d.mkdir(parents=True)
    (d / "timestamp.txt").write_text("2026-12-01 22:59:01.250000 UTC")
    e = lms.identify(tmp_path / "alice")
    assert e.student_id is None and e.source == "nbgrader"
    assert e.submitted_at == datetime(2026, 12, 1, 22, 59, 1, 250000, tzinfo=timezone.utc)
