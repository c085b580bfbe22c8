"""The grading kernel: runs one rebuilt notebook cell by cell inside the sandbox.

``python -c "from course_lib.grading.runner import main; main()"`` is started by the parent (inside bubblewrap, see
:mod:`course_lib.grading.sandbox`) once per submission. It is a plain Python process, not an
IPython kernel: no ZMQ, no TCP, no ``In``/``Out``/``_ih`` history, no ``get_ipython``. The parent
sends the cells **one at a time** over stdin (JSON lines) and reads one JSON line per cell back:

    parent -> {"op": "start", "preload": [...], "memory_mb": 2048, "mode": "student"}
    runner -> {"op": "ready", "t_import": 2.1, "vm_mb": 3141, "limit_mb": 5189}
    parent -> {"op": "cell", "index": 3, "kind": "answer"|"setup"|"test", "gid": ..., "source": ..., "token": t}
    runner -> {"op": "result", "token": t, "ok": true|false, "ename": ..., "memory": false,
               "records": {name: {"dtype", "shape", "data", "atol", "rtol"}}, "imports": [...], ...}
    parent -> {"op": "end", "token": t}     runner -> {"op": "done", "token": t}

The runner is trusted code that shares its process with untrusted code, so it reports *what
happened* and the parent decides everything (points, statuses, messages). Before the first
student cell it:

1. imports torch, numpy, the grading helpers and every module the test cells import
   (``preload``), then caps the address space at what is mapped now + ``memory_mb``
   (``RLIMIT_AS`` counts shared and private mappings alike);
2. binds the record sink and the ``forbidden`` guard into keyword defaults of the helpers in
   :mod:`course_lib.grading.checks` (reading or writing them is then refused);
3. snapshots the namespaces of the loaded library modules and the classes test code relies on;
   the snapshot is restored before every test cell, every ``forbidden`` block and every record;
4. loads a seccomp filter (:mod:`course_lib.grading.syscalls`): from then on the kernel starts
   no thread or process for this runner, by any route;
5. installs an audit hook (``sys.addaudithook``: it cannot be removed) that refuses frame, trace,
   ``gc`` and ``ctypes`` access, new audit hooks, processes, new code objects, process memory
   files under ``/proc``, and reports every module imported while student code runs.

``record`` and ``forbidden`` answer only to the code objects the runner compiled from test and
setup cells (checked by identity, see ``called_from_test``), never to student code.

Answer and setup cells run in the notebook namespace (``__main__``); test cells run in a
separate namespace that only trusted code can see (student functions are copied into it), so a
student's function cannot read or rebind a test's variables. The protocol fd is private and
every message carries the token of the cell the parent sent; student code cannot learn it
without frame or ``gc`` access.
"""

from __future__ import annotations

import base64
import builtins
import errno
import io
import json
import os
import sys
import time
import types

MAX_STDOUT = 20000
MAX_RECORD_BYTES = 16 * 1024 * 1024
RESERVE_BYTES = 32 * 1024 * 1024
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
#: top-level packages of the libraries whose modules are snapshot and restored
SNAPSHOT_ROOTS = (
    "torch",
    "numpy",
    "math",
    "builtins",
    "course_lib",
    "sklearn",
    "scipy",
    "functools",
    "operator",
    "warnings",
    "contextlib",
    "json",
    "os",
    "io",
    "re",
    "fnmatch",
    "threading",
    "_thread",
)
_FRAME_ATTRS = frozenset({"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"})
_DEFAULTS = ("__defaults__", "__kwdefaults__")
_ALWAYS_BLOCKED = (
    "sys._current_frames",
    "sys.addaudithook",
    "gc.get_objects",
    "gc.get_referrers",
    "gc.get_referents",
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
    "os.kill",
    "os.killpg",
    "signal.pthread_kill",
)
_STUDENT_BLOCKED = ("sys._getframe", "sys.settrace", "sys.setprofile", "sys.monitoring")
#: modules student code may not (re-)import: they would give back what the runner took away
_BLOCKED_IMPORTS = frozenset(
    {
        "_signal",
        "signal",
        "ctypes",
        "_ctypes",
        "_testcapi",
        "_testinternalcapi",
        "_xxsubinterpreters",
        "faulthandler",
        "gc",
        # sealed or process-starting machinery: a fresh copy would hold the originals
        "_thread",
        "_posixsubprocess",
        "torch._C",
        "torch._C._autograd",
    }
)
#: code-object file names that mark the runner's own cells; student code may not make them
_RESERVED_FILENAMES = ("<test ", "<setup ", "<answer ")


