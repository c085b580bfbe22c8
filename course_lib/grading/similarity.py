"""Similarity report: which pairs of submissions share code, beyond what the release gave them.

``course-grade similarity ASSIGNMENT SUBMISSIONS --out DIR [--top 50] [--jobs N]``

1. From every submission (collected as ``autograde`` does, LMS names included) take the source
   of the **answer cells** (matched by grade id) and of any code cell a student added; test and
   locked cells are the release's and are never compared.
2. Fingerprint each with copydetect's MOSS-style winnowing (Schleimer, Wilkerson and Aiken 2003):
   the code is tokenised with Pygments and normalised (every variable name becomes ``V``, every
   function name ``F``, strings ``S``, comments and layout dropped), k-grams of ``k`` = 25
   normalised characters are hashed, and the minimum hash of each window of ``w`` k-grams is
   kept. Renamed variables, added comments and reordered functions therefore change little.
   K-grams that occur in the release's answer cells (signatures, docstrings,
   ``raise NotImplementedError()``) are *boilerplate* and discarded.
3. For every pair, ``similarity_a`` = the share of a's fingerprinted tokens found in b (and
   ``similarity_b`` the other way); pairs are ranked by their mean.

Writes ``DIR/similarity.csv`` (``rank, student_a, student_b, similarity, similarity_a,
similarity_b, shared_tokens`` for every pair sharing anything) and ``DIR/similarity.html`` (the
``--top`` pairs, their shared code highlighted side by side). Everything runs offline; pairs are
compared in ``--jobs`` processes.
"""

from __future__ import annotations

import argparse
import csv
import html
import io
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # copydetect imports matplotlib: load it only when comparing
    from copydetect import CodeFingerprint

NOISE_T = 25  # k: shortest normalised match that counts (copydetect's default)
GUARANTEE_T = 30  # every match this long is found: window w = GUARANTEE_T - NOISE_T + 1


@dataclass
class Pair:
    a: str
    b: str
    sim_a: float
    sim_b: float
    shared: int

    @property
    def score(self) -> float:
        return (self.sim_a + self.sim_b) / 2


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def answer_cells(release: dict) -> tuple[set[str], set[str], str]:
    """(answer grade ids, other grade ids, boilerplate = the release's answer-cell code)."""
    answers, others, boiler = set(), set(), []
    for cell in release.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        gid = meta.get("grade_id")
        if cell.get("cell_type") != "code" or not gid:
            continue
        if meta.get("solution"):
            answers.add(gid)
            boiler.append(_source(cell))
        else:
            others.add(gid)
    return answers, others, "\n\n".join(boiler)


def student_code(nb: dict, answers: set[str], others: set[str], release_sources: set[str]) -> str:
    """The code a student wrote: answer cells by grade id, plus code cells they added."""
    parts = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        src = _source(cell)
        if gid in answers or (gid not in others and src.strip() not in release_sources):
            parts.append(src)
    return "\n\n".join(parts)


def fingerprint(code: str, boilerplate: np.ndarray | None = None) -> CodeFingerprint:
    from copydetect import CodeFingerprint

    return CodeFingerprint(
        "answer.py",
        NOISE_T,
        GUARANTEE_T - NOISE_T + 1,
        boilerplate,
        True,
        "python",
        fp=io.StringIO(code),
    )


def boilerplate_hashes(code: str) -> np.ndarray:
    """Every k-gram hash of the release's code (window 1: all of them, as copydetect does)."""
    from copydetect import CodeFingerprint

    fp = CodeFingerprint("release.py", NOISE_T, 1, None, True, "python", fp=io.StringIO(code))
    return np.unique(np.array(list(fp.hashes), dtype=np.int64))


_BOILER: np.ndarray | None = None  # set before forking the workers


def _fingerprint(code: str) -> CodeFingerprint:
    return fingerprint(code, _BOILER)


def fingerprint_all(codes: list[str], boiler: np.ndarray, jobs: int = 1) -> list[CodeFingerprint]:
    """Fingerprints of ``codes`` (tokenising is most of the cost: spread over ``jobs``)."""
    global _BOILER
    _BOILER = boiler
    try:
        if jobs > 1 and len(codes) > 50:
            with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as ex:
                return list(ex.map(_fingerprint, codes, chunksize=16))
        return [_fingerprint(c) for c in codes]
    finally:
        _BOILER = None


_FPS: list[CodeFingerprint] = []  # set before forking the workers, read by _row


def _row(i: int) -> list[tuple[int, int, float, float, int]]:
    from copydetect import compare_files

    out = []
    fi = _FPS[i]
    for j in range(i + 1, len(_FPS)):
        if not fi.hashes or not _FPS[j].hashes or fi.hashes.isdisjoint(_FPS[j].hashes):
            continue
        shared, (s1, s2), _ = compare_files(fi, _FPS[j])
        if shared > 0:
            out.append((i, j, float(s1), float(s2), int(shared)))
    return out


def compare_all(fps: dict[str, CodeFingerprint], jobs: int = 1) -> list[Pair]:
    """Every pair sharing fingerprints, most similar first."""
    global _FPS
    names = sorted(fps)
    _FPS = [fps[n] for n in names]
    rows: list[tuple[int, int, float, float, int]] = []
    order = list(range(len(names)))
    if jobs > 1 and len(names) > 50:
        with ProcessPoolExecutor(jobs, mp_context=get_context("fork")) as ex:
            for part in ex.map(_row, order, chunksize=8):
                rows += part
    else:
        for i in order:
            rows += _row(i)
    _FPS = []
    pairs = [Pair(names[i], names[j], s1, s2, n) for i, j, s1, s2, n in rows]
    pairs.sort(key=lambda p: (-p.score, p.a, p.b))
    return pairs


