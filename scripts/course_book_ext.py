"""Sphinx extension for the course book (loaded through ``sphinx.local_extensions`` in _config.yml).

What it does:

1. **Execution note and stale outputs.** Every page built from a notebook gets a one-line note
   under its title saying how and where the stored outputs were produced, read from the
   notebook's ``metadata.course.execution`` (written by ``scripts/execute_notebooks.py``). The
   hashes recorded there are compared with the notebook and ``course_lib`` as they are now
   (``scripts/output_freshness.py``): changed code cells are a build error naming the notebook;
   an earlier ``course_lib`` (or no recorded hashes) adds a second note under the title.
   Figures get the alt text their cell declares (``metadata.course.alt``).
2. **Plain-text formulas in docstrings.** ``course_lib`` docstrings write absolute values and
   set sizes as in a textbook (``|w_i|``, ``|B_m| / N``); reStructuredText would read those as
   substitution references and fail the build, so the API pages escape such bars (outside
   literal text, roles and literal blocks) before autodoc parses them.
3. **Links to exercise notebooks.** A chapter may link to its exercise as on GitHub,
   ``[Exercise 4](../exercises/ex04_metrics_calibration/ex04_metrics_calibration.ipynb)``; in the
   book such links lead to the exercise's page (download, Colab, how to submit), released or not.
4. **Offline MathJax.** MathJax 3 comes from the npm package ``mathjax`` (installed by
   ``scripts/build_book.sh`` into ``node_modules`` from ``package-lock.json``); the subset a page needs (the
   ``tex-chtml`` bundle, TeX extensions, CHTML fonts, menu) is staged into
   ``_build/mathjax_static/mathjax`` and served from ``_static/mathjax``. No CDN is used.
5. **Accessibility fixes** for what axe-core finds in the theme's HTML (tests/test_site.py):
   the sidebar's collapse toggles get a name, citations lose a deprecated ARIA role. Two theme
   components are overridden in ``book/_templates`` (search button, colour-mode switch).
6. **A clean browser console.** Repeated inline scripts are dropped (sphinx-thebe's config
   is registered twice under Jupyter Book) and ``favicon.ico`` is put at the site root (the
   redirecting ``index.html`` has no icon link, so the browser asks for ``/favicon.ico``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging

sys.path.insert(0, str(Path(__file__).resolve().parent))
import output_freshness  # noqa: E402  (scripts/output_freshness.py, shared with the executor)

logger = logging.getLogger(__name__)

MATHJAX_VERSION = "3.2.2"
# Parts of the package's es5/ folder that the pages load (everything else is left out).
MATHJAX_PARTS = ["tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y", "adaptors"]


def _mathjax_package(confdir: Path) -> Path:
    candidates = [
        os.environ.get("COURSE_MATHJAX_DIR"),
        confdir / "node_modules" / "mathjax",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "es5" / "tex-chtml.js").is_file():
            return Path(candidate)
    raise ExtensionError(
        "MathJax is not installed, and the book serves it locally (no CDN). Install it with\n"
        "    npm ci   (in the repository root: package-lock.json pins mathjax "
        f"{MATHJAX_VERSION})\n"
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


def stale_note(result: output_freshness.Freshness) -> str | None:
    """The note under the title for outputs older than the code or library beside them."""
    if result.status == "library-changed":
        n = len(result.changed_files)
        return (
            "Outputs computed with an earlier version of course_lib; "
            f"{n} library file{'s' if n != 1 else ''} changed since "
            f"({', '.join(result.changed_files)}). Re-execute the notebook to refresh them."
        )
    if result.status == "unrecorded":
        return (
            "This notebook was executed before code and library hashes were recorded, so "
            "whether its outputs still match its code cannot be checked."
        )
    return None


def add_execution_note(app: Sphinx, doctree: nodes.document) -> None:
    """Insert the execution note (and a stale-output note) under the title of every page made
    from a notebook; a notebook whose code changed since it was executed is a build error."""
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    try:
        notebook = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    record = notebook.get("metadata", {}).get("course", {}).get("execution")
    paras = [nodes.paragraph(classes=["course-execution-note"])]
    paras[0] += nodes.Text(execution_note(record))
    name = source.relative_to(Path(app.confdir)).as_posix()
    result = output_freshness.freshness(notebook, Path(app.confdir), name)
    if result.status == "code-changed":
        logger.warning(result.message(), location=app.env.docname, type="course", subtype="stale")
    note = stale_note(result)
    if note:
        paras.append(nodes.paragraph(classes=["course-stale-note", result.status]))
        paras[-1] += nodes.Text(note)
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None and section.children and isinstance(section[0], nodes.title):
        section[1:1] = paras
    else:
        doctree[0:0] = paras


def add_figure_alt(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Give each figure of a notebook cell the alt text declared in the cell's metadata
    (``{"course": {"alt": ["...", ...]}}``, one per figure in output order; see
    ``scripts/execute_notebooks.py``). Runs after MyST-NB has chosen one MIME type per output."""
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        alt = ((cell.get("cell_metadata") or {}).get("course") or {}).get("alt") or []
        alts = [alt] if isinstance(alt, str) else list(alt)
        for image, text in zip(cell.findall(nodes.image), alts):
            if str(text).strip():
                image["alt"] = str(text).strip()


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


# A sidebar entry with sub-pages: ``<a ...>Title</a><details><summary>`` + a chevron icon only.
_SUMMARY = re.compile(
    r'(<a class="(?:[^"]* )?reference internal" href="[^"]*">(.*?)</a>'
    r"\s*<details[^>]*>\s*<summary)>"
)
_TAGS = re.compile(r"<[^>]+>")


def name_sidebar_toggles(html: str) -> str:
    """Give each collapsible sidebar entry's ``<summary>`` (an icon, no text) an accessible name."""

    def label(match: re.Match) -> str:
        title = _TAGS.sub("", match.group(2)).strip().replace('"', "&quot;")
        return f'{match.group(1)} aria-label="Show or hide the pages under {title}">'

    return _SUMMARY.sub(label, html)


def accessible_html(app: Sphinx, pagename, templatename, context, doctree) -> None:
    """Fix what the accessibility audit (axe-core, tests/test_site.py) finds in the generated HTML:
    nameless ``<summary>`` toggles in the sidebar, and ``role="doc-biblioentry"`` (deprecated in
    WAI-ARIA DPUB 1.1; ``listitem`` is its replacement inside docutils' ``role="list"``)."""
    toctree = context.get("generate_toctree_html")
    if callable(toctree) and not getattr(toctree, "_course_named", False):

        def named(*args, **kwargs):
            return name_sidebar_toggles(str(toctree(*args, **kwargs)))

        named._course_named = True
        context["generate_toctree_html"] = named
    if "body" in context:
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')


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
    app.connect("html-page-context", accessible_html, priority=900)  # after the theme
    app.connect("config-inited", stage_mathjax)
    app.connect("autodoc-process-docstring", escape_docstring_bars)
    app.connect("doctree-read", add_execution_note)
    app.connect("doctree-resolved", add_figure_alt)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
