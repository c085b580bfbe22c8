"""A grading worker: runs ``nbgrader autograde`` for one submission at a time.

The parent starts ``python -m course_lib.grading.worker`` once per CPU slot and sends it jobs as
JSON lines; the worker answers each with one JSON line. Each job is graded in its own throwaway
course directory with its own copy of the template gradebook, and its kernel runs through the
sandbox kernelspec (:mod:`course_lib.grading.sandbox`) with a private sandbox directory.

The worker is trusted code (it runs nbgrader), the kernel it starts is not: before any kernel
starts, the worker moves its protocol pipes to private file descriptors and points 0/1/2 at
``/dev/null``, so nothing a kernel writes can reach the parent's protocol.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from course_lib.grading import sandbox
from course_lib.grading.release import ensure_venv_on_path, nbgrader_config

# statuses decided by the worker
TIMEOUT = "timeout"
KERNEL_DIED = "kernel-died"
ERROR = "error"


def _scores(db_url: str, assignment: str, notebook: str, student: str) -> dict[str, list]:
    from nbgrader.api import Gradebook

    out: dict[str, list] = {}
    with Gradebook(db_url, "dl-course") as gb:
        nb = gb.find_submission_notebook(notebook, assignment, student)
        for grade in nb.grades:
            out[grade.name] = [grade.auto_score, grade.max_score]
    return out


def grade(job: dict) -> dict:
    """Autograde one rebuilt notebook; return scores (nbgrader's view) or a failure status."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    t0 = time.time()
    a, student = job["assignment"], job["student"]
    course = Path(job["course"])
    sub = course / "submitted" / student / a
    sub.mkdir(parents=True, exist_ok=True)
    shutil.copy(job["notebook"], sub / f"{a}.ipynb")
    shutil.copy(job["gradebook"], course / "gradebook.db")
    box = Path(job["sandbox"])
    (box / "runtime").mkdir(parents=True, exist_ok=True)

    os.environ["JUPYTER_PATH"] = job["jupyter_path"]
    os.environ["JUPYTER_RUNTIME_DIR"] = str(box / "runtime")
    os.environ[sandbox.ENV_DIR] = str(box)
    os.environ[sandbox.ENV_MEMORY] = str(job["memory_mb"])
    os.environ[sandbox.ENV_NOSANDBOX] = "1" if job.get("no_sandbox") else "0"

    c = nbgrader_config(course)
    c.CourseDirectory.source_directory = job["template_source"]
    c.Execute.kernel_name = sandbox.KERNEL_NAME
    c.Execute.timeout = int(job["cell_timeout"])
    c.Execute.interrupt_on_timeout = True
    c.Execute.startup_timeout = 60
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(box / "k")
    c.KernelManager.connection_file = str(box / "runtime" / "kernel.json")
    with contextlib.redirect_stderr(io.StringIO()):
        api = NbGraderAPI(coursedir=CourseDirectory(config=c), config=c)
        result = api.autograde(a, student, force=True, create=True)
    log = (result.get("log") or "")[-20000:] + (result.get("error") or "")[-3000:]
    graded = course / "autograded" / student / a / f"{a}.ipynb"
    if result.get("success") and graded.is_file():
        try:
            scores = _scores(c.CourseDirectory.db_url, a, a, student)
        except Exception as exc:  # noqa: BLE001 - report, never crash the worker
            return {
                "status": ERROR,
                "detail": f"reading the gradebook failed: {exc}",
                "log": log[-20000:],
            }
        return {
            "status": "ok",
            "scores": scores,
            "autograded": str(graded),
            "seconds": round(time.time() - t0, 2),
            "log": log[-2000:],
        }
    if "DeadKernelError" in log or "died" in log.lower() or "Kernel didn't respond" in log:
        return {
            "status": KERNEL_DIED,
            "detail": "the kernel died while running the notebook",
            "log": log[-20000:],
        }
    if "Timeout" in log or "timed out" in log:
        return {"status": TIMEOUT, "detail": "a cell did not finish in time", "log": log[-20000:]}
    return {"status": ERROR, "detail": "nbgrader autograde failed", "log": log[-20000:]}


def serve() -> None:
    """Job loop: one JSON job per line on stdin, one JSON result per line on stdout."""
    ensure_venv_on_path()
    proto_in = os.fdopen(os.dup(0), "r")
    proto_out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdout = sys.stderr = io.StringIO()
    for line in proto_in:
        if not line.strip():
            continue
        job = json.loads(line)
        try:
            answer = grade(job)
        except Exception:  # noqa: BLE001 - a failure is a status, never a crash
            answer = {
                "status": ERROR,
                "detail": "grading crashed",
                "log": traceback.format_exc()[-4000:],
            }
        sys.stdout = sys.stderr = io.StringIO()  # drop anything printed while grading
        answer["id"] = job["id"]
        proto_out.write(json.dumps(answer) + "\n")
        proto_out.flush()


if __name__ == "__main__":
    serve()
