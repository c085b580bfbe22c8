"""Generate student versions with nbgrader in a throwaway course directory.

``nbgrader generate_assignment`` writes a gradebook next to the course; running it in a
temporary directory keeps the repository clean and gives ``course-grade autograde`` a fresh
template gradebook per batch (the source cells, hidden tests included, are stored there).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

COURSE_ID = "dl-course"


@dataclass
class Generated:
    """Where one generated assignment lives inside a throwaway course directory."""

    course: Path  # course root holding gradebook.db
    source: Path  # <course>/source/<a>/<a>.ipynb
    release: Path  # <course>/release/<a>/<a>.ipynb

    @property
    def gradebook(self) -> Path:
        return self.course / "gradebook.db"


def ensure_venv_on_path() -> None:
    """nbgrader runs the ``alembic`` console script: make this interpreter's scripts findable."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_config(course: Path):  # -> traitlets Config
    """The nbgrader settings shared by release and autograde (see nbgrader_config.py)."""
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(course)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    c.Exchange.root = str(course / "exchange")  # unused; keeps nbgrader from probing /usr/local
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = r"[\s\S]*"
    c.LimitOutput.max_lines = 500
    c.LimitOutput.max_traceback = 60
    return c


def generate(assignment: str, solutions: Path, workdir: Path | None = None) -> Generated:
    """Run ``generate_assignment`` for ``solutions/<assignment>`` in a new course under ``workdir``.

    Raises ``RuntimeError`` with nbgrader's log when generation fails (bad metadata, duplicated
    grade ids, hidden tests outside a grade cell, ...).
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_venv_on_path()
    src = Path(solutions) / assignment
    notebook = src / f"{assignment}.ipynb"
    if not notebook.is_file():
        raise FileNotFoundError(
            f"no source notebook {notebook}; an assignment is solutions/<name>/<name>.ipynb"
        )
    extra = sorted(p.name for p in src.iterdir() if p.name != notebook.name)
    if extra:
        raise ValueError(
            f"solutions/{assignment}/ must hold only {notebook.name} (nbgrader would copy "
            f"{', '.join(extra)} into the student release); move constants into hidden test cells"
        )
    course = Path(tempfile.mkdtemp(prefix="cg-release-", dir=workdir))
    (course / "source" / assignment).mkdir(parents=True)
    shutil.copy2(notebook, course / "source" / assignment / notebook.name)
    config = nbgrader_config(course)
    quiet_logs = io.StringIO()
    with contextlib.redirect_stderr(quiet_logs):
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        logging.getLogger("traitlets").setLevel(logging.ERROR)
        result = api.generate_assignment(assignment, force=True, create=True)
    if not result.get("success"):
        shutil.rmtree(course, ignore_errors=True)
        raise RuntimeError(
            f"nbgrader could not generate {assignment}:\n{result.get('error') or result.get('log')}"
        )
    return Generated(
        course=course,
        source=course / "source" / assignment / notebook.name,
        release=course / "release" / assignment / notebook.name,
    )


def release(assignment: str, solutions: Path, exercises: Path) -> Path:
    """Regenerate ``exercises/<assignment>/`` from ``solutions/<assignment>/``; return the folder."""
    gen = generate(assignment, solutions)
    try:
        dest = Path(exercises) / assignment
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(gen.release.parent, dest)
        return dest
    finally:
        shutil.rmtree(gen.course, ignore_errors=True)


def assignments(solutions: Path) -> list[str]:
    """Names of all assignments: folders ``solutions/<a>/`` holding ``<a>.ipynb``."""
    root = Path(solutions)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / f"{p.name}.ipynb").is_file())
