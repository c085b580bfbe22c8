"""course_lib.grading.runner: process-wide machinery is sealed before student code runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys, threading, _thread, torch
    import torch.autograd.profiler as ap
    from course_lib.grading import runner

    originals = {n: getattr(torch._C._autograd, n) for n in runner.PROFILER_CONTROLS}
    events = []
    wanted = (runner.PROFILER_EVENT, runner.SEALED_EVENT)
    sys.addaudithook(lambda e, a: events.append((e, a)) if e in wanted else None)
    ctl = runner._seal()
    sealed = [torch.autograd._disable_profiler, ap._disable_profiler,
              torch._C._autograd._disable_profiler]
    assert len({id(f) for f in sealed}) == 1, sealed
    assert all(f is not o for f in sealed for o in originals.values())
    cells = [c.cell_contents for c in sealed[0].__closure__]
    assert cells == [sys.audit], cells  # nothing trusted is reachable from a stand-in
    calls = (
        torch.autograd._disable_profiler,
        lambda: torch.profiler.profile().__enter__(),
        lambda: threading.Thread(target=print).start(),
        lambda: _thread.start_new_thread(print, ()),
        lambda: torch._C._dispatch_library("IMPL", "aten", "", "x", 0),
        lambda: torch.set_num_threads(8),
    )
    for call in calls:
        try:
            call()
        except RuntimeError as e:
            assert "reserved for the grader" in str(e), e
        else:
            raise AssertionError("a sealed function ran")
    names = [a[0] for e, a in events]  # torch.profiler's first import registers a library
    assert names[0] == "_disable_profiler" and names[-4:] == [
        "start_new_thread", "start_new_thread", "_dispatch_library", "set_num_threads"], names
    ctl["unseal"]()
    assert torch.autograd._disable_profiler is originals["_disable_profiler"]
    with ap.profile(use_kineto=False) as prof:
        torch.ones(3).softmax(0)
    assert any("softmax" in e.name for e in prof.function_events)
    ctl["reseal"]()
    assert ap._disable_profiler is sealed[0]
    print("OK")
    """
)


def test_sealed_functions_are_replaced_everywhere_and_restorable():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stderr[-2000:]


def test_exception_text_and_name_never_call_student_code():
    from course_lib.grading import runner

    class Meta(type):
        @property
        def __name__(cls):  # noqa: N805
            raise AssertionError("metaclass property consulted")

    class Sneaky(Exception, metaclass=Meta):
        def __str__(self):
            raise AssertionError("__str__ called")

        @property
        def errno(self):
            raise AssertionError("errno property consulted")

    class Arg:
        def __str__(self):
            raise AssertionError("argument's __str__ called")

    exc = Sneaky("out of memory?", Arg())
    assert runner._safe_str(exc) == "out of memory?"
    assert runner._type_name(exc) == "Sneaky"
    assert runner._is_memory_error(exc) is False
    assert runner._is_memory_error(MemoryError()) is True
