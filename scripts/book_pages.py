"""Generate the parts of the book that follow from the files present in the repository.

Usage (from the repository root)::

    .venv/bin/python scripts/book_pages.py           # write _toc.yml, exercise pages, API pages
    .venv/bin/python scripts/book_pages.py --check   # exit 1 naming every generated file that is stale

Chapters are written one by one by different authors, so the table of contents lists only the
chapter notebooks that exist (``book/NN_*.ipynb`` from :data:`CHAPTERS`). The same goes for
exercise pages (one per assignment, always there so that chapters can link to them; the
download link appears once the notebook is released in ``exercises/``), the API reference (one page per
``course_lib`` module present) and the chapter map in ``book/intro.md`` (between the
``chapter-map`` markers). ``scripts/build_book.sh`` runs this before every build.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lectures of the syllabus (/work/shared/seeds), by the key the chapter table uses for them: the
# title the book cites them by, then the heading of the deck itself (so a student can find it).
DECKS = {
    "A": (
        "CNNs, ResNet, regularisation, normalisation",
        "“03 CNNs, ResNet, regularisation, normalisation”",
    ),
    "B": ("Recap: losses, activations and training tricks", "“Lecture 7 Recap”"),
    "C": ("Review: data, capacity and optimisers", "“CS 462 – Lecture 12: Review”"),
    "D": ("Convolutional neural networks", "“Lecture 4: Convolutional Neural Networks”, AI II"),
    "E": (
        "Deep learning optimisation II",
        "“Lecture 4: Deep learning optimization II”, Deep Learning 1",
    ),
}


@dataclass(frozen=True)
class Chapter:
    stem: str
    title: str
    decks: str
    topics: str


CHAPTERS = [
    Chapter(
        "01_losses_activations_init",
        "Losses, activations and initialisation",
        "B, C",
        "L1/L2, hinge and cross-entropy losses; sigmoid, tanh, ReLU; Xavier and Kaiming init",
    ),
    Chapter(
        "02_convolutions",
        "Convolutions",
        "D, A, C",
        "convolution maths, filters, padding/stride/dilation, pooling, receptive fields, CNN priors, "
        "MLP vs ConvNet",
    ),
    Chapter(
        "03_classic_architectures",
        "Classic architectures",
        "D",
        "LeNet-5, AlexNet, VGG, Inception, depthwise-separable convolutions, fine-tuning",
    ),
    Chapter(
        "04_residual_networks",
        "Residual networks",
        "A, D",
        "degradation, residual learning, highway nets, ResNet v1/v2, bottlenecks, WRN, ResNeXt, "
        "DenseNet",
    ),
    Chapter(
        "05_evaluating_classifiers",
        "Evaluating classifiers",
        "A",
        "precision/recall/F1, averages, ROC/PR, MCC, splits, cross-validation (grouped, "
        "time-series, nested), Wilcoxon test",
    ),
    Chapter(
        "06_calibration_uncertainty",
        "Calibration and uncertainty",
        "A, B",
        "ECE/MCE/AdaECE, reliability diagrams, temperature, Platt and isotonic scaling, "
        "ensembles, MC dropout",
    ),
    Chapter(
        "07_overfitting_capacity",
        "Overfitting and capacity",
        "E, C",
        "bias-variance, capacity, random-label memorisation, double descent, depth vs width",
    ),
    Chapter(
        "08_regularisation",
        "Regularisation",
        "A, B, E, D",
        "L1/L2 and weight decay, early stopping, dropout, augmentation, label smoothing, mixup/CutMix",
    ),
    Chapter(
        "09_normalisation",
        "Normalisation",
        "A, B, E",
        "input normalisation, BatchNorm (train vs test), LayerNorm, GroupNorm, InstanceNorm",
    ),
    Chapter(
        "10_optimisation",
        "Optimisation",
        "C, E, B, D",
        "SGD, momentum, Nesterov, Adam/AdamW, schedules and warmup, batch size, sharp vs flat minima",
    ),
    Chapter(
        "11_looking_inside_a_cnn",
        "Looking inside a CNN",
        "D, A",
        "filters and feature maps, receptive fields, feature visualisation, saliency, integrated "
        "gradients, Grad-CAM, sanity checks, circuits and ablation",
    ),
    Chapter(
        "12_practice_of_training",
        "The practice of training",
        "D, E, B",
        "data quality, loss design, curriculum learning, experiment logging, hyperparameter "
        "search, mixed precision, gradient clipping, test-time augmentation",
    ),
]


@dataclass(frozen=True)
class Exercise:
    name: str
    title: str
    chapters: tuple[str, ...]
    tasks: str


EXERCISES = [
    Exercise(
        "ex01_losses_init",
        "Losses and initialisation",
        ("01_losses_activations_init",),
        "stable softmax and log-softmax, cross-entropy from logits, multi-class hinge loss, "
        "Kaiming-normal initialisation",
    ),
    Exercise(
        "ex02_convolution",
        "Convolution from scratch",
        ("02_convolutions",),
        "output-size formula, conv2d forward with stride/padding/dilation, max-pooling, "
        "receptive field of a layer stack",
    ),
    Exercise(
        "ex03_resnet",
        "Residual networks",
        ("04_residual_networks",),
        "basic residual block with identity and projection shortcuts, a CIFAR ResNet of depth "
        "6n+2 and its plain twin",
    ),
    Exercise(
        "ex04_metrics_calibration",
        "Metrics and calibration",
        ("05_evaluating_classifiers", "06_calibration_uncertainty"),
        "confusion matrix, precision/recall/F1 with macro/micro/weighted averages, AUROC, ECE, "
        "temperature fitting",
    ),
    Exercise(
        "ex05_regularisation",
        "Regularisation",
        ("08_regularisation",),
        "inverted dropout, L1/L2 penalties, label-smoothing loss, mixup, an early-stopping tracker",
    ),
    Exercise(
        "ex06_normalisation",
        "Normalisation layers",
        ("09_normalisation",),
        "BatchNorm in training and eval mode with running statistics, LayerNorm, GroupNorm",
    ),
    Exercise(
        "ex07_optimisers",
        "Optimisers and schedules",
        ("10_optimisation",),
        "SGD with momentum and Nesterov, Adam and AdamW steps, a warmup + cosine learning-rate schedule",
    ),
    Exercise(
        "ex08_interpretability",
        "Looking inside a CNN",
        ("11_looking_inside_a_cnn",),
        "gradient saliency, integrated gradients (right Riemann sum), Grad-CAM, channel ablation "
        "with a forward hook",
    ),
    Exercise(
        "ex09_training_practice",
        "The practice of training",
        ("12_practice_of_training",),
        "a CSV logging callback, teacher-loss difficulty scores, a paced easy-to-hard curriculum, "
        "global gradient-norm clipping by hand",
    ),
]

# course_lib modules in reading order; anything else found is appended alphabetically.
MODULE_ORDER = [
    "runtime",
    "data",
    "train",
    "models",
    "layers",
    "metrics",
    "regularisers",
    "optim",
    "plotting",
]
# Instructor tooling (documented in README), not part of the students' API reference.
MODULES_NOT_DOCUMENTED = {"grading"}

# Numbers the generated prose spells out as words.
NUMBER_WORDS = {
    1: "One",
    2: "Two",
    3: "Three",
    4: "Four",
    5: "Five",
    6: "Six",
    7: "Seven",
    8: "Eight",
    9: "Nine",
    10: "Ten",
    11: "Eleven",
    12: "Twelve",
}

MAP_START = "<!-- chapter-map:start (generated by scripts/book_pages.py) -->"
MAP_END = "<!-- chapter-map:end -->"
GENERATED = "<!-- Generated by scripts/book_pages.py; edit that script, not this file. -->"


def notebook_title(path: Path) -> str | None:
    """First markdown ``# heading`` of a notebook, if any."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source", []))
        match = re.search(r"^#\s+(.+?)\s*$", source, flags=re.M)
        if match:
            return match.group(1).strip()
    return None


