"""Where the code runs: device choice, seeding, the course profile and an environment report.

Every chapter notebook starts with::

    from course_lib import runtime
    runtime.report()                 # versions, device, profile
    P = runtime.profile()            # "ci" | "cpu" | "gpu"

and reads its sizes (epochs, subset sizes, widths) from a settings dict keyed by ``P``.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import warnings

import numpy as np
import torch

PROFILES = ("ci", "cpu", "gpu")
SCALES = ("full", "tiny")


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple MPS, then CPU.

    ``prefer`` (e.g. ``"cpu"``) forces a device; the environment variable
    ``COURSE_DEVICE`` does the same for a whole notebook run. Under ``torchrun`` (the
    environment variable ``LOCAL_RANK`` is set) a CUDA device without an index becomes
    ``cuda:LOCAL_RANK``: each process on a machine uses its own GPU.
    """
    choice = prefer or os.environ.get("COURSE_DEVICE")
    if choice:
        device = torch.device(choice)
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        mps = getattr(torch.backends, "mps", None)
        device = torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def profile() -> str:
    """The active course profile: ``"ci"``, ``"cpu"`` or ``"gpu"``.

    Read from the environment variable ``COURSE_PROFILE``. When it is unset the
    profile is ``"gpu"`` if CUDA is available and ``"cpu"`` otherwise.

    - ``ci``: seconds per notebook, tiny subsets; only proves that every cell runs.
    - ``cpu``: a laptop, offline datasets, minutes per chapter; results show the lesson.
    - ``gpu``: Colab or a workstation, the real datasets and full-length training.
    """
    value = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not value:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if value not in PROFILES:
        raise ValueError(
            f"COURSE_PROFILE={value!r} is not a course profile; use one of {', '.join(PROFILES)} "
            "(or unset it to pick 'gpu' when CUDA is available and 'cpu' otherwise)."
        )
    return value


def scale() -> str:
    """The active size scale: ``"full"`` (default) or ``"tiny"``, from ``COURSE_SCALE``.

    ``tiny`` runs the *code path* of any profile with the ``ci`` profile's sizes, so the
    ``gpu`` branch of every chapter can be executed on a CPU in CI (see :func:`settings`).
    """
    value = os.environ.get("COURSE_SCALE", "").strip().lower() or "full"
    if value not in SCALES:
        raise ValueError(f"COURSE_SCALE={value!r} is not a scale; use one of {', '.join(SCALES)}.")
    return value


def _is_size(value) -> bool:
    """Numbers and tuples of numbers are sizes; strings, booleans and ``None`` are choices."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, (tuple, list)) and all(_is_size(v) for v in value)


def _is_size_or_all(value) -> bool:
    """A size, or ``None`` where a size is expected (``n_train=None``: all of it; ``threads=None``)."""
    return value is None or _is_size(value)


def settings(table: dict[str, dict]) -> dict:
    """The settings of the active profile from a notebook's ``SETTINGS`` table.

    ``table`` maps each profile name to a dict of sizes and choices. Returns a copy of
    ``table[profile()]``. Under ``COURSE_SCALE=tiny`` every *size* (a number, a tuple of
    numbers, or ``None`` standing for "all"/"default") that the ``ci`` entry also defines is
    replaced by the ``ci`` value, while the *choices* (dataset names, flags) of the active
    profile stay: the gpu profile's code runs with CI's sizes.
    """
    active = dict(table[profile()])
    if scale() == "tiny":
        for key, value in table["ci"].items():
            if key in active and _is_size_or_all(active[key]) and _is_size_or_all(value):
                active[key] = value
    return active


def seed_everything(seed: int = 0, deterministic: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device); choose kernel determinism.

    ``deterministic=True`` turns cuDNN autotuning off and asks PyTorch for deterministic
    kernels (it warns, rather than fails, where none exists); ``deterministic=False`` (the
    default) switches both requests off again (PyTorch's defaults; ``cudnn.benchmark`` stays
    as it is), so the setting of the last call is the one in force.
    ``CUBLAS_WORKSPACE_CONFIG``, which deterministic cuBLAS needs, is set only if it is unset,
    and only matters before the first CUDA matrix product of the process.

    Python's ``hash()`` of strings (and so the iteration order of a ``set`` of strings) is
    fixed when the interpreter starts: set ``PYTHONHASHSEED`` in the environment *before*
    launching Python if you need it; setting it here would have no effect.

    Returns a ``torch.Generator`` seeded with ``seed``: pass it to a ``DataLoader``
    (``generator=g``) together with ``worker_init_fn=seed_worker`` so that the shuffling
    order and the random augmentations in worker processes repeat from run to run.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=seed_worker)``: give each worker its own, repeatable seed.

    PyTorch seeds its own generator per worker from the loader's generator, but not
    NumPy's or Python's; without this every worker would draw the same NumPy numbers.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def environment() -> dict[str, str]:
    """Versions, device and profile as a dict (what :func:`report` prints)."""
    import torchvision

    device = get_device()
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "device": str(device),
        "profile": profile(),
        "threads": str(torch.get_num_threads()),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        from course_lib import __version__

        info["course_lib"] = __version__
    except ImportError:  # pragma: no cover - only while the package is half-imported
        pass
    return info


def report(file=None) -> dict[str, str]:
    """Print a one-line environment report for the first cell of a notebook; return it."""
    info = environment()
    line = " | ".join(f"{k} {v}" for k, v in info.items())
    print(line, file=file or sys.stdout)
    return info


def quiet_warnings() -> None:
    """Silence known-harmless library warnings that would clutter notebook output."""
    warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
