"""Re-execute course notebooks in place with a course profile and record how they ran.

Usage (from the repository root)::

    .venv/bin/python scripts/execute_notebooks.py book/02_convolutions.ipynb --profile cpu
    .venv/bin/python scripts/execute_notebooks.py book/*.ipynb --profile cpu --timeout 1800
    .venv/bin/python scripts/execute_notebooks.py solutions/ex03_resnets --profile ci --keep-going

For every notebook (a directory stands for the notebooks in it, checkpoints excluded):

1. start a fresh kernel with ``COURSE_PROFILE=<profile>`` in its environment and the
   notebook's own folder as working directory;
2. run every code cell in order (``--timeout`` seconds per cell at most);
3. on success, write the notebook back with its new outputs and
   ``metadata.course.execution`` = ``{profile, device, gpu, python, torch, torchvision,
   course_lib, wall_time_s, executed_at, host_kind, cpu_count, tool, code_sha256,
   course_lib_sha256, course_lib_files}`` (the hashes are defined in
   ``scripts/output_freshness.py``; the book build fails for a page whose code changed since and
   notes a page executed with an earlier ``course_lib``);
4. on failure, leave the file byte-for-byte unchanged and print which cell failed
   (index, first lines of its source, the error), then stop (or go on with
   ``--keep-going``); the exit status is 1 when any notebook failed.

The kernel also gets ``TQDM_DISABLE=1`` (:data:`KERNEL_ENV`): no progress bars in stored outputs.

**Alt text.** A cell that draws figures declares one short description per figure, in output
order, in its metadata: ``{"course": {"alt": ["Loss falls from 2.3 to 0.4 in 10 epochs"]}}``
(a plain string for a one-figure cell). The book puts it into the ``<img alt>`` of the figure.
After executing, a figure without one is reported with a ``WARNING`` (a failure with
``--require-alt``); ``--check-alt`` lists such cells without executing anything.

The book shows that metadata as a one-line note on each page (``scripts/course_book_ext.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

sys.path.insert(0, str(Path(__file__).resolve().parent))
import output_freshness  # noqa: E402  (scripts/output_freshness.py: the hashes the build checks)

PROFILES = ("ci", "cpu", "gpu")
METADATA_KEY = "course"
TOOL = "scripts/execute_notebooks.py"

# Set in the kernel's environment (besides COURSE_PROFILE): no progress bars in stored outputs.
KERNEL_ENV = {"TQDM_DISABLE": "1"}

# A tqdm bar as Jupyter stores it: "desc:  40%|####      | 2/5 [00:01<00:02, ...]".
PROGRESS_BAR = re.compile(r"\d+%\|.*\|\s*\d+/\d*")


def drop_progress_bars(nb: nbformat.NotebookNode) -> int:
    """Remove tqdm progress bars from a notebook's outputs; return how many were removed.

    ``TQDM_DISABLE=1`` turns off tqdm's text bar, but ``tqdm.auto`` in a kernel is the widget
    bar (``tqdm.notebook``), which ignores it and stores a widget view whose plain-text form is
    the bar at 0 %. Bars say how long a run takes, not what it computed: stored outputs keep
    everything else.
    """
    removed = 0
    for cell in nb.cells:
        kept = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            text = data.get("text/plain", "") if out.get("output_type") == "display_data" else ""
            text = "".join(text) if isinstance(text, list) else text
            is_widget_bar = (
                "application/vnd.jupyter.widget-view+json" in data and PROGRESS_BAR.search(text)
            )
            stream = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
            lines = [ln for ln in re.split(r"[\r\n]", stream) if ln.strip()]
            is_stream_bar = bool(lines) and all(PROGRESS_BAR.search(ln) for ln in lines)
            if is_widget_bar or is_stream_bar:
                removed += 1
            else:
                kept.append(out)
        if "outputs" in cell:
            cell["outputs"] = kept
    if removed and "widgets" in nb.metadata:
        del nb.metadata["widgets"]
    return removed


# Runs in the kernel after the last cell: what actually executed the notebook. The course_lib
# modules are listed before the probe imports anything itself.
PROBE = r"""
import json as _json, os as _os, platform as _platform, sys as _sys
_info = {"python": _platform.python_version(), "cpu_count": _os.cpu_count()}
_info["course_lib_modules"] = sorted(
    _m.__file__ for _n, _m in list(_sys.modules.items())
    if (_n == "course_lib" or _n.startswith("course_lib.")) and getattr(_m, "__file__", None)
)
try:
    import torch as _torch
    _info["torch"] = _torch.__version__
    _info["cuda_available"] = bool(_torch.cuda.is_available())
