"""Drive one grading runner from the trusted parent: start it, send cells, read what came back.

:func:`run_cells` starts ``python -c "from course_lib.grading.runner import main; main()"`` in a fresh sandbox (one process
per submission, no course directory, no gradebook), sends the cells one at a time and collects
one result per cell. It reads the untrusted pipe defensively (bounded lines, JSON only, the
token of the cell it sent) and ends in exactly one of these outcomes, decided by rule:

| outcome | rule |
|---|---|
| ``done`` | the runner answered ``done`` to ``end`` (possibly after stopping early for memory) |
| ``timeout`` | the parent's wall clock for the submission ran out first |
| ``kernel-died`` | the pipe closed (the runner exited or was killed) before ``done`` |
| ``tampered`` | a line on the pipe was not the answer the parent expected (wrong token, not JSON) |

(The pool in :mod:`course_lib.grading.autograde` adds ``error`` when starting or driving a
runner raised in the parent itself: a grader bug, reported as status ``error``.)

The wall clock is checked before each read, so a runner that dies *and* runs out of time is a
``timeout`` only when the deadline passed before the pipe closed.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Literal

from course_lib.grading import sandbox

MAX_LINE = 96 * 1024 * 1024
Outcome = Literal["done", "timeout", "kernel-died", "tampered"]


@dataclass
class Cell:
    """One cell to run: ``kind`` is "setup", "answer" or "test"."""

    index: int
    kind: str
    gid: str
    source: str


@dataclass
class Run:
    outcome: Outcome
    results: dict[int, dict] = field(default_factory=dict)  # cell index -> runner's result
    detail: str = ""
    ready: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class _Pipe:
    def __init__(self, proc: subprocess.Popen, deadline: float) -> None:
        self.proc, self.deadline, self.buffer = proc, deadline, b""

    def send(self, msg: dict) -> None:
        self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        self.proc.stdin.flush()

    def read(self) -> dict | Outcome:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = self.deadline - time.time()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return "kernel-died"
            self.buffer += chunk
            if len(self.buffer) > MAX_LINE:
                return "tampered"
        line, self.buffer = self.buffer.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "tampered"
        return msg if isinstance(msg, dict) else "tampered"


def run_cells(
    cells: list[Cell],
    *,
    sandbox_dir: str,
    timeout: float,
    memory_mb: int,
    sandboxed: bool,
    mode: Literal["reference", "student"] = "student",
    preload: list[str] | None = None,
    oracle_libraries: tuple[str, ...] = (),
) -> Run:
    """Run ``cells`` in a new sandboxed runner; never raises for anything the runner does."""
    t0 = time.time()
    os.makedirs(sandbox_dir, exist_ok=True)
    argv, env = sandbox.runner_command(sandbox_dir, sandboxed)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=sandbox_dir,
        env=env,
        start_new_session=True,
        preexec_fn=sandbox.limit_resources,  # noqa: PLW1509 - no threads touch it in between
    )
    pipe = _Pipe(proc, t0 + timeout)
    run = Run("done")
    try:
        pipe.send(
            {
                "op": "start",
                "preload": preload or [],
                "memory_mb": memory_mb,
                "mode": mode,
                "oracle_libraries": list(oracle_libraries),
            }
        )
        ready = pipe.read()
        if isinstance(ready, str) or ready.get("op") != "ready":
            run.outcome = ready if isinstance(ready, str) else "tampered"
            run.detail = "the runner did not start"
            return run
        run.ready = ready
        run.timings["start"] = time.time() - t0
        t1 = time.time()
        for cell in cells:
            token = secrets.token_hex(16)
            pipe.send(
                {
                    "op": "cell",
                    "index": cell.index,
                    "kind": cell.kind,
                    "gid": cell.gid,
                    "source": cell.source,
                    "token": token,
                }
            )
            answer = pipe.read()
            if isinstance(answer, str):
                run.outcome = answer
                run.detail = f"while running cell {cell.gid or cell.index}"
                return run
            if answer.get("op") != "result" or answer.get("token") != token:
                run.outcome = "tampered"
                run.detail = f"a forged message arrived while cell {cell.gid or cell.index} ran"
                return run
            run.results[cell.index] = answer
            if answer.get("stop"):
                run.detail = str(answer["stop"])[:200]
                break
        token = secrets.token_hex(16)
        pipe.send({"op": "end", "token": token})
        done = pipe.read()
        if isinstance(done, str):
            run.outcome = done
        elif done.get("op") != "done" or done.get("token") != token:
            run.outcome = "tampered"
        run.timings["cells"] = time.time() - t1
        return run
    except (BrokenPipeError, OSError) as exc:
        run.outcome = "timeout" if time.time() >= t0 + timeout else "kernel-died"
        run.detail = f"the runner's pipe failed: {type(exc).__name__}"
        return run
    finally:
        _kill(proc)
        run.timings["total"] = time.time() - t0


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    proc.wait()
