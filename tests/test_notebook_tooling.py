"""Tests for the notebook tooling in scripts/: execution with metadata, the Colab setup cell and
the generated book pages (toc, exercise pages, API pages)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


execute_notebooks = _load("execute_notebooks")
output_freshness = _load("output_freshness")
colab_cell = _load("colab_cell")
book_pages = _load("book_pages")


# A 1x1 PNG, enough for a figure output.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8ffff3f0005fe02fe0dd2c4b20000000049454e44ae426082"
    )
).decode()


def _write_nb(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A notebook")]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# --------------------------------------------------------------------- execute_notebooks.py


@pytest.mark.slow
def test_execute_records_metadata_and_keeps_failed_notebook_unchanged(tmp_path, capsys):
    good = _write_nb(
        tmp_path / "good" / "good.ipynb",
        "import os\nprint(os.environ['COURSE_PROFILE'], os.getcwd())",
        "21 * 2",
        "import course_lib.metrics\nprint(os.environ.get('TQDM_DISABLE'))",
        "from IPython.display import display\n"
        f"display({{'image/png': {PNG!r}, 'text/plain': '<Figure>'}}, raw=True)",
    )
    bad = _write_nb(
        tmp_path / "bad.ipynb",
        "x = 1",
        "first_line = 'here'\nsecond = 2\nthird = 3\nfourth = 4\nfifth = 5\nsixth = 6\n1 / 0",
        "print('never reached')",
    )
    bad_bytes = bad.read_bytes()

    rc = execute_notebooks.main([str(good), str(bad), "--profile", "ci", "--keep-going"])
    captured = capsys.readouterr()

    assert rc == 1
    # The good notebook ran in its own folder with the profile in the kernel's environment ...
    nb = nbformat.read(good, as_version=4)
    assert nb.cells[1].outputs[0]["text"].strip() == f"ci {good.parent}"
    assert nb.cells[2].outputs[0]["data"]["text/plain"] == "42"
    record = nb.metadata["course"]["execution"]
    assert record["profile"] == "ci"
    assert record["device"] == "cpu"
    assert record["course_lib"] and record["torch"] and record["torchvision"]
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["executed_at"])
    assert 0 <= record["wall_time_s"] < 60
    assert record["host_kind"] in {"local", "ci", "github-actions"}
    # No progress bars in stored outputs; hashes of the code and of the course_lib modules used.
    assert nb.cells[3].outputs[0]["text"].strip() == "1"
    assert record["code_sha256"] == output_freshness.code_hash(nb)
    files = record["course_lib_files"]
    assert {"course_lib/__init__.py", "course_lib/runtime.py"} <= set(files)
    assert any(f.startswith("course_lib/metrics") for f in files)  # imported by the notebook
    assert not any(f.startswith("course_lib/grading") for f in files)  # only what it imported
    for rel, digest in files.items():
        full = hashlib.sha256((ROOT / rel).read_bytes()).hexdigest()
        assert full.startswith(digest) and len(digest) == 16
    lines = "\n".join(f"{p} {d}" for p, d in sorted(files.items()))
    assert record["course_lib_sha256"] == hashlib.sha256(lines.encode()).hexdigest()
    assert output_freshness.check_file(good, ROOT).status == "current"
    # The figure without alt text is reported, naming the cell.
    assert f"WARNING: {good}: 1 figure cell(s) without alt text" in captured.err
    assert "cell index 4 shows 1 figure(s) but declares 0 alt text(s)" in captured.err
    # ... and the failing one is byte-for-byte unchanged, with a report naming cell and error.
    assert bad.read_bytes() == bad_bytes
    assert f"FAILED: {bad} (cell index 2" in captured.err
    assert "| first_line = 'here'" in captured.err
    assert "(2 more lines)" in captured.err
    assert "ZeroDivisionError: division by zero" in captured.err
    assert "never reached" not in captured.out + captured.err

    # With --require-alt, a figure without alt text fails the notebook, which stays unchanged.
    figure = _write_nb(tmp_path / "figure.ipynb", nb.cells[4].source)
    figure_bytes = figure.read_bytes()
    assert execute_notebooks.main([str(figure), "--profile", "ci", "--require-alt"]) == 1
    err = capsys.readouterr().err
    assert f"FAILED: {figure} (cell index 1" in err and "1 figure cell(s) without alt text" in err
    assert figure.read_bytes() == figure_bytes


def _figure_nb(alt=None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<F>"}),
        nbformat.v4.new_output("stream", text="done\n"),
        nbformat.v4.new_output("display_data", data={"image/png": PNG}),
    ]
    if alt is not None:
        cell.metadata["course"] = {"alt": alt}
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    return nb


def test_figures_need_one_alt_text_each(tmp_path, capsys):
    assert [p.index for p in execute_notebooks.figures_without_alt(_figure_nb())] == [1]
    assert execute_notebooks.figures_without_alt(_figure_nb(["one"]))[0].alts == 1
    assert execute_notebooks.figures_without_alt(_figure_nb(["one", " "]))  # blank is missing
    assert not execute_notebooks.figures_without_alt(_figure_nb(["Loss curve", "Accuracy"]))
    single = _figure_nb("Loss curve")
    single.cells[1].outputs.pop()
    assert not execute_notebooks.figures_without_alt(single)  # a string for one figure

    path = tmp_path / "figs.ipynb"
    nbformat.write(_figure_nb(), path)
    before = path.read_bytes()
    assert execute_notebooks.main(["--check-alt", str(path)]) == 1
    out = capsys.readouterr()
    assert f"{path}: cell index 1 shows 2 figure(s) but declares 0 alt text(s)" in out.out
    assert '{"course": {"alt": [' in out.err
    assert path.read_bytes() == before  # nothing was executed or written
    nbformat.write(_figure_nb(["a", "b"]), path)
    assert execute_notebooks.main(["--check-alt", str(path)]) == 0
    with pytest.raises(SystemExit):  # executing still needs a profile
        execute_notebooks.main([str(path)])


def _with_setup_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    return colab_cell.refresh(nb, source)


def test_code_hash_covers_code_cells_only(tmp_path):
    nb = _figure_nb()
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("# Title"))
    base = output_freshness.code_hash(nb)
    # The Colab setup cell (rewritten by colab_cell.py), markdown, outputs, alt metadata and
    # trailing whitespace do not count ...
    same = _with_setup_cell(nbformat.from_dict(json.loads(json.dumps(nb))), "pip install a")
    same.cells[2].source = "# Another title"
    same.cells[3].outputs = []
    same.cells[3].metadata["course"] = {"alt": ["a", "b"]}
    same.cells[1].source = "x = 1\r\n\n"
    assert output_freshness.code_hash(same) == base
    other = _with_setup_cell(nbformat.from_dict(json.loads(json.dumps(same))), "pip install b")
    assert output_freshness.code_hash(other) == base  # the setup cell's URL changed
    # ... every code cell's source does (also raw JSON, where sources are lists of lines).
    changed = nbformat.from_dict(json.loads(json.dumps(nb)))
    changed.cells[0].source = "x = 2"
    assert output_freshness.code_hash(changed) != base
    split = nbformat.from_dict(json.loads(json.dumps(nb)))
    split.cells[0].source, split.cells[2].source = "x = 1\nplot()", ""
    assert output_freshness.code_hash(split) != base
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert output_freshness.code_hash(json.loads(path.read_text())) == base


def _library(root: Path) -> dict[str, str]:
    pkg = root / "course_lib"
    (pkg / "models").mkdir(parents=True, exist_ok=True)
    for rel in ("__init__.py", "train.py", "models/__init__.py"):
        if not (pkg / rel).exists():
            (pkg / rel).write_text(f"# {rel}\n")
    return output_freshness.library_files(
        [pkg / "__init__.py", pkg / "train.py", pkg / "models" / "__init__.py"], pkg
    )


def test_freshness_distinguishes_code_library_and_unrecorded(tmp_path, capsys):
    files = _library(tmp_path)
    assert list(files) == [
        "course_lib/__init__.py",
        "course_lib/models/__init__.py",
        "course_lib/train.py",
    ]
    path = tmp_path / "book" / "01_x.ipynb"
    path.parent.mkdir()
    nb = _figure_nb()
    nbformat.write(nb, path)
    assert output_freshness.check_file(path, tmp_path).status == "unrecorded"
    nb.metadata["course"] = {"execution": output_freshness.execution_hashes(nb, files)}
    nbformat.write(nb, path)
    assert output_freshness.check_file(path, tmp_path).status == "current"
    assert output_freshness.main(["--root", str(tmp_path)]) == 0

    # A changed and a removed library file: outputs from an earlier course_lib, both named.
    (tmp_path / "course_lib" / "train.py").write_text("# train.py, changed\n")
    (tmp_path / "course_lib" / "models" / "__init__.py").unlink()
    (tmp_path / "course_lib" / "new.py").write_text("")  # not used by the notebook: no effect
    result = output_freshness.check_file(path, tmp_path)
    assert result.status == "library-changed"
    assert result.changed_files == ["course_lib/models/__init__.py", "course_lib/train.py"]
    assert "2 library files changed since" in result.message()
    assert output_freshness.main(["--root", str(tmp_path)]) == 0
    assert "course_lib/train.py" in capsys.readouterr().out

    # A changed code cell: the check fails and names the notebook.
    nb.cells[0].source = "x = 2"
    nbformat.write(nb, path)
    assert output_freshness.check_file(path, tmp_path).status == "code-changed"
    assert output_freshness.main(["--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "book/01_x.ipynb: code cells changed since the notebook was executed" in err


def test_execute_rejects_unknown_profile_and_paths(tmp_path):
    with pytest.raises(SystemExit):
        execute_notebooks.main([str(tmp_path / "missing.ipynb"), "--profile", "cpu"])
    with pytest.raises(SystemExit):
        execute_notebooks.main([str(tmp_path), "--profile", "laptop"])
    with pytest.raises(ValueError, match="profile must be one of"):
        execute_notebooks.execute_notebook(tmp_path / "x.ipynb", "laptop")


# ------------------------------------------------------------------------------ colab_cell.py


def _repo(tmp_path: Path, url: str = "https://github.com/example-org/dl-course") -> Path:
    (tmp_path / "_config.yml").write_text(
        f"repository:\n  url: {url}\n  branch: dev\n  install_ref: v1.2.0\n"
    )
    _write_nb(tmp_path / "book" / "01_intro.ipynb", "print('chapter')")
    _write_nb(tmp_path / "solutions" / "ex01" / "ex01.ipynb", "answer = 42")
    _write_nb(tmp_path / "exercises" / "ex01" / "ex01.ipynb", "answer = None")
    return tmp_path


def test_colab_cell_writes_sources_and_checks_release(tmp_path, capsys):
    root = _repo(tmp_path)
    chapter, solution = root / "book" / "01_intro.ipynb", root / "solutions/ex01/ex01.ipynb"
    release = root / "exercises/ex01/ex01.ipynb"
    release_bytes = release.read_bytes()

    assert colab_cell.main(["--root", str(root), "--check"]) == 1
    err = capsys.readouterr().err
    assert all(str(p) in err for p in (chapter, solution, release))

    # Writing touches chapters and nbgrader sources, never the generated release.
    assert colab_cell.main(["--root", str(root)]) == 1
    assert release.read_bytes() == release_bytes
    err = capsys.readouterr().err
    assert str(release) in err and str(chapter) not in err and "re-release exercises/" in err
    for path in (chapter, solution):
        nb = nbformat.read(path, as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "code" and "colab-setup" in first.metadata["tags"]
        assert "git+https://github.com/example-org/dl-course.git@v1.2.0" in first.source
        assert "nbgrader" not in first.metadata  # a plain, non-graded cell
        assert nb.cells[1].cell_type == "markdown"  # the old first cell follows
        assert sum("colab-setup" in c.metadata.get("tags", []) for c in nb.cells) == 1

    # Writing again is a no-op; once the release carries the cell, the check passes.
    before = solution.read_bytes()
    colab_cell.main(["--root", str(root)])
    assert solution.read_bytes() == before
    release.write_bytes(solution.read_bytes())
    assert colab_cell.main(["--root", str(root), "--check"]) == 0

    # Changing the repository URL makes every notebook stale.
    (root / "_config.yml").write_text(
        "repository:\n  url: https://github.com/other/x\n  install_ref: v1.2.0\n"
    )
    assert colab_cell.main(["--root", str(root), "--check"]) == 1
    err = capsys.readouterr().err
    assert all(str(p) in err for p in (chapter, solution, release))


def test_colab_cell_installs_only_on_colab(monkeypatch):
    source = colab_cell.cell_source("https://github.com/example-org/dl-course", "main")
    calls = []
    monkeypatch.setattr("subprocess.run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<colab-setup>", "exec"), {})
    assert calls == []

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(source, "<colab-setup>", "exec"), {})
    assert len(calls) == 1
    args, kwargs = calls[0]
    assert args[0][1:4] == ["-m", "pip", "install"]
    assert args[0][-1] == "course_lib @ git+https://github.com/example-org/dl-course.git@main"
    assert kwargs["check"] is True


def test_repository_notebooks_have_current_colab_cell():
    """Every chapter, solution and released exercise starts with the configured setup cell."""
    assert colab_cell.main(["--check"]) == 0, "run: .venv/bin/python scripts/colab_cell.py"


# ------------------------------------------------------------------------------ book_pages.py


def test_book_pages_follow_files_present(tmp_path):
    (tmp_path / "_config.yml").write_text(
        "repository:\n  url: https://github.com/example-org/dl-course\n  branch: main\n"
    )
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text(
        f"# Intro\n\n{book_pages.MAP_START}\nold\n{book_pages.MAP_END}\n\nAfter.\n"
    )
    _write_nb(tmp_path / "book" / "02_convolutions.ipynb", "x = 1")
    _write_nb(tmp_path / "exercises" / "ex02_convolution" / "ex02_convolution.ipynb", "y = 2")
    (tmp_path / "course_lib" / "models").mkdir(parents=True)
    (tmp_path / "course_lib" / "runtime.py").write_text("")
    (tmp_path / "course_lib" / "models" / "__init__.py").write_text("")
    (tmp_path / "course_lib" / "models" / "resnet.py").write_text("")

    assert book_pages.main(["--root", str(tmp_path), "--check"]) == 1
    assert book_pages.main(["--root", str(tmp_path)]) == 0
    assert book_pages.main(["--root", str(tmp_path), "--check"]) == 0

    toc = (tmp_path / "_toc.yml").read_text()
    assert "file: book/02_convolutions" in toc and "file: book/01_losses" not in toc
    # Every exercise has a page (chapters may link to it); only released ones offer a download.
    assert "file: book/exercises/ex02_convolution" in toc and "file: book/exercises/ex01" in toc
    unreleased = (tmp_path / "book" / "exercises" / "ex01_losses_init.md").read_text()
    assert "{download}" not in unreleased and "not released yet" in unreleased
    assert "file: book/api/runtime" in toc and "file: book/api/models" in toc
    page = (tmp_path / "book" / "exercises" / "ex02_convolution.md").read_text()
    assert (
        "{download}`Download notebook </exercises/ex02_convolution/ex02_convolution.ipynb>`" in page
    )
    assert "[Open in Colab](https://colab.research.google.com/github/" in page
    assert "course-grade validate exercises/ex02_convolution/ex02_convolution.ipynb" in page
    assert "{doc}`Chapter 2 <../02_convolutions>`" in page
    assert (
        "colab.research.google.com/github/example-org/dl-course/blob/main/exercises/"
        "ex02_convolution/ex02_convolution.ipynb" in page
    )
    models = (tmp_path / "book" / "api" / "models.md").read_text()
    assert ".. automodule:: course_lib.models.resnet" in models
    intro = (tmp_path / "book" / "intro.md").read_text()
    assert "old" not in intro and intro.endswith("\n\nAfter.\n")
    assert "{doc}`A notebook <02_convolutions>`" in intro  # title from the notebook
    assert "Residual networks *(in preparation)*" in intro

    # A chapter or module removed again disappears; its stale generated page is removed.
    (tmp_path / "book" / "02_convolutions.ipynb").unlink()
    (tmp_path / "course_lib" / "runtime.py").unlink()
    assert book_pages.main(["--root", str(tmp_path), "--check"]) == 1
    book_pages.main(["--root", str(tmp_path)])
    assert "02_convolutions" not in (tmp_path / "_toc.yml").read_text()
    assert not (tmp_path / "book" / "api" / "runtime.md").exists()


def test_every_chapter_records_how_its_outputs_were_produced():
    """Each chapter's stored outputs come from scripts/execute_notebooks.py (the page shows it)."""
    missing = {}
    for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb")):
        record = nbformat.read(path, as_version=4).metadata.get("course", {}).get("execution")
        keys = {"profile", "device", "torch", "course_lib", "python", "wall_time_s", "executed_at"}
        if not record or not keys <= set(record) or record["profile"] not in ("ci", "cpu", "gpu"):
            missing[path.name] = sorted(keys - set(record or {}))
    assert not missing, (
        f"re-run with: .venv/bin/python scripts/execute_notebooks.py book/NN_name.ipynb "
        f"--profile cpu  (missing metadata: {missing})"
    )


