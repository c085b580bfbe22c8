"""Late policy: when each notebook came in, how late that is, and the penalty in points.

``course-grade autograde ... --due 2026-12-01T23:59:00+01:00 [--extensions ext.csv]
[--late-policy none|zero|linear:10%/day|cap:50%]``

**Submission time**, first found of:

1. the LMS export's own timestamp: nbgrader's ``timestamp.txt`` (``nbgrader collect`` layout) or
   the *Last modified (submission)* column of a Moodle grading worksheet saved next to Moodle's
   ``<name>_<id>_assignsubmission_file_`` folders (see :mod:`course_lib.grading.lms`; Moodle
   writes wall-clock time without a zone: it is read in the zone of ``--due``);
2. the file's modification time: for a zip, the time stored in the zip entry (the extended
   timestamp when the zip has one, else the DOS time read in the grading machine's zone); for a
   folder, the file's ``mtime``.

Both (``submitted_at`` with its ``time_source``, and ``file_mtime``) are reported. Canvas's
"Download Submissions" zip has **no** submission time (its entries are stamped when the zip is
built), only a ``LATE`` marker in the file name: it is reported as ``lms_late``, and a warning
names every submission where the marker and the time used disagree.

**Deadline**: ``--due`` is ISO 8601 *with* a UTC offset (a time without one is refused). An
extensions CSV has ``student_id`` and either ``due`` (ISO 8601) or ``days`` / ``hours`` added to
``--due``. Times are compared to the second (fractions dropped): a notebook stamped within the
due second is on time; one second later it is late.

**Policies** (``max`` = the assignment's points possible, ``raw`` = points earned by the tests)::

    none            penalty 0 (lateness is still reported)
    zero            late: penalty = raw
    linear:P%/day   penalty = min(raw, P% x max x started days late)   (also /hour)
    cap:C%          late: total = min(raw, C% x max)

``grades.csv`` then has ``total`` after the penalty, and ``raw_total``, ``penalty``,
``submitted_at``, ``late_by`` (``[D day(s) ]HH:MM:SS``, empty when on time), ``time_source``,
``file_mtime``, ``lms_late``, ``due``.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import struct
import zipfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

PolicyKind = Literal["none", "zero", "linear", "cap"]
LATE_COLUMNS = [
    "raw_total",
    "penalty",
    "submitted_at",
    "late_by",
    "time_source",
    "file_mtime",
    "lms_late",
    "due",
]
_LINEAR = re.compile(r"^linear:(?P<p>\d+(\.\d+)?)%/(?P<unit>day|hour)$")
_CAP = re.compile(r"^cap:(?P<p>\d+(\.\d+)?)%$")
_UNIT_S = {"day": 86400.0, "hour": 3600.0}


@dataclass(frozen=True)
class Policy:
    kind: PolicyKind = "none"
    fraction: float = 0.0  # linear: fraction of max per unit; cap: fraction of max kept
    unit_s: float = 86400.0
    text: str = "none"

    def penalty(self, raw: float, max_total: float, late_by_s: float) -> float:
        """Points taken off ``raw`` for a submission ``late_by_s`` seconds late (<= 0: on time)."""
        if late_by_s <= 0 or self.kind == "none":
            return 0.0
        if self.kind == "zero":
            return raw
        if self.kind == "linear":
            units = math.ceil(late_by_s / self.unit_s)
            return min(raw, round(self.fraction * max_total * units, 6))
        return max(0.0, round(raw - self.fraction * max_total, 6))  # cap


def parse_policy(text: str) -> Policy:
    """``none``, ``zero``, ``linear:10%/day`` (or ``/hour``), ``cap:50%``."""
    text = text.strip()
    if text in ("none", "zero"):
        return Policy(text, text=text)  # type: ignore[arg-type]
    m = _LINEAR.match(text)
    if m:
        return Policy("linear", float(m.group("p")) / 100, _UNIT_S[m.group("unit")], text)
    m = _CAP.match(text)
    if m:
        return Policy("cap", float(m.group("p")) / 100, text=text)
    raise ValueError(
        f"late policy {text!r}: use none, zero, linear:10%/day, linear:2%/hour, cap:50%"
    )


def parse_time(text: str) -> datetime:
    """ISO 8601 with a UTC offset (``Z`` allowed); a time without one is ambiguous: refused."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: write e.g. 2026-12-01T23:59:00+01:00")
    return t


def read_extensions(path: Path, due: datetime) -> dict[str, datetime]:
    """``student_id`` -> personal deadline, from ``due`` or ``days``/``hours`` columns."""
    out: dict[str, datetime] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            sid = (row.get("student_id") or "").strip()
            if not sid:
                continue
            if (row.get("due") or "").strip():
                out[sid] = parse_time(row["due"])
            elif (row.get("days") or row.get("hours") or "").strip():
                extra = timedelta(
                    days=float(row.get("days") or 0), hours=float(row.get("hours") or 0)
                )
                out[sid] = due + extra
            else:
                raise ValueError(f"{path}:{i}: {sid} needs a due, days or hours value")
    return out


