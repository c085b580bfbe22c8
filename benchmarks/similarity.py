"""Speed of ``course-grade similarity`` on a large class: 500 synthetic ex01 submissions.

Run:  .venv/bin/python benchmarks/similarity.py [--students 500] [--repeats 3]

Builds a class of ``--students`` notebooks from the real ex01 release: every student's answer
cells are generated code (random helper functions, names, constants and statement order, about
the length of a real answer), five pairs of them are near-copies (renamed, reordered,
commented). Then, side by side in one run and alternating, the whole command (collect, parse,
fingerprint, compare every pair, write CSV + HTML) with ``--jobs 2`` and ``--jobs 1``. Prints
the median wall time of each, the spread, the ratio jobs2/jobs1, and whether the planted copies
are the top five pairs.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path

from course_lib.grading.similarity import similarity

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
ASSIGNMENT = "ex01_losses_init"

STATEMENTS = [
    "{a} = {b} * {k} + {c}",
    "{a} = torch.exp({b} - {b}.amax(dim={d}, keepdim=True))",
    "{a} = {b}.sum(dim={d}, keepdim=True)",
    "{a} = {b} / ({c} + {k}e-9)",
    "{a} = torch.log({b}.clamp_min({k}e-12))",
    "{a} = {b}.gather(1, {c}.view(-1, 1)).squeeze(1)",
    "{a} = torch.where({b} > {k}, {b}, {c})",
    "{a} = [{b}[i] * {k} for i in range(len({c}))]",
    "{a} = torch.stack([{b}, {c}], dim={d})",
    "if {b}.ndim > {k}:\n        {a} = {b}.flatten(1)\n    else:\n        {a} = {c}",
    "for i in range({k}):\n        {a} = {a} + {b} * i - {c}",
    "{a} = max({b}.shape[0], {k}) // ({k} + 1)",
    "{a} = ({b} - {c}).pow(2).mean(dim={d})",
    "{a} = torch.nn.functional.relu({b} - {c} + {k})",
    "assert {b}.shape == {c}.shape, 'shape {k}'",
]
NAMES = "x y z t u v w p q r s m n val out acc tmp res buf row col arr vec mat logit prob".split()


def _function(rng: random.Random, name: str) -> str:
    args = rng.sample(NAMES, 3)
    local = list(args)
    body = []
    for _ in range(rng.randint(5, 9)):
        a = rng.choice(NAMES)
        b, c = rng.choice(local), rng.choice(local)
        text = rng.choice(STATEMENTS).format(
            a=a, b=b, c=c, k=rng.randint(1, 9), d=rng.choice([0, 1, -1])
        )
        body.append(text)
        local.append(a)
    body.append(f"return {local[-1]}")
    return f"def {name}({', '.join(args)}):\n    " + "\n    ".join(body) + "\n"


def _answers(rng: random.Random) -> dict[str, str]:
    out = {}
    for gid in ("softmax", "log_softmax", "cross_entropy", "multiclass_hinge_loss"):
        helpers = [_function(rng, f"_{gid}_{k}") for k in range(rng.randint(0, 2))]
        out[gid] = "\n\n".join(helpers + [_function(rng, gid)])
    return out


def _disguise(rng: random.Random, answers: dict[str, str]) -> dict[str, str]:
    out = {}
    for gid, code in answers.items():
        funcs = code.split("\n\n")
        rng.shuffle(funcs)
        code = "\n\n".join(funcs)
        for old in rng.sample(NAMES, 6):
            code = code.replace(f" {old} ", f" {old}_{rng.randint(0, 9)} ")
        out[gid] = "# my solution\n" + code.replace("\n    return", "\n    # done\n    return")
    return out


def make_class(folder: Path, n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    release = json.loads((EXERCISES / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text())
    planted = []
    answers = {f"s{i:04d}": _answers(rng) for i in range(n)}
    for k in range(5):
        src, dst = f"s{k:04d}", f"s{n - 1 - k:04d}"
        answers[dst] = _disguise(rng, answers[src])
        planted.append((src, dst))
    for sid, ans in answers.items():
        nb = copy.deepcopy(release)
        for cell in nb["cells"]:
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if gid in ans:
                cell["source"] = ans[gid]
        (folder / f"{sid}.ipynb").write_text(json.dumps(nb))
    return planted


LOAD0 = os.getloadavg()


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished worker processes."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--students", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        planted = make_class(subs, args.students)
        times: dict[int, list[float]] = {2: [], 1: []}
        cpu: dict[int, list[float]] = {2: [], 1: []}
        top = []
        for _ in range(args.repeats):
            for jobs in (2, 1):
                c0, t0 = _cpu(), time.perf_counter()
                pairs = similarity(ASSIGNMENT, subs, Path(tmp) / f"out{jobs}", EXERCISES, jobs=jobs)
                times[jobs].append(time.perf_counter() - t0)
                cpu[jobs].append(_cpu() - c0)
                top = pairs
        n_pairs = args.students * (args.students - 1) // 2
        print(
            f"{args.students} submissions ({n_pairs} pairs), {os.cpu_count()} CPU(s), {args.repeats} runs each"
        )
        print(f"load average before: {LOAD0[0]:.1f} (a busy machine stretches wall times)")
        for jobs, ts in times.items():
            print(
                f"  --jobs {jobs}: median {statistics.median(ts):6.1f} s wall "
                f"(min {min(ts):.1f}, max {max(ts):.1f}), "
                f"{statistics.median(cpu[jobs]):.1f} CPU s (this process + its workers)"
            )
        found = {frozenset((q.a, q.b)) for q in top[:5]}
        print(
            f"planted copies in the top 5 pairs: {len(found & {frozenset(x) for x in planted})}/5"
        )
        ratio = statistics.median(times[2]) / statistics.median(times[1])
        print(
            f"ratio jobs2/jobs1: {ratio:.2f} (whole command, {statistics.median(times[2]):.1f} s with 2 jobs)"
        )


if __name__ == "__main__":
    main()
