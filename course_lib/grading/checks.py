"""Helpers for nbgrader test cells: forbid shortcuts, compare robustly, record outputs.

Exercise authors import these at the top of **every** test cell (a student's answer cell can
shadow names defined earlier)::

    from course_lib.grading.checks import assert_close, forbidden, plain, record

and write a hidden test like this::

    ### BEGIN HIDDEN TESTS
    g = torch.Generator().manual_seed(0)                  # explicit generator: same inputs
    x = torch.randn(4, 7, generator=g)                    # in the reference and student runs
    with forbidden("torch.nn.functional.softmax", "aten._softmax"):
        out = plain(softmax(x))                           # convert INSIDE the forbidden block
    record("test_softmax_hidden/rand0", out)              # key = "<grade id>/<name>"
    assert_close(out, torch.softmax(x, dim=-1), what="softmax(x) on a 4x7 batch")
    ### END HIDDEN TESTS

Three layers, from weakest to strongest:

1. :func:`forbidden` makes the functions a student must not call raise
   :class:`ForbiddenCallError`, both as Python attributes and at the ATen dispatch level.
2. :func:`assert_close` compares type, shape, dtype and values after converting the student's
   object to a plain tensor, so a tensor subclass with a lying ``__eq__`` cannot pass.
3. :func:`record` hands the student's output to the grading runner, which sends it to the
   trusted parent; the parent compares it with the reference solution's recording *outside* the
   student's process. A test cell earns its points only if it ran to the end and every record
   matches, so deleting asserts or patching ``AssertionError`` gains nothing.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib
import re
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "ForbiddenCallError",
    "assert_close",
    "forbidden",
    "plain",
    "record",
    "quiet",
]

_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


class ForbiddenCallError(RuntimeError):
    """Raised when a student's code calls a function the exercise asks them to write themselves."""


