"""The book as a website: configuration checks, then the built site opened in a real browser.

The browser tests (``-m browser``) build the book with ``scripts/build_book.sh`` (warnings are
errors), serve ``_build/html`` on 127.0.0.1 and open every page in Debian's headless Chromium
through Playwright. While the book has no chapter notebook yet, they build a temporary copy
of the repository with one small placeholder chapter instead, so that launch buttons, stored
outputs, images and the execution note are still exercised. Every page is audited with axe-core
(npm package in ``node_modules``, WCAG 2.1 A/AA rules, zero violations allowed) and every image
must have a meaningful alt text. Screenshots (intro, a chapter, and the chapter in light mode, dark
mode and at 200 % zoom) are kept in ``_build/screenshots/``.

Run them alone with ``.venv/bin/python -m pytest tests/test_site.py -m browser``;
``BOOK_TEST_PLACEHOLDER=1`` tests the site machinery on the placeholder chapter only (without the
real chapters, e.g. while one of them breaks the build); ``BOOK_TEST_PREBUILT=1`` tests the site
already in ``_build/html`` (as ``make book`` left it) without building it again.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "_build" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # npm ci (scripts/build_book.sh)
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
VIEWPORT = {"width": 1280, "height": 900}
ZOOM_200 = {"width": 640, "height": 900}  # 200 % zoom of VIEWPORT: half as many CSS pixels
FIXTURES = ROOT / "tests" / "fixtures" / "site"
PLACEHOLDER = "00_placeholder_test"
CHAPTER = re.compile(r"^\d\d_\w+\.ipynb$")

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"].get("branch", "main")


# ------------------------------------------------------------------ configuration (no browser)


def test_config_is_offline_and_derives_everything_from_one_repository_url():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", REPO_URL)
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    sphinx = CONFIG["sphinx"]["config"]
    assert not urlparse(sphinx["mathjax_path"]).scheme, "MathJax must be served locally"
    assert (ROOT / CONFIG["html"]["favicon"]).is_file()
    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    assert text.count("github.com/") == 1, "the repository URL is configured in one place only"


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text("utf-8"), re.M)


def test_bibliography_has_the_seed_papers_and_every_cited_key():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), "duplicate bibtex keys"
    required = {
        "he2015delving", "he2016deep", "he2016identity", "ioffe2015batch",
        "srivastava2014dropout", "srivastava2015highway", "zhang2017understanding",
        "zhang2018mixup", "guo2017calibration", "loshchilov2019decoupled", "wu2018group",
        "ba2016layer", "huang2016deep", "huang2017densely", "zagoruyko2016wide",
        "wightman2021resnet", "nakkiran2019deep", "demsar2006statistical", "lecun1998gradient",
        "krizhevsky2012imagenet", "simonyan2015very", "szegedy2015going",
        "glorot2010understanding", "xie2017aggregated", "yun2019cutmix", "cubuk2020randaugment",
        "muller2021trivialaugment", "li2019understanding", "santurkar2018how", "keskar2017large",
        "greydanus2020scaling", "naeini2015obtaining", "nixon2019measuring",
        "lakshminarayanan2017simple", "gal2016dropout", "smith2017cyclical",
        "smith2018disciplined", "goodfellow2016deep",
    }  # fmt: skip
    assert required <= set(keys), f"missing: {sorted(required - set(keys))}"
    cited: set[str] = set()
    sources = list((ROOT / "book").rglob("*.md")) + list((ROOT / "book").glob("*.ipynb"))
    for path in sources:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text("utf-8")):
            cited |= {k.strip() for k in group.split(",")}
    assert cited <= set(keys), f"cited but not in references.bib: {sorted(cited - set(keys))}"


def _book_ext():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "course_book_ext", ROOT / "scripts/course_book_ext.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstring_bars_are_escaped_outside_literals():
    ext = _book_ext()
    assert ext.escape_bars("ECE = Σ_m (|B_m| / N) |acc − conf|") == (
        "ECE = Σ_m (\\|B_m\\| / N) \\|acc − conf\\|"
    )
    assert ext.escape_bars("``|x|`` and :math:`|x|` stay") == "``|x|`` and :math:`|x|` stay"
    assert ext.escape_bars("a | b || c") == "a | b || c"
    lines = ["Sum of |w|::", "", "    y = |w|", "", "Then |v|.", ">>> abs(|x|)"]
    ext.escape_docstring_bars(None, "function", "f", None, {}, lines)
    assert lines == ["Sum of \\|w\\|::", "", "    y = |w|", "", "Then \\|v\\|.", ">>> abs(|x|)"]


def test_execution_note_reads_the_metadata():
    ext = _book_ext()
    record = {
        "profile": "gpu", "device": "cuda", "gpu": "NVIDIA H100", "python": "3.11.7",
        "torch": "2.15.0", "course_lib": "0.1.0", "wall_time_s": 3725.4,
        "executed_at": "2026-11-23T12:00:00Z", "host_kind": "colab",
    }  # fmt: skip
    assert ext.execution_note(record) == (
        "Outputs produced with the 'gpu' profile on cuda (NVIDIA H100) (colab; Python 3.11.7, "
        "torch 2.15.0, course_lib 0.1.0) in 1 h 2 min on 2026-11-23 UTC."
    )
    assert "no execution record" in ext.execution_note(None)


def test_stored_figures_are_opaque():
    """Figures carry their own opaque ground: black text on a transparent PNG would vanish in the
    theme's dark mode (the site also puts a white ground behind output images)."""
    import io

    from PIL import Image

    transparent, count = [], 0
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                if "image/png" not in out.get("data", {}):
                    continue
                count += 1
                image = Image.open(io.BytesIO(base64.b64decode(out["data"]["image/png"])))
                if image.mode in ("RGBA", "LA", "PA") and image.getextrema()[-1][0] < 255:
                    transparent.append(f"{path.name} cell {index}")
                elif image.mode == "P" and "transparency" in image.info:
                    transparent.append(f"{path.name} cell {index}")
    assert count or not list((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert not transparent, f"transparent figures (save with facecolor='white'): {transparent}"


def _notebook_page(root: Path, doc_text: str = "Title\n=====\n\nText.\n"):
    from types import SimpleNamespace

    from docutils.core import publish_doctree

    path = root / "book" / "01_x.ipynb"
    app = SimpleNamespace(
        confdir=str(root), env=SimpleNamespace(docname="book/01_x", doc2path=lambda d: str(path))
    )
    return app, publish_doctree(doc_text, settings_overrides={"doctitle_xform": False})


def test_pages_note_stale_outputs_and_changed_code_is_an_error(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from docutils import nodes

    ext, freshness = _book_ext(), _script("output_freshness")
    warnings = []
    monkeypatch.setattr(ext, "logger", SimpleNamespace(warning=lambda m, **k: warnings.append(m)))
    (tmp_path / "course_lib").mkdir()
    (tmp_path / "course_lib" / "__init__.py").write_text("x = 1\n")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), nbformat.v4.new_code_cell("y = 2")]
    files = freshness.library_files(
        [tmp_path / "course_lib" / "__init__.py"], tmp_path / "course_lib"
    )
    nb.metadata["course"] = {
        "execution": {"profile": "cpu", **freshness.execution_hashes(nb, files)}
    }
    (tmp_path / "book").mkdir()
    nbformat.write(nb, tmp_path / "book" / "01_x.ipynb")

    def notes() -> list[tuple[str, str]]:
        app, doctree = _notebook_page(tmp_path)
        ext.add_execution_note(app, doctree)
        section = next(iter(doctree.findall(nodes.section)))
        assert isinstance(section[0], nodes.title)  # the notes come right under the title
        return [(" ".join(p["classes"]), p.astext()) for p in section[1:] if p.get("classes")]

    assert [c for c, _ in notes()] == ["course-execution-note"]  # current: the execution note only
    (tmp_path / "course_lib" / "__init__.py").write_text("x = 2\n")
    ((kind, text),) = notes()[1:]
    assert kind == "course-stale-note library-changed"
    assert text.startswith("Outputs computed with an earlier version of course_lib; 1 library file")
    assert "(course_lib/__init__.py)" in text and not warnings
    nb.cells[1].source = "y = 3"
    nbformat.write(nb, tmp_path / "book" / "01_x.ipynb")
    notes()
    assert warnings == [
        "book/01_x.ipynb: code cells changed since the notebook was executed; its stored outputs "
        "no longer belong to its code. Re-run: .venv/bin/python scripts/execute_notebooks.py "
        "book/01_x.ipynb --profile cpu"
    ]
    del nb.metadata["course"]["execution"]["code_sha256"]
    nbformat.write(nb, tmp_path / "book" / "01_x.ipynb")
    assert notes()[1][0] == "course-stale-note unrecorded"


def test_sidebar_toggles_get_a_name():
    ext = _book_ext()
    html = (
        '<a class="current reference internal" href="#">API <em>reference</em></a>'
        '<details open="open"><summary><span class="toctree-toggle"></span></summary>'
    )
    assert ext.name_sidebar_toggles(html) == html.replace(
        "<summary>", '<summary aria-label="Show or hide the pages under API reference">'
    )


# ---------------------------------------------------------------------------- the built site


@dataclass
class Site:
    html: Path
    chapter: str  # stem of a chapter notebook whose launch buttons are checked
    placeholder: bool


def _png() -> bytes:
    """A small real figure, as a chapter would store it."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1.5), dpi=50)
    ax.plot([0, 1, 2], [0, 1, 4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


PLACEHOLDER_ALT = "A rising curve through (0, 0), (1, 1) and (2, 4)"


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _placeholder_chapter(path: Path) -> None:
    colab_cell = _script("colab_cell")

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["course"] = {
        "execution": {
            "profile": "cpu", "device": "cpu", "python": "3.11.7", "torch": "2.15.0",
            "course_lib": "0.1.0", "wall_time_s": 75.0, "executed_at": "2026-11-23T12:00:00Z",
            "host_kind": "local", "cpu_count": 2,
        }
    }  # fmt: skip
    plot = nbformat.v4.new_code_cell("plot()", execution_count=2)
    plot.metadata["course"] = {"alt": [PLACEHOLDER_ALT]}
    plot.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"image/png": base64.b64encode(_png()).decode(), "text/plain": "<Figure>"},
        )
    ]
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# Placeholder chapter\n\nSoftmax turns scores into probabilities "
            "{cite}`goodfellow2016deep`:\n\n$$p_k = \\frac{e^{z_k}}{\\sum_j e^{z_j}}$$\n\n"
            "and inline math $\\ell = -\\log p_y$ works too. Practise in the "
            "[exercises](exercises.md)."
        ),
        nbformat.v4.new_code_cell("x = 21 * 2\nx", execution_count=1),
        plot,
    ]
    nb.cells[1].outputs = [
        nbformat.v4.new_output("execute_result", data={"text/plain": "42"}, execution_count=1)
    ]
    colab_cell.refresh(nb, colab_cell.cell_source(REPO_URL, BRANCH))
    # Executed with this code and course_lib/__init__.py, but an earlier course_lib/runtime.py:
    # the page must show the "earlier version of course_lib; 1 library file changed" note.
    freshness = _script("output_freshness")
    files = {
        "course_lib/__init__.py": freshness.file_digest(ROOT / "course_lib" / "__init__.py"),
        "course_lib/runtime.py": "0" * freshness.FILE_DIGEST_CHARS,
    }
    nb.metadata["course"]["execution"].update(freshness.execution_hashes(nb, files))
    nbformat.write(nb, path)


def _build(root: Path) -> None:
    start = time.perf_counter()
    env = dict(os.environ, PYTHON=str(ROOT / ".venv" / "bin" / "python"))
    mathjax = ROOT / "node_modules" / "mathjax"
    if "COURSE_MATHJAX_DIR" not in env and (mathjax / "es5" / "tex-chtml.js").is_file():
        env["COURSE_MATHJAX_DIR"] = str(mathjax)
    result = subprocess.run(
        ["bash", str(root / "scripts" / "build_book.sh")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
        problems = [ln for ln in log.splitlines() if re.search(r"WARNING|ERROR|rror:", ln)]
        pytest.fail("book build failed:\n" + "\n".join(problems[-40:] or log.splitlines()[-40:]))
    print(f"\nbook built in {time.perf_counter() - start:.0f} s")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (install it: apt-get install -y chromium)")
    chapters = sorted(p.stem for p in (ROOT / "book").glob("*.ipynb") if CHAPTER.match(p.name))
    placeholder_only = os.environ.get("BOOK_TEST_PLACEHOLDER") == "1"
    if chapters and not placeholder_only:
        if os.environ.get("BOOK_TEST_PREBUILT") != "1":
            _build(ROOT)
        elif not (ROOT / "_build" / "html" / "index.html").is_file():
            pytest.fail("BOOK_TEST_PREBUILT=1 but _build/html is empty: run scripts/build_book.sh")
        return Site(ROOT / "_build" / "html", chapters[0], placeholder=False)
    # No chapter yet: build a copy of the book with a placeholder chapter (never in book/).
    copy = tmp_path_factory.mktemp("book") / "repo"
    ignore = shutil.ignore_patterns("_build", "__pycache__", ".ipynb_checkpoints", "*.pyc")
    if placeholder_only:  # the site machinery without the chapters' content
        ignore = shutil.ignore_patterns(
            "_build", "__pycache__", ".ipynb_checkpoints", "*.pyc", "[0-9][0-9]_*.ipynb"
        )
    for name in ("book", "scripts", "course_lib", "exercises"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in ("_config.yml", "references.bib"):
        shutil.copy2(ROOT / name, copy / name)
    _placeholder_chapter(copy / "book" / f"{PLACEHOLDER}.ipynb")
    original = (copy / "scripts" / "book_pages.py").read_text(encoding="utf-8")
    (copy / "scripts" / "book_pages.py").write_text(
        original.replace(
            "CHAPTERS = [\n",
            f'CHAPTERS = [\n    Chapter("{PLACEHOLDER}", "Placeholder", "A", "test only"),\n',
            1,
        ),
        encoding="utf-8",
    )
    _build(copy)
    return Site(copy / "_build" / "html", PLACEHOLDER, placeholder=True)


NOT_FOUND: list[str] = []  # every path the server answered with an error


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def send_error(self, code, message=None, explain=None) -> None:
        NOT_FOUND.append(f"{self.path} (HTTP {code})")
        try:
            super().send_error(code, message, explain)
        except (BrokenPipeError, ConnectionResetError):  # the browser navigated on
            pass


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    raw_math: list[str] = field(default_factory=list)
    unrendered_math: int = 0
    broken_images: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)
    images: list[tuple[str, str | None]] = field(default_factory=list)  # (src, alt)
    violations: list[str] | None = None  # axe-core's WCAG 2.1 A/AA findings; None: not run
    zoom_overflow: dict | None = None  # at 200 % zoom: the page's width and prose wider than it


# Visible text outside code, and math that MathJax did not typeset.
PAGE_PROBE = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.complete ? null :
      new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })));
  const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, nav.bd-links';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest(skip) || !el.checkVisibility()) continue;
    const t = n.textContent;
    if (/\\$\\$|\\\\\\(|\\\\\\[|\\\\begin\\{/.test(t)) raw.push(t.trim().slice(0, 80));
  }
  const unrendered = Array.from(document.querySelectorAll('.math'))
      .filter(e => !e.querySelector('mjx-container')).length;
  return {
    raw, unrendered,
    broken: imgs.filter(i => i.naturalWidth === 0).map(i => i.currentSrc || i.src),
    images: imgs.map(i => [i.getAttribute('src'), i.getAttribute('alt')]),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  };
}
"""


def audit(page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the open page, one line per element:
    ``rule (impact): CSS target  <element html>  fix hint``. axe-core is loaded from
    node_modules (no CDN) into the page."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags},
                                      resultTypes: ['violations']})""",
        WCAG_TAGS,
    )
    found = []
    for rule in result["violations"]:
        for node in rule["nodes"]:
            target = " ".join(map(str, node["target"]))
            hint = (node.get("failureSummary") or "").replace("\n", " ")[:160]
            found.append(f"{rule['id']} ({rule['impact']}): {target}  {node['html'][:120]}  {hint}")
    return found


def _pages(html: Path) -> list[str]:
    skip = ("_static/", "_sources/", "_images/", "_downloads/")
    pages = [p.relative_to(html).as_posix() for p in sorted(html.rglob("*.html"))]
    return [p for p in pages if not p.startswith(skip)]


@pytest.fixture(scope="module")
def crawl(site, server, browser) -> dict[str, PageReport]:
    """Open every page once and record what happened."""
    host = urlparse(server).netloc
    reports: dict[str, PageReport] = {}
    start = time.perf_counter()
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    current = [PageReport()]  # the report that events are recorded into

    def on_request(request) -> None:
        parsed = urlparse(request.url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.netloc != host:
            current[0].external_requests.append(request.url)

    def on_console(message) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            current[0].console_errors.append(f"{message.text} @ {where}")

    def on_response(response) -> None:
        if response.status >= 400:
            current[0].failed_requests.append(f"{response.url} (HTTP {response.status})")

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: current[0].console_errors.append(str(error)))

    def on_failed(request) -> None:
        # ERR_ABORTED: cancelled because we navigated on (e.g. the favicon still loading);
        # missing files are caught as HTTP errors by on_response and by the server.
        if request.failure != "net::ERR_ABORTED":
            current[0].failed_requests.append(f"{request.url} ({request.failure})")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    audit_time = 0.0
    for page_path in _pages(site.html):
        report = current[0] = reports[page_path] = PageReport()
        page.goto(server + page_path, wait_until="load")
        if page_path == "index.html":  # Jupyter Book's redirect to the first page
            page.wait_for_url("**/book/intro.html")
            page.wait_for_load_state("load")
        result = page.evaluate(PAGE_PROBE)
        report.raw_math = result["raw"]
        report.unrendered_math = result["unrendered"]
        report.broken_images = result["broken"]
        report.links = set(result["links"])
        report.images = [tuple(i) for i in result["images"]]
        page.set_viewport_size(ZOOM_200)  # the same page at 200 % zoom (half the CSS width)
        scroll = page.evaluate(SCROLL_PROBE)
        if scroll["page"] > scroll["viewport"] or scroll["wide"]:
            report.zoom_overflow = scroll
        page.set_viewport_size(VIEWPORT)
        if AXE.is_file():
            audit_start = time.perf_counter()
            report.violations = audit(page)
            audit_time += time.perf_counter() - audit_start
        if page_path == "book/intro.html":
            page.screenshot(path=str(SCREENSHOTS / "intro.png"), full_page=True)
        elif page_path == f"book/{site.chapter}.html":
            page.screenshot(path=str(SCREENSHOTS / "chapter.png"), full_page=True)
    context.close()
    print(
        f"\n{len(reports)} pages crawled in {time.perf_counter() - start:.0f} s "
        f"(axe-core audit: {audit_time:.0f} s of it)"
    )
    return reports


def _problems(crawl: dict[str, PageReport], attribute: str) -> dict[str, object]:
    return {page: getattr(r, attribute) for page, r in crawl.items() if getattr(r, attribute)}


@pytest.mark.browser
def test_every_page_is_crawled(site, crawl):
    assert {"book/intro.html", "book/exercises.html", "book/api.html", "search.html"} <= set(crawl)
    assert f"book/{site.chapter}.html" in crawl
    assert any(p.startswith("book/api/") for p in crawl)


@pytest.mark.browser
def test_no_console_errors(crawl):
    assert not _problems(crawl, "console_errors")


@pytest.mark.browser
def test_no_failed_requests(crawl):
    assert not _problems(crawl, "failed_requests")
    assert not NOT_FOUND, "the server answered these requests with an error"


@pytest.mark.browser
def test_no_request_leaves_the_local_host(crawl):
    assert not _problems(crawl, "external_requests")


@pytest.mark.browser
def test_mathjax_rendered_everywhere(crawl):
    assert not _problems(crawl, "raw_math")
    assert not _problems(crawl, "unrendered_math")


@pytest.mark.browser
def test_math_is_typeset_by_local_mathjax(site, server, browser):
    page = browser.new_page()
    page.goto(server + "book/intro.html", wait_until="load")
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.document")
    page.evaluate("MathJax.startup.promise")
    assert page.locator("mjx-container").count() >= 3  # the intro's display and inline math
    script = page.eval_on_selector("script[src*='tex-chtml']", "s => s.src")
    assert urlparse(script).netloc == urlparse(server).netloc
    page.close()


@pytest.mark.browser
def test_every_image_loaded(site, crawl):
    assert not _problems(crawl, "broken_images")
    if site.placeholder:
        chapter = (site.html / "book" / f"{PLACEHOLDER}.html").read_text("utf-8")
        assert "<img" in chapter  # the stored figure is on the page and was checked


@pytest.mark.browser
def test_every_internal_link_resolves(site, server, crawl):
    host = urlparse(server).netloc
    targets: dict[str, set[str]] = {}
    for report in crawl.values():
        for link in report.links:
            if urlparse(link).netloc == host:
                url, fragment = urldefrag(link)
                targets.setdefault(url, set()).add(fragment)
    broken, missing_anchor = [], []
    for url, fragments in sorted(targets.items()):
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            broken.append(f"{url} (HTTP {err.code})")
            continue
        if url.endswith(".html") or url.endswith("/"):
            ids = set(re.findall(r'\b(?:id|name)="([^"]+)"', body))
            missing_anchor += [f"{url}#{f}" for f in fragments if f and f not in ids]
    assert len(targets) > 20
    assert not broken
    assert not missing_anchor


@pytest.mark.browser
def test_search_finds_a_term(server, browser):
    page = browser.new_page()
    page.goto(server + "search.html?q=Colab", wait_until="load")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(timeout=15_000)
    hrefs = [a.get_attribute("href") for a in page.locator("#search-results ul.search li a").all()]
    assert any("book/intro.html" in (h or "") for h in hrefs), hrefs
    page.close()


@pytest.mark.browser
def test_chapter_has_colab_and_binder_buttons_and_execution_note(site, server, browser):
    page = browser.new_page()
    page.goto(server + f"book/{site.chapter}.html", wait_until="load")
    repo = urlparse(REPO_URL).path.strip("/")
    colab = page.locator("a[href^='https://colab.research.google.com/']")
    assert colab.count() >= 1
    assert colab.first.get_attribute("href") == (
        f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/book/{site.chapter}.ipynb"
    )
    binder = page.locator("a[href^='https://mybinder.org/']").first.get_attribute("href")
    assert binder.startswith(f"https://mybinder.org/v2/gh/{repo}/{BRANCH}?")
    assert f"book/{site.chapter}.ipynb" in binder.replace("%2F", "/")
    note = page.locator("p.course-execution-note")
    assert note.count() == 1
    assert re.search(r"Outputs produced with the '(ci|cpu|gpu)' profile", note.inner_text())
    # The Colab setup cell is in the notebook but not on the page.
    assert "google.colab" not in page.locator("article").inner_text()
    page.close()


@pytest.mark.browser
def test_screenshots_kept(crawl):
    for name in ("intro.png", "chapter.png"):
        path = SCREENSHOTS / name
        assert path.is_file() and path.stat().st_size > 10_000, path


# ------------------------------------------------------------ accessibility, figures, freshness

# An alt text that is a file name, a path or a URL describes nothing.
FILE_NAME_ALT = re.compile(
    r"(^|/)[\w.-]+\.(png|jpe?g|gif|svg|webp)$|^(https?:|\.\./|_images/)", re.I
)


@pytest.mark.browser
def test_no_accessibility_violations(crawl):
    """axe-core (WCAG 2.1 A and AA rules) finds nothing on any page."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` in the repository root (make book does)")
    audited = {page: r.violations for page, r in crawl.items() if r.violations is not None}
    assert len(audited) == len(crawl)
    found = {page: v for page, v in audited.items() if v}
    rules = sorted({line.split(" ", 1)[0] for lines in found.values() for line in lines})
    assert not found, f"{sum(map(len, found.values()))} violations of {rules}:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(lines) for page, lines in found.items()
    )


