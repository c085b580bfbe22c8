"""Static flags for answer cells: what in a student's source reaches for forbidden routes.

:func:`scan` parses an answer cell (never runs it) and returns one flag per finding, with its
line: imports and attribute chains that reach a forbidden target or the module of a
non-torch one (``scipy.special``, ``sklearn.metrics``), imports of libraries the exercises do
not need, and the dynamic features that hide a route from a reader: ``importlib``,
``__import__``, ``getattr``/``setattr``/``delattr`` with a computed name, ``eval``/``exec``/
``compile``, ``globals()``/``vars()``, frames (``sys._getframe``, ``tb_frame``), closures and
code objects, ``In``/``Out``/``get_ipython``, ``sys.modules``, ``torch._C`` and dispatch modes,
the grading helpers. Import aliases are followed (``import torch.nn.functional as F`` makes
``F.softmax`` read ``torch.nn.functional.softmax``).

A flag is a reason for the instructor to read the code; the runtime guard
(:mod:`course_lib.grading.runner`) decides points.
"""

from __future__ import annotations

import ast

#: top-level modules an answer may import without a flag
ALLOWED_IMPORTS = frozenset(
    {
        "__future__", "abc", "collections", "contextlib", "copy", "dataclasses", "enum", "functools",
        "itertools", "math", "numbers", "numpy", "operator", "random", "statistics", "torch",
        "typing", "warnings", "course_lib",
    }
)  # fmt: skip
DYNAMIC_CALLS = frozenset({"eval", "exec", "compile", "__import__", "globals", "locals", "vars",
                           "breakpoint", "memoryview"})  # fmt: skip
SPECIAL_NAMES = frozenset({"In", "Out", "_ih", "_oh", "get_ipython",
                           "__builtins__", "__loader__", "__spec__", "exit", "quit"})  # fmt: skip
SUSPICIOUS_ATTRS = frozenset(
    {
        "_getframe", "_current_frames", "settrace", "setprofile", "gettrace", "getprofile",
        "f_back", "f_locals", "f_globals", "f_code", "tb_frame", "gi_frame", "cr_frame",
        "__closure__", "__globals__", "__code__", "__defaults__", "__kwdefaults__",
        "cell_contents", "__dict__", "__subclasses__", "__mro__", "__bases__", "__self__",
        "__func__", "__wrapped__", "__builtins__", "_C", "_python_dispatch",
        "_disable_current_modes", "__torch_dispatch__", "__torch_function__", "modules",
        "environ", "_exit", "addaudithook", "attrgetter", "methodcaller", "import_module",
        "ast_transformers", "input_transformers_post", "showtraceback", "set_custom_exc",
        "__array_interface__", "__array_struct__", "as_strided", "_fix_co_filename",
    }
)  # fmt: skip
FLAGGED_PREFIXES = ("course_lib.grading", "importlib", "ctypes", "gc", "inspect", "sys.modules",
                    "subprocess", "socket", "signal", "threading", "multiprocessing", "os.system",
                    "builtins", "torch._C", "torch.utils._python_dispatch", "torch.overrides",
                    "torch._dynamo", "torch.library", "marshal", "_imp", "_posixsubprocess",
                    "_thread", "numpy.lib.stride_tricks")  # fmt: skip


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(aliases.get(node.id, node.id))
        return ".".join(reversed(parts))
    return None


def _reaches(name: str, target: str) -> bool:
    return name == target or name.startswith(target + ".")


def scan(
    source: str, forbidden: frozenset[str] | set[str] = frozenset(), cell: str = ""
) -> list[str]:
    """Flags for one answer cell, e.g. ``"softmax line 3: uses torch.nn.functional.softmax"``."""
    where = f"{cell} " if cell else ""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"{where}line {exc.lineno}: syntax error"]
    targets = {t for t in forbidden if not t.startswith("aten.")}
    modules = {t.rsplit(".", 1)[0] for t in targets if not t.startswith(("torch", "course_lib"))}
    aliases: dict[str, str] = {}
    flags: list[str] = []

    def flag(node: ast.AST, text: str) -> None:
        flags.append(f"{where}line {getattr(node, 'lineno', 0)}: {text}")

    def check_name(node: ast.AST, name: str) -> None:
        for t in sorted(targets):
            if _reaches(name, t):
                flag(node, f"uses {t} (forbidden in this exercise)")
                return
        for m in sorted(modules):
            if _reaches(name, m):
                flag(node, f"uses {m} (the library of a forbidden function)")
                return
        for p in FLAGGED_PREFIXES:
            if _reaches(name, p):
                flag(node, f"uses {p}")
                return

    for node in ast.walk(tree):  # first the aliases (imports may come after their use)
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = (
                    a.name if a.asname else a.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [f"{node.module or ''}.{a.name}" for a in node.names]
            )
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED_IMPORTS:
                    flag(node, f"imports {name.strip('.')}")
                else:
                    check_name(node, name)
        elif isinstance(node, ast.Attribute):
            if node.attr in SUSPICIOUS_ATTRS:
                flag(node, f"accesses .{node.attr}")
            name = _dotted(node, aliases)
            if name and not isinstance(getattr(node, "ctx", None), ast.Store):
                check_name(node, name)
            if isinstance(node.ctx, ast.Store) and name and name.split(".")[0] in {
                "torch", "numpy", "math", "course_lib", "sys", "builtins"
            }:  # fmt: skip
                flag(node, f"assigns {name} (changes a library)")
        elif isinstance(node, ast.Name):
            if node.id in SPECIAL_NAMES:
                flag(node, f"uses {node.id}")
            elif node.id in aliases and isinstance(node.ctx, ast.Load):
                check_name(node, aliases[node.id])
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            fn = node.func.id
            if fn in DYNAMIC_CALLS:
                flag(node, f"calls {fn}()")
            elif fn in ("getattr", "setattr", "delattr", "hasattr") and len(node.args) >= 2:
                if not isinstance(node.args[1], ast.Constant):
                    flag(node, f"calls {fn}() with a computed name")
                elif str(node.args[1].value).startswith("_"):
                    flag(node, f"calls {fn}() on the private name {node.args[1].value!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for t in sorted(targets | modules):
                if t in node.value or t.rsplit(".", 1)[-1] == node.value:
                    flag(node, f"names {t} in a string")
                    break
    seen: set[str] = set()
    return [f for f in flags if not (f in seen or seen.add(f))]


def forbidden_targets(test_sources: list[str]) -> frozenset[str]:
    """Every dotted name passed to ``forbidden(...)`` or listed in a ``FORBID`` tuple of tests."""
    found: set[str] = set()
    for source in test_sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                v = node.value
                if "." in v and " " not in v and v.split(".")[0] in (
                    "torch", "sklearn", "scipy", "course_lib", "numpy", "aten"
                ):  # fmt: skip
                    found.add(v)
    return frozenset(found)