def present_chapters(root: Path) -> list[Chapter]:
    return [c for c in CHAPTERS if (root / "book" / f"{c.stem}.ipynb").is_file()]


def released_exercises(root: Path) -> list[Exercise]:
    return [e for e in EXERCISES if (root / "exercises" / e.name / f"{e.name}.ipynb").is_file()]


def api_modules(root: Path) -> list[tuple[str, list[str]]]:
    """``(module, submodules)`` for every public module/package of course_lib present."""
    pkg = root / "course_lib"
    found: dict[str, list[str]] = {}
    for path in sorted(pkg.iterdir()) if pkg.is_dir() else []:
        if path.name.startswith("_") or path.stem in MODULES_NOT_DOCUMENTED:
            continue
        if path.suffix == ".py":
            found[path.stem] = []
        elif path.is_dir() and (path / "__init__.py").is_file():
            found[path.name] = sorted(
                p.stem
                for p in path.glob("*.py")
                if not p.name.startswith("_") and p.stem not in {"cli"}
            )
    order = [m for m in MODULE_ORDER if m in found] + sorted(set(found) - set(MODULE_ORDER))
    return [(m, found[m]) for m in order]


def toc(root: Path) -> str:
    lines = [
        "# Table of contents, generated by scripts/book_pages.py from the files present.",
        "# Do not edit by hand: add the notebook under book/ and run the script (or the build).",
        "format: jb-book",
        "root: book/intro",
        "parts:",
    ]
    chapters = present_chapters(root)
    if chapters:
        lines += ["  - caption: Chapters", "    chapters:"]
        lines += [f"      - file: book/{c.stem}" for c in chapters]
    lines += ["  - caption: Exercises", "    chapters:", "      - file: book/exercises"]
    lines.append("        sections:")
    lines += [f"          - file: book/exercises/{e.name}" for e in EXERCISES]
    lines += ["  - caption: Reference", "    chapters:", "      - file: book/api"]
    modules = api_modules(root)
    if modules:
        lines.append("        sections:")
        lines += [f"          - file: book/api/{m}" for m, _ in modules]
    lines += ["      - file: book/bibliography", ""]
    return "\n".join(lines)


