"""The sandbox around a grading runner: bubblewrap with a whitelist of the filesystem.

The parent starts every submission's runner (:mod:`course_lib.grading.runner`) through
:func:`runner_command`, which (on Linux with bubblewrap) is::

    bwrap --new-session --die-with-parent --unshare-net --unshare-pid ... \
          --ro-bind <only what Python needs> --bind <sandbox dir> <sandbox dir> --clearenv ... \
          python -c "from course_lib.grading.runner import main; main()"

The runner therefore sees a *whitelist* of the filesystem (``/usr``, a few ``/etc`` files, the
Python installation, the virtual environment and the ``course_lib`` package), never the
repository (``solutions/``), the submissions, the gradebooks or the output folder; it can write
only to its own sandbox directory and a private ``/tmp``; it has no network, its own PID
namespace (every process it forks dies with it), its own session (``--new-session``: it cannot
push keystrokes into the grader's terminal with TIOCSTI), caps on file size and core dumps (set
here) and on its address space (set by the runner once torch is imported, see
:func:`course_lib.grading.runner.serve`), and a clean environment (no ``NBGRADER_*``, no
secrets). The protocol runs over the process's stdin/stdout pipes, no sockets.

Without bubblewrap (macOS, containers without user namespaces) the runner runs unsandboxed
with the same limits; ``course-grade`` prints a loud warning, see README.md.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

MAX_FILE_BYTES = 256 * 1024 * 1024
#: size of the sandbox's writable working directory (a tmpfs; /tmp is another of 256 MB)
WORKDIR_BYTES = 128 * 1024 * 1024

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
        "OPENBLAS_NUM_THREADS": "1",  # no BLAS thread pool: the runner starts no threads (syscalls.py)
        "COURSE_PROFILE": "ci",
        "LANG": "C.UTF-8",
    }


def bwrap_argv(sandbox_dir: str, command: list[str]) -> list[str]:
    """The bubblewrap command line that runs ``command`` sandboxed in ``sandbox_dir``."""
    bwrap = bwrap_path()
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed: apt-get install -y bubblewrap")
    argv = [
        bwrap,
        "--new-session",
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
    # the working directory is a sized tmpfs too: a submission cannot fill the host's disk
    # (the parent reads nothing back from it; it is gone when the sandbox ends)
    argv += ["--remount-ro", "/", "--size", str(WORKDIR_BYTES), "--tmpfs", sandbox_dir]
    argv += ["--dir", os.path.join(sandbox_dir, ".ipython")]
    argv += ["--dir", os.path.join(sandbox_dir, ".mpl")]
    argv += ["--chdir", sandbox_dir, "--clearenv"]
    for key, value in kernel_env(sandbox_dir).items():
        argv += ["--setenv", key, value]
    if os.geteuid() == 0:
        argv += ["--cap-drop", "ALL"]
    return argv + ["--", *command]


def limit_resources() -> None:
    """Cap single-file size and core dumps (``preexec_fn`` of the runner process)."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def runner_command(sandbox_dir: str, sandboxed: bool) -> tuple[list[str], dict[str, str] | None]:
    """``(argv, env)`` that start a grading runner in ``sandbox_dir`` (``env`` None: use argv's)."""
    sandbox_dir = os.path.realpath(sandbox_dir)
    for sub in (".ipython", ".mpl"):
        os.makedirs(os.path.join(sandbox_dir, sub), exist_ok=True)
    # imported, not run as __main__: the runner's functions must belong to course_lib.grading
    command = [sys.executable, "-c", "from course_lib.grading.runner import main; main()"]
    if sandboxed:  # bwrap itself keeps our environment; the runner's is cleared (--clearenv)
        return bwrap_argv(sandbox_dir, command), None
    env = kernel_env(sandbox_dir)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # find course_lib as we do
    return command, env
