"""course-grade gradebook on synthetic grading outputs (the real grades.csv/report.json format)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from course_lib.grading import gradebook, lms
from tests.fixtures.grading_outputs import write_output

FIX = Path(__file__).parent / "fixtures" / "lms"
EX01 = {"test_softmax_visible": 1.0, "test_softmax_hidden": 3.0, "test_ce_hidden": 8.0}
EX02 = {"test_grad_hidden": 8.0}


def _table(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def _term(root: Path) -> Path:
    """Two graded assignments; Canvas ids; a typo (52O03, letter O) and a stranger in ex02."""
    write_output(
        root / "ex01_losses_init",
        "ex01_losses_init",
        EX01,
        {
            "52001": {"test_softmax_visible": 1, "test_softmax_hidden": 3, "test_ce_hidden": 8},
            "52002": {"test_softmax_visible": 1, "test_softmax_hidden": 3},
            "52003": {},
        },
        status={"52003": "malformed-json"},
    )
    write_output(
        root / "ex02_autograd",
        "ex02_autograd",
        EX02,
        {"52O03": {"test_grad_hidden": 8}, "52002": {"test_grad_hidden": 4}, "99999": {}},
    )
    (root / "notes").mkdir()  # a folder without grades.csv is not an assignment
    return root


def test_gradebook_rows_totals_missing_and_ids_not_on_the_roster(tmp_path):
    root = _term(tmp_path / "grading")
    book, written = gradebook.gradebook(root, FIX / "canvas_gradebook_export.csv", tmp_path / "gb")
    assert [a.name for a in book.assignments] == ["ex01_losses_init", "ex02_autograd"]
    assert book.max_total == 20
    rows = _table(written[0])
    by_id = {r["student_id"]: r for r in rows}
    assert list(rows[0]) == [
        "student_id",
        "name",
        "section",
        "ex01_losses_init",
        "ex02_autograd",
        "total",
        "max_total",
        "percent",
        "missing",
        "note",
    ]
    jane = by_id["52001"]
    assert (jane["name"], jane["ex01_losses_init"], jane["ex02_autograd"]) == (
        "Doe, Jane",
        "12",
        "",
    )
    assert (jane["total"], jane["percent"], jane["missing"]) == ("12", "60.0", "ex02_autograd")
    zoe = by_id["52002"]
    assert (zoe["total"], zoe["max_total"], zoe["percent"], zoe["missing"]) == (
        "8",
        "20",
        "40.0",
        "",
    )
    assert by_id["52003"]["ex01_losses_init"] == "0"  # a broken notebook is a submission
    assert by_id["52003"]["missing"] == "ex02_autograd"
    assert by_id["52004"]["missing"] == "ex01_losses_init;ex02_autograd"
    assert by_id["52004"]["total"] == "0"
    strays = [r for r in rows if r["note"]]
    assert [(r["student_id"], r["ex02_autograd"], r["note"]) for r in strays] == [
        ("52O03", "8", "NOT ON ROSTER (did you mean 52003?)"),  # misspelt: shown, not lost
        ("99999", "0", "NOT ON ROSTER"),
    ]
    assert [r["student_id"] for r in rows[:4]] == ["52001", "52002", "52003", "52004"]


def test_submissions_match_any_roster_id(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "student_id,name,email,sis_login_id\n"
        "s1,Ana,Ana.Lima@Example.edu,alima\n"
        "s2,Ben,ben@example.edu,bkim\n"
    )
    write_output(tmp_path / "g" / "a1", "a1", {"t": 2.0}, {"ana.lima@example.edu": {"t": 2}})
    write_output(tmp_path / "g" / "a2", "a2", {"t": 2.0}, {"bkim": {"t": 1}, "s2": {"t": 2}})
    book, _ = gradebook.gradebook(tmp_path / "g", roster, tmp_path / "out")
    assert book.scores["s1"] == {"a1": 2.0}  # email, case-insensitive
    assert book.scores["s2"] == {"a2": 2.0}  # login and student id: both, best kept
    assert book.duplicates == [("a2", "s2", ["bkim", "s2"])]
    assert book.unmatched == []


def test_canvas_and_moodle_exports_from_the_cli(tmp_path):
    from course_lib.grading.cli import main

    root = _term(tmp_path / "grading")
    out = tmp_path / "gb"
    rc = main(
        [
            "gradebook",
            str(root),
            "--roster",
            str(FIX / "canvas_gradebook_export.csv"),
            "--out",
            str(out),
            "--format",
            "canvas",
        ]
    )
    assert rc == 4  # some submissions match nobody on the roster
    rows = list(csv.reader(io.StringIO((out / "canvas_import.csv").read_text(), newline="")))
    assert rows[0][5:] == ["ex01_losses_init (1001)", "ex02_autograd (1002)"]
    assert rows[1][5:] == ["12", "8"]
    assert rows[2][:2] == ["Doe, Jane", "52001"] and rows[2][5:] == ["12", ""]
    assert rows[3][5:] == ["4", "4"]

    # Moodle: the same class under Moodle identities (emails)
    moodle_root = tmp_path / "moodle"
    write_output(
        moodle_root / "ex01_losses_init",
        "ex01_losses_init",
        EX01,
        {"jane.doe@example.edu": {"test_ce_hidden": 8}, "zoe.unal@example.edu": {}},
    )
    rc = main(
        [
            "gradebook",
            str(moodle_root),
            "--roster",
            str(FIX / "moodle_grade_export.csv"),
            "--out",
            str(out),
            "--format",
            "moodle",
            "--moodle-id",
            "email",
        ]
    )
    assert rc == 0
    rows = list(csv.reader(io.StringIO((out / "moodle_import.csv").read_text(), newline="")))
    assert rows[0] == ["Email address", "Full name", "Assignment: ex01_losses_init (Real)"]
    assert rows[1] == ["jane.doe@example.edu", "Jane Doe", "8"]
    assert rows[2] == ["zoe.unal@example.edu", "Zoë Ünal", "0"]
    assert rows[3][2] == ""  # no submission


def test_lms_names_become_roster_ids(tmp_path):
    """Canvas's download names and Moodle's folders resolve to ids the roster knows."""
    from course_lib.grading.autograde import Submission

    root = tmp_path / "subs"
    root.mkdir()
    (root / "doejane_LATE_52001_880001_ex01_losses_init.ipynb").write_text("{}")
    (root / "alice.ipynb").write_text("{}")
    subs = [
        Submission("doejane_LATE_52001_880001_ex01_losses_init", root / "x"),
        Submission("alice", root / "alice.ipynb"),
    ]
    lms.apply_names(subs, root, lambda s: s)
    assert [s.student_id for s in subs] == ["52001", "alice"]
    assert subs[0].lms.late_marker is True and not hasattr(subs[1], "lms")


def test_readme_term_commands_parse():
    """Every course-grade command of README's term section exists with these options."""
    import re
    import shlex

    from course_lib.grading.cli import build_parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### The whole term", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    commands = [ln.split("#", 1)[0] for ln in block.splitlines() if ln.startswith("course-grade")]
    assert [c.split()[1] for c in commands] == ["release", "autograde", "similarity", "gradebook"]
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])
    for inline in re.findall(r"`(course-grade (?:merge|autograde) [^`]*)`", section):
        parser.parse_args(shlex.split(inline.replace("...", "ex01 subs.zip"))[1:])