except Exception:
    _torch = None
try:
    import torchvision as _tv
    _info["torchvision"] = _tv.__version__
except Exception:
    pass
try:
    import course_lib as _cl
    _info["course_lib"] = getattr(_cl, "__version__", "unknown")
    _info["course_lib_dir"] = _os.path.dirname(_os.path.abspath(_cl.__file__))
    from course_lib.runtime import get_device as _gd
    _dev = _gd()
    _info["device"] = str(_dev)
    if _dev.type == "cuda":
        _info["gpu"] = _torch.cuda.get_device_name(_dev)
except Exception:
    if _torch is not None:
        _info["device"] = "cuda" if _torch.cuda.is_available() else "cpu"
print("__COURSE_PROBE__" + _json.dumps(_info))
"""

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Failure:
    """Where and why a notebook stopped."""

    notebook: Path
    cell_index: int | None
    source_head: str
    error: str

    def report(self) -> str:
        where = (
            "kernel"
            if self.cell_index is None
            else f"cell index {self.cell_index}, 0-based, markdown cells counted"
        )
        lines = [f"FAILED: {self.notebook} ({where})"]
        if self.source_head:
            lines.append("  cell source (first lines):")
            lines += [f"    | {line}" for line in self.source_head.splitlines()]
        lines.append("  error:")
        lines += [f"    {line}" for line in self.error.rstrip().splitlines()]
        lines.append("  The notebook file was left unchanged.")
        return "\n".join(lines)


def figure_count(cell: nbformat.NotebookNode) -> int:
    """Number of figures a code cell's outputs show (outputs carrying an ``image/*`` type)."""
    return sum(
        any(mime.startswith("image/") for mime in out.get("data", {}))
        for out in cell.get("outputs", [])
    )


def declared_alt(cell: nbformat.NotebookNode) -> list[str]:
    """The alt texts a cell declares in ``metadata.course.alt``: one string per figure, in output
    order (a plain string stands for a one-figure cell)."""
    alt = (cell.get("metadata", {}).get(METADATA_KEY) or {}).get("alt") or []
    return [alt] if isinstance(alt, str) else [str(a) for a in alt]


@dataclass
class AltProblem:
    """A code cell whose figures and declared alt texts do not pair up."""

    index: int  # 0-based, markdown cells counted
    figures: int
    alts: int
    head: str

    def report(self) -> str:
        first = self.head.splitlines()[0] if self.head else ""
        return (
            f"cell index {self.index} shows {self.figures} figure(s) but declares {self.alts} "
            f"alt text(s) in metadata.course.alt  | {first}"
        )