def _chapter_ref(root: Path, stem: str) -> str:
    chapter = next(c for c in CHAPTERS if c.stem == stem)
    if (root / "book" / f"{stem}.ipynb").is_file():
        return f"{{doc}}`Chapter {stem[:2].lstrip('0')} <../{stem}>`"
    return f"Chapter {stem[:2].lstrip('0')}, *{chapter.title}* (not yet published)"


def exercise_page(root: Path, ex: Exercise, repo_url: str, branch: str) -> str:
    nb_rel = f"exercises/{ex.name}/{ex.name}.ipynb"
    title = notebook_title(root / nb_rel) or ex.title
    title = re.sub(r"^(Exercise\s*\d*\s*[:.\-\u2014]\s*)", "", title)
    number = int(ex.name[2:4])
    chapters = ", ".join(_chapter_ref(root, stem) for stem in ex.chapters)
    colab = (
        f"https://colab.research.google.com/github/{_github_path(repo_url)}/blob/{branch}/{nb_rel}"
    )
    if (root / nb_rel).is_file():
        get = f"""- {{download}}`Download notebook </{nb_rel}>` (`{ex.name}.ipynb`) and open it in
  Jupyter (local CPU is enough), or
- [Open in Colab]({colab}) (`{ex.name}.ipynb` from the course repository). Save a copy to
  your Drive first (*File → Save a copy in Drive*) so your work is kept.

The notebook's first cell installs `course_lib` when it runs on Colab and does nothing elsewhere."""
    else:
        get = "This exercise is not released yet; its notebook will be downloadable from this page."
    return f"""{GENERATED}
# Exercise {number}: {title}

**Goes with:** {chapters}.
**You implement:** {ex.tasks}.

## Get the notebook

{get}

## Work on it

Write your code only where the notebook says `YOUR CODE HERE` (and delete the
`raise NotImplementedError()` line there). Do not call the library function you are asked to
write: hidden tests check that your version stands on its own. Leave the test cells and the
cells' order as they are; do not rename the file.

## Check before you submit

Run every cell (*Kernel → Restart & Run All*), then self-check the notebook from a terminal in
the repository:

```bash
course-grade validate {nb_rel}
```

It runs the visible tests, checks that the locked cells are intact and that the notebook
belongs to this assignment, and exits non-zero when anything fails. Passing the visible tests
is a first check only: hidden tests with other inputs decide most of the points.

## Submit

Upload the single file `{ex.name}.ipynb` (unrenamed, with your outputs) where your course
says. It is graded automatically: every submission runs in a fresh sandbox with the hidden
tests restored, and you get an HTML feedback report per test cell.
"""


def _github_path(url: str) -> str:
    return re.sub(r"^https://github\.com/", "", url.rstrip("/")).removesuffix(".git")


def exercises_index(root: Path) -> str:
    released = {e.name for e in released_exercises(root)}
    rows = []
    for ex in EXERCISES:
        number = int(ex.name[2:4])
        name = f"{{doc}}`{ex.title} <exercises/{ex.name}>`"
        note = "" if ex.name in released else " (not yet released)"
        chapters = ", ".join(
            f"{{doc}}`{stem[:2]} <{stem}>`"
            if (root / "book" / f"{stem}.ipynb").is_file()
            else stem[:2]
            for stem in ex.chapters
        )
        rows.append(f"| {number} | {name}{note} | {chapters} | {ex.tasks} |")
    table = "\n".join(rows)
    count = NUMBER_WORDS.get(len(rows), str(len(rows)))
    return f"""{GENERATED}
# Exercises

{count} graded exercises go with the chapters. Each is a Jupyter notebook in which you implement
3–6 functions or modules yourself; visible tests give a first self-check and hidden tests,
run when your submission is graded, decide most of the points.

| # | exercise | chapter | you implement |
|---|---|---|---|
{table}

How every exercise works:

1. **Get it**: download the student notebook from its page (or open it on Colab).
2. **Solve it** where the notebook says `YOUR CODE HERE`; keep the test cells as they are.
3. **Self-check** with `course-grade validate exercises/<name>/<name>.ipynb`: it exits
   non-zero when a visible test fails or a locked cell was changed.
4. **Submit** the single notebook file, unrenamed, as your course says. Grading runs every
   submission in its own sandbox and returns an HTML feedback report.
"""