@pytest.mark.browser
def test_the_audit_finds_known_violations(browser):
    """The audit used above fails on a page with known WCAG violations (so it can fail)."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` in the repository root")
    page = browser.new_page()
    page.goto((FIXTURES / "a11y_violations.html").as_uri(), wait_until="load")
    found = audit(page)
    page.close()
    rules = {line.split(" ", 1)[0] for line in found}
    assert {"image-alt", "button-name", "color-contrast", "html-has-lang", "link-name"} <= rules
    assert any("image-alt" in line and "figure.png" in line for line in found)  # names the element


@pytest.mark.browser
def test_no_page_scrolls_sideways_at_200_percent_zoom(crawl):
    """At 200 % zoom no page is wider than the window and no paragraph, list item or heading
    sticks out of it (code, tables and formulas may scroll inside their own box)."""
    assert not _problems(crawl, "zoom_overflow")


@pytest.mark.browser
def test_every_image_has_a_meaningful_alt_text(site, crawl):
    """Every <img> says what it shows; chapter figures get theirs from the cell's
    ``metadata.course.alt`` (see scripts/execute_notebooks.py --check-alt)."""
    lacking = {}
    for page, report in crawl.items():
        bad = [
            f"image {i + 1} of the page: {src}"
            for i, (src, alt) in enumerate(report.images)
            if not (alt or "").strip() or FILE_NAME_ALT.search(alt.strip())
        ]
        if bad:
            lacking[page] = bad
    if site.placeholder:
        assert PLACEHOLDER_ALT in {alt for _, alt in crawl[f"book/{PLACEHOLDER}.html"].images}
    assert not lacking, (
        f"{sum(map(len, lacking.values()))} images without alt text (add one per figure to the "
        'cell metadata {"course": {"alt": [...]}}; list them with .venv/bin/python '
        "scripts/execute_notebooks.py --check-alt book):\n"
        + "\n".join(f"{page}: " + "; ".join(items) for page, items in lacking.items())
    )


@pytest.mark.browser
def test_stale_output_notes_follow_the_recorded_hashes(site):
    """Each chapter page carries the note its notebook's hashes call for (and the execution note)."""
    freshness = _script("output_freshness")
    root = site.html.parents[1]
    checked = 0
    for path in sorted((root / "book").glob("[0-9][0-9]_*.ipynb")):
        page = site.html / "book" / f"{path.stem}.html"
        if not page.is_file():
            continue
        if path.stat().st_mtime > page.stat().st_mtime:  # BOOK_TEST_PREBUILT on an older build
            print(f"\nnot checked: {page.name} was built before {path.name} changed (rebuild)")
            continue
        result = freshness.check_file(path, root)
        html = page.read_text(encoding="utf-8")
        assert html.count('class="course-execution-note"') == 1, page.name
        note = re.search(r'<p class="course-stale-note ([\w-]+)">([^<]*)', html)
        assert result.status != "code-changed", result.message()  # the build would have failed
        if result.status == "current":
            assert note is None, page.name
            continue
        assert note and note.group(1) == result.status, page.name
        if result.status == "library-changed":
            n = len(result.changed_files)
            assert f"{n} library file{'s' if n != 1 else ''} changed since" in note.group(2)
            assert all(f in note.group(2) for f in result.changed_files)
        checked += 1
    if site.placeholder:
        html = (site.html / "book" / f"{PLACEHOLDER}.html").read_text(encoding="utf-8")
        assert "earlier version of course_lib; 1 library file changed since" in html
        assert "course_lib/runtime.py" in html and checked == 1


