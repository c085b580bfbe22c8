"""The Colab setup cell keeps Colab's torch, installs a fixed release, and resolves on Colab.

- The cell's pip command, run for real (``--dry-run``, offline, against a throw-away wheel),
  keeps the interpreter's installed torch: pip refuses a package that would need another one.
- The configured install ref is a release tag or commit, and matches the library version.
- A dry-run resolve of the runtime dependencies against Colab's recorded runtime
  (``tests/fixtures/colab_packages.txt``, refresh instructions inside) keeps its torch,
  torchvision and numpy. Needs the package registry; skipped with the reason when unreachable.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import ssl
import subprocess
import sys
import types
import urllib.request
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
COLAB_LIST = ROOT / "tests" / "fixtures" / "colab_packages.txt"
KEPT = ("torch", "torchvision", "numpy")
INDEX = "https://pypi.org/simple"

spec = importlib.util.spec_from_file_location("colab_cell", ROOT / "scripts" / "colab_cell.py")
colab_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(colab_cell)


def _hermetic_pip_env() -> dict[str, str]:
    """This machine's pip configuration (local indexes, wheel folders, caps) switched off."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if os.environ.get("PIP_CERT"):
        env["PIP_CERT"] = os.environ["PIP_CERT"]
    return env


def _run_cell_on_fake_colab(monkeypatch, capsys) -> tuple[list[str], str]:
    """Execute the configured cell as Colab would, with pip replaced: (pip argv, printed text)."""
    url, ref = colab_cell.repository()
    calls = []
    monkeypatch.setattr("subprocess.run", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(compile(colab_cell.cell_source(url, ref), "<colab-setup>", "exec"), {})
    assert len(calls) == 1 and calls[0][1]["check"] is True
    return calls[0][0][0], capsys.readouterr().out


def _wheel(folder: Path, name: str, requires: list[str], ver: str = "1.0") -> Path:
    """A minimal pure-Python wheel ``name-ver`` with the given requirements (no code)."""
    dist = f"{name}-{ver}.dist-info"
    files = {
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
            name, ver, "".join(f"Requires-Dist: {r}\n" for r in requires)
        ),
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    path = folder / f"{name}-{ver}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


def test_cell_pins_the_installed_torch_and_installs_the_configured_release(monkeypatch, capsys):
    argv, out = _run_cell_on_fake_colab(monkeypatch, capsys)
    url, ref = colab_cell.repository()
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert argv[-1] == f"course_lib @ git+{url}.git@{ref}"
    constraints = Path(argv[argv.index("-c") + 1]).read_text().split()
    assert constraints == [f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]
    assert "installed: nothing (already present)" in out  # pip was faked: nothing changed
    assert f"kept: torch {version('torch')} | torchvision {version('torchvision')}" in out


@pytest.mark.slow
@pytest.mark.parametrize("torch_range", [">=2.4", ">=99"], ids=["compatible", "needs-new-torch"])
def test_cell_pip_command_never_replaces_the_installed_torch(
    monkeypatch, capsys, tmp_path, torch_range
):
    """pip itself, given the cell's command, offline, with a newer torch (99.0) on offer: it
    keeps the installed torch, or refuses rather than replace it; without the cell's
    constraints the same install would replace torch (the control)."""
    argv, _ = _run_cell_on_fake_colab(monkeypatch, capsys)
    monkeypatch.undo()  # the real subprocess.run from here on
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "fakecourse", [f"torch{torch_range}"])
    _wheel(wheels, "torch", [], ver="99.0")  # a newer torch than the installed one

    def dry_run(args: list[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
        report = tmp_path / "report.json"
        report.unlink(missing_ok=True)
        cmd = args[:-1] + ["--dry-run", "--no-index", "--find-links", str(wheels)]
        cmd += ["--report", str(report), "fakecourse"]
        result = subprocess.run(
            cmd, capture_output=True, text=True, env=_hermetic_pip_env(), timeout=120
        )
        report_items = json.loads(report.read_text())["install"] if report.exists() else []
        return result, [f"{i['metadata']['name']} {i['metadata']['version']}" for i in report_items]

    result, installs = dry_run(argv)
    if torch_range == ">=2.4":
        assert result.returncode == 0, result.stderr
        assert installs == ["fakecourse 1.0"]  # torch 99.0 is on offer; the installed one stays
    else:
        assert result.returncode != 0 and "conflicting dependencies" in result.stderr
        i = argv.index("-c")
        control, installs = dry_run(argv[:i] + argv[i + 2 :])
        assert control.returncode == 0 and "torch 99.0" in installs  # what the pins prevent


def test_install_ref_is_a_release_of_this_version_or_a_commit():
    _, ref = colab_cell.repository()
    assert colab_cell.FIXED_REF.fullmatch(ref)
    if tomllib is not None and ref.startswith("v"):
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert ref == f"v{project['version']}", (
            "repository.install_ref in _config.yml names another release than pyproject.toml's "
            "version: bump both, run scripts/colab_cell.py, tag the commit"
        )


@pytest.mark.parametrize("ref", ["main", "master", "dev", "HEAD", "", "v1.x"])
def test_moving_refs_are_refused(tmp_path, ref):
    config = tmp_path / "_config.yml"
    config.write_text(f"repository:\n  url: https://github.com/o/r\n  install_ref: '{ref}'\n")
    with pytest.raises(SystemExit, match="install_ref"):
        colab_cell.repository(config)


def colab_runtime(path: Path = COLAB_LIST) -> tuple[str, dict[str, str]]:
    """``(python "X.Y", {name: version})`` of the recorded Colab runtime, for torch/torchvision/numpy."""
    text = path.read_text(encoding="utf-8")
    python = re.search(r"^# python (3\.\d+)$", text, re.M)
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, re.M))
    pins = {name.lower(): v for name, v in pins.items() if name.lower() in KEPT}
    assert python and set(pins) == set(KEPT), f"{path} needs '# python X.Y' and pins of {KEPT}"
    return python.group(1), pins