def format_late_by(seconds: float) -> str:
    """``93784`` -> ``"1 day 02:03:04"``; on time -> ``""``."""
    if seconds <= 0:
        return ""
    s = int(seconds)
    days, rest = divmod(s, 86400)
    hms = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days} day{'s' if days != 1 else ''} {hms}" if days else hms


# ----------------------------------------------------------------------------------------------
# submission times
# ----------------------------------------------------------------------------------------------
def zip_times(zpath: Path) -> dict[str, datetime]:
    """Member name -> stored modification time (extended timestamp 0x5455 when present)."""
    out: dict[str, datetime] = {}
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            when = _extended_mtime(info.extra)
            if when is None:
                naive = datetime(*info.date_time)
                when = naive.astimezone()  # DOS time: the zone of the machine that zipped it
            out[info.filename] = when
    return out


def _extended_mtime(extra: bytes) -> datetime | None:
    i = 0
    while i + 4 <= len(extra):
        tag, size = struct.unpack("<HH", extra[i : i + 4])
        body = extra[i + 4 : i + 4 + size]
        if tag == 0x5455 and len(body) >= 5 and body[0] & 1:
            return datetime.fromtimestamp(struct.unpack("<i", body[1:5])[0], timezone.utc)
        i += 4 + size
    return None


@dataclass
class Lateness:
    """One submission's times and penalty (``raw_total``/``penalty``/``total`` set by ``apply``)."""

    student_id: str
    due: datetime
    submitted_at: datetime | None
    time_source: str  # nbgrader | moodle-worksheet | zip-entry | mtime | unknown
    file_mtime: datetime | None
    lms_late: bool | None = None
    raw_total: float = 0.0
    penalty: float = 0.0
    total: float = 0.0

    @property
    def late_by_s(self) -> float:
        if self.submitted_at is None:
            return 0.0
        return (self.submitted_at.replace(microsecond=0) - self.due).total_seconds()

    def row(self) -> dict[str, str]:
        iso = lambda t: t.isoformat(timespec="seconds") if t else ""  # noqa: E731
        return {
            "raw_total": f"{self.raw_total:g}",
            "penalty": f"{self.penalty:g}",
            "submitted_at": iso(self.submitted_at),
            "late_by": format_late_by(self.late_by_s),
            "time_source": self.time_source,
            "file_mtime": iso(self.file_mtime),
            "lms_late": "" if self.lms_late is None else ("yes" if self.lms_late else "no"),
            "due": iso(self.due),
        }

    def sentence(self, policy: Policy, max_total: float) -> str:
        """What the feedback page says, in plain words."""
        due = self.due.isoformat(timespec="seconds")
        if self.submitted_at is None:
            return f"No submission time was found (deadline {due}): no late penalty."
        when = self.submitted_at.isoformat(timespec="seconds")
        if self.late_by_s <= 0:
            return f"Submitted {when} (from {self.time_source}), on time for the deadline {due}."
        text = f"Submitted {when} (from {self.time_source}): {format_late_by(self.late_by_s)} after the deadline {due}."
        if self.penalty > 0:
            text += (
                f" Late policy {policy.text}: {self.penalty:g} point(s) off, so your grade is "
                f"{self.total:g} / {max_total:g} (the tests earned {self.raw_total:g})."
            )
        else:
            text += f" Late policy {policy.text}: no points off."
        return text


def assess(subs: list, submissions: Path, options: Options) -> dict[str, Lateness]:
    """Times of ``subs`` (``autograde.Submission``: ``student_id``, ``path``, optional ``lms``).

    ``submissions`` is what autograde was given (a zip's entries carry the times); empty when
    ``options`` has no deadline.
    """
    if options.due is None:
        return {}
    due, extensions = options.due, options.extensions
    members = zip_times(submissions) if Path(submissions).is_file() else {}
    out: dict[str, Lateness] = {}
    for sub in subs:
        path = sub.path
        entry = getattr(sub, "lms", None)
        mtime = None
        if path is not None:
            tail = path.as_posix()
            hits = [m for m in members if tail.endswith("/" + m)]
            if hits:
                mtime = members[max(hits, key=len)]
            elif not members:
                mtime = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
        if entry is not None and entry.submitted_at is not None:
            when, source = entry.submitted_at, entry.source
            if source == "moodle-worksheet":  # Moodle writes wall-clock time without a zone
                when = when.replace(tzinfo=due.tzinfo)
        elif mtime is not None:
            when, source = mtime, "zip-entry" if members else "mtime"
        else:
            when, source = None, "unknown"
        own_due = (extensions or {}).get(sub.student_id, due)
        lms_late = entry.late_marker if entry is not None else None
        out[sub.student_id] = Lateness(sub.student_id, own_due, when, source, mtime, lms_late)
    return out


