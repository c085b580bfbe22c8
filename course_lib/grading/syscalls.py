"""A seccomp filter for the grading runner: once student code may run, no process or thread starts.

The audit hook of :mod:`course_lib.grading.runner` refuses the Python routes to a new process
(``os.fork``, ``subprocess``, ``os.posix_spawn``, ...), but some routes raise no audit event at
all (``_posixsubprocess.fork_exec``, a re-imported ``_thread``). A new process or thread runs
outside the guard's trace and the runner's limits, so the kernel refuses the system calls
themselves: ``clone``/``clone3`` (threads and processes alike), ``fork``, ``vfork``, ``execve``,
``execveat``, the calls that read or write another process's memory (``ptrace``,
``process_vm_readv``/``writev``), and timers and signals (``alarm``, ``setitimer``,
``timer_create``, ``kill``/``tkill``/``tgkill``, ...): a student's alarm would end the runner
at a moment set by the machine's load, so the status would depend on timing. Each fails with
``EPERM``; Python turns that into an
``OSError`` or ``RuntimeError("can't start new thread")`` in the student's cell.

The filter is installed after the runner's warm-up (torch's thread pools are sized to one thread
and its lazy initialisation has run) and before the audit hook; it applies to this process only,
cannot be removed, and needs ``libseccomp`` (through ``pyseccomp``). Where either is missing,
:func:`deny_new_tasks` says so and the runner reports it; the audit hook still holds.
"""

from __future__ import annotations

import errno

#: system calls refused once the filter is loaded
DENIED = (
    "clone",
    "clone3",
    "fork",
    "vfork",
    "execve",
    "execveat",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # signals and timers: a student's alarm would end the runner at a time set by the load
    "alarm",
    "setitimer",
    "timer_create",
    "kill",
    "tkill",
    "tgkill",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "pidfd_send_signal",
)


def deny_new_tasks() -> str:
    """Load the filter into this process; return ``"seccomp"`` or why it could not be loaded."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:  # no package, or no libseccomp.so
        return f"unavailable ({type(exc).__name__}: {exc})"[:200]
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        for name in DENIED:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        rules.load()
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. a kernel without seccomp
        return f"unavailable ({type(exc).__name__}: {exc})"[:200]
    return "seccomp"
