"""Parent-side oracle: decode what a test cell recorded and compare it with the reference.

Runs in the trusted parent, never in the student's process. A record arrives from the grading
runner as ``{"dtype": "<f4", "shape": [2, 3], "data": <base64>, "atol": ..., "rtol": ...}``; it
is decoded with ``numpy.frombuffer`` (numeric dtypes only, no pickle, size checked against the
shape). The reference solution's records are the expected values; the tolerances are the
reference's, whatever the student's run claims. The feedback message is written here, from the
arrays, with the same wording as :func:`course_lib.grading.checks.assert_close`.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

MAX_RECORD_BYTES = 64 * 1024 * 1024

#: grade id -> record name -> (array or None for "not numeric", atol, rtol)
Records = dict[str, dict[str, tuple[np.ndarray | None, float, float]]]


def decode(entry: object) -> tuple[np.ndarray | None, float, float] | None:
    """One record -> (array, atol, rtol); None when the entry is malformed."""
    if not isinstance(entry, dict):
        return None
    try:
        atol, rtol = float(entry.get("atol", 1e-6)), float(entry.get("rtol", 1e-5))
    except (TypeError, ValueError):
        return None
    if entry.get("dtype") == "none":
        return None, atol, rtol
    try:
        dtype = np.dtype(str(entry["dtype"]))
        shape = tuple(int(n) for n in entry["shape"])
        raw = base64.b64decode(str(entry["data"]), validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    if dtype.kind not in "biufc" or dtype.hasobject or any(n < 0 for n in shape):
        return None
    if (
        len(raw) > MAX_RECORD_BYTES
        or len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    ):
        return None
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy(), atol, rtol


def records_of(gid: str, result: dict | None) -> dict[str, tuple[np.ndarray | None, float, float]]:
    """The decoded records of one test cell's runner result (malformed entries dropped)."""
    out = {}
    raw = (result or {}).get("records")
    if not isinstance(raw, dict):
        return out
    for name, entry in list(raw.items())[:1000]:
        rec = decode(entry)
        if rec is not None and isinstance(name, str):
            out[name] = rec
    return out


def _explain(actual: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> str | None:
    """assert_close's wording for arrays; None when they match."""
    if actual.shape != expected.shape:
        return f"wrong shape {actual.shape}, expected {expected.shape}"
    if actual.dtype != expected.dtype:
        return f"wrong dtype {actual.dtype}, expected {expected.dtype}"
    if expected.dtype.kind not in "fc":
        bad = int(np.sum(actual != expected))
        return f"{bad} of {expected.size} entries differ" if bad else None
    a, e = actual.astype(np.complex128 if expected.dtype.kind == "c" else np.float64), expected
    e = e.astype(a.dtype)
    a_nan, e_nan = np.isnan(a), np.isnan(e)
    if np.any(a_nan != e_nan):
        n = int(np.sum(a_nan & ~e_nan))
        return (
            f"{n} entries are NaN where a number is expected "
            "(overflow in exp? subtract the maximum first)"
        )
    a_inf, e_inf = np.isinf(a), np.isinf(e)
    if np.any(a_inf != e_inf) or np.any(a[a_inf] != e[e_inf]):
        return (
            "infinite values where finite ones are expected (or the reverse); "
            "look for exp() of a large number or log(0)"
        )
    fin = ~(a_nan | a_inf)
    diff = np.abs(a[fin] - e[fin])
    bad = diff > atol + rtol * np.abs(e[fin])
    if np.any(bad):
        return (
            f"values differ in {int(bad.sum())} of {e.size} entries; "
            f"max abs error {float(diff.max()):.3g} (allowed atol={atol:g}, rtol={rtol:g})"
        )
    return None


def compare(reference: Records, student: Records, grade_id: str) -> tuple[bool, str]:
    """Does the student match every record the reference made for ``grade_id``?

    Tolerances are the reference's. Returns (ok, message for the feedback).
    """
    ref = reference.get(grade_id, {})
    got = student.get(grade_id, {})
    for name, (expected, atol, rtol) in sorted(ref.items()):
        if name not in got:
            return False, f"{name}: no result was recorded (the test stopped early)"
        actual = got[name][0]
        if expected is None or actual is None:
            if expected is None and actual is None:
                continue
            return False, f"{name}: expected a tensor or number, got something else"
        why = _explain(actual, expected, atol, rtol)
        if why:
            return False, f"{name}: {why}"
    return True, ""
