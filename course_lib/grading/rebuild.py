"""Read a submitted notebook and rebuild the notebook that is actually graded.

A submission is untrusted JSON. We never grade it as submitted: the graded notebook is the
trusted **release template** (locked cells, visible tests, nbgrader metadata, checksums) with
the source of each *answer cell* taken from the submission, matched by grade id. Everything
else a student changed — test cells, metadata (points, grade ids, locked flags, checksums),
added, deleted, duplicated or reordered cells — is ignored and reported. The parent then runs
the test cells from the trusted *source* notebook (hidden tests included; see
:func:`course_lib.grading.autograde.cells_to_run`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

import nbformat

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024

# statuses of a submission that could not be graded (grades.csv "status" column)
MALFORMED_JSON = "malformed-json"
NOT_A_NOTEBOOK = "not-a-notebook"
WRONG_ASSIGNMENT = "wrong-assignment"
TOO_LARGE = "too-large"
UNREADABLE = (MALFORMED_JSON, NOT_A_NOTEBOOK, WRONG_ASSIGNMENT, TOO_LARGE)


def nbgrader_meta(cell: Any) -> dict:
    """The ``nbgrader`` metadata of a cell as a dict ({} when absent or malformed)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    value = meta.get("nbgrader") if isinstance(meta, dict) else None
    return value if isinstance(value, dict) else {}


def cell_source(cell: Any) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


@dataclass
class Template:
    """What the trusted release notebook says about an assignment."""

    notebook: Any  # nbformat NotebookNode
    answers: list[str]  # grade ids of answer cells, in order
    tests: dict[str, float]  # grade id -> points of autograded test cells, in order
    locked: dict[str, str]  # grade id -> source of other locked cells

    @classmethod
    def from_notebook(cls, nb: Any) -> Template:
        answers: list[str] = []
        tests: dict[str, float] = {}
        locked: dict[str, str] = {}
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id")
            if not gid:
                continue
            if meta.get("solution"):
                answers.append(gid)
            elif meta.get("grade") and cell.cell_type == "code":
                tests[gid] = float(meta.get("points", 0))
            elif meta.get("locked"):
                locked[gid] = cell_source(cell)
        return cls(notebook=nb, answers=answers, tests=tests, locked=locked)

    @property
    def max_total(self) -> float:
        return float(sum(self.tests.values()))


@dataclass
class Rebuilt:
    """Result of :func:`rebuild`: the notebook to grade, or the status saying why not."""

    notebook: Any | None
    status: str = "ok"  # "ok", or one of the statuses above
    notes: list[str] = field(default_factory=list)  # what was restored or ignored
    tampered: bool = False  # nbgrader cells/metadata were changed and restored


