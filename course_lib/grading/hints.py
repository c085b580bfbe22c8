"""Per-test hints: an instructor-written sentence shown in feedback when that test fails.

A test cell of ``solutions/<a>/<a>.ipynb`` may carry, next to its nbgrader metadata::

    "metadata": {"nbgrader": {...}, "course": {"hint": "Subtract the row maximum before exp."}}

When the test earns less than its points, the feedback message gets ``Hint: <text>`` (as
otter-grader's failure messages do). Only the hint text is shown — never the test's source,
its hidden region or its expected values — and a hint that quotes a line of its cell's hidden
tests, or a number written there, is refused when the assignment is graded (:func:`collect`
raises), so a careless hint cannot leak what the hidden tests check.
"""

from __future__ import annotations

import re

HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e-?\d+)?|(?<![\w.])\d{3,}(?![\w.])")


class HintError(ValueError):
    """A hint that would reveal hidden test code or values."""


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def collect(notebook) -> dict[str, str]:
    """Grade id -> hint of every test cell of the *source* notebook that has one."""
    hints: dict[str, str] = {}
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {})
        nbg = meta.get("nbgrader", {})
        hint = (meta.get("course") or {}).get("hint")
        if not hint or not nbg.get("grade") or nbg.get("solution"):
            continue
        gid = nbg.get("grade_id", "")
        hint = " ".join(str(hint).split())
        for region in HIDDEN.findall(_source(cell)):
            lines = [ln.strip() for ln in region.splitlines() if len(ln.strip()) >= 12]
            quoted = [ln for ln in lines if ln in hint]
            numbers = [n for n in _NUMBER.findall(region) if n in _NUMBER.findall(hint)]
            if quoted or numbers:
                raise HintError(
                    f"the hint of {gid} repeats its hidden tests "
                    f"({(quoted or numbers)[0]!r}): write it without hidden code or values"
                )
        hints[gid] = hint
    return hints


def attach(tests: dict[str, dict], hints: dict[str, str]) -> dict[str, dict]:
    """Add ``Hint: ...`` to the message of every failed test that has a hint (in place)."""
    for gid, t in tests.items():
        hint = hints.get(gid)
        if hint and t.get("points", 0) < t.get("max", 0) and "Hint: " not in t.get("message", ""):
            t["message"] = f"{t.get('message', '')}\nHint: {hint}".strip()
    return tests
