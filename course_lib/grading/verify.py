"""Parent-side check of the values a test cell recorded (see :func:`checks.record`).

Runs in the trusted parent, never in the student's process. Record files come from a directory
the student's kernel could write to, so they are read defensively: only regular files (no
symlinks), bounded size, ``np.load(allow_pickle=False)``, names checked against a pattern.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np

MAX_RECORD_BYTES = 64 * 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

Records = dict[str, dict[str, tuple[np.ndarray, float, float]]]


def _read_regular(path: Path, limit: int) -> bytes | None:
    """Bytes of a regular file that is not a symlink and not larger than ``limit``; else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            if sum(len(c) for c in chunks) > limit:
                return None
        return b"".join(chunks)
    finally:
        os.close(fd)


def load(root: str | Path) -> Records:
    """Read ``<root>/<grade id>/<name>.npy`` (+ ``.json`` tolerances) into a nested dict."""
    import io

    out: Records = {}
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        return out
    for gdir in sorted(root.iterdir()):
        if gdir.is_symlink() or not gdir.is_dir() or not _NAME.match(gdir.name):
            continue
        for f in sorted(gdir.iterdir()):
            if f.suffix != ".npy" or not _NAME.match(f.stem):
                continue
            raw = _read_regular(f, MAX_RECORD_BYTES)
            if raw is None:
                continue
            try:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
            except Exception:  # noqa: BLE001 - unreadable record = missing record
                continue
            atol, rtol = 1e-6, 1e-5
            tol_raw = _read_regular(f.with_suffix(".json"), 4096)
            if tol_raw is not None:
                try:
                    tol = json.loads(tol_raw)
                    atol, rtol = float(tol["atol"]), float(tol["rtol"])
                except Exception:  # noqa: BLE001
                    pass
            out.setdefault(gdir.name, {})[f.stem] = (arr, atol, rtol)
    return out


def compare(reference: Records, student: Records, grade_id: str) -> tuple[bool, str]:
    """Does the student match every record the reference made for ``grade_id``?

    Tolerances are the reference's. Returns (ok, message for the feedback).
    """
    ref = reference.get(grade_id, {})
    got = student.get(grade_id, {})
    for name, (expected, atol, rtol) in sorted(ref.items()):
        if name not in got:
            return False, "the test did not record a result (it stopped early or was bypassed)"
        actual = got[name][0]
        if actual.shape != expected.shape or actual.dtype != expected.dtype:
            return False, "a recorded result has the wrong shape or dtype"
        if expected.dtype.kind in "fc":
            ok = np.allclose(actual, expected, atol=atol, rtol=rtol, equal_nan=True)
        else:
            ok = np.array_equal(actual, expected)
        if not ok:
            return False, "a recorded result differs from the reference solution"
    return True, ""