def runtime_dependencies() -> list[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S).group(1)
    return re.findall(r'"([^"]+)"', block)


def _registry_unreachable() -> str | None:
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        urllib.request.urlopen(f"{INDEX}/pip/", timeout=10, context=context).close()
    except OSError as err:
        return f"package registry {INDEX} unreachable ({err}): Colab resolve not checked"
    return None


def test_recorded_colab_runtime_is_readable_and_python_is_supported():
    python, pins = colab_runtime()
    assert pins["torch"].startswith("2.11.0")
    classifiers = (ROOT / "pyproject.toml").read_text()
    assert f"Programming Language :: Python :: {python}" in classifiers


@pytest.mark.slow
def test_runtime_dependencies_resolve_on_colab_without_changing_torch_or_numpy(tmp_path):
    """pip resolves course_lib's dependencies for Colab's Python with its torch/torchvision/numpy
    pinned (as installed: pip keeps an installed package that satisfies a range). Fails when a
    dependency range forces another torch, torchvision or numpy. About 40 s (metadata only)."""
    reason = _registry_unreachable()
    if reason:
        pytest.skip(reason)
    python, pins = colab_runtime()
    # PyPI serves torch 2.11.0 without Colab's "+cu128" local tag: the same release.
    wanted = {name: v.split("+")[0] for name, v in pins.items()}
    constraints = tmp_path / "colab-constraints.txt"
    constraints.write_text("".join(f"{n}=={v}\n" for n, v in wanted.items()))
    report = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--python-version", python, "--only-binary=:all:", "--index-url", INDEX,
        "--target", str(tmp_path / "target"), "-c", str(constraints), "--report", str(report),
        *runtime_dependencies(),
    ]  # fmt: skip
    result = subprocess.run(
        cmd, capture_output=True, text=True, env=_hermetic_pip_env(), timeout=600
    )
    assert result.returncode == 0, (
        f"course_lib's dependencies do not resolve on Colab (Python {python}) with "
        f"{', '.join(f'{n} {v}' for n, v in pins.items())} kept:\n{result.stderr[-3000:]}"
    )
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert {n: resolved.get(n) for n in KEPT} == wanted


# ------------------------------------------------------------------------------ Binder


def _requirements(path: Path) -> dict[str, str]:
    """``{name: specifier}`` of a requirements file (comments and pip options dropped)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name = re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            found[name.lower()] = line[len(name) :]
    return found


def test_binder_installs_the_runtime_dependencies_only_with_cpu_torch():
    binder = _requirements(ROOT / "binder" / "requirements.txt")
    runtime = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in runtime_dependencies()}
    assert set(binder) == runtime  # no dev tools (nbgrader, jupyter-book, playwright, ...)
    assert binder["torch"].endswith("+cpu") and binder["torchvision"].endswith("+cpu")
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    # the pins satisfy pyproject's ranges, and pair as released (torch 2.N <-> torchvision 0.N+15)
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins = {n: Version(binder[n].lstrip("=")) for n in ("torch", "torchvision")}
    for requirement in map(Requirement, runtime_dependencies()):
        if requirement.name in pins:
            assert requirement.specifier.contains(pins[requirement.name], prereleases=False)
    assert pins["torchvision"].minor == pins["torch"].minor + 15
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-cache-dir --no-deps -e ." in post  # keeps the CPU torch
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK)
    assert re.fullmatch(r"python-3\.1[0-3]\n", (ROOT / "binder" / "runtime.txt").read_text())
