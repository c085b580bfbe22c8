"""README.md is the front door: its commands and code must stay true."""

import re
from pathlib import Path

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_library_snippet_runs():
    section = README.split("## The library in one screen", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("epochs=20", "epochs=2")  # same code, shorter run
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    history = namespace["history"]
    assert history.epoch == [1, 2] and history.val_acc[-1] > 0.5
    plt.close("all")


def test_quickstart_commands_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"^make (\w+)", README, re.M):
        assert re.search(rf"^{target}:", makefile, re.M), f"README mentions `make {target}`"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