def figures_without_alt(nb: nbformat.NotebookNode) -> list[AltProblem]:
    """Code cells with a figure output and no (or a blank, or too few) alt text."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        figures, alts = figure_count(cell), declared_alt(cell)
        if figures and (len(alts) != figures or not all(a.strip() for a in alts)):
            problems.append(AltProblem(index, figures, len(alts), _head(cell.source, 1)))
    return problems


def _alt_summary(problems: list[AltProblem]) -> str:
    lines = [f"{len(problems)} figure cell(s) without alt text:"]
    lines += [f"  {p.report()}" for p in problems]
    lines.append(ALT_HELP)
    return "\n".join(lines)


ALT_HELP = (
    'Declare one short description per figure in the cell\'s metadata: {"course": {"alt": '
    '["Training loss falls from 2.3 to 0.4 over 10 epochs", ...]}} (in output order).'
)


def find_notebooks(paths: list[str]) -> list[Path]:
    """Expand directories into the ``*.ipynb`` files below them (checkpoints skipped)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise SystemExit(
                f"error: {raw} is neither a notebook (.ipynb) nor a folder of notebooks"
            )
    return found


def host_kind(explicit: str | None) -> str:
    """``--host-kind`` if given; else ``github-actions``/``ci`` from the environment, else ``local``."""
    if explicit:
        return explicit
    if os.environ.get("GITHUB_ACTIONS") == "true":
        return "github-actions"
    if os.environ.get("CI"):
        return "ci"
    if os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU") is not None:
        return "colab"
    return "local"


def _error_text(cell: nbformat.NotebookNode, exc: BaseException) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            tb = ANSI.sub("", "\n".join(out.get("traceback", [])))
            tail = "\n".join(tb.strip().splitlines()[-15:])
            return f"{out.get('ename')}: {out.get('evalue')}\n{tail}"
    return ANSI.sub("", f"{type(exc).__name__}: {exc}")


def _head(source: str, n: int = 5) -> str:
    lines = source.splitlines()
    more = [f"... ({len(lines) - n} more lines)"] if len(lines) > n else []
    return "\n".join(lines[:n] + more)