SCROLL_PROBE = """
() => {
  const article = document.querySelector('article.bd-article') || document.body;
  const wide = Array.from(article.querySelectorAll('p, li, h1, h2, h3, dd, dt, blockquote'))
      .filter(e => !e.closest('pre, .highlight, table, mjx-container, .cell_output'))
      .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
      .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 60));
  return {page: document.documentElement.scrollWidth, viewport: window.innerWidth, wide};
}
"""


@pytest.mark.browser
def test_chapter_in_light_dark_and_200_percent_zoom(site, server, browser):
    """Screenshots of one chapter (and of its first figure) in light mode, dark mode and at
    200 % zoom (kept in _build/screenshots/chapter-{light,dark,zoom200}[-figure].png); figures have an opaque white ground in dark mode; at 200 % zoom the
    prose needs no horizontal scrolling; the audit passes in all three."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    url = server + f"book/{site.chapter}.html"
    modes = {
        "light": dict(viewport={"width": 1280, "height": 900}),
        "dark": dict(viewport={"width": 1280, "height": 900}, color_scheme="dark"),
        # 200 % zoom of a 1280 px wide window: 640 CSS pixels, each drawn as 2x2 device pixels.
        "zoom200": dict(viewport={"width": 640, "height": 900}, device_scale_factor=2),
    }
    problems = {}
    for mode, options in modes.items():
        ctx = browser.new_context(**options)
        if mode == "dark":  # the theme's own switch stores the choice here
            ctx.add_init_script("localStorage.setItem('mode', 'dark')")
        page = ctx.new_page()
        page.goto(url, wait_until="load")
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        theme = page.evaluate("document.documentElement.dataset.theme")
        assert theme == ("dark" if mode == "dark" else "light"), mode
        figures = page.locator(".cell_output img")
        if figures.count():
            grounds = figures.evaluate_all("l => l.map(i => getComputedStyle(i).backgroundColor)")
            assert set(grounds) == {"rgb(255, 255, 255)"}, (mode, grounds)
        scroll = page.evaluate(SCROLL_PROBE)
        if mode == "zoom200":
            assert scroll["page"] <= scroll["viewport"], scroll
            assert not scroll["wide"], scroll["wide"]
        if AXE.is_file():
            problems[mode] = audit(page)
        page.screenshot(path=str(SCREENSHOTS / f"chapter-{mode}.png"), full_page=False)
        if figures.count():  # the first figure as it looks in this mode
            figures.first.scroll_into_view_if_needed()
            figures.first.screenshot(path=str(SCREENSHOTS / f"chapter-{mode}-figure.png"))
        ctx.close()
    for mode in modes:
        assert (SCREENSHOTS / f"chapter-{mode}.png").stat().st_size > 10_000
    assert not any(problems.values()), problems


VISIBLE_SEARCH = """
() => Array.from(document.querySelectorAll(
    '.search-button__button, form.bd-search, input[type=search]'))
  .filter(e => e.checkVisibility() && e.getBoundingClientRect().width > 0)
  .map(e => e.className)
