"""The sandboxed grading kernel: a kernelspec whose launcher wraps ipykernel in bubblewrap.

nbgrader (in a trusted worker process) starts kernels through a kernelspec. Ours runs::

    python -m course_lib.grading.sandbox {connection_file} [extra kernel args]

This launcher (trusted code, a few milliseconds) reads its settings from environment variables
set by the worker, applies resource limits and ``exec``s::

    bwrap --unshare-all-but-user ... --ro-bind <only what Python needs> \
          --bind <sandbox dir> <sandbox dir> --clearenv ... \
          python -m ipykernel_launcher -f {connection_file}

The kernel therefore sees a *whitelist* of the filesystem (``/usr``, a few ``/etc`` files, the
Python installation, the virtual environment and the ``course_lib`` package), never the
repository (``solutions/``), the submissions, the gradebooks or the output folder; it can write
only to its own sandbox directory and a private ``/tmp``; it has no network, its own PID
namespace (every process it forks dies with it), a cap on data memory (``RLIMIT_DATA``), on file
size and core dumps, and a clean environment (no ``NBGRADER_EXECUTION``, no secrets).
nbclient talks to it over ZMQ **IPC** sockets inside the sandbox directory.

Without bubblewrap (macOS, containers without user namespaces) the launcher falls back to an
unsandboxed kernel with the same limits and prints a loud warning; see README.md.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

#: Environment variables the worker sets for the launcher.
ENV_DIR = "COURSE_GRADE_SANDBOX_DIR"
ENV_MEMORY = "COURSE_GRADE_MEMORY_MB"
ENV_NOSANDBOX = "COURSE_GRADE_NO_SANDBOX"  # "1": run unsandboxed (fallback, tests of fallback)
KERNEL_NAME = "course-grade-sandbox"

_ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "passwd",
    "group",
    "nsswitch.conf",
    "localtime",
    "hosts",
    "mime.types",
    "ssl",
    "alternatives",
    "fonts",
)


def bwrap_path() -> str | None:
    """Path of the ``bwrap`` executable, or None when bubblewrap is not installed."""
    return shutil.which("bwrap")


@functools.lru_cache(maxsize=1)
def sandbox_available() -> bool:
    """True when kernels will run inside bubblewrap: Linux, ``bwrap`` installed and working.

    The probe runs ``true`` in a sandbox with the namespaces we use, so a kernel that forbids
    unprivileged user namespaces (e.g. Ubuntu 24.04's AppArmor default) is detected here.
    """
    bwrap = bwrap_path()
    if not sys.platform.startswith("linux") or bwrap is None:
        return False
    probe = [
        bwrap,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-net",
        "--unshare-pid",
        "--die-with-parent",
        "true",
    ]
    try:
        return subprocess.run(probe, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _readonly_roots() -> list[str]:
    """Directories the kernel needs to read: Python, the venv, course_lib, system libraries."""
    import course_lib

    roots = {
        "/usr",
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        str(Path(course_lib.__file__).resolve().parent),
    }
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    # drop roots nested inside another root
    ordered = sorted(roots, key=len)
    kept: list[str] = []
    for root in ordered:
        if not any(root == k or root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return kept


def kernel_env(sandbox_dir: str) -> dict[str, str]:
    """The complete environment of the kernel (everything else is cleared)."""
    return {
        "HOME": sandbox_dir,
        "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
        "IPYTHONDIR": os.path.join(sandbox_dir, ".ipython"),
        "MPLCONFIGDIR": os.path.join(sandbox_dir, ".mpl"),
        "MPLBACKEND": "Agg",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "COURSE_PROFILE": "ci",
        "COURSE_GRADE_RECORD_DIR": os.path.join(sandbox_dir, "records"),
        "LANG": "C.UTF-8",
    }


def bwrap_argv(sandbox_dir: str, command: list[str]) -> list[str]:
    """The bubblewrap command line that runs ``command`` sandboxed in ``sandbox_dir``."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
    argv = [
        bwrap,
        "--die-with-parent",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "grader",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--size",
        str(256 * 1024 * 1024),
        "--tmpfs",
        "/tmp",
    ]
    for name in ("bin", "lib", "lib64", "sbin", "lib32"):
        target = os.path.join("/", name)
        if os.path.islink(target):
            argv += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            argv += ["--ro-bind", target, target]
    for name in _ETC_FILES:
        path = os.path.join("/etc", name)
        if os.path.exists(path):
            argv += ["--ro-bind", path, path]
    for root in _readonly_roots():
        if os.path.exists(root):
            argv += ["--ro-bind", root, root]
    argv += ["--remount-ro", "/", "--bind", sandbox_dir, sandbox_dir]
    argv += ["--chdir", sandbox_dir, "--clearenv"]
    for key, value in kernel_env(sandbox_dir).items():
        argv += ["--setenv", key, value]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
    return argv + ["--", *command]


def _limit_resources(memory_mb: int) -> None:
    """Cap data memory, single-file size and core dumps for the kernel and its children."""
    data = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    fsize = 256 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def write_kernelspec(jupyter_dir: str) -> str:
    """Write the sandbox kernelspec under ``<jupyter_dir>/kernels/`` and return its name.

    Put ``jupyter_dir`` on ``JUPYTER_PATH`` and set ``Execute.kernel_name`` to the result.
    """
    folder = Path(jupyter_dir) / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "course_lib.grading.sandbox", "{connection_file}"],
        "display_name": "course-grade sandbox (Python 3)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
    return KERNEL_NAME


def main(argv: list[str] | None = None) -> None:
    """Kernel launcher: ``python -m course_lib.grading.sandbox CONNECTION_FILE [ARGS...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        raise SystemExit("usage: python -m course_lib.grading.sandbox CONNECTION_FILE [ARGS...]")
    sandbox_dir = os.environ.get(ENV_DIR) or os.getcwd()
    sandbox_dir = os.path.realpath(sandbox_dir)
    memory_mb = int(os.environ.get(ENV_MEMORY, "2048"))
    for sub in ("records", ".ipython", ".mpl"):
        os.makedirs(os.path.join(sandbox_dir, sub), exist_ok=True)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", args[0], *args[1:]]
    _limit_resources(memory_mb)
    if os.environ.get(ENV_NOSANDBOX) == "1" or bwrap_path() is None:
        print(
            "WARNING: course-grade is running a student kernel WITHOUT a sandbox "
            "(bubblewrap missing or disabled): student code can read and write your files.",
            file=sys.stderr,
        )
        env = kernel_env(sandbox_dir)
        os.chdir(sandbox_dir)
        os.execve(sys.executable, kernel, env)
    cmd = bwrap_argv(sandbox_dir, kernel)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