def test_every_chapter_records_the_hashes_its_outputs_are_checked_against():
    """Each chapter was executed by the current executor, so the build can tell whether its
    stored outputs still belong to its code and library (scripts/output_freshness.py)."""
    unrecorded = [
        path.name
        for path in sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
        if output_freshness.check_file(path, ROOT).status == "unrecorded"
    ]
    assert not unrecorded, (
        "executed before code/library hashes were recorded; re-run: .venv/bin/python "
        f"scripts/execute_notebooks.py book/NN_name.ipynb --profile cpu  ({unrecorded})"
    )


def test_progress_bars_are_dropped_from_stored_outputs_and_other_outputs_kept():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run()")
    bar = "fit:  40%|####      | 2/5 [00:01<00:02,  1.50epoch/s]"
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={"application/vnd.jupyter.widget-view+json": {"model_id": "x"}, "text/plain": bar},
        ),
        nbformat.v4.new_output("stream", name="stderr", text=bar + "\r" + bar + "\n"),
        nbformat.v4.new_output("stream", name="stdout", text="accuracy 0.91 | 40% of runs\n"),
    ]
    nb.cells.append(cell)
    nb.metadata["widgets"] = {"state": {}}
    assert execute_notebooks.drop_progress_bars(nb) == 2
    assert [o["text"] for o in cell.outputs] == ["accuracy 0.91 | 40% of runs\n"]
    assert "widgets" not in nb.metadata


def test_no_chapter_stores_a_progress_bar():
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        assert execute_notebooks.drop_progress_bars(nb) == 0, f"{path.name} stores a progress bar"
