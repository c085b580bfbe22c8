"""Sphinx extension for the course book (loaded through ``sphinx.local_extensions`` in _config.yml).

What it does:

1. **Execution note.** Every page built from a notebook gets a one-line note under its title
   saying how and where the stored outputs were produced, read from the notebook's
   ``metadata.course.execution`` (written by ``scripts/execute_notebooks.py``).
2. **Plain-text formulas in docstrings.** ``course_lib`` docstrings write absolute values and
   set sizes as in a textbook (``|w_i|``, ``|B_m| / N``); reStructuredText would read those as
   substitution references and fail the build, so the API pages escape such bars (outside
   literal text, roles and literal blocks) before autodoc parses them.
3. **Links to exercise notebooks.** A chapter may link to its exercise as on GitHub,
   ``[Exercise 4](../exercises/ex04_metrics_calibration/ex04_metrics_calibration.ipynb)``; in the
   book such links lead to the exercise's page (download, Colab, how to submit), released or not.
4. **Offline MathJax.** MathJax 3 comes from the npm package ``mathjax`` (installed by
   ``scripts/build_book.sh`` into ``_build/npm``); the subset a page needs (the
   ``tex-chtml`` bundle, TeX extensions, CHTML fonts, menu) is staged into
   ``_build/mathjax_static/mathjax`` and served from ``_static/mathjax``. No CDN is used.
5. **A clean browser console.** Repeated inline scripts are dropped (sphinx-thebe's config
   is registered twice under Jupyter Book) and ``favicon.ico`` is put at the site root (the
   redirecting ``index.html`` has no icon link, so the browser asks for ``/favicon.ico``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform

MATHJAX_VERSION = "3.2.2"
# Parts of the package's es5/ folder that the pages load (everything else is left out).
MATHJAX_PARTS = ["tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y", "adaptors"]


def _mathjax_package(confdir: Path) -> Path:
    candidates = [
        os.environ.get("COURSE_MATHJAX_DIR"),
        confdir / "_build" / "npm" / "node_modules" / "mathjax",
        confdir / "node_modules" / "mathjax",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "es5" / "tex-chtml.js").is_file():
            return Path(candidate)
    raise ExtensionError(
        "MathJax is not installed, and the book serves it locally (no CDN). Install it with\n"
        f"    npm install --prefix _build/npm --no-save mathjax@{MATHJAX_VERSION}\n"
        "(scripts/build_book.sh does this), or point COURSE_MATHJAX_DIR at an unpacked "
        "npm 'mathjax' 3.x package."
    )


def stage_mathjax(app: Sphinx, config: Config) -> None:
    """Copy the needed part of the npm package to _build/mathjax_static/mathjax (once)."""
    confdir = Path(app.confdir)
    package = _mathjax_package(confdir)
    version = json.loads((package / "package.json").read_text())["version"]
    staging = confdir / "_build" / "mathjax_static"
    target = staging / "mathjax"
    stamp = target / ".version"
    if not (stamp.is_file() and stamp.read_text() == f"{package}:{version}"):
        shutil.rmtree(target, ignore_errors=True)
        for part in MATHJAX_PARTS:
            src = package / "es5" / part
            dst = target / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
        shutil.copy2(package / "LICENSE", target / "LICENSE")
        stamp.write_text(f"{package}:{version}")
    static = list(config.html_static_path)
    if str(staging) not in static:
        static.append(str(staging))
    config.html_static_path = static


def _duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def execution_note(record: dict | None) -> str:
    """The one-line note for a notebook's ``metadata.course.execution`` record."""
    if not record:
        return (
            "Stored outputs on this page carry no execution record "
            "(re-run it with scripts/execute_notebooks.py to add one)."
        )
    device = record.get("device", "an unknown device")
    if record.get("gpu"):
        device = f"{device} ({record['gpu']})"
    versions = ", ".join(
        f"{name} {record[key]}"
        for name, key in [
            ("Python", "python"),
            ("torch", "torch"),
            ("torchvision", "torchvision"),
            ("course_lib", "course_lib"),
        ]
        if record.get(key)
    )
    where = record.get("host_kind", "unknown host")
    if record.get("cpu_count"):
        where += f", {record['cpu_count']} CPU cores"
    when = str(record.get("executed_at", ""))[:10] or "an unknown date"
    took = _duration(record["wall_time_s"]) if "wall_time_s" in record else "unknown time"
    return (
        f"Outputs produced with the '{record.get('profile', '?')}' profile on {device} "
        f"({where}; {versions}) in {took} on {when} UTC."
    )


