"""course_lib.grading.syscalls: after deny_new_tasks() the kernel starts no thread or process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, subprocess, threading, torch
    torch.set_num_threads(1)
    from course_lib.grading.syscalls import deny_new_tasks
    print("filter", deny_new_tasks())
    results = []
    for name, start in (
        ("thread", lambda: threading.Thread(target=print).start()),
        ("fork", os.fork),
        ("subprocess", lambda: subprocess.run(["true"])),
        ("exec", lambda: os.execv("/bin/true", ["true"])),
    ):
        try:
            start()
            results.append(name + " started")
        except (OSError, RuntimeError) as exc:
            results.append(name + " " + type(exc).__name__)
    print(results)
    x = torch.randn(32, 32, requires_grad=True)
    (x @ x).softmax(0).sum().backward()  # torch still computes, forward and backward
    print("grad", bool(torch.isfinite(x.grad).all()))
    """
)


def test_threads_and_processes_are_refused_by_the_kernel():
    pytest.importorskip("pyseccomp")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stderr[-2000:]
    if lines[0] != "filter seccomp":
        pytest.skip(f"seccomp is not available here: {lines[0]}")
    expected = "['thread RuntimeError', 'fork PermissionError', 'subprocess PermissionError', 'exec PermissionError']"
    assert lines[1] == expected, lines
    assert lines[2] == "grad True"