class _Capture(io.TextIOBase):
    """A bounded text sink standing in for sys.stdout / sys.stderr during one cell."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def write(self, s) -> int:  # noqa: ANN001
        s = str(s)
        if self.size < MAX_STDOUT:
            self.parts.append(s[: MAX_STDOUT - self.size])
        self.size += len(s)
        return len(s)

    def writable(self) -> bool:
        return True

    def text(self) -> str:
        out = "".join(self.parts)
        return out + ("\n[output truncated]" if self.size > MAX_STDOUT else "")


def _is_memory_error(exc: BaseException) -> bool:
    """Read through the C slots only: no ``__class__``/``errno``/``__str__`` of student code runs."""
    cls = type(exc)
    if issubclass(cls, MemoryError):
        return True
    if issubclass(cls, OSError) and OSError.errno.__get__(exc) == errno.ENOMEM:
        return True
    text = _safe_str(exc)[:2000]
    return (
        "can't allocate memory" in text
        or "Cannot allocate memory" in text
        or ("not enough memory" in text)
    )


def _vm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1])
    return 0


def serve(proto_in, proto_out) -> None:  # noqa: ANN001, C901 - one closure on purpose
    """Run the protocol; every trusted object lives in this frame's closures."""
    start = json.loads(proto_in.readline())
    t0 = _process_start()
    import numpy as np
    import torch

    import course_lib.grading.checks as checks

    for name in start.get("preload", []):
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - a test cell will report it
            pass
    torch.set_num_threads(1)
    # warm up what the guard uses (lazy imports must happen before the audit hook)
    with torch.autograd.profiler.profile(use_kineto=False) as _warm:
        with torch.autograd.profiler.record_function("cg-warmup"):
            torch.zeros(1).softmax(0)
    _ = [e.name for e in _warm.function_events]
    with checks.forbidden("torch.nn.functional.softmax"):
        torch.ones(2).exp()
    w = torch.ones(3, requires_grad=True)
    (w * w).sum().backward()  # autograd's lazy initialisation, before threads are refused
    t_import = time.time() - t0

    # no process or thread starts from here on, whatever the route (see syscalls.py)
    from course_lib.grading.syscalls import deny_new_tasks

    syscall_filter = deny_new_tasks()

    # process-wide machinery belongs to the grader (see SEALED): e.g. a student's own
    # _disable_profiler() during the guard's session deadlocks or crashes kineto in some runs
    # (torch 2.14: about one in four), which would make the status depend on timing. Every
    # module attribute bound to a sealed function is replaced by a stand-in that raises; the
    # guard keeps the profiler's originals here for its own start and stop.
    _controls = _seal()
    _unseal, _reseal = _controls["unseal"], _controls["reseal"]

    # captured C-level references (a student can rebind the Python names, not these)
    _write, _dumps, _b64 = os.write, json.dumps, base64.b64encode
    _count_threads = __import__("_thread")._count
    _disable_tf = torch._C.DisableTorchFunctionSubclass
    _len_dispatch = torch._C._len_torch_dispatch_stack
    _pop_dispatch = torch._C._pop_torch_dispatch_stack
    _len_function = torch._C._len_torch_function_stack
    _pop_function = torch._C._pop_torch_function_stack
    _setprofile = sys.setprofile
    _aten_forbidden = checks.aten_forbidden
    _type_setattr = type.__setattr__
    _func_code = types.FunctionType.__dict__["__code__"].__get__
    _type_dict = type.__dict__["__dict__"].__get__
    proto_fd = proto_out.fileno()

    state = {
        "phase": "trusted",
        "allow_profile": False,
        "imports": [],
        "events": [],
        "in_hook": False,
    }
    _getframe = sys._getframe
    serve_frame = _getframe()
    trusted_files = _trusted_roots()
    # The code objects of the instructor's cells, by identity: the runner compiles them, so no
    # student code can make one (a file name can be rewritten, e.g. by _imp._fix_co_filename)
    instructor_codes: set[int] = set()
    instructor_refs: list = []  # keeps every id above alive, so that it is never reused
    entry_codes = frozenset(
        id(c)
        for c in (
            checks.record.__code__,
            checks.forbidden.__enter__.__code__,
            checks.forbidden.__exit__.__code__,
        )
    )

    def called_from_test() -> bool:
        """Is the caller of ``record``/``forbidden`` an instructor's cell (not student code)?

        The stack must read: this runner's sink or guard, the real entry point in
        :mod:`course_lib.grading.checks`, then a code object the runner compiled from a test or
        setup cell.
        """
        state["in_hook"] = True
        try:
            entry, caller = _getframe(2).f_code, _getframe(3)
            code, where = caller.f_code, caller.f_globals
        except Exception:  # noqa: BLE001 - a stack too short is no test's
            return False
        finally:
            state["in_hook"] = False
        # the code object and the namespace: a test's code re-bound to student globals
        # (types.FunctionType(code, {...})) or a setup cell's (globals: the notebook's) is not
        ok = id(entry) in entry_codes and id(code) in instructor_codes
        return ok and where is namespace_test and not replaced_test_code()

    test_defs: dict = {}  # name -> the test's own function/class, when the last block began

    def snapshot_test_defs() -> None:
        test_defs.clear()
        for key, value in list(namespace_test.items()):
            kind = type(value)  # C slots only: no property of student code runs here
            if kind is types.FunctionType:
                if id(_func_code(value)) in instructor_codes:
                    test_defs[key] = value
            elif issubclass(kind, type) and _type_dict(value).get("__module__") == "__grading__":
                test_defs[key] = value
            elif kind is types.ModuleType:  # csv, torch, ... as the test imported them
                test_defs[key] = value

    def replaced_test_code() -> bool:
        """Did student code rebind a test's function, class or module (through ``__globals__``)?

        Put back and reported as a violation of the test: what the test computes with them
        afterwards is not the test's any more.
        """
        gone = [k for k, v in test_defs.items() if namespace_test.get(k) is not v]
        for key in gone:
            namespace_test[key] = test_defs[key]
        if gone:
            cell["violations"].append(f"the test's own {gone[0]!r} was replaced by your code")
        return bool(gone)

    def refuse_caller(what: str) -> None:
        state["events"].append(f"blocked {what} called from student code")
        cell["violations"].append(f"{what} was called from your code (reserved for the tests)")
        raise RuntimeError(f"{what} is reserved for the test cells while grading")

    # --- 1. snapshot of library namespaces -------------------------------------------------
    def _wanted(name: str) -> bool:
        return name.split(".")[0] in SNAPSHOT_ROOTS

    modules = {n: m for n, m in list(sys.modules.items()) if m is not None and _wanted(n)}
    mod_snap = [(vars(m), dict(vars(m))) for m in modules.values() if hasattr(m, "__dict__")]
    classes = [torch.Tensor, torch.nn.Module, torch.nn.Parameter, torch.Generator]
    for m in (checks, torch.nn, torch.optim):
        classes += [v for v in vars(m).values() if isinstance(v, type)]
    cls_snap = []
    for cls in classes:
        try:
            cls_snap.append((cls, dict(vars(cls))))
        except TypeError:
            pass
    main_mod = types.ModuleType("__main__")
    main_mod.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main_mod
    changes: list[str] = []

    profiler_globals = vars(torch.autograd.profiler)

    def restore(dispatch_keep: int | None = None) -> None:
        """Undo every change student code made to the snapshot namespaces (and say which)."""
        for name, mod in modules.items():
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changes.append(f"sys.modules[{name!r}]")
        for d, snap in mod_snap:
            for key, value in snap.items():
                if guard.stack and d is profiler_globals and key == "_is_profiler_enabled":
                    continue  # the guard's own session is running: its flag is meant to be on
                if d.get(key, restore) is not value:
                    d[key] = value
                    if len(changes) < 50:
                        changes.append(f"{d.get('__name__', '?')}.{key}")
        for cls, snap in cls_snap:
            d = cls.__dict__
            for key, value in snap.items():
                if d.get(key, restore) is not value:
                    try:
                        _type_setattr(cls, key, value)
                    except (TypeError, AttributeError):
                        continue
                    if len(changes) < 50:
                        changes.append(f"{cls.__name__}.{key}")
        sys.modules["__main__"] = main_mod
        while _len_function() > 0:
            _pop_function()
            changes.append("a torch function mode")
        keep = guard.depth() if dispatch_keep is None else dispatch_keep
        while _len_dispatch() > keep:
            _pop_dispatch()
            changes.append("a torch dispatch mode")

    # --- 2. the trusted record sink and forbidden guard --------------------------------------
    cell = {"gid": None, "records": {}, "dup": [], "foreign": [], "violations": []}

    def sink(key, value, atol, rtol) -> None:  # noqa: ANN001
        if not called_from_test():
            refuse_caller("record()")
        restore()
        if not isinstance(key, str) or "/" not in key or key.count("/") != 1:
            raise ValueError(f"record(): key {key!r} must look like '<grade id>/<name>'")
        gid, name = key.split("/")
        if not set(key) - {"/"} <= _KEY_CHARS:
            raise ValueError(f"record(): key {key!r} must use [A-Za-z0-9_.-]")
        if gid != cell["gid"]:
            cell["foreign"].append(key[:200])
            return
        if name in cell["records"]:
            cell["dup"].append(name)
            return
        with _disable_tf():
            data = checks.plain(value)
        entry = {"atol": float(atol), "rtol": float(rtol)}
        if isinstance(data, torch.Tensor) and type(data) is torch.Tensor:
            arr = np.ascontiguousarray(data.detach().cpu().resolve_conj().resolve_neg().numpy())
            if arr.dtype.kind not in "biufc" or arr.nbytes > MAX_RECORD_BYTES:
                entry["dtype"] = "none"
            else:
                entry.update(
                    dtype=arr.dtype.str, shape=list(arr.shape), data=_b64(arr.tobytes()).decode()
                )
        else:
            entry["dtype"] = "none"
        cell["records"][name] = entry

    class Guard:
        """What ``forbidden`` does in grading mode, on top of patching names and ATen ops."""

        def __init__(self) -> None:
            self.stack: list = []

        def depth(self) -> int:
            """Dispatch modes open when the innermost block began (the grader pushes none)."""
            if not self.stack:
                return 0
            return self.stack[-1][-1]

        def enter(self, targets: tuple[str, ...]) -> None:
            if not called_from_test():
                refuse_caller("forbidden()")
            restore()
            snapshot_test_defs()
            roots, codes, ops = _code_roots(targets)
            marker = f"cg-marker-{os.urandom(8).hex()}"
            prof = torch.autograd.profiler.profile(use_kineto=False)
            _unseal()
            try:
                prof.__enter__()
            finally:
                _reseal()
            rf = torch.autograd.profiler.record_function(marker)
            rf.__enter__()
            rf.__exit__(None, None, None)
            hits: list[str] = []

            def tracer(frame, event, arg):  # noqa: ANN001
                if event == "call":
                    code = frame.f_code
                    if code in codes or code.co_filename.startswith(roots):
                        hits.append(f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_name}")

            if roots or codes:  # always: the oracle libraries are in roots
                state["allow_profile"] = True
                _setprofile(tracer)
                state["allow_profile"] = False
            self.stack.append((prof, marker, ops, hits, bool(roots or codes), _len_dispatch()))

        def exit(self) -> str | None:
            if not called_from_test():
                refuse_caller("forbidden()")
            prof, marker, ops, hits, traced, depth = self.stack[-1]
            if traced:
                state["allow_profile"] = True
                _setprofile(None)
                state["allow_profile"] = False
            problem = None
            stack_changed = _len_dispatch() != depth
            # restore first: the block may have rebound the profiler's or the matcher's helpers
            restore(dispatch_keep=depth)
            self.stack.pop()
            _unseal()
            try:
                prof.__exit__(None, None, None)
                names = {e.name for e in prof.function_events}
            except Exception:  # noqa: BLE001 - the student stopped our profiler
                names = set()
            finally:
                _reseal()
            if marker not in names:
                problem = "the grader's operator trace was stopped or replaced"
            bad = sorted(n for n in names if _aten_forbidden(n, ops))
            if bad:
                problem = f"the PyTorch operator {bad[0].replace('::', '.')} ran"
            if hits:
                problem = f"{hits[0]} ran (a forbidden library function)"
            if stack_changed:
                problem = problem or "the dispatch mode stack was changed"
            if problem:
                cell["violations"].append(problem)
            return problem

    guard = Guard()

    def _code_roots(targets):  # noqa: ANN001, ANN202
        """Code objects / library files that must not run inside a forbidden block."""
        files: list[str] = []
        codes: set = set()
        ops = {t for t in targets if t.startswith("aten.")}
        for t in targets:
            if t.startswith("aten."):
                continue
            try:
                owner, attr = checks._resolve(t)
                obj = getattr(owner, attr)
            except Exception:  # noqa: BLE001
                continue
            fns = [obj, getattr(obj, "__init__", None), getattr(type(obj), "__call__", None)]  # noqa: B004
            inner = obj
            for _ in range(
                8
            ):  # decorators: functools.wraps, contextmanager, typing_extensions.deprecated
                inner = getattr(inner, "__wrapped__", None)
                if inner is None:
                    break
                fns.append(inner)
            for fn in fns:
                code = getattr(fn, "__code__", None)
                # a decorator's wrapper (torch's no_grad decorate_context) is shared: skip it
                if code is not None and code.co_name in (attr, "__init__", "__call__"):
                    codes.add(code)
                    top = t.split(".")[0]
                    if top not in ("torch", "course_lib", "numpy", "math"):
                        files.append(os.path.dirname(code.co_filename) + "/")
            if isinstance(obj, type):
                for k, v in vars(obj).items():
                    code = getattr(v, "__code__", None)
                    if code is not None and code.co_name == k:
                        codes.add(code)
        return tuple(sorted(set(files) | oracle_dirs)), frozenset(codes), ops

    import importlib.util

    oracle_dirs: set[str] = set()
    for lib in start.get("oracle_libraries", []):
        try:
            spec = importlib.util.find_spec(lib)
        except (ImportError, ValueError):
            continue
        if spec is not None and spec.origin:
            oracle_dirs.add(os.path.dirname(spec.origin) + "/")
    checks._bind_grading(sink, guard)

    # signal handlers receive the interrupted frame (f_globals of a test): none while grading
    import signal as _signal_py

    _signal_c = sys.modules["_signal"]
    _no_signal.__kwdefaults__ = {"_orig": _signal_c.signal, "_state": state}
    _signal_py.signal = _signal_c.signal = _no_signal
    sys.getprofile = sys.gettrace = _nothing  # the guard's tracer is not for students to see
    for name in ("signal", "_signal"):
        mod = sys.modules[name]
        mod_snap.append((vars(mod), dict(vars(mod))))

    # --- 3. memory cap counting every mapping --------------------------------------------------
    import resource

    vm_kb = _vm_kb()
    limit = (vm_kb // 1024 + int(start.get("memory_mb", 2048))) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    reserve = [bytearray(RESERVE_BYTES)]

    # --- 4. the audit hook -----------------------------------------------------------------
    def student_running() -> bool:
        """Student code is running: its phase, or any answer-cell frame on this stack.

        The second half matters while the runner is trusted: formatting an exception, freeing
        it (``__del__``) or reading its type's name may call back into student code.
        """
        if state["phase"] == "student":
            return True
        if state["in_hook"]:
            return False
        state["in_hook"] = True
        try:
            f = _getframe(2)
            for _ in range(1000):
                if f is None or f is serve_frame:
                    return False
                if is_student(f.f_code):
                    return True
                f = f.f_back
            return True  # a stack this deep is not the runner's own
        finally:
            state["in_hook"] = False

    def student_before_test() -> bool:
        """Walking up from the hook's caller, is student code met before an instructor's cell?

        In the student phase a stack with neither (only libraries) counts as student code.
        """
        state["in_hook"] = True
        try:
            f, found = _getframe(2), state["phase"] == "student"  # 1: the hook
            for _ in range(500):
                if f is None or f is serve_frame:
                    break
                if id(f.f_code) in instructor_codes:
                    return False
                if is_student(f.f_code):
                    return True
                f = f.f_back
            return found
        finally:
            state["in_hook"] = False

    def is_student(code) -> bool:  # noqa: ANN001
        """Code that is neither an instructor's cell nor from Python's or a library's files."""
        if id(code) in instructor_codes:
            return False
        name = code.co_filename
        if name.startswith(_RESERVED_FILENAMES) or not isinstance(name, str):
            return True  # an answer cell, or a renamed code object
        if name.startswith("<frozen "):
            return False
        return not name.startswith(trusted_files)  # exec'd strings, files the student wrote

    def hook(event: str, args: tuple) -> None:
        if event == PROFILER_EVENT:
            state["events"].append("blocked starting or stopping the autograd profiler")
            if guard.stack:
                cell["violations"].append("the grader's operator trace was stopped or replaced")
            return
        if event == SEALED_EVENT:
            what = str(args[0]) if args else "?"
            if (
                what == "_dispatch_library"
                and len(args) == 4
                and type(args[1]) is tuple
                and type(args[2]) is dict
                and type(args[3]) is list
                and _library_allowed(args[1])
            ):
                list.append(args[3], _controls["call"](what, args[1], args[2]))
                return
            if what == "_fix_co_filename" and len(args) == 4 and type(args[3]) is list:
                call = args[1]
                if not student_running() or (
                    len(call) == 2
                    and type(call[0]) is types.CodeType
                    and type(call[1]) is str
                    and call[0].co_filename == call[1]
                ):  # the grader's own imports, or a library's .pyc that already has its name
                    list.append(args[3], _controls["call"](what, args[1], args[2]))
                    return
            state["events"].append(f"blocked {what}")
            if guard.stack:
                cell["violations"].append(f"{what} was called (reserved for the grader)")
            return
        if event == "import":
            if student_running():
                name = str(args[0])
                if name in _BLOCKED_IMPORTS:
                    state["events"].append(f"blocked import {name}")
                    raise ImportError(f"{name} cannot be imported while grading")
                if len(state["imports"]) < 200:
                    state["imports"].append(name)
            return
        if event == "object.__getattr__":
            name = args[1] if len(args) > 1 else ""
            if name in _FRAME_ATTRS and student_running():
                state["events"].append(f"blocked frame access ({name})")
                raise AttributeError(f"{name} is not available while grading")
            module = getattr(args[0], "__module__", "") if name in _DEFAULTS else ""
            if module and (
                module.startswith("course_lib.grading")
                or (module == "__grading__" and student_before_test())
            ):
                state["events"].append("blocked access to the grading helpers")
                raise AttributeError("the grading helpers cannot be inspected")
            return
        if event == "object.__setattr__":
            obj, name = args[0], args[1] if len(args) > 1 else ""
            module = str(getattr(obj, "__module__", "") or "")
            if (
                (name == "__code__" and module != "__main__")
                or (
                    name in ("__defaults__", "__kwdefaults__")
                    and module.startswith(("course_lib.grading", "__grading__"))
                )
                or (module == "__grading__" and student_before_test())  # a test's own class
            ):
                state["events"].append(f"blocked rewriting {name} of a library function")
                raise RuntimeError("rewriting library functions is not allowed while grading")
            return
        if (
            event.startswith("ctypes.")
            or event in _ALWAYS_BLOCKED
            or event.startswith(("os.exec", "os.spawn", "os.posix_spawn"))
        ):
            state["events"].append(f"blocked {event}")
            raise RuntimeError(f"{event} is not allowed while grading")
        if event == "sys._getframe":
            # Libraries (typing, logging, torch.autograd) ask for frames; that is allowed only
            # when no student code is between the caller and the nearest test/setup cell (and,
            # in the trusted phase, when no student code is on the stack at all).
            if state["in_hook"]:
                return
            if student_before_test():
                state["events"].append("blocked sys._getframe")
                raise ValueError("sys._getframe is not available while grading")
            return
        if event in _STUDENT_BLOCKED:
            if event == "sys.setprofile" and state["allow_profile"]:
                return
            if student_running():
                state["events"].append(f"blocked {event}")
                raise ValueError(f"{event} is not available while grading")
            return
        if event == "function.__new__" and args and id(args[0]) in instructor_codes:
            if student_running():  # a test's code with other globals would pass as the test
                state["events"].append("blocked re-binding a test's code")
                raise RuntimeError("a test's code cannot be re-bound while grading")
            return
        if event == "code.__new__" and student_running():
            # a new code object could carry any file name, e.g. that of a test cell
            state["events"].append("blocked creating a code object")
            raise RuntimeError("creating code objects is not allowed while grading")
        if event == "compile" and len(args) > 1 and student_running():
            name = os.fsdecode(args[1]) if isinstance(args[1], str | bytes) else ""
            if name.startswith(_RESERVED_FILENAMES + ("<frozen",)) or (
                name.startswith(trusted_files) and not _is_that_file(args[0], name)
            ):
                # a cell's, an import machinery's or a library file's name would make the
                # code count as the grader's or a library's in the frame rules
                state["events"].append(f"blocked compile as {name[:60]}")
                raise RuntimeError("that file name is reserved for the grader and the libraries")
            return
        if event == "open":
            path = args[0] if args else None
            if isinstance(path, str | bytes) and _proc_memory(path) and student_running():
                state["events"].append(f"blocked open({os.fsdecode(args[0])[:80]})")
                raise PermissionError("process memory files are not readable while grading")
            return
        if event == "os.chdir" and args and isinstance(args[0], str | bytes):
            if os.path.realpath(os.fsdecode(args[0])).startswith("/proc"):
                state["events"].append("blocked chdir into /proc")
                raise PermissionError("/proc is not a working directory while grading")
            return

    sys.addaudithook(hook)

    namespace_test: dict = {"__builtins__": builtins, "__name__": "__grading__"}
    test_names: set[str] = set()
    mode = start.get("mode", "student")
    _send(
        {
            "op": "ready",
            "t_import": round(t_import, 3),
            "vm_mb": vm_kb // 1024,
            "limit_mb": limit // 2**20,
            "syscall_filter": syscall_filter,
        },
        proto_fd,
        _write,
        _dumps,
    )

    for line in proto_in:
        msg = json.loads(line)
        token = msg.get("token", "")
        if msg.get("op") == "end":
            _send({"op": "done", "token": token}, proto_fd, _write, _dumps)
            return
        kind, gid = msg.get("kind"), msg.get("gid") or ""
        state["imports"], state["events"] = [], []
        changes.clear()
        test_defs.clear()
        cell.update(gid=gid, records={}, dup=[], foreign=[], violations=[])
        out = _Capture()
        result = {"op": "result", "token": token, "index": msg.get("index"), "ok": True}
        threads_before = _count_threads()
        t_cell = time.time()
        try:
            code = compile(
                msg["source"], f"<{kind} {gid or msg.get('index')}>", "exec", dont_inherit=True
            )
            del msg
            if kind in ("test", "setup"):
                _collect_codes(code, instructor_codes, instructor_refs)
            main_mod.__dict__["__builtins__"] = builtins  # a student's own would run in tests
            if kind == "test":
                restore()
                for key, value in main_mod.__dict__.items():
                    if key not in test_names and not key.startswith("__"):
                        namespace_test[key] = value
                namespace_test["__builtins__"] = builtins
                before = dict(namespace_test)
                target = namespace_test
            else:
                target = main_mod.__dict__
            sys.stdout = sys.stderr = out
            state["phase"] = "student"
            try:
                exec(code, target)  # noqa: S102 - this is what a grader does
            finally:
                state["phase"] = "trusted"
                sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            if kind == "test":
                test_names.update(k for k, v in namespace_test.items() if before.get(k) is not v)
        except BaseException as exc:  # noqa: BLE001 - every failure is a result
            state["phase"] = "trusted"
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            memory = _is_memory_error(exc)
            if memory:
                reserve.clear()  # room to report
            result.update(
                ok=False,
                ename=_type_name(exc),
                memory=memory,
                evalue=_safe_str(exc)[:300],
                origin=_origin(exc, gid),
            )
            if memory:
                import gc

                gc.collect()
                try:
                    reserve.append(bytearray(RESERVE_BYTES))
                except MemoryError:
                    result["stop"] = "the memory stayed full after the cell ran out of memory"
        if mode == "reference" or kind == "test":
            result["records"] = cell["records"]
        result.update(
            dup=cell["dup"],
            foreign=cell["foreign"][:20],
            violations=cell["violations"][:20],
            imports=sorted(set(state["imports"]))[:100],
            events=state["events"][:50],
            patched=sorted(set(changes))[:30],
            threads=max(0, _count_threads() - threads_before),
            stdout=out.text(),
            seconds=round(time.time() - t_cell, 4),
        )
        if kind == "test":
            restore()
        try:
            _send(result, proto_fd, _write, _dumps)
        except MemoryError:
            reserve.clear()
            _send(
                {
                    "op": "result",
                    "token": token,
                    "ok": False,
                    "ename": "MemoryError",
                    "memory": True,
                    "stop": "out of memory",
                },
                proto_fd,
                _write,
                _dumps,
            )
        if result.get("stop"):
            return


#: the functions that start and stop the autograd profiler (``torch._C._autograd``)
PROFILER_CONTROLS = (
    "_prepare_profiler",
    "_enable_profiler",
    "_disable_profiler",
    "_enable_profiler_legacy",
    "_disable_profiler_legacy",
)
#: process-wide machinery student code must not touch, by the module that defines it:
#: the profiler (the guard's trace), the dispatcher's kernel registry (a Python kernel for
#: ``aten::clone`` would rewrite records after the guard ended), new Python threads (the
#: profiler and the tracer follow one thread only) and the CPU thread pools (other workers)
SEALED = {
    "torch._C._autograd": PROFILER_CONTROLS,
    "torch._C": ("_dispatch_library", "set_num_threads", "set_num_interop_threads"),
    "_thread": ("start_new_thread", "start_new", "start_joinable_thread"),
    # renames a code object in place (the import system's fix-up after loading a .pyc)
    "_imp": ("_fix_co_filename",),
}
PROFILER_EVENT = "course_grade.profiler_control"
SEALED_EVENT = "course_grade.sealed"
#: operator namespaces no library may register kernels in while grading
PROTECTED_NAMESPACES = frozenset({"aten", "prims", "prim", "_refs", "quantized", "sparse", ""})


def _trusted_roots() -> tuple[str, ...]:
    """Directories of Python's and the installed libraries' files (read-only in the sandbox)."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    roots = {os.path.dirname(os.__file__), *site.getsitepackages()}
    roots |= {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # course_lib
    both = {r for root in roots if root for r in (root, os.path.realpath(root))}
    return tuple(sorted(os.path.join(r, "") for r in both))


def _is_that_file(source: object, path: str) -> bool:
    """Is ``source`` the text of the file at ``path`` (a library compiled from its source)?"""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if isinstance(source, str):
        source = source.encode()
    return isinstance(source, bytes | bytearray | memoryview) and bytes(source) == data


def _collect_codes(code: types.CodeType, ids: set[int], refs: list) -> None:
    """Add ``code`` and every code object nested in it (functions, classes, lambdas)."""
    ids.add(id(code))
    refs.append(code)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _collect_codes(const, ids, refs)


def _proc_memory(path: str | bytes) -> bool:
    """Would opening ``path`` reach a process's memory (``/proc/<pid>/mem`` and friends)?

    Normalised first (bytes, ``//proc``, ``..``, symbolic links); a relative path opened with
    ``dir_fd`` cannot be resolved here, so any file named like a memory file is refused, and so
    is every directory under ``/proc`` (the ``dir_fd`` such a path would need).
    """
    text = os.fsdecode(path)
    real = os.path.realpath(text)
    for name in (os.path.normpath(text), real):
        if os.path.basename(name) in ("mem", "pagemap", "maps", "smaps"):
            return True
    return real.startswith("/proc") and os.path.isdir(real)


def _seal(modules: dict | None = None) -> dict:
    """Replace every module attribute (any loaded module) bound to a :data:`SEALED` function.

    Each stand-in raises ``RuntimeError`` after an audit event the runner's hook reports.
    Returns ``unseal()`` (put the originals back, for the guard's own profiler start/stop)
    and ``reseal()``. The originals live only in these two closures; a stand-in's only
    closure cells are ``sys.audit`` and its name.
    """
    modules = sys.modules if modules is None else modules
    audit = sys.audit
    originals: dict[int, tuple[object, object]] = {}  # id -> (original, stand-in)
    for home, names in SEALED.items():
        mod = modules.get(home)
        for name in names:
            fn = getattr(mod, name, None) if mod is not None else None
            if fn is None:
                continue
            event = PROFILER_EVENT if name in PROFILER_CONTROLS else SEALED_EVENT

            def reserved(*args, _event=event, _name=name, **kwargs):  # noqa: ANN002, ANN003, ANN202
                box: list = []  # the hook may answer an allowed call (see ALLOWED_LIBRARIES)
                audit(_event, _name, args, kwargs, box)
                if box:
                    return box[0]
                raise RuntimeError(f"{_name} is reserved for the grader while grading")

            reserved.__name__ = reserved.__qualname__ = name
            originals[id(fn)] = (fn, reserved)
    sites = []  # (module dict, key, original, stand-in)
    for mod in list(modules.values()):
        d = getattr(mod, "__dict__", None) if mod is not None else None
        if not isinstance(d, dict):
            continue
        for key, value in list(d.items()):
            hit = originals.get(id(value))
            if hit is not None and hit[0] is value:
                sites.append((d, key, value, hit[1]))

    def reseal() -> None:
        for d, key, _, stand_in in sites:
            d[key] = stand_in

    def unseal() -> None:
        for d, key, value, _ in sites:
            d[key] = value

    by_name = {n: fn for fn, _ in originals.values() for n in (getattr(fn, "__name__", ""),)}

    def call(name: str, args: tuple, kwargs: dict):  # noqa: ANN202
        return by_name[name](*args, **kwargs)

    reseal()
    return {"unseal": unseal, "reseal": reseal, "call": call}


def _library_allowed(args: tuple) -> bool:
    """May ``torch._C._dispatch_library(kind, namespace, ...)`` run? Not for the core operators.

    torch registers libraries of its own lazily (``torch._dynamo`` on an optimiser's first
    step: ``_c10d_functional``, ``_inductor_test``, ...); a kernel for an ``aten``/``prims``
    operator would change what the grader's own tensor code computes.
    """
    return (
        len(args) >= 2
        and type(args[1]) is str
        and args[1] not in PROTECTED_NAMESPACES
        and not args[1].startswith(("aten", "prim"))
    )


def _no_signal(signalnum, handler, *, _orig=None, _state=None):  # noqa: ANN001, ANN202
    """``signal.signal`` while grading: refused for student code."""
    if _state is not None and _state["phase"] == "student":
        _state["events"].append("blocked signal.signal")
        raise RuntimeError("installing signal handlers is not allowed while grading")
    return _orig(signalnum, handler)


def _nothing() -> None:
    return None


def _process_start() -> float:
    """Wall-clock time at which this process started (so imports before serve() count)."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def _safe_str(exc: BaseException) -> str:
    """The exception's plain-string arguments; never calls a ``__str__``/``__repr__`` of its own."""
    args = BaseException.args.__get__(exc)
    return "; ".join(a for a in args if type(a) is str)


def _type_name(exc: BaseException) -> str:
    """``type(exc).__name__`` from the type slot (a metaclass property is not consulted)."""
    name = type.__dict__["__name__"].__get__(type(exc))
    return "".join(c for c in name if c.isalnum() or c == "_")[:100] or "Error"


def _origin(exc: BaseException, gid: str) -> str:
    """'student' when the innermost frame of the traceback is student code, else 'test'."""
    tb, origin = BaseException.__traceback__.__get__(exc), "test"
    while tb is not None:  # the innermost cell frame decides
        name = tb.tb_frame.f_code.co_filename
        if name.startswith("<answer "):
            origin = "student"
        elif name.startswith(("<test ", "<setup ")):
            origin = "test"
        tb = tb.tb_next
    return origin


def _send(msg: dict, fd: int, write, dumps) -> None:  # noqa: ANN001
    data = (dumps(msg) + "\n").encode()
    view = memoryview(data)
    while view:
        n = write(fd, view)
        view = view[n:]


def main() -> None:
    """Move the protocol to private descriptors, silence 0/1/2, serve."""
    proto_in = os.fdopen(os.dup(0), "r")
    proto_out = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115
    serve(proto_in, proto_out)
    os._exit(0)


if __name__ == "__main__":
    main()
