"""Grading across machines: ``--shard I/N`` picks a deterministic 1/N of the class, ``merge`` joins.

A submission belongs to shard ``1 + sha256(student_id) mod N``: it depends only on the id, never
on the order files are listed in or on which machine runs, so N jobs started independently
cover the class exactly once. Every shard still grades the reference solution and the canary
(they guard each shard's own run). ``course-grade merge OUT_DIR SHARD_DIR...`` checks that the
shards are one assignment graded by the same sources and grader (the fingerprint of
``.course-grade-state.json``), that their shard numbers are 1..N exactly once and that no
student is in two shards, then writes ``grades.csv`` (rows in student order, as one run writes
them), ``report.json``, ``feedback/`` and the state file (so a later incremental run on OUT_DIR
works).

Slurm job array (one shard per array task, then one merge)::

    #SBATCH --array=1-8 --cpus-per-task=4
    course-grade autograde ex01 subs.zip --jobs 4 --shard $SLURM_ARRAY_TASK_ID/8 \\
        --out out/ex01/shard-$SLURM_ARRAY_TASK_ID
    # afterwards (sbatch --dependency=afterok:<array job id>):
    course-grade merge out/ex01/all out/ex01/shard-*

CI matrix (GitHub Actions): ``strategy: matrix: shard: [1, 2, 3, 4]`` running
``--shard ${{ matrix.shard }}/4 --out shard-${{ matrix.shard }}``, each uploading its folder as
an artifact; a final job downloads them and runs ``course-grade merge``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

STATE_FILE = ".course-grade-state.json"
_SHARD = re.compile(r"^(\d+)/(\d+)$")


class MergeError(ValueError):
    """Shards that cannot be merged (different assignment versions, gaps, overlaps)."""


def parse(text: str | None) -> tuple[int, int] | None:
    """``"2/5"`` -> ``(2, 5)``; ``None`` -> ``None`` (no sharding)."""
    if text is None:
        return None
    m = _SHARD.match(text.strip())
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--shard {text!r}: write I/N with 1 <= I <= N, e.g. 2/5")
    return int(m.group(1)), int(m.group(2))


def shard_of(student_id: str, n: int) -> int:
    """The shard (1..n) a student id belongs to."""
    return 1 + int(hashlib.sha256(student_id.encode()).hexdigest(), 16) % n


def select(subs: list, shard: tuple[int, int] | None) -> list:
    """The submissions of shard ``(i, n)`` (all of them when ``shard`` is None)."""
    if shard is None:
        return subs
    i, n = shard
    return [s for s in subs if shard_of(s.student_id, n) == i]


def stamp(out: Path, shard: tuple[int, int] | None) -> None:
    """Record the shard in ``report.json`` (merge checks it)."""
    if shard is None:
        return
    path = Path(out) / "report.json"
    report = json.loads(path.read_text())
    report["shard"] = f"{shard[0]}/{shard[1]}"
    path.write_text(json.dumps(report, indent=1))


def _load(folder: Path) -> tuple[dict, dict, list[list[str]]]:
    for name in ("report.json", STATE_FILE, "grades.csv"):
        if not (folder / name).is_file():
            raise MergeError(f"{folder} has no {name}: not a course-grade autograde output")
    report = json.loads((folder / "report.json").read_text())
    state = json.loads((folder / STATE_FILE).read_text())
    with open(folder / "grades.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return report, state, rows


def merge(out: Path, shard_dirs: list[Path]) -> dict:
    """Merge shard outputs into ``out``; returns the merged report. Raises :class:`MergeError`."""
    if not shard_dirs:
        raise MergeError("no shard folders given")
    loaded = [(Path(d), *_load(Path(d))) for d in shard_dirs]
    first_dir, first_report, first_state, first_rows = loaded[0]
    seen_shards: dict[str, Path] = {}
    owner: dict[str, Path] = {}
    rows: list[list[str]] = []
    students: dict[str, dict] = {}
    state_students: dict[str, dict] = {}
    warnings: list[str] = []
    for folder, report, state, grid in loaded:
        for key, what in (("assignment", "assignment"), ("fingerprint", "assignment version")):
            if state.get(key) != first_state.get(key):
                raise MergeError(
                    f"{folder} was graded with another {what} than {first_dir} "
                    f"({str(state.get(key))[:16]} vs {str(first_state.get(key))[:16]}): regrade "
                    "both with the same solutions/ and course-grade"
                )
        if grid[0] != first_rows[0]:
            raise MergeError(f"{folder}/grades.csv has other columns than {first_dir}/grades.csv")
        label = report.get("shard", "1/1")
        if label in seen_shards:
            raise MergeError(f"{folder} and {seen_shards[label]} are both shard {label}")
        seen_shards[label] = folder
        for sid in report.get("students", {}):
            if sid in owner:
                raise MergeError(f"student {sid} is in both {owner[sid]} and {folder}")
            owner[sid] = folder
        rows += grid[1:]
        students.update(report.get("students", {}))
        state_students.update(state.get("students", {}))
        warnings += [w for w in report.get("warnings", []) if w not in warnings]
    counts = {int(label.split("/")[1]) for label in seen_shards}
    if len(counts) != 1:
        raise MergeError(f"shards of different splits: {sorted(seen_shards)}")
    n = counts.pop()
    missing = sorted(set(range(1, n + 1)) - {int(label.split("/")[0]) for label in seen_shards})
    if missing:
        raise MergeError(f"shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing")

    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    rows.sort(key=lambda r: r[0])
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([first_rows[0], *rows])
    for folder, *_ in loaded:
        for page in sorted((folder / "feedback").glob("*.html")):
            if page.stem in owner and owner[page.stem] == folder:
                shutil.copyfile(page, out / "feedback" / page.name)
    merged = dict(first_report)
    merged.pop("shard", None)
    merged["students"] = dict(sorted(students.items()))
    merged["warnings"] = warnings
    merged["merged_from"] = {label: str(folder) for label, folder in sorted(seen_shards.items())}
    (out / "report.json").write_text(json.dumps(merged, indent=1))
    state = dict(first_state)
    state["students"] = dict(sorted(state_students.items()))
    (out / STATE_FILE).write_text(json.dumps(state, indent=1))
    return merged


def cmd_merge(args: argparse.Namespace) -> int:
    try:
        merged = merge(args.out, args.shards)
    except MergeError as exc:
        print(f"ERROR: {exc}")
        return 5
    print(
        f"merged {len(args.shards)} shard(s) of {merged.get('assignment')}: "
        f"{len(merged['students'])} student(s) -> {Path(args.out) / 'grades.csv'}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("merge", help="combine the outputs of autograde --shard I/N runs")
    m.add_argument("out", type=Path, metavar="OUT_DIR")
    m.add_argument("shards", type=Path, nargs="+", metavar="SHARD_DIR")
    m.set_defaults(func=cmd_merge)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shard I/N`` on ``course-grade autograde``."""
    parser.add_argument(
        "--shard",
        default=None,
        help="grade only shard I of N (deterministic by student id); combine with merge",
    )