def add_execution_note(app: Sphinx, doctree: nodes.document) -> None:
    """Insert the execution note under the title of every page made from a notebook."""
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    try:
        metadata = json.loads(source.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return
    record = metadata.get("course", {}).get("execution")
    para = nodes.paragraph(classes=["course-execution-note"])
    para += nodes.Text(execution_note(record))
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section.insert(1, para)
    else:
        doctree.insert(0, para)


# ``...`` literals and :role:`...` / `...` spans, left as they are.
_PROTECTED = re.compile(r"(``.+?``|(?::[\w:+-]+:)?`[^`]+`_{0,2})")
_BAR_SPAN = re.compile(r"(?<![\\|])\|(?=\S)([^|`]*?\S)\|(?!\|)")


def escape_bars(line: str) -> str:
    """Escape ``|x|`` in running text so reStructuredText does not treat it as a substitution."""
    parts = _PROTECTED.split(line)
    for i in range(0, len(parts), 2):  # even indices lie outside protected spans
        parts[i] = _BAR_SPAN.sub(lambda m: "\\|" + m.group(1) + "\\|", parts[i])
    return "".join(parts)


def escape_docstring_bars(app, what, name, obj, options, lines: list[str]) -> None:
    """autodoc hook: apply :func:`escape_bars` outside literal blocks and doctest lines."""
    literal_indent: int | None = None
    previous_literal = False
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if previous_literal and not stripped:
            continue
        if stripped.startswith((">>>", "... ")) or stripped.startswith("|"):
            continue
        lines[i] = escape_bars(line)
        if stripped.endswith("::") or stripped.startswith(".. code"):
            literal_indent = indent
            previous_literal = True
        else:
            previous_literal = False


def dedupe_scripts(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Drop repeated inline scripts (sphinx-thebe registers its config twice under Jupyter Book,
    which makes the browser report "Identifier 'THEBE_JS_URL' has already been declared")."""
    seen: set = set()
    unique = []
    for script in context.get("script_files", []):
        filename = getattr(script, "filename", script) or ""  # None and "" both mean inline
        key = (str(filename), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


# MyST hands these over as a file path (``.../ex04_x/ex04_x.ipynb``) or, once the notebook exists,
# as a document name without the suffix.
EXERCISE_NOTEBOOK = re.compile(r"(?:^|/)exercises/(ex\d\d_\w+)/\1(?:\.ipynb)?$")


class ExerciseLinks(SphinxPostTransform):
    """Point links to ``exercises/<name>/<name>.ipynb`` at the page ``book/exercises/<name>``."""

    default_priority = 5  # before MyST's reference resolver (9)

    def run(self, **kwargs) -> None:
        for node in list(self.document.findall(addnodes.pending_xref)) + list(
            self.document.findall(addnodes.download_reference)
        ):
            if node.get("reftype") != "myst":
                continue
            match = EXERCISE_NOTEBOOK.search(str(node.get("reftarget", "")))
            page = f"book/exercises/{match.group(1)}" if match else None
            if page is None or page not in self.env.all_docs:
                continue
            refdoc = node.get("refdoc", self.env.docname)
            uri = self.app.builder.get_relative_uri(refdoc, page)
            link = nodes.reference("", "", internal=True, refuri=uri)
            link += node.children
            node.replace_self(link)


def copy_root_favicon(app: Sphinx, exception: Exception | None) -> None:
    """Put ``favicon.ico`` at the site root: pages without an icon link (the redirecting
    ``index.html``) make the browser ask for /favicon.ico, and a 404 there is a console error."""
    icon = Path(app.confdir) / "book" / "_static" / "favicon.ico"
    if exception is None and app.builder.format == "html" and icon.is_file():
        shutil.copy2(icon, Path(app.outdir) / "favicon.ico")


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", copy_root_favicon)
    app.add_post_transform(ExerciseLinks)
    app.connect("html-page-context", dedupe_scripts)
    app.connect("config-inited", stage_mathjax)
    app.connect("autodoc-process-docstring", escape_docstring_bars)
    app.connect("doctree-read", add_execution_note)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