def apply(info: dict[str, Lateness], raw: dict[str, float], policy: Policy, max_total: float):
    """Set ``raw_total``, ``penalty``, ``total`` from each student's raw score."""
    for sid, late in info.items():
        late.raw_total = raw.get(sid, 0.0)
        late.penalty = policy.penalty(late.raw_total, max_total, late.late_by_s)
        late.total = round(late.raw_total - late.penalty, 6)
    return info


def disagreements(info: dict[str, Lateness]) -> list[str]:
    """Students whose Canvas LATE marker disagrees with the time used."""
    return [
        sid
        for sid, late in sorted(info.items())
        if late.lms_late is not None and late.lms_late != (late.late_by_s > 0)
    ]


def rewrite_grades(path: Path, info: dict[str, Lateness], policy: Policy) -> None:
    """Add the late columns to ``grades.csv``; ``total`` becomes the total after the penalty.

    Works on whatever columns autograde wrote (needs ``student_id``, ``total``, ``max_total``):
    the new columns go right after ``max_total``. Students without a time (kept from an earlier
    run but no longer in the submissions) keep their total, with empty late columns.
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if "raw_total" in header:
        raise ValueError(f"{path} already has late columns")
    i_sid, i_total, i_max = (header.index(c) for c in ("student_id", "total", "max_total"))
    raw = {r[i_sid]: float(r[i_total] or 0) for r in body}
    max_total = float(body[0][i_max]) if body else 0.0
    apply(info, raw, policy, max_total)
    at = i_max + 1
    new_header = header[:at] + LATE_COLUMNS + header[at:]
    out = [new_header]
    for r in body:
        late = info.get(r[i_sid])
        cells = [late.row()[c] for c in LATE_COLUMNS] if late else [r[i_total]] + [""] * 7
        if late:
            r = list(r)
            r[i_total] = f"{late.total:g}"
        out.append(r[:at] + cells + r[at:])
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(out)


@dataclass
class Options:
    """What ``--due/--extensions/--late-policy`` ask for; ``None`` due = no late handling."""

    due: datetime | None = None
    policy: Policy = Policy()
    extensions: dict[str, datetime] | None = None

    @classmethod
    def from_args(cls, due: str | None, policy: str | None, extensions: Path | None) -> Options:
        if due is None:
            if policy not in (None, "none") or extensions is not None:
                raise ValueError("--late-policy and --extensions need --due")
            return cls()
        d = parse_time(due)
        return cls(
            d,
            parse_policy(policy or "none"),
            read_extensions(extensions, d) if extensions else None,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--due``, ``--extensions``, ``--late-policy`` on ``course-grade autograde``."""
    parser.add_argument("--due", default=None, help="deadline, ISO 8601 with offset")
    parser.add_argument(
        "--extensions", type=Path, default=None, help="CSV: student_id + due, days or hours"
    )
    parser.add_argument(
        "--late-policy",
        default=None,
        help="none | zero | linear:10%%/day | linear:2%%/hour | cap:50%% (default none)",
    )


_MARK = ("<!-- term:late -->", "<!-- /term:late -->")


def _insert_note(page: str, sentence: str) -> str:
    """Put the late sentence near the top of a feedback page (replacing an earlier one)."""
    import html

    block = f'{_MARK[0]}<p class="late"><strong>{html.escape(sentence)}</strong></p>{_MARK[1]}'
    if _MARK[0] in page:
        head, rest = page.split(_MARK[0], 1)
        return head + block + rest.split(_MARK[1], 1)[1]
    m = re.search(r"</h1>|<body[^>]*>", page)
    at = m.end() if m else 0
    return page[:at] + block + page[at:]


def finish(out: Path, info: dict[str, Lateness], options: Options) -> list[str]:
    """After autograde wrote its outputs: late columns, report entries, feedback sentences.

    Returns the warnings (Canvas LATE markers that disagree with the times used).
    """
    if options.due is None:
        return []
    import json

    out = Path(out)
    rewrite_grades(out / "grades.csv", info, options.policy)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text())
    max_total = float(report.get("max_total", 0.0))
    report["late_policy"] = {
        "due": options.due.isoformat(timespec="seconds"),
        "policy": options.policy.text,
        "extensions": {
            k: v.isoformat(timespec="seconds") for k, v in (options.extensions or {}).items()
        },
    }
    for sid, late in info.items():
        if sid in report.get("students", {}):
            report["students"][sid]["late"] = late.row() | {"total": f"{late.total:g}"}
        page = out / "feedback" / f"{sid}.html"
        if page.is_file():
            page.write_text(
                _insert_note(page.read_text(), late.sentence(options.policy, max_total))
            )
    warnings = [
        f"{sid}: Canvas marked it {'LATE' if info[sid].lms_late else 'on time'} but the time used "
        f"({info[sid].time_source} {info[sid].row()['submitted_at']}) says otherwise; Canvas zips "
        "carry no submission time, check it in SpeedGrader and give an extension if needed"
        for sid in disagreements(info)
    ]
    report.setdefault("warnings", []).extend(warnings)
    report_path.write_text(json.dumps(report, indent=1))
    return warnings