def _side(fp: CodeFingerprint, slices: np.ndarray, css: str) -> str:
    from copydetect.utils import highlight_overlap

    if slices.shape[0] == 0 or slices.shape[1] == 0:
        return html.escape(fp.raw_code)
    text, _ = highlight_overlap(
        fp.raw_code, slices, f"<mark class='{css}'>", "</mark>", escape_html=True
    )
    return text


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .6rem}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-bottom:2.5rem}
pre{background:#f6f8fa;padding:.6rem;overflow-x:auto;font-size:.85rem;white-space:pre-wrap}
mark.a{background:#ffd6d6}mark.b{background:#d6f5d6}"""


def write_report(
    out: Path,
    assignment: str,
    fps: dict[str, CodeFingerprint],
    pairs: list[Pair],
    top: int,
    skipped: dict[str, str],
) -> None:
    from copydetect import compare_files

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "similarity.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "rank",
                "student_a",
                "student_b",
                "similarity",
                "similarity_a",
                "similarity_b",
                "shared_tokens",
            ]
        )
        for k, p in enumerate(pairs, start=1):
            w.writerow(
                [k, p.a, p.b, f"{p.score:.3f}", f"{p.sim_a:.3f}", f"{p.sim_b:.3f}", p.shared]
            )
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>Similarity: {html.escape(assignment)}</title>",
        f"<style>{_CSS}</style><h1>Similarity of the answers to {html.escape(assignment)}</h1>",
        f"<p>{len(fps)} submissions, {len(pairs)} pairs share code beyond the release's template. "
        "Similarity = share of a submission's fingerprinted code found in the other "
        "(copydetect winnowing, names and comments normalised away). A high score is a reason "
        "to read the two answers, not a verdict.</p>",
    ]
    if skipped:
        parts.append(
            "<p>Not compared: "
            + html.escape(", ".join(f"{k} ({v})" for k, v in sorted(skipped.items())))
            + "</p>"
        )
    parts.append(
        "<table><tr><th>#</th><th>a</th><th>b</th><th>similarity</th><th>a in b</th><th>b in a</th></tr>"
    )
    for k, p in enumerate(pairs[:top], start=1):
        parts.append(
            f"<tr><td><a href='#p{k}'>{k}</a></td><td>{html.escape(p.a)}</td><td>{html.escape(p.b)}</td>"
            f"<td>{p.score:.0%}</td><td>{p.sim_a:.0%}</td><td>{p.sim_b:.0%}</td></tr>"
        )
    parts.append("</table>")
    for k, p in enumerate(pairs[:top], start=1):
        _, _, (sa, sb) = compare_files(fps[p.a], fps[p.b])
        parts.append(
            f"<h2 id='p{k}'>{k}. {html.escape(p.a)} and {html.escape(p.b)}: {p.score:.0%}</h2><div class='pair'>"
            f"<div><h3>{html.escape(p.a)} ({p.sim_a:.0%} shared)</h3><pre>{_side(fps[p.a], sa, 'a')}</pre></div>"
            f"<div><h3>{html.escape(p.b)} ({p.sim_b:.0%} shared)</h3><pre>{_side(fps[p.b], sb, 'b')}</pre></div></div>"
        )
    (out / "similarity.html").write_text("\n".join(parts), encoding="utf-8")


def similarity(
    assignment: str,
    submissions: Path,
    out: Path,
    exercises: Path = Path("exercises"),
    top: int = 50,
    jobs: int | None = None,
) -> list[Pair]:
    """Collect, fingerprint, compare, write the report; returns the ranked pairs."""
    from course_lib.grading.autograde import collect

    release_path = Path(exercises) / assignment / f"{assignment}.ipynb"
    release = json.loads(release_path.read_text())
    answers, others, boiler = answer_cells(release)
    release_sources = {_source(c).strip() for c in release.get("cells", [])}
    boiler_hashes = boilerplate_hashes(boiler)
    codes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="cg-sim-") as work:
        for sub in collect(Path(submissions), assignment, Path(work)):
            if sub.path is None:
                skipped[sub.student_id] = sub.status
                continue
            try:
                nb = json.loads(sub.path.read_bytes())
                code = student_code(nb, answers, others, release_sources)
            except (ValueError, AttributeError, TypeError):
                skipped[sub.student_id] = "not a notebook"
                continue
            codes[sub.student_id] = code
    jobs = jobs or os.cpu_count() or 1
    fps: dict[str, CodeFingerprint] = {}
    for sid, fp in zip(codes, fingerprint_all(list(codes.values()), boiler_hashes, jobs)):
        if fp.hashes:
            fps[sid] = fp
        else:
            skipped[sid] = "nothing beyond the template"
    pairs = compare_all(fps, jobs)
    write_report(Path(out), assignment, fps, pairs, top, skipped)
    return pairs


def cmd_similarity(args: argparse.Namespace) -> int:
    pairs = similarity(
        args.assignment, args.submissions, args.out, args.exercises, args.top, args.jobs
    )
    print(f"{len(pairs)} pair(s) share code; wrote {args.out}/similarity.html and similarity.csv")
    for p in pairs[:5]:
        print(f"  {p.score:5.0%}  {p.a}  {p.b}")
    return 0


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("similarity", parents=parents, help="pairs of submissions sharing code")
    s.add_argument("assignment")
    s.add_argument("submissions", type=Path, help="folder or zip, as for autograde")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--top", type=int, default=50, help="pairs shown side by side (default 50)")
    s.add_argument("--jobs", type=int, default=None, help="processes (default: CPU count)")
    s.set_defaults(func=cmd_similarity)
