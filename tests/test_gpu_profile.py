"""The gpu profile's code path on CPU: ``runtime.settings`` under ``COURSE_SCALE``, the fixture
data and kernel set-up ``make notebooks-gpu-profile`` uses, and the CPU rehearsal of
``scripts/gpu_check.sh`` (``GPU_CHECK_DRY_RUN=1``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import runtime
from course_lib.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]

TABLE = {
    "ci": dict(dataset="mnist5k", n_train=256, epochs=1, widths=(8, 16), lr=0.1, threads=1,
               flip=False, tag="ci"),
    "cpu": dict(dataset="mnist5k", n_train=2000, epochs=8, widths=(16, 32), lr=0.1, threads=1,
                flip=False, tag="cpu"),
    "gpu": dict(dataset="cifar10", n_train=None, epochs=40, widths=(32, 128), lr=0.01,
                threads=None, flip=True, tag="gpu", amp="bf16", wrn=(16, 4)),
}  # fmt: skip


@pytest.mark.parametrize("scale", ["", "full", " FULL "])
def test_full_scale_is_the_profile_entry_unchanged(monkeypatch, scale):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_SCALE", scale)
    s = runtime.settings(TABLE)
    assert s == TABLE["gpu"] and s is not TABLE["gpu"]
    s["epochs"] = 1
    assert TABLE["gpu"]["epochs"] == 40  # a copy


def test_tiny_scale_takes_ci_sizes_and_keeps_the_profile_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_SCALE", "tiny")
    assert runtime.settings(TABLE) == dict(
        dataset="cifar10", flip=True, tag="gpu", amp="bf16",  # choices: the gpu code path
        n_train=256, threads=1,  # None ("all", "default") is a size: capped too
        epochs=1, widths=(8, 16), lr=0.1,  # sizes from ci
        wrn=(16, 4),  # no ci entry: unchanged
    )  # fmt: skip


def test_tiny_cpu_profile_is_the_cpu_choices_with_ci_sizes(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    monkeypatch.setenv("COURSE_SCALE", "tiny")
    s = runtime.settings(TABLE)
    assert s == {**TABLE["ci"], "tag": "cpu"}


def test_unknown_scale_is_refused(monkeypatch):
    monkeypatch.setenv("COURSE_SCALE", "small")
    with pytest.raises(ValueError, match="COURSE_SCALE='small'.*full, tiny"):
        runtime.settings(TABLE)


def test_fixture_files_load_in_every_torchvision_format(tmp_path, monkeypatch):
    """What the gpu-profile notebooks read: the four datasets from files, through a kernel
    started with the fixture's IPython startup file (CIFAR's MD5 check relaxed)."""
    subprocess.run(
        [sys.executable, "-m", "tests.fixtures.torchvision_files", str(tmp_path)],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    startup = tmp_path / "ipython" / "profile_default" / "startup" / "00-fixture-cifar-md5.py"
    namespace: dict = {}
    exec(compile(startup.read_text(), str(startup), "exec"), namespace)
    assert "os" not in namespace  # leaves a plain kernel's namespace
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    shapes = {
        name: tuple(load_dataset(name, "test").x.shape[1:])
        for name in ("mnist", "fashion_mnist", "cifar10", "cifar100")
    }
    assert shapes == {
        "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
        "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
    }  # fmt: skip
    train = load_dataset("cifar100", "trainval")
    assert len(train) == 1200 and int(train.y.max()) == 99
    # the label sits in pixel (0, 0): images and labels stay paired through the loading code
    assert (train.x[:, 0, 0, 0] * 255).round().long().tolist() == train.y.tolist()


def test_make_test_runs_the_gpu_profile_of_every_chapter():
    make = (ROOT / "Makefile").read_text()
    test_target = re.search(r"^test:(.*)$", make, re.M).group(1).split()
    assert "notebooks-gpu-profile" in test_target
    recipe = make.split("notebooks-gpu-profile: $(STAMP)", 1)[1].split("\n\n", 1)[0]
    for needle in ("COURSE_PROFILE=gpu", "COURSE_SCALE=tiny", "COURSE_OFFLINE=1", "COURSE_DATA=",
                   "IPYTHONDIR=", "--nbval-lax", "-p tests.nbval_execute_only"):  # fmt: skip
        assert needle in recipe, needle
    assert recipe.rstrip().endswith(" book")  # every book/*.ipynb, present and future


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step_on_cpu(tmp_path):
    """The device check's CPU rehearsal: gpu tests collected (skipped), resume identical,
    benchmark ratio printed, a chapter executed into a copy, one report with the figures."""
    report = tmp_path / "report.md"
    env = dict(os.environ, GPU_CHECK_DRY_RUN="1", GPU_CHECK_CHAPTERS="01",
               GPU_WHEELS=str(tmp_path / "no-wheels"), PYTHON=sys.executable)  # fmt: skip
    env.pop("COURSE_PROFILE", None)
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    text = report.read_text()
    assert result.returncode == 0, text[-4000:] + result.stderr[-2000:]
    assert "DRY RUN on CPU" in text and "skipped in the dry run: no " in text
    assert re.search(r"pytest -m gpu \(\d+ files\): ok", text)
    assert re.search(r"\d+ skipped", text)  # the gpu tests were collected and skipped here
    assert "resume on cpu: epochs [1, 2, 3, 4], max |w_resumed - w_straight| = 0\n" in text
    assert re.search(r"ratio trainer/bare", text)
    assert re.search(r"\| 01_\w+\.ipynb \| cpu \| - \| [\d.]+ \|", text)
    assert text.rstrip().endswith("all steps passed")
    executed = list((tmp_path / "report-notebooks").glob("01_*.ipynb"))
    assert len(executed) == 1  # the executed copy; book/ itself is never written