def parse(raw: bytes) -> tuple[Any | None, str, str]:
    """Parse submitted bytes into a v4 notebook: (notebook or None, status, detail)."""
    if len(raw) > MAX_NOTEBOOK_BYTES:
        return (
            None,
            TOO_LARGE,
            f"{len(raw) / 1e6:.1f} MB is over the {MAX_NOTEBOOK_BYTES // 2**20} MiB limit",
        )
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return None, MALFORMED_JSON, f"not valid JSON: {str(exc)[:200]}"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, NOT_A_NOTEBOOK, "valid JSON but no list of cells"
    if data.get("nbformat") != 4:
        return None, NOT_A_NOTEBOOK, f"unsupported nbformat {data.get('nbformat')!r} (need 4)"
    cells = []
    for cell in data["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            return None, NOT_A_NOTEBOOK, "a cell is not a code, markdown or raw cell"
        cells.append(cell)
    return data, "ok", ""


def rebuild(template: Template, submitted: dict) -> Rebuilt:
    """Graded notebook = template with the submitted answer-cell sources (matched by grade id)."""
    notes: list[str] = []
    tampered = False
    by_gid: dict[str, list[dict]] = {}
    unknown: list[str] = []
    added = 0
    plain_sources = {
        cell_source(c) for c in template.notebook.cells if not nbgrader_meta(c).get("grade_id")
    }
    for cell in submitted["cells"]:
        gid = nbgrader_meta(cell).get("grade_id")
        if isinstance(gid, str) and gid:
            by_gid.setdefault(gid, []).append(cell)
            if (
                gid not in template.answers
                and gid not in template.tests
                and gid not in template.locked
            ):
                unknown.append(gid)
        elif cell_source(cell) not in plain_sources:
            added += 1

    known = set(template.answers) | set(template.tests) | set(template.locked)
    if not (set(by_gid) & known):
        return Rebuilt(
            None, WRONG_ASSIGNMENT, ["none of this assignment's cells (grade ids) were found"]
        )

    nb = copy.deepcopy(template.notebook)
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if not gid or not meta.get("solution"):
            continue
        found = by_gid.get(gid, [])
        answer_cells = [c for c in found if nbgrader_meta(c).get("solution")] or found
        if not answer_cells:
            notes.append(f"answer cell '{gid}' is missing: graded as blank")
            tampered = True
            continue
        if len(answer_cells) > 1:
            notes.append(
                f"answer cell '{gid}' appears {len(answer_cells)} times: the first is graded"
            )
            tampered = True
        chosen = answer_cells[0]
        if chosen.get("cell_type") != cell.cell_type:
            notes.append(f"answer cell '{gid}' changed its type: graded as blank")
            tampered = True
            continue
        cell.source = cell_source(chosen)

    for gid in template.tests:
        copies = by_gid.get(gid, [])
        if not copies:
            notes.append(f"test cell '{gid}' was deleted or renamed: restored")
            tampered = True
        elif len(copies) > 1:
            notes.append(f"test cell '{gid}' was duplicated: restored once")
            tampered = True
        elif not _same_test(copies[0], gid, template):
            notes.append(f"test cell '{gid}' or its metadata was edited: restored")
            tampered = True
    for gid, src in template.locked.items():
        copies = by_gid.get(gid, [])
        if len(copies) != 1 or cell_source(copies[0]) != src:
            notes.append(f"locked cell '{gid}' was edited, deleted or duplicated: restored")
            tampered = True
    if unknown:
        notes.append(f"cells with unknown grade ids ignored: {', '.join(sorted(set(unknown)))}")
        tampered = True
    if added:
        notes.append(f"{added} cell(s) without grade id ignored (only answer cells are graded)")
    if _order(submitted, template) != [g for g in _order_nb(nb) if g in by_gid]:
        notes.append("cells were reordered: the template order is graded")
        tampered = True
    nbformat.validate(nb)
    return Rebuilt(nb, "ok", notes, tampered)


def _same_test(cell: dict, gid: str, template: Template) -> bool:
    meta = nbgrader_meta(cell)
    for tcell in template.notebook.cells:
        tmeta = nbgrader_meta(tcell)
        if tmeta.get("grade_id") == gid:
            return (
                cell_source(cell) == cell_source(tcell)
                and meta.get("points") == tmeta.get("points")
                and bool(meta.get("locked")) == bool(tmeta.get("locked"))
                and bool(meta.get("grade")) == bool(tmeta.get("grade"))
                and bool(meta.get("solution")) == bool(tmeta.get("solution"))
                and meta.get("checksum") == tmeta.get("checksum")
            )
    return False


def _order(nb: dict, template: Template) -> list[str]:
    known = set(template.answers) | set(template.tests) | set(template.locked)
    seen: list[str] = []
    for cell in nb["cells"]:
        gid = nbgrader_meta(cell).get("grade_id")
        if gid in known and gid not in seen:
            seen.append(gid)
    return seen


def _order_nb(nb: Any) -> list[str]:
    return [g for g in (nbgrader_meta(c).get("grade_id") for c in nb.cells) if g]


def read_notebook(path: str) -> Any:
    """Read a trusted notebook (template or source) with nbformat."""
    return nbformat.read(path, as_version=4)
