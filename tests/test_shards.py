"""--shard I/N and course-grade merge: a partition by student id; merge refuses mismatches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from course_lib.grading import shards
from tests.fixtures.grading_outputs import write_output

TESTS = {"t1": 2.0, "t2": 3.0}


@dataclass
class Sub:
    student_id: str


def test_shards_partition_the_class_deterministically():
    ids = [f"student{i:03d}" for i in range(300)]
    subs = [Sub(i) for i in ids]
    parts = [shards.select(subs, (i, 4)) for i in range(1, 5)]
    assert sorted(s.student_id for p in parts for s in p) == ids  # each exactly once
    assert all(40 < len(p) < 110 for p in parts)  # roughly even
    again = [shards.select(list(reversed(subs)), (i, 4)) for i in range(1, 5)]  # order-free
    assert [sorted(s.student_id for s in p) for p in again] == [
        sorted(s.student_id for s in p) for p in parts
    ]
    assert shards.select(subs, None) is subs
    assert shards.parse("2/5") == (2, 5) and shards.parse(None) is None
    for bad in ("0/3", "4/3", "1-3", "a/b"):
        with pytest.raises(ValueError):
            shards.parse(bad)


def _shard(tmp: Path, label: str, students: dict, fingerprint: str = "f" * 64) -> Path:
    folder = write_output(
        tmp / label.replace("/", "of"), "ex01", TESTS, students, fingerprint=fingerprint
    )
    shards.stamp(folder, shards.parse(label))
    return folder


def test_merge_equals_one_run(tmp_path):
    everyone = {"ana": {"t1": 2}, "ben": {"t2": 3}, "cho": {}, "dee": {"t1": 2, "t2": 3}}
    single = write_output(tmp_path / "single", "ex01", TESTS, everyone)
    parts = []
    for i in (1, 2, 3):
        mine = {s: v for s, v in everyone.items() if shards.shard_of(s, 3) == i}
        parts.append(_shard(tmp_path, f"{i}/3", mine))
    merged = shards.merge(tmp_path / "merged", list(reversed(parts)))
    out = tmp_path / "merged"
    assert (out / "grades.csv").read_text() == (single / "grades.csv").read_text()
    single_report = json.loads((single / "report.json").read_text())
    assert merged["students"] == single_report["students"]
    assert sorted(p.name for p in (out / "feedback").iterdir()) == [
        f"{s}.html" for s in sorted(everyone)
    ]
    state = json.loads((out / ".course-grade-state.json").read_text())
    assert sorted(state["students"]) == sorted(everyone) and state["fingerprint"] == "f" * 64
    assert "shard" not in merged and sorted(merged["merged_from"]) == ["1/3", "2/3", "3/3"]


def test_merge_refuses_other_versions_gaps_and_overlaps(tmp_path):
    a = _shard(tmp_path, "1/2", {"ana": {"t1": 2}})
    b = _shard(tmp_path / "x", "2/2", {"ben": {}}, fingerprint="0" * 64)
    with pytest.raises(shards.MergeError, match="another assignment version"):
        shards.merge(tmp_path / "m", [a, b])
    with pytest.raises(shards.MergeError, match=r"shard\(s\) 2/2 missing"):
        shards.merge(tmp_path / "m", [a])
    c = _shard(tmp_path / "y", "2/2", {"ana": {}})
    with pytest.raises(shards.MergeError, match="ana is in both"):
        shards.merge(tmp_path / "m", [a, c])
    with pytest.raises(shards.MergeError, match="both shard 1/2"):
        shards.merge(tmp_path / "m", [a, a])
    d = _shard(tmp_path / "z", "2/3", {"cho": {}})
    with pytest.raises(shards.MergeError, match="different splits"):
        shards.merge(tmp_path / "m", [a, d])
    with pytest.raises(shards.MergeError, match="not a course-grade autograde output"):
        shards.merge(tmp_path / "m", [tmp_path])


# ----------------------------------------------------------------------------------------------
# end to end on ex01: 1 shard vs 3 merged shards, with the late policy and a hint
# ----------------------------------------------------------------------------------------------
WRONG_SOFTMAX = (
    "def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:\n"
    "    e = torch.exp(x)\n"
    "    return e / e.sum(dim=dim, keepdim=True)\n"  # not stable: fails test_softmax_stable
)
HINT = "Subtract the largest score before exponentiating."


def _ids_one_per_shard() -> list[str]:
    ids, taken = [], set()
    for k in range(1000):
        sid = f"student{k}"
        if shards.shard_of(sid, 3) not in taken:
            taken.add(shards.shard_of(sid, 3))
            ids.append(sid)
        if len(ids) == 3:
            return ids
    raise AssertionError("unreachable")


@pytest.mark.slow
def test_one_shard_and_three_merged_shards_give_identical_grades(tmp_path):
    import csv
    import os
    import shutil
    from datetime import datetime, timedelta, timezone

    from adversarial.runner import REPO, TIMEOUT, variant_notebook

    from course_lib.grading.cli import main

    a = "ex01_losses_init"
    solutions = tmp_path / "solutions"
    shutil.copytree(REPO / "solutions" / a, solutions / a)
    src = solutions / a / f"{a}.ipynb"
    nb = json.loads(src.read_text())
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "test_softmax_stable":
            cell["metadata"]["course"] = {"hint": HINT}
    src.write_text(json.dumps(nb, indent=1))

    due = datetime(2026, 12, 1, 23, 59, tzinfo=timezone(timedelta(hours=1)))
    subs = tmp_path / "subs"
    subs.mkdir()
    good, wrong, late_one = _ids_one_per_shard()
    for sid, answers, when in [
        (good, {}, due),  # at the due second: on time
        (wrong, {"softmax": WRONG_SOFTMAX}, due - timedelta(hours=1)),
        (late_one, {}, due + timedelta(days=1, seconds=1)),  # 2 started days late
    ]:
        path = subs / f"{sid}.ipynb"
        path.write_bytes(variant_notebook(a, answers))
        os.utime(path, (when.timestamp(), when.timestamp()))

    def grade(out: Path, *extra: str) -> None:
        code = main(
            ["autograde", a, str(subs), "--out", str(out), "--quiet", "--timeout", str(TIMEOUT)]
            + ["--solutions", str(solutions), "--exercises", str(REPO / "exercises")]
            + ["--due", due.isoformat(), "--late-policy", "linear:10%/day", *extra]
        )
        assert code == 0

    grade(tmp_path / "one")
    for i in (1, 2, 3):
        grade(tmp_path / f"s{i}", "--shard", f"{i}/3")
    assert (
        main(["merge", str(tmp_path / "all"), *(str(tmp_path / f"s{i}") for i in (1, 2, 3))]) == 0
    )

    one = (tmp_path / "one" / "grades.csv").read_text()
    assert (tmp_path / "all" / "grades.csv").read_text() == one
    rows = {r["student_id"]: r for r in csv.DictReader(one.splitlines())}
    assert rows[good]["total"] == "20" and rows[good]["late_by"] == ""
    assert rows[wrong]["test_softmax_stable"] == "0" and rows[wrong]["total"] == "19"
    assert (rows[late_one]["raw_total"], rows[late_one]["penalty"]) == ("20", "4")
    assert rows[late_one]["total"] == "16" and rows[late_one]["late_by"] == "1 day 00:00:01"
    page = (tmp_path / "all" / "feedback" / f"{wrong}.html").read_text()
    assert f"Hint: {HINT}" in page
    assert "Hint:" not in (tmp_path / "all" / "feedback" / f"{good}.html").read_text()
    late_page = (tmp_path / "all" / "feedback" / f"{late_one}.html").read_text()
    assert "4 point(s) off, so your grade is 16 / 20" in late_page