# ----------------------------------------------------------------------------------------------
# forbidden(...)
# ----------------------------------------------------------------------------------------------
def _resolve(dotted: str) -> tuple[Any, str]:
    """Split ``"a.b.c.name"`` into (the imported object ``a.b.c``, ``"name"``)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise ValueError(f"forbidden(): cannot import a module from {dotted!r}")


def _raiser(name: str):
    def blocked(*args: Any, **kwargs: Any) -> Any:
        raise ForbiddenCallError(
            f"Your code called {name}, which this exercise asks you to implement yourself. "
            "Rewrite it with basic tensor operations (exp, max, sum, indexing, ...)."
        )

    blocked.__name__ = name.rsplit(".", 1)[-1]
    blocked.__qualname__ = blocked.__name__
    return blocked


def aten_forbidden(name: str, ops: set[str] | frozenset[str]) -> bool:
    """Is the ATen operator ``name`` (``"aten._softmax"`` or ``"aten::_softmax"``, with or
    without overload) one of ``ops``? An entry with ``*``/``?`` is a pattern (``fnmatch``):
    ``"aten.*softmax*"`` also catches ``aten._masked_softmax``, the same maths under another name.
    """
    name = name.replace("::", ".")
    packet = name.split(".")[0] + "." + name.split(".")[1] if name.count(".") >= 1 else name
    if name in ops or packet in ops:
        return True
    return any(("*" in op or "?" in op) and fnmatch.fnmatchcase(packet, op) for op in ops)


class _ForbidAten(TorchDispatchMode):
    """Dispatch mode that raises when one of the given ATen operators runs."""

    def __init__(self, ops: set[str]) -> None:
        super().__init__()
        self.ops = ops  # e.g. {"aten._softmax", "aten.convolution"}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        packet = f"{func.namespace}.{func.overloadpacket.__name__}"
        if aten_forbidden(packet, self.ops) or str(func) in self.ops:
            raise ForbiddenCallError(
                f"Your code ran the PyTorch operator {packet} (used by torch's own version of "
                "the function you are asked to write). Implement it with basic tensor operations."
            )
        return func(*args, **(kwargs or {}))


class forbidden:  # noqa: N801 - used like a function: ``with forbidden(...):``
    """Make the given references unusable while the ``with`` block runs.

    Targets are dotted names (``"torch.nn.functional.softmax"``, ``"torch.optim.Adam"``,
    ``"sklearn.metrics.f1_score"``, ``"course_lib.layers.conv2d"``) or ATen operators
    (``"aten._softmax"``, ``"aten.convolution"``, ``"aten.native_batch_norm"``).

    - A dotted name is replaced by a function raising :class:`ForbiddenCallError` on its module,
      and every global of the notebook (``__main__``) bound to the same object is replaced too,
      so ``from torch.nn.functional import softmax as sm`` is caught as well.
    - An ``aten.*`` name is caught at dispatch level with a ``TorchDispatchMode``: any route to
      the operator (``F.softmax``, ``x.softmax``, ``torch.special.softmax``, a reference captured
      before the test) raises.
    - When ``course-grade`` runs the notebook (:mod:`course_lib.grading.runner`), the grader's
      guard also runs: it restores every library namespace the student's code changed, traces
      ATen operators with the autograd profiler (a student who pops the dispatch mode is still
      seen), and traces Python calls into the forbidden functions' code (captured references,
      ``functools.partial``, class attributes, private aliases such as
      ``sklearn.metrics._ranking._binary_clf_curve`` all run the same code). A violation raises
      :class:`ForbiddenCallError` when the block ends and is reported to the parent.

    Everything is restored on exit, also when the block raises.
    """

    def __init__(self, *targets: str) -> None:
        self.targets = tuple(targets)
        self._patched: list[tuple[Any, str, Any]] = []
        self._mode: Any = None

    def __enter__(self, *, _guard: Any = None) -> None:
        if _guard is not None:
            _guard.enter(self.targets)
        try:
            # in grading the guard traces ATen operators itself (profiler): no dispatch mode,
            # which would also import torch._dynamo (seconds) on its first use
            self._patch(aten_mode=_guard is None)
        except BaseException:
            self._unpatch()
            if _guard is not None:
                _guard.exit()
            raise

    def _patch(self, aten_mode: bool) -> None:
        aten = {t for t in self.targets if t.startswith("aten.")}
        # Resolve every name before patching any, so that the order of the targets does not
        # matter (e.g. "torch.optim.Adam" before "torch.optim.Adam.step").
        resolved = [(t, *_resolve(t)) for t in self.targets if not t.startswith("aten.")]
        resolved = [(t, owner, attr, getattr(owner, attr)) for t, owner, attr in resolved]
        # the defining module too: course_lib.metrics.roc_curve is also
        # course_lib.metrics.ranking.roc_curve, sklearn.metrics.f1_score is also
        # sklearn.metrics._classification.f1_score
        for dotted, owner, attr, original in list(resolved):
            home = sys.modules.get(getattr(original, "__module__", None) or "")
            name = getattr(original, "__name__", attr)
            if home is not None and home is not owner and getattr(home, name, None) is original:
                resolved.append((dotted, home, name, original))
        for dotted, owner, attr, original in resolved:
            blocked = _raiser(dotted)
            self._patched.append((owner, attr, original))
            setattr(owner, attr, blocked)
            main = sys.modules.get("__main__")
            if main is not None:
                for name, value in list(vars(main).items()):
                    if value is original:
                        self._patched.append((main, name, original))
                        setattr(main, name, blocked)
        if aten and aten_mode:
            self._mode = _ForbidAten(aten)
            self._mode.__enter__()

    def _unpatch(self) -> None:
        if self._mode is not None:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)
        for owner, attr, original in reversed(self._patched):
            setattr(owner, attr, original)
        self._patched = []

    def __exit__(self, exc_type: Any, exc: Any, tb: Any, *, _guard: Any = None) -> None:
        try:
            self._unpatch()
        finally:
            problem = _guard.exit() if _guard is not None else None
        if problem and exc_type is None:
            raise ForbiddenCallError(
                f"Your code reached a function this exercise asks you to write yourself: {problem}."
            )


def _bind_grading(sink: Any, guard: Any) -> None:
    """Called once by the grading runner, before any student code: bind the trusted sink/guard.

    They live in keyword defaults, which the runner's audit hook then refuses to read or write.
    """
    record.__kwdefaults__ = {"_sink": sink}
    forbidden.__enter__.__kwdefaults__ = {"_guard": guard}
    forbidden.__exit__.__kwdefaults__ = {"_guard": guard}


# ----------------------------------------------------------------------------------------------
# plain(...) and assert_close(...)
# ----------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Return a trusted copy of a student's result: a plain ``torch.Tensor`` (detached, cloned).

    Tensor subclasses are stripped with ``torch_function`` disabled (their methods never run);
    a subclass with ``__torch_dispatch__`` is returned unchanged (recorded as non-numeric),
    numpy arrays and Python numbers/lists become tensors. Values that are not numeric
    (modules, strings, ``None``) are returned unchanged so that :func:`assert_close` can report
    a type error.
    """
    if isinstance(value, torch.Tensor):
        if torch._C._dispatch_keys(value).has(torch._C.DispatchKey.Python):
            return value  # a __torch_dispatch__ subclass: any operator on it runs its code
        with torch._C.DisableTorchFunctionSubclass():
            base = torch.Tensor.as_subclass(value, torch.Tensor)
            out = torch.Tensor.clone(torch.Tensor.detach(base))
        return out
    if isinstance(value, np.ndarray):
        arr = np.array(value, copy=True, subok=False)
        if arr.dtype == object:
            return value
        return torch.from_numpy(arr)
    if isinstance(value, bool):
        return torch.tensor(bool(value))
    if isinstance(value, int):
        return torch.tensor(int.__int__(value))  # the real value, even for an int subclass
    if isinstance(value, float):
        return torch.tensor(float.__float__(value), dtype=torch.float64)
    if isinstance(value, np.generic):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, list | tuple):
        try:
            return torch.as_tensor(np.array([float(v) for v in _flatten(value)])).reshape(
                np.shape(value)
            )
        except (TypeError, ValueError):
            return value
    return value