"""


@pytest.mark.browser
def test_one_search_box_at_any_width(site, server, browser):
    for width in (1280, 640):
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(server + f"book/{site.chapter}.html", wait_until="load")
        visible = page.evaluate(VISIBLE_SEARCH)
        page.close()
        assert len(visible) == 1, (width, visible)


@pytest.mark.browser
def test_exercise_pages_offer_download_and_colab(site, server, browser):
    repo = urlparse(REPO_URL).path.strip("/")
    page = browser.new_page()
    pages = sorted((site.html / "book" / "exercises").glob("ex*.html"))
    assignments = [d for d in (ROOT / "solutions").iterdir() if d.is_dir()]
    assert len(pages) == len(assignments) >= 7  # one page per assignment
    for html in pages:
        name = html.stem
        page.goto(server + f"book/exercises/{html.name}", wait_until="load")
        article = page.locator("article")
        download = article.get_by_role("link", name="Download notebook")
        colab = article.get_by_role("link", name="Open in Colab")
        assert download.count() == 1 and colab.count() == 1, name
        href = download.get_attribute("href")
        assert href.endswith(f"/{name}.ipynb") and "_downloads/" in href, href
        with urllib.request.urlopen(urljoin(page.url, href), timeout=10) as r:
            assert nbformat.reads(r.read().decode("utf-8"), as_version=4).cells
        assert colab.get_attribute("href") == (
            f"https://colab.research.google.com/github/{repo}/blob/{BRANCH}/exercises/"
            f"{name}/{name}.ipynb"
        )
    page.close()


@pytest.mark.browser
def test_print_shows_the_chapter_without_sidebars(site, server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server + f"book/{site.chapter}.html", wait_until="load")
    page.emulate_media(media="print")
    hidden = page.evaluate(
        """() => ['.bd-sidebar-primary', '.bd-sidebar-secondary', '.bd-header-article',
                  '.prev-next-area'].map(s => Array.from(document.querySelectorAll(s))
                  .every(e => !e.checkVisibility()))"""
    )
    width = page.evaluate(
        "document.querySelector('article.bd-article').getBoundingClientRect().width"
    )
    page.close()
    assert all(hidden), hidden
    assert width > 0.9 * 1280 - 100, width  # the article takes the page
