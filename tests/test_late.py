"""Late policy: every policy, extensions, the due second, time sources, grades.csv and feedback."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from course_lib.grading import late, lms
from tests.fixtures.grading_outputs import write_output

CET = timezone(timedelta(hours=1))
DUE = datetime(2026, 12, 1, 23, 59, 0, tzinfo=CET)
S = 1.0  # one second
DAY = 86400.0


@pytest.mark.parametrize(
    "policy, late_by, raw, expect",
    [
        ("none", 5 * DAY, 8, 0),
        ("zero", 0, 8, 0),  # exactly at the due second: on time
        ("zero", S, 8, 8),  # one second later: late
        ("linear:10%/day", 0, 8, 0),
        ("linear:10%/day", S, 8, 1),  # a started day: 10% of max (10) = 1 point
        ("linear:10%/day", DAY, 8, 1),
        ("linear:10%/day", DAY + S, 8, 2),
        ("linear:10%/day", 30 * DAY, 8, 8),  # never below 0
        ("linear:5%/hour", 3600 * 2.5, 8, 1.5),
        ("cap:50%", 0, 9, 0),
        ("cap:50%", S, 9, 4),  # capped at 5 of 10
        ("cap:50%", S, 3, 0),  # already below the cap
    ],
)
def test_policies(policy, late_by, raw, expect):
    assert late.parse_policy(policy).penalty(raw, 10.0, late_by) == pytest.approx(expect)


@pytest.mark.parametrize("bad", ["linear:10%", "cap:50", "linear:10%/week", "half"])
def test_bad_policies_are_refused(bad):
    with pytest.raises(ValueError):
        late.parse_policy(bad)


def test_due_needs_an_offset():
    assert late.parse_time("2026-12-01T23:59:00+01:00") == DUE
    assert late.parse_time("2026-12-01T22:59:00Z") == DUE
    with pytest.raises(ValueError, match="UTC offset"):
        late.parse_time("2026-12-01T23:59:00")


def test_the_due_second_and_fractions():
    def lateness(t):
        return late.Lateness("s", DUE, t, "mtime", t)

    assert lateness(DUE).late_by_s == 0
    assert lateness(DUE + timedelta(microseconds=999_999)).late_by_s == 0  # within the due second
    assert lateness(DUE + timedelta(seconds=1)).late_by_s == 1
    assert lateness(DUE.astimezone(timezone.utc)).late_by_s == 0  # another zone, same instant
    assert late.format_late_by(0) == "" and late.format_late_by(1) == "00:00:01"
    assert late.format_late_by(DAY + 3723) == "1 day 01:02:03"
    assert late.format_late_by(2 * DAY) == "2 days 00:00:00"
    unknown = late.Lateness("s", DUE, None, "unknown", None)
    assert unknown.late_by_s == 0 and "No submission time" in unknown.sentence(late.Policy(), 10)


def test_no_due_no_late_handling(tmp_path):
    assert late.assess([Sub("a", None)], tmp_path, late.Options()) == {}
    assert late.finish(tmp_path, {}, late.Options()) == []
    with pytest.raises(ValueError, match="need --due"):
        late.Options.from_args(None, "zero", None)


def test_extensions(tmp_path):
    ext = tmp_path / "ext.csv"
    ext.write_text(
        "student_id,due,days,hours\nana,2026-12-03T12:00:00+01:00,,\nben,,2,\ncho,,,36\n"
    )
    got = late.read_extensions(ext, DUE)
    assert got == {
        "ana": datetime(2026, 12, 3, 12, tzinfo=CET),
        "ben": DUE + timedelta(days=2),
        "cho": DUE + timedelta(hours=36),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("student_id,due\nana,\n")
    with pytest.raises(ValueError, match="ana needs"):
        late.read_extensions(bad, DUE)


@dataclass
class Sub:  # the fields of autograde.Submission the late policy reads
    student_id: str
    path: Path | None


def _touch(path: Path, when: datetime) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def test_times_from_folders_nbgrader_and_canvas_marker(tmp_path):
    root = tmp_path / "subs"
    on_time = _touch(root / "ana.ipynb", DUE)
    late_file = _touch(root / "ben.ipynb", DUE + timedelta(seconds=1))
    nb = _touch(root / "cho" / "ex01" / "ex01.ipynb", DUE + timedelta(days=3))  # copied later
    (root / "cho" / "ex01" / "timestamp.txt").write_text("2026-12-01 22:58:30.000000 UTC")
    canvas = _touch(root / "doejane_LATE_52001_9_ex01.ipynb", DUE - timedelta(hours=1))
    subs = [Sub("ana", on_time), Sub("ben", late_file), Sub("cho", nb), Sub("52001", canvas)]
    subs[2].lms = lms.identify(root / "cho")
    subs[3].lms = lms.identify(canvas)
    info = late.assess(subs, root, late.Options(DUE, extensions={"ben": DUE + timedelta(hours=1)}))
    assert info["ana"].late_by_s == 0 and info["ana"].time_source == "mtime"
    assert info["ben"].late_by_s < 0  # extension
    cho = info["cho"]
    assert cho.time_source == "nbgrader" and cho.late_by_s == -30
    assert cho.file_mtime == DUE + timedelta(days=3)  # both times reported
    assert info["52001"].lms_late is True
    assert late.disagreements(info) == ["52001"]  # Canvas says LATE, the file time says on time


def test_moodle_worksheet_times_are_read_in_the_zone_of_due(tmp_path):
    root = tmp_path / "subs"
    folder = root / "Zoë Ünal_3102_assignsubmission_file_"
    nb = _touch(folder / "ex01.ipynb", DUE - timedelta(days=2))
    sheet = Path(__file__).parent / "fixtures" / "lms" / "moodle_grading_worksheet.csv"
    (root / "worksheet.csv").write_bytes(sheet.read_bytes())
    sub = Sub("x", nb)
    sub.lms = lms.identify(folder)
    info = late.assess([sub], root, late.Options(DUE))["x"]
    assert info.time_source == "moodle-worksheet"
    assert info.submitted_at == datetime(2026, 12, 2, 1, 15, tzinfo=CET)  # "1:15 AM", CET
    assert info.late_by_s == 76 * 60 and info.file_mtime == DUE - timedelta(days=2)


def test_times_from_zip_entries(tmp_path):
    z = tmp_path / "subs.zip"
    with zipfile.ZipFile(z, "w") as zf:
        local = (DUE + timedelta(hours=2)).astimezone()  # DOS time: the zipping machine's zone
        zf.writestr(zipfile.ZipInfo("class/ana.ipynb", local.timetuple()[:6]), "{}")
        zf.writestr(zipfile.ZipInfo("class/ben/ex01.ipynb", local.timetuple()[:6]), "{}")
    unzipped = tmp_path / "work" / "unzipped" / "class"
    subs = [Sub("ana", unzipped / "ana.ipynb"), Sub("ben", unzipped / "ben" / "ex01.ipynb")]
    info = late.assess(subs, z, late.Options(DUE))
    assert info["ana"].time_source == "zip-entry"
    assert info["ana"].late_by_s == 7200 and info["ben"].late_by_s == 7200


def test_zip_extended_timestamp_is_utc(tmp_path):
    z = tmp_path / "subs.zip"
    ts = int((DUE + timedelta(seconds=5)).timestamp())
    info = zipfile.ZipInfo("ana.ipynb", (1999, 1, 1, 0, 0, 0))  # a misleading DOS time
    info.extra = b"\x55\x54\x05\x00\x01" + ts.to_bytes(4, "little")
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr(info, "{}")
    assert late.zip_times(z)["ana.ipynb"] == DUE + timedelta(seconds=5)


def test_grades_csv_report_and_feedback_after_the_penalty(tmp_path):
    out = write_output(
        tmp_path / "out",
        "ex01",
        {"t1": 4.0, "t2": 6.0},
        {"ana": {"t1": 4, "t2": 6}, "ben": {"t1": 4, "t2": 6}, "old": {"t1": 4}},
    )
    info = {
        "ana": late.Lateness("ana", DUE, DUE, "mtime", DUE),
        "ben": late.Lateness(
            "ben", DUE, DUE + timedelta(days=1, seconds=1), "moodle-worksheet", DUE
        ),
    }
    opts = late.Options(DUE, late.parse_policy("linear:10%/day"))
    late.finish(out, info, opts)
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert (
        list(rows["ana"])[:12] == ["student_id", "status", "total", "max_total"] + late.LATE_COLUMNS
    )
    assert (rows["ana"]["total"], rows["ana"]["penalty"], rows["ana"]["late_by"]) == ("10", "0", "")
    ben = rows["ben"]
    assert (ben["total"], ben["raw_total"], ben["penalty"]) == ("8", "10", "2")
    assert ben["late_by"] == "1 day 00:00:01" and ben["time_source"] == "moodle-worksheet"
    assert ben["submitted_at"] == "2026-12-02T23:59:01+01:00"
    assert ben["file_mtime"] == "2026-12-01T23:59:00+01:00"
    assert (rows["old"]["total"], rows["old"]["raw_total"], rows["old"]["late_by"]) == (
        "4",
        "4",
        "",
    )
    assert (ben["t1"], ben["t2"]) == ("4", "6")  # the per-test points are the tests' own
    report = json.loads((out / "report.json").read_text())
    assert report["students"]["ben"]["late"]["total"] == "8"
    assert report["late_policy"]["policy"] == "linear:10%/day"
    page = (out / "feedback" / "ben.html").read_text()
    assert "1 day 00:00:01 after the deadline" in page
    assert "2 point(s) off, so your grade is 8 / 10 (the tests earned 10)" in page
    assert "on time" in (out / "feedback" / "ana.html").read_text()
    # a re-run replaces the sentence instead of adding a second one
    page2 = late._insert_note(page, "again")
    assert (
        page2.count("term:late -->") == 2 and "again" in page2 and "after the deadline" not in page2
    )
    with pytest.raises(ValueError, match="already has late columns"):
        late.rewrite_grades(out / "grades.csv", info, opts.policy)