def test_collect_names_canvas_and_moodle_downloads_by_their_lms_ids(tmp_path):
    """A Canvas zip (non-ASCII names, LATE marker) and Moodle folders: ids the roster knows."""
    import zipfile

    from course_lib.grading.autograde import collect

    archive = tmp_path / "canvas.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("doejane_52001_880001_ex01_losses_init.ipynb", "{}")
        zf.writestr("ünalzoë_LATE_52002_880002_ex01_losses_init-1.ipynb", "{}")
        zf.writestr("bob.ipynb", "{}")
    subs = collect(archive, "ex01_losses_init", tmp_path / "work")
    assert sorted(s.student_id for s in subs) == ["52001", "52002", "bob"]
    late_marker = {s.student_id: getattr(s, "lms", None) for s in subs}
    assert late_marker["52002"].late_marker is True and late_marker["52001"].late_marker is False

    moodle = tmp_path / "moodle"
    for name in ("Jane Doe_3101_assignsubmission_file_", "Zoë Ünal_3102_assignsubmission_file_"):
        (moodle / name).mkdir(parents=True)
        (moodle / name / "ex01_losses_init.ipynb").write_text("{}")
    (moodle / "worksheet.csv").write_bytes((FIX / "moodle_grading_worksheet.csv").read_bytes())
    subs = collect(moodle, "ex01_losses_init", tmp_path / "work2")
    assert sorted(s.student_id for s in subs) == ["jane.doe@example.edu", "zoe.unal@example.edu"]
    roster = lms.read_roster(FIX / "moodle_grade_export.csv")
    owners = {k.lower(): s.student_id for s in roster.students for k in s.keys()}
    assert all(s.student_id in owners for s in subs)
