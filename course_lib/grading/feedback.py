"""Per-student feedback as a small, self-contained HTML page, built in the trusted parent.

We do not use nbgrader's feedback: it shows the hidden test code and renders a student's rich
outputs (HTML/JavaScript) as is. Here every text is escaped, only ``text/plain`` and PNG
outputs are shown, hidden regions are replaced by a one-line note, and the outputs of cells that
run from the first hidden test on (a student's code could print test code it saw at run time)
are reduced to the error's name and a truncated message.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from course_lib.grading.rebuild import cell_source, nbgrader_meta

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_B64 = re.compile(r"^[A-Za-z0-9+/=\s]{1,4000000}$")
MAX_TEXT = 4000
MAX_ERROR = 300

_CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:left}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;white-space:pre-wrap}
.cell{border-left:4px solid #ddd;margin:1rem 0;padding-left:.8rem}
.pass{border-color:#2a2}.fail{border-color:#c22}.answer{border-color:#27c}
.out{background:#fff;border:1px dashed #ccc}.err{color:#a00}.note{color:#666;font-style:italic}
"""


def strip_hidden(source: str) -> str:
    """Replace every BEGIN/END HIDDEN TESTS region by a one-line note."""
    out, hidden = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
            out.append("# (hidden tests run here during grading; their code is not shown)")
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            out.append(line)
    return "\n".join(out)


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    if isinstance(value, list):
        value = "".join(v for v in value if isinstance(v, str))
    text = _ANSI.sub("", value if isinstance(value, str) else "")
    return text if len(text) <= limit else text[:limit] + "\n... (truncated)"


def _outputs(cell: Any, hidden: bool) -> str:
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "error":
            msg = f"{out.get('ename', 'Error')}: {_text(out.get('evalue', ''), MAX_ERROR)}"
            if not hidden:
                msg = _text("\n".join(out.get("traceback", [])[-12:])) or msg
            parts.append(f'<pre class="out err">{html.escape(msg)}</pre>')
        elif hidden:
            continue
        elif kind == "stream":
            parts.append(f'<pre class="out">{html.escape(_text(out.get("text", "")))}</pre>')
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            png = data.get("image/png")
            if isinstance(png, str) and _B64.match(png):
                b64 = base64.b64encode(base64.b64decode(png)).decode()
                parts.append(f'<img alt="figure" src="data:image/png;base64,{b64}">')
            elif "text/plain" in data:
                parts.append(f'<pre class="out">{html.escape(_text(data["text/plain"]))}</pre>')
    return "".join(parts)


def render(
    student_id: str,
    assignment: str,
    status: str,
    total: float,
    max_total: float,
    tests: dict[str, dict],
    notes: list[str],
    notebook: Any | None,
    hidden_cells: set[str],
) -> str:
    """The feedback page. ``tests``: grade id -> {points, max, message}."""
    rows = "".join(
        f"<tr><td>{html.escape(gid)}</td><td>{t['points']:g} / {t['max']:g}</td>"
        f"<td>{html.escape(t.get('message') or 'passed')}</td></tr>"
        for gid, t in tests.items()
    )
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    body = [
        f"<h1>Feedback: {html.escape(assignment)}</h1>",
        f"<p>Student <b>{html.escape(student_id)}</b> — status <b>{html.escape(status)}</b> — "
        f"score <b>{total:g} / {max_total:g}</b></p>",
        f"<ul>{note_html}</ul>" if note_html else "",
        f"<table><tr><th>test</th><th>points</th><th>result</th></tr>{rows}</table>",
    ]
    if notebook is not None:
        body.append("<h2>Your graded notebook</h2>")
        after_hidden = False  # from the first hidden test on, only error names/messages are shown
        for cell in notebook.get("cells", []):
            meta = nbgrader_meta(cell)
            gid = meta.get("grade_id", "")
            src = cell_source(cell)
            if cell.get("cell_type") == "markdown":
                body.append(f'<div class="cell"><pre>{html.escape(_text(src, 20000))}</pre></div>')
                continue
            after_hidden = after_hidden or gid in hidden_cells
            hidden = after_hidden
            cls = "answer" if meta.get("solution") else ""
            if gid in tests:
                cls = "pass" if tests[gid]["points"] >= tests[gid]["max"] else "fail"
                src = strip_hidden(src)
            head = f"<p class='note'>{html.escape(gid)}</p>" if gid else ""
            body.append(
                f'<div class="cell {cls}">{head}<pre>{html.escape(_text(src, 20000))}</pre>'
                f"{_outputs(cell, hidden)}</div>"
            )
    title = html.escape(f"{assignment} feedback for {student_id}")
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