def _flatten(items: Any) -> Iterator[Any]:
    for item in items:
        if isinstance(item, list | tuple):
            yield from _flatten(item)
        else:
            yield item


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    return f"an object of type {type(value).__name__}"


def assert_close(
    actual: Any,
    expected: Any,
    what: str = "the result",
    atol: float = 1e-6,
    rtol: float = 1e-5,
    check_dtype: bool = True,
) -> None:
    """Check a student's result against the expected value and explain any mismatch.

    ``actual`` is converted with :func:`plain` first; ``expected`` comes from the test.
    Raises ``AssertionError`` naming ``what`` (say which function and mode, never the hidden
    inputs): wrong type, wrong shape, wrong dtype, NaN/inf where there should be none, or the
    largest absolute error and how many entries are off.
    """
    exp_is_tensor = isinstance(expected, torch.Tensor)
    act = plain(actual)
    exp = plain(expected)
    if not isinstance(act, torch.Tensor):
        raise AssertionError(f"{what}: expected a tensor or number, got {_describe(actual)}.")
    if exp_is_tensor and not isinstance(actual, torch.Tensor):
        raise AssertionError(
            f"{what}: expected a torch.Tensor, got {type(actual).__name__}. "
            "Return a tensor (e.g. build it with torch operations)."
        )
    if tuple(act.shape) != tuple(exp.shape):
        raise AssertionError(
            f"{what}: wrong shape {tuple(act.shape)}, expected {tuple(exp.shape)}. "
            "Check which dimension you reduce over and whether you keep it."
        )
    if check_dtype and exp_is_tensor and act.dtype != exp.dtype:
        raise AssertionError(
            f"{what}: wrong dtype {act.dtype}, expected {exp.dtype}. "
            "Keep the dtype of the input (avoid Python floats or .double() in the computation)."
        )
    a = act.detach().to(torch.float64) if act.dtype != torch.bool else act
    e = exp.detach().to(torch.float64) if exp.dtype != torch.bool else exp
    if a.dtype == torch.bool or e.dtype == torch.bool:
        bad = int((a != e).sum())
        if bad:
            raise AssertionError(f"{what}: {bad} of {e.numel()} entries differ.")
        return
    a_nan, e_nan = torch.isnan(a), torch.isnan(e)
    if bool((a_nan != e_nan).any()):
        n = int((a_nan & ~e_nan).sum())
        raise AssertionError(
            f"{what}: {n} entries are NaN where a number is expected "
            "(overflow in exp? subtract the maximum first)."
        )
    a_inf, e_inf = torch.isinf(a), torch.isinf(e)
    if bool((a_inf != e_inf).any()) or bool((a[a_inf] != e[e_inf]).any()):
        raise AssertionError(
            f"{what}: infinite values where finite ones are expected (or the reverse); "
            "look for exp() of a large number or log(0)."
        )
    fin = ~(a_nan | a_inf)
    diff = (a[fin] - e[fin]).abs()
    limit = atol + rtol * e[fin].abs()
    bad = diff > limit
    if bool(bad.any()):
        raise AssertionError(
            f"{what}: values differ in {int(bad.sum())} of {e.numel()} entries; "
            f"max abs error {float(diff.max()):.3g} (allowed atol={atol:g}, rtol={rtol:g})."
        )


# ----------------------------------------------------------------------------------------------
# record(...)
# ----------------------------------------------------------------------------------------------
def record(
    key: str, value: Any, atol: float = 1e-6, rtol: float = 1e-5, *, _sink: Any = None
) -> None:
    """Hand ``value`` to the grader for the parent-side comparison (no-op outside grading).

    ``key`` is ``"<grade id of this test cell>/<name>"``, e.g. ``"test_softmax_hidden/rand0"``.
    When ``course-grade`` runs the notebook, the grading runner converts the value with
    :func:`plain` and sends dtype, shape and bytes to the trusted parent over its private channel
    (a key of another cell, or one recorded twice, never matches). ``atol``/``rtol`` are the
    tolerances the parent uses; only the ones recorded by the reference solution count. A
    non-numeric value records a marker that never matches a numeric reference.
    """
    if not _KEY_RE.match(key):
        raise ValueError(
            f"record(): key {key!r} must look like '<grade id>/<name>' ([A-Za-z0-9_.-])."
        )
    if _sink is not None:
        _sink(key, value, atol, rtol)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence Python warnings inside a test (nbgrader zeroes cells that write to stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