def api_index(root: Path) -> str:
    modules = api_modules(root)
    lines = [
        GENERATED,
        "# API reference",
        "",
        "Generated from the docstrings of `course_lib` (the library the chapters import). "
        "Shapes, formulas and defaults are documented where the code is.",
        "",
    ]
    lines += [f"- {{doc}}`course_lib.{m} <api/{m}>`" for m, _ in modules]
    return "\n".join(lines) + "\n"


def api_page(module: str, submodules: list[str]) -> str:
    qualified = f"course_lib.{module}"
    if not submodules:
        body = f"```{{eval-rst}}\n.. automodule:: {qualified}\n```\n"
    else:
        body = f"```{{eval-rst}}\n.. automodule:: {qualified}\n   :no-members:\n```\n"
        for sub in submodules:
            body += f"\n## `{qualified}.{sub}`\n\n```{{eval-rst}}\n.. automodule:: {qualified}.{sub}\n```\n"
    return f"{GENERATED}\n# `{qualified}`\n\n{body}"


def chapter_map(root: Path) -> str:
    rows = []
    for c in CHAPTERS:
        number = int(c.stem[:2])
        path = root / "book" / f"{c.stem}.ipynb"
        if path.is_file():
            title = re.sub(r"^\d+\.?\s+", "", notebook_title(path) or c.title)
            name = f"{{doc}}`{title} <{c.stem}>`"
        else:
            name = f"{c.title} *(in preparation)*"
        lectures = ", ".join(f"*{DECKS[k.strip()][0]}*" for k in c.decks.split(","))
        rows.append(f"| {number} | {name} | {c.topics} | {lectures} |")
    decks = "\n".join(f"| *{title}* | {heading} |" for title, heading in DECKS.values())
    return (
        f"{MAP_START}\n| # | chapter | topics | lectures |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\nThe chapters cite the lectures by these titles; the second column is the heading"
        + " of the lecture's own slides.\n\n| lecture | slides headed |\n|---|---|\n"
        + f"{decks}\n{MAP_END}"
    )


def with_chapter_map(intro: str, root: Path) -> str:
    if MAP_START not in intro or MAP_END not in intro:
        raise SystemExit(f"book/intro.md needs the markers {MAP_START!r} and {MAP_END!r}")
    head, rest = intro.split(MAP_START, 1)
    _, tail = rest.split(MAP_END, 1)
    return head + chapter_map(root) + tail


def repository(root: Path) -> tuple[str, str]:
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8")) or {}
    repo = config.get("repository") or {}
    return str(repo.get("url", "")).rstrip("/"), str(repo.get("branch") or "main")


def generated_files(root: Path) -> dict[Path, str]:
    """Every generated file with the content it should have."""
    url, branch = repository(root)
    files: dict[Path, str] = {
        root / "_toc.yml": toc(root),
        root / "book" / "exercises.md": exercises_index(root),
        root / "book" / "api.md": api_index(root),
    }
    for ex in EXERCISES:
        files[root / "book" / "exercises" / f"{ex.name}.md"] = exercise_page(root, ex, url, branch)
    for module, subs in api_modules(root):
        files[root / "book" / "api" / f"{module}.md"] = api_page(module, subs)
    intro = root / "book" / "intro.md"
    if intro.is_file():
        files[intro] = with_chapter_map(intro.read_text(encoding="utf-8"), root)
    return files


def stale_generated(root: Path) -> list[Path]:
    """Generated pages in book/exercises and book/api whose source is gone."""
    wanted = set(generated_files(root))
    stale = []
    for folder in ("exercises", "api"):
        for path in sorted((root / "book" / folder).glob("*.md")):
            if path not in wanted and GENERATED in path.read_text(encoding="utf-8"):
                stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args(argv)
    root = args.root.resolve()

    files = generated_files(root)
    changed = [p for p, text in files.items() if not p.is_file() or p.read_text("utf-8") != text]
    leftovers = stale_generated(root)
    if args.check:
        for path in changed + leftovers:
            print(f"stale: {path.relative_to(root)}", file=sys.stderr)
        if changed or leftovers:
            print("Fix: .venv/bin/python scripts/book_pages.py", file=sys.stderr)
            return 1
        return 0
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(root)}")
    for path in leftovers:
        path.unlink()
        print(f"removed {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