def execute_notebook(
    path: Path,
    profile: str,
    timeout: int | None = 1800,
    kernel_name: str = "python3",
    host: str | None = None,
    require_alt: bool = False,
) -> Failure | dict:
    """Execute ``path`` in place; return the recorded metadata, or a :class:`Failure`.

    The file is only rewritten after every cell succeeded (written to a temporary file
    next to it and renamed, so an interrupted run cannot leave half a notebook). With
    ``require_alt`` a figure without alt text (see :func:`figures_without_alt`) is a failure too;
    otherwise :func:`main` warns about it.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    kernel_env = {"COURSE_PROFILE": profile, **KERNEL_ENV}
    saved_env = {name: os.environ.get(name) for name in kernel_env}
    os.environ.update(kernel_env)  # inherited by the kernel process
    start = time.perf_counter()
    index: int | None = None
    probe_out: dict = {}
    try:
        with client.setup_kernel():
            assert client.kc is not None
            info = client.wait_for_reply(client.kc.kernel_info())
            if info is not None and "language_info" in info["content"]:
                nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            index = None
            wall = time.perf_counter() - start
            probe = nbformat.v4.new_code_cell(PROBE)
            nb.cells.append(probe)
            try:
                client.execute_cell(probe, len(nb.cells) - 1, store_history=False)
            finally:
                nb.cells.pop()
            for out in probe.outputs:
                text = out.get("text", "")
                if "__COURSE_PROBE__" in text:
                    probe_out = json.loads(text.split("__COURSE_PROBE__", 1)[1].splitlines()[0])
            client.set_widgets_metadata()
            drop_progress_bars(nb)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        cell = nb.cells[index] if index is not None and index < len(nb.cells) else None
        if isinstance(exc, CellTimeoutError):
            error = f"CellTimeoutError: the cell ran longer than --timeout {timeout} s"
        elif cell is not None:
            error = _error_text(cell, exc)
        else:
            error = ANSI.sub("", f"{type(exc).__name__}: {exc}")
        return Failure(path, index, _head(cell.source) if cell is not None else "", error)
    except Exception as exc:  # kernel failed to start, bad kernel name, ...
        return Failure(path, index, "", f"{type(exc).__name__}: {exc}")
    finally:
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    record = {
        "profile": profile,
        "device": probe_out.get("device", "unknown"),
        "gpu": probe_out.get("gpu"),
        "python": probe_out.get("python"),
        "torch": probe_out.get("torch"),
        "torchvision": probe_out.get("torchvision"),
        "course_lib": probe_out.get("course_lib"),
        "wall_time_s": round(wall, 1),
        "executed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host_kind": host_kind(host),
        "cpu_count": probe_out.get("cpu_count"),
        "tool": TOOL,
    }
    record = {k: v for k, v in record.items() if v is not None}
    library_dir = probe_out.get("course_lib_dir")
    modules = probe_out.get("course_lib_modules", []) if library_dir else []
    files = output_freshness.library_files(modules, Path(library_dir)) if library_dir else {}
    record.update(output_freshness.execution_hashes(nb, files))
    missing_alt = figures_without_alt(nb)
    if missing_alt and require_alt:
        return Failure(path, missing_alt[0].index, missing_alt[0].head, _alt_summary(missing_alt))
    nb.metadata.setdefault(METADATA_KEY, {})["execution"] = record
    nbformat.validate(nb)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        nbformat.write(nb, tmp)
        os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Re-execute notebooks in place with a course profile and record "
        "profile, device, versions and wall time in metadata.course.execution.",
    )
    parser.add_argument("notebooks", nargs="+", help="notebooks or folders of notebooks")
    parser.add_argument(
        "--profile", choices=PROFILES, help="COURSE_PROFILE for the kernel (required to execute)"
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=1800,
        help="seconds allowed per cell (default 1800; -1 for no limit)",
    )
    parser.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    parser.add_argument(
        "--host-kind",
        default=None,
        help="label for where this ran (default: github-actions/ci/colab/local, detected)",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="go on with the next notebook after a failure (exit status is still 1)",
    )
    parser.add_argument(
        "--require-alt",
        action="store_true",
        help="treat a figure without alt text (metadata.course.alt) as a failure",
    )
    parser.add_argument(
        "--check-alt",
        action="store_true",
        help="execute nothing: list the figure cells without alt text, exit 1 if any",
    )
    args = parser.parse_args(argv)
    timeout = None if args.timeout is not None and args.timeout < 0 else args.timeout

    notebooks = find_notebooks(args.notebooks)
    if not notebooks:
        print("error: no notebooks found", file=sys.stderr)
        return 2
    if args.check_alt:
        missing = 0
        for nb_path in notebooks:
            problems = figures_without_alt(nbformat.read(nb_path, as_version=4))
            missing += len(problems)
            for problem in problems:
                print(f"{nb_path}: {problem.report()}")
        if missing:
            print(f"{missing} figure cell(s) without alt text. {ALT_HELP}", file=sys.stderr)
        return 1 if missing else 0
    if args.profile is None:
        parser.error("--profile is required (unless --check-alt)")
    failures: list[Failure] = []
    for nb_path in notebooks:
        print(f"executing {nb_path} (profile {args.profile}) ...", flush=True)
        result = execute_notebook(
            nb_path, args.profile, timeout, args.kernel, args.host_kind, args.require_alt
        )
        if isinstance(result, Failure):
            print(result.report(), file=sys.stderr, flush=True)
            failures.append(result)
            if not args.keep_going:
                break
        else:
            print(
                f"  ok: {result['wall_time_s']} s on {result['device']} "
                f"(torch {result.get('torch', '?')}, course_lib {result.get('course_lib', '?')}, "
                f"{len(result['course_lib_files'])} course_lib files hashed)",
                flush=True,
            )
            problems = figures_without_alt(nbformat.read(nb_path, as_version=4))
            if problems:
                print(
                    f"WARNING: {nb_path}: " + _alt_summary(problems).replace("\n", "\n  "),
                    file=sys.stderr,
                    flush=True,
                )
    if failures:
        names = ", ".join(str(f.notebook) for f in failures)
        print(f"{len(failures)} notebook(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
