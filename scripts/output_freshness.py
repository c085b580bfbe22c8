"""Do a notebook's stored outputs still belong to its code and to the library it ran with?

Usage (from the repository root)::

    .venv/bin/python scripts/output_freshness.py                 # every chapter notebook
    .venv/bin/python scripts/output_freshness.py book/02_convolutions.ipynb

When ``scripts/execute_notebooks.py`` executes a notebook it records, in
``metadata.course.execution``:

- ``code_sha256``: SHA-256 of the notebook's code-cell sources (see :func:`code_hash`; the Colab
  setup cell, tagged ``colab-setup`` and rewritten by ``scripts/colab_cell.py``, is left out);
- ``course_lib_files``: ``{"course_lib/train.py": <first 16 hex digits of its SHA-256>, ...}``
  for every ``course_lib`` module the kernel had imported when the last cell finished;
- ``course_lib_sha256``: SHA-256 of those ``path digest`` lines (one number for the whole set).

This module compares them with the files as they are now (:func:`freshness`). The book build
(``scripts/build_book.sh`` runs this script first, ``scripts/course_book_ext.py`` checks each page
again) then

- **fails** for a notebook whose code cells changed since it was executed (``code-changed``),
- shows a note under the page title for a notebook executed with an earlier ``course_lib``
  (``library-changed``: "N library files changed since"),
- shows a note for a notebook executed before hashes were recorded (``unrecorded``).

The exit status is 1 when any notebook's code changed, else 0; every other finding is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
SETUP_TAG = "colab-setup"  # the tag scripts/colab_cell.py gives its setup cell
CODE_HASH = "code_sha256"
LIB_HASH = "course_lib_sha256"
LIB_FILES = "course_lib_files"
FILE_DIGEST_CHARS = 16

Status = Literal["current", "library-changed", "code-changed", "unrecorded"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_setup_cell(cell: Mapping) -> bool:
    """The Colab setup cell (its source follows _config.yml, not the chapter's author)."""
    tags = (cell.get("metadata") or {}).get("tags") or []
    return cell.get("cell_type") == "code" and SETUP_TAG in tags


def _source(cell: Mapping) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):  # raw JSON keeps a cell's source as a list of lines
        source = "".join(source)
    return source.replace("\r\n", "\n").rstrip()


def code_hash(notebook: Mapping) -> str:
    """SHA-256 of the JSON list of code-cell sources, in order, setup cell excluded.

    Sources are compared with line endings normalised to ``\\n`` and trailing whitespace of each
    cell stripped; markdown cells, outputs and metadata (alt texts included) do not count.
    """
    sources = [
        _source(c)
        for c in notebook.get("cells", [])
        if c.get("cell_type") == "code"
        if not is_setup_cell(c)
    ]
    return _sha256(json.dumps(sources, ensure_ascii=False).encode("utf-8"))


def file_digest(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file (``\\r\\n`` read as ``\\n``)."""
    return _sha256(path.read_bytes().replace(b"\r\n", b"\n"))[:FILE_DIGEST_CHARS]


def library_files(files: Iterable[Path], package_dir: Path) -> dict[str, str]:
    """``{"course_lib/<relative path>": digest}`` for the given files of the package."""
    base = package_dir.resolve().parent
    found = {}
    for path in files:
        path = Path(path).resolve()
        if path.is_file():
            found[path.relative_to(base).as_posix()] = file_digest(path)
    return dict(sorted(found.items()))


def library_hash(files: Mapping[str, str]) -> str:
    """SHA-256 of the sorted ``"<path> <digest>"`` lines of :func:`library_files`."""
    return _sha256("\n".join(f"{p} {d}" for p, d in sorted(files.items())).encode("utf-8"))


def execution_hashes(notebook: Mapping, files: Mapping[str, str]) -> dict:
    """The three entries ``execute_notebooks.py`` adds to ``metadata.course.execution``."""
    return {CODE_HASH: code_hash(notebook), LIB_HASH: library_hash(files), LIB_FILES: dict(files)}


@dataclass
class Freshness:
    """How a notebook's stored outputs relate to its code and library now."""

    notebook: str
    status: Status
    changed_files: list[str] = field(default_factory=list)  # library files changed or removed

    def message(self) -> str:
        if self.status == "code-changed":
            return (
                f"{self.notebook}: code cells changed since the notebook was executed; its "
                "stored outputs no longer belong to its code. Re-run: .venv/bin/python "
                f"scripts/execute_notebooks.py {self.notebook} --profile cpu"
            )
        if self.status == "library-changed":
            n = len(self.changed_files)
            return (
                f"{self.notebook}: outputs computed with an earlier version of course_lib; "
                f"{n} library file{'s' if n != 1 else ''} changed since: "
                + ", ".join(self.changed_files)
            )
        if self.status == "unrecorded":
            return (
                f"{self.notebook}: executed before code and library hashes were recorded; "
                "whether its outputs match its code cannot be checked (re-execute it)"
            )
        return f"{self.notebook}: outputs match its code and course_lib"


def freshness(notebook: Mapping, root: Path, name: str = "") -> Freshness:
    """Compare a notebook's recorded hashes with its code cells and ``root/course_lib`` now."""
    record = (notebook.get("metadata", {}).get("course") or {}).get("execution") or {}
    if CODE_HASH not in record or LIB_FILES not in record:
        return Freshness(name, "unrecorded")
    if record[CODE_HASH] != code_hash(notebook):
        return Freshness(name, "code-changed")
    changed = []
    for rel, digest in sorted(record[LIB_FILES].items()):
        path = root / rel
        if not path.is_file() or file_digest(path) != digest:
            changed.append(rel)
    return Freshness(name, "library-changed" if changed else "current", changed)


def check_file(path: Path, root: Path = ROOT) -> Freshness:
    """:func:`freshness` of a notebook file, named relative to ``root`` when it lies inside."""
    notebook = json.loads(Path(path).read_text(encoding="utf-8"))
    try:
        name = Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        name = str(path)
    return freshness(notebook, root, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/NN_*.ipynb")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    paths = args.notebooks or sorted((root / "book").glob("[0-9][0-9]_*.ipynb"))
    results = [check_file(p, root) for p in paths]
    labels = {
        "code-changed": "STALE",
        "library-changed": "old lib",
        "unrecorded": "unrecorded",
        "current": "ok",
    }
    counts = {s: sum(r.status == s for r in results) for s in labels}
    print(
        f"stored outputs of {len(results)} notebook(s): {counts['current']} current, "
        f"{counts['library-changed']} with an earlier course_lib, {counts['unrecorded']} "
        f"unrecorded, {counts['code-changed']} with changed code"
    )
    for r in results:
        if r.status != "current":
            stream = sys.stderr if r.status == "code-changed" else sys.stdout
            print(f"  {labels[r.status]:>10}  {r.message()}", file=stream)
    return 1 if counts["code-changed"] else 0


if __name__ == "__main__":
    sys.exit(main())
