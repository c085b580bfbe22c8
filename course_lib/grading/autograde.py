"""Grade a class: collect submissions, grade them in parallel sandboxes, merge in the parent.

Flow of ``course-grade autograde ASSIGNMENT SUBMISSIONS --out DIR``::

    solutions/<a>  --nbgrader generate-->  template course (release + gradebook), in /tmp/cg-*/
    submissions    --parse + rebuild---->  one notebook per student (template + answer cells)
    reference (source notebook) + canary (untouched release)   graded first, then the students,
    each by a worker process (nbgrader autograde, own course dir + gradebook, sandboxed kernel)
    parent: nbgrader scores x record comparison -> DIR/grades.csv, DIR/feedback/*.html,
            DIR/report.json, DIR/.course-grade-state.json (for incremental re-runs)
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

import nbformat

from course_lib.grading import feedback, rebuild, sandbox, verify
from course_lib.grading.release import generate

GRADER_VERSION = "1"
STATE_FILE = ".course-grade-state.json"
NO_NOTEBOOK = "no-notebook"
AMBIGUOUS = "ambiguous"
OK = "ok"
RESTORED = "restored"
OUT_OF_MEMORY = "out-of-memory"
_ID = re.compile(r"[^A-Za-z0-9_.@+-]")
_MEMORY_ERRORS = (
    "MemoryError",
    "can't allocate memory",
    "not enough memory",
    "Cannot allocate memory",
)


class GradingSetupError(RuntimeError):
    """The assignment itself is broken (reference fails its tests, canary scores points)."""


@dataclass
class Submission:
    student_id: str
    path: Path | None
    digest: str = ""
    status: str = OK
    detail: str = ""


@dataclass
class Result:
    """One student's merged result (a row of grades.csv plus details)."""

    student_id: str
    status: str
    total: float = 0.0
    tests: dict[str, dict] = field(default_factory=dict)  # gid -> {points, max, message}
    notes: list[str] = field(default_factory=list)
    digest: str = ""
    seconds: float = 0.0
    flags: list[str] = field(default_factory=list)  # suspicious code for the instructor to read
    log: str = ""  # the end of nbgrader's log when grading failed

    def to_json(self) -> dict:
        return self.__dict__.copy()


# ----------------------------------------------------------------------------------------------
# collecting submissions
# ----------------------------------------------------------------------------------------------
def _student_id(name: str) -> str:
    return _ID.sub("_", name)[:80] or "unnamed"


def _safe_extract(zpath: Path, dest: Path, max_total: int = 2 * 1024**3) -> Path:
    total = 0
    with zipfile.ZipFile(zpath) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("/") or ".." in Path(name).parts or info.is_dir():
                continue
            if name.startswith("__MACOSX/") or Path(name).name.startswith("."):
                continue
            total += info.file_size
            if total > max_total:
                raise ValueError(f"{zpath} expands to more than {max_total // 2**30} GiB")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():  # a zip that wraps everything in one folder
        inner = list(entries[0].iterdir())
        if len(inner) > 1 or any(p.is_dir() for p in inner):
            return entries[0]
    return dest


def collect(submissions: Path, assignment: str, workdir: Path) -> list[Submission]:
    """One :class:`Submission` per ``<id>.ipynb`` file or ``<id>/`` folder (zip: extracted first)."""
    submissions = Path(submissions)
    if submissions.is_file() and zipfile.is_zipfile(submissions):
        root = _safe_extract(submissions, workdir / "unzipped")
    elif submissions.is_dir():
        root = submissions
    else:
        raise FileNotFoundError(f"{submissions} is neither a folder nor a zip of submissions")
    found: list[Submission] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.is_symlink():
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append(Submission(_student_id(entry.stem), entry))
        elif entry.is_dir():
            sid = _student_id(entry.name)
            notebooks = [p for p in entry.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
            notebooks = [p for p in notebooks if not p.is_symlink()]
            exact = [p for p in notebooks if p.name == f"{assignment}.ipynb"]
            if len(exact) == 1:
                found.append(Submission(sid, exact[0]))
            elif len(notebooks) == 1:
                found.append(Submission(sid, notebooks[0]))
            elif not notebooks:
                found.append(Submission(sid, None, status=NO_NOTEBOOK, detail="no .ipynb file"))
            else:
                found.append(
                    Submission(
                        sid,
                        None,
                        status=AMBIGUOUS,
                        detail=f"{len(notebooks)} notebooks, none named {assignment}.ipynb",
                    )
                )
    seen: Counter[str] = Counter()
    for sub in found:  # make ids unique (bob.ipynb and bob/ both present)
        seen[sub.student_id] += 1
        if seen[sub.student_id] > 1:
            sub.student_id = f"{sub.student_id}-{seen[sub.student_id]}"
    for sub in found:
        if sub.path is not None:
            sub.digest = hashlib.sha256(sub.path.read_bytes()).hexdigest()
    return found


# ----------------------------------------------------------------------------------------------
# the worker pool
# ----------------------------------------------------------------------------------------------
class Pool:
    """``n`` persistent worker processes; each job gets a wall-clock limit."""

    def __init__(self, n: int, timeout: float) -> None:
        self.n = max(1, n)
        self.timeout = timeout

    @staticmethod
    def _start() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "course_lib.grading.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

    def run(self, jobs: list[dict], on_done=None) -> dict[str, dict]:
        """Run all jobs; returns job id -> worker answer (``status`` "timeout" when killed)."""
        queue: Queue = Queue()
        for job in jobs:
            queue.put(job)
        results: dict[str, dict] = {}
        lock = threading.Lock()

        def slot() -> None:
            proc: subprocess.Popen | None = None
            buffer = ""
            try:
                while True:
                    try:
                        job = queue.get_nowait()
                    except Empty:
                        return
                    if proc is None or proc.poll() is not None:
                        proc, buffer = self._start(), ""
                    t0 = time.time()
                    answer = None
                    try:
                        proc.stdin.write(json.dumps(job) + "\n")
                        proc.stdin.flush()
                        fd = proc.stdout.fileno()
                        while answer is None:
                            left = t0 + self.timeout - time.time()
                            if left <= 0:
                                break
                            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                            if not ready:
                                continue
                            chunk = os.read(fd, 1 << 16).decode()
                            if not chunk:  # worker died
                                break
                            buffer += chunk
                            if "\n" in buffer:
                                line, buffer = buffer.split("\n", 1)
                                answer = json.loads(line)
                    except (BrokenPipeError, json.JSONDecodeError, OSError):
                        answer = None
                    if answer is None:
                        timed_out = time.time() - t0 >= self.timeout
                        self._kill(proc)
                        proc = None
                        answer = {
                            "status": "timeout" if timed_out else "kernel-died",
                            "detail": f"no result within {self.timeout:g} s (wall clock)"
                            if timed_out
                            else "the grading process died",
                        }
                    answer["seconds"] = round(time.time() - t0, 2)
                    with lock:
                        results[job["id"]] = answer
                    if on_done:
                        on_done(job, answer)
            finally:
                if proc is not None:
                    try:
                        proc.stdin.close()
                        proc.wait(timeout=10)
                    except Exception:  # noqa: BLE001
                        self._kill(proc)

        threads = [
            threading.Thread(target=slot, daemon=True) for _ in range(min(self.n, len(jobs)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


# ----------------------------------------------------------------------------------------------
# merging
# ----------------------------------------------------------------------------------------------
def _memory_trouble(nb) -> bool:
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                text = f"{out.get('ename', '')} {out.get('evalue', '')}"
                if any(m in text for m in _MEMORY_ERRORS):
                    return True
    return False


def _error_message(nb, gid: str) -> str:
    for cell in nb.cells:
        if rebuild.nbgrader_meta(cell).get("grade_id") == gid:
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    return f"{out.get('ename', 'Error')}: {str(out.get('evalue', ''))[:300]}"
    return ""


def merge(
    sid: str,
    answer: dict,
    template: rebuild.Template,
    reference: verify.Records,
    records_dir: Path,
    notes: list[str],
    status: str,
) -> tuple[Result, object | None]:
    """Final points: nbgrader's score of a test cell counts only if its records match."""
    res = Result(sid, status, notes=list(notes))
    res.seconds = answer.get("seconds", 0.0)
    for gid, pts in template.tests.items():
        res.tests[gid] = {"points": 0.0, "max": pts, "message": "not graded"}
    if answer.get("status") != "ok":
        res.status = answer.get("status", "error")
        res.notes.append(answer.get("detail", ""))
        res.log = str(answer.get("log", ""))[-20000:]
        return res, None
    nb = nbformat.read(answer["autograded"], as_version=4)
    records = verify.load(records_dir)
    scores = answer.get("scores", {})
    for gid, pts in template.tests.items():
        auto, _ = scores.get(gid, [0.0, pts])
        auto = min(max(float(auto or 0.0), 0.0), pts)
        ok, why = verify.compare(reference, records, gid)
        if auto >= pts and not ok:
            auto, message = 0.0, why
        elif auto < pts:
            message = _error_message(nb, gid) or "failed"
            if not ok:
                auto = 0.0
        else:
            message = "passed"
        res.tests[gid] = {"points": auto, "max": pts, "message": message}
    res.total = round(sum(t["points"] for t in res.tests.values()), 6)
    if _memory_trouble(nb):
        res.status = OUT_OF_MEMORY
        res.notes.append("a cell ran out of memory (limit reached); the other cells were graded")
    return res, nb


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------
@dataclass
class Summary:
    results: dict[str, Result]
    graded_now: list[str]
    canary: Result | None
    reference: Result | None
    max_total: float
    seconds: float
    out: Path
    warnings: list[str] = field(default_factory=list)


def _fingerprint(source: Path) -> str:
    h = hashlib.sha256(GRADER_VERSION.encode())
    h.update(source.read_bytes())
    for name in ("checks.py", "verify.py", "rebuild.py", "autograde.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()


def _progress(total: int, enabled: bool):
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="grading", unit="nb", file=sys.stderr, leave=True)


def autograde(
    assignment: str,
    submissions: Path,
    out: Path,
    jobs: int | None = None,
    timeout: float = 120.0,
    memory_mb: int = 2048,
    solutions: Path = Path("solutions"),
    exercises: Path = Path("exercises"),
    force: bool = False,
    progress: bool = True,
    keep_workdir: bool = False,
    extra_notebooks: dict[str, dict] | None = None,
) -> Summary:
    """Grade every submission of ``assignment``; write grades.csv, feedback, report and state.

    ``extra_notebooks`` (tests only): student id -> notebook dict graded like a submission.
    """
    t0 = time.time()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    warnings: list[str] = []
    no_sandbox = not sandbox.sandbox_available()
    if no_sandbox:
        warnings.append(
            "bubblewrap (bwrap) is not available: student code runs WITHOUT a sandbox and can read "
            "solutions/ and other submissions. Grade on Linux with `apt-get install bubblewrap`."
        )
    work = Path(tempfile.mkdtemp(prefix="cg-", dir="/tmp" if os.path.isdir("/tmp") else None))
    try:
        gen = generate(assignment, Path(solutions), work)
        template_nb = nbformat.read(gen.release, as_version=4)
        template = rebuild.Template.from_notebook(template_nb)
        source_nb = nbformat.read(gen.source, as_version=4)
        hidden_cells = {
            rebuild.nbgrader_meta(c).get("grade_id")
            for c in source_nb.cells
            if "BEGIN HIDDEN TESTS" in rebuild.cell_source(c)
        }
        released = Path(exercises) / assignment / f"{assignment}.ipynb"
        if released.is_file():
            if _strip_ids(nbformat.read(released, as_version=4)) != _strip_ids(template_nb):
                warnings.append(
                    f"{released} is out of date: run `course-grade release {assignment}`"
                )
            canary_nb = json.loads(released.read_text())
        else:
            warnings.append(f"{released} is missing: the canary uses a freshly generated release")
            canary_nb = json.loads(gen.release.read_text())
        fingerprint = _fingerprint(Path(solutions) / assignment / f"{assignment}.ipynb")

        state_path = out / STATE_FILE
        state = json.loads(state_path.read_text()) if state_path.is_file() else {}
        if state.get("fingerprint") != fingerprint or state.get("assignment") != assignment:
            state = {"fingerprint": fingerprint, "assignment": assignment, "students": {}}
        previous: dict[str, dict] = state["students"]

        subs = collect(Path(submissions), assignment, work) if submissions else []
        for sid, nb in (extra_notebooks or {}).items():
            raw = json.dumps(nb).encode() if not isinstance(nb, bytes) else nb
            path = work / "extra" / f"{sid}.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            subs.append(Submission(sid, path, hashlib.sha256(raw).hexdigest()))

        jupyter_dir = work / "jupyter"
        sandbox.write_kernelspec(str(jupyter_dir))
        counter = iter(range(1, 10**6))

        def make_job(name: str, nb_json: dict) -> tuple[dict, rebuild.Rebuilt]:
            built = rebuild.rebuild(template, nb_json)
            n = next(counter)
            job_dir = work / f"j{n}"
            job_dir.mkdir()
            job = {
                "id": name,
                "assignment": assignment,
                "student": f"s{n}",
                "course": str(job_dir / "course"),
                "notebook": str(job_dir / f"{assignment}.ipynb"),
                "gradebook": str(gen.gradebook),
                "template_source": str(gen.course / "source"),
                "sandbox": str(work / f"s{n}"),
                "jupyter_path": str(jupyter_dir),
                "memory_mb": memory_mb,
                "cell_timeout": int(timeout) + 30,  # the parent's wall clock decides
                "no_sandbox": no_sandbox,
            }
            if built.notebook is not None:
                nbformat.write(built.notebook, job["notebook"])
            return job, built

        pool = Pool(jobs or os.cpu_count() or 1, timeout)

        # phase 1: reference solution and canary
        ref_job, _ = make_job("__reference__", json.loads(gen.source.read_text()))
        can_job, can_built = make_job("__canary__", canary_nb)
        phase1 = pool.run([ref_job, can_job])
        ref_answer = phase1["__reference__"]
        reference_records = verify.load(Path(ref_job["sandbox"]) / "records")
        ref_res, _ = merge(
            "__reference__",
            ref_answer,
            template,
            reference_records,
            Path(ref_job["sandbox"]) / "records",
            [],
            OK,
        )
        if ref_res.total < template.max_total:
            failing = {g: t["message"] for g, t in ref_res.tests.items() if t["points"] < t["max"]}
            raise GradingSetupError(
                f"the reference solution of {assignment} scores {ref_res.total:g}/{template.max_total:g} "
                f"(status {ref_res.status}: {'; '.join(ref_res.notes)}); failing: {failing}"
            )
        can_res, _ = merge(
            "__canary__",
            phase1["__canary__"],
            template,
            reference_records,
            Path(can_job["sandbox"]) / "records",
            can_built.notes,
            OK,
        )
        if can_res.total > 0:
            warnings.append(
                f"CANARY FAILED: the untouched release scores {can_res.total:g} points "
                f"({[g for g, t in can_res.tests.items() if t['points'] > 0]}); a test cell gives points "
                "for a blank answer, or grading is broken"
            )

        # phase 2: the students that are new or changed
        results: dict[str, Result] = {sid: Result(**r) for sid, r in previous.items()}
        to_grade: list[tuple[Submission, dict, rebuild.Rebuilt]] = []
        graded_now: list[str] = []
        for sub in subs:
            if (
                not force
                and sub.student_id in previous
                and previous[sub.student_id]["digest"] == sub.digest
                and sub.digest
            ):
                continue
            graded_now.append(sub.student_id)
            if sub.path is None:
                results[sub.student_id] = _failed(
                    sub.student_id, sub.status, sub.detail, template, sub.digest
                )
                continue
            raw = sub.path.read_bytes()
            nb_json, status, detail = rebuild.parse(raw)
            if nb_json is None:
                results[sub.student_id] = _failed(
                    sub.student_id, status, detail, template, sub.digest
                )
                continue
            job, built = make_job(sub.student_id, nb_json)
            if built.notebook is None:
                results[sub.student_id] = _failed(
                    sub.student_id, built.status, "; ".join(built.notes), template, sub.digest
                )
                continue
            to_grade.append((sub, job, built))

        bar = _progress(len(to_grade), progress)
        answers = pool.run(
            [j for _, j, _ in to_grade], on_done=(lambda *_: bar.update(1)) if bar else None
        )
        if bar:
            bar.close()
        for sub, job, built in to_grade:
            res, nb = merge(
                sub.student_id,
                answers[job["id"]],
                template,
                reference_records,
                Path(job["sandbox"]) / "records",
                built.notes,
                RESTORED if built.tampered else OK,
            )
            res.digest = sub.digest
            res.flags = built.flags
            results[sub.student_id] = res
            page = feedback.render(
                sub.student_id,
                assignment,
                res.status,
                res.total,
                template.max_total,
                res.tests,
                res.notes,
                nb,
                hidden_cells,
            )
            (out / "feedback" / f"{sub.student_id}.html").write_text(page)
        for sid in graded_now:
            res = results[sid]
            if not (out / "feedback" / f"{sid}.html").exists() or res.status not in (
                OK,
                RESTORED,
                OUT_OF_MEMORY,
            ):
                page = feedback.render(
                    sid,
                    assignment,
                    res.status,
                    res.total,
                    template.max_total,
                    res.tests,
                    res.notes,
                    None,
                    hidden_cells,
                )
                (out / "feedback" / f"{sid}.html").write_text(page)

        _write_csv(out / "grades.csv", results, template)
        state["students"] = {sid: r.to_json() for sid, r in results.items()}
        state_path.write_text(json.dumps(state, indent=1))
        report = {
            "assignment": assignment,
            "max_total": template.max_total,
            "sandbox": not no_sandbox,
            "warnings": warnings,
            "reference": ref_res.to_json(),
            "reference_records": {
                gid: len(reference_records.get(gid, {})) for gid in template.tests
            },
            "hidden_cells": sorted(g for g in hidden_cells if g),
            "canary": can_res.to_json(),
            "students": {sid: r.to_json() for sid, r in sorted(results.items())},
        }
        (out / "report.json").write_text(json.dumps(report, indent=1))
        return Summary(
            results,
            graded_now,
            can_res,
            ref_res,
            template.max_total,
            time.time() - t0,
            out,
            warnings,
        )
    finally:
        if not keep_workdir:
            shutil.rmtree(work, ignore_errors=True)


def _strip_ids(nb) -> list:
    return [(c.cell_type, rebuild.cell_source(c), rebuild.nbgrader_meta(c)) for c in nb.cells]


def _failed(sid: str, status: str, detail: str, template: rebuild.Template, digest: str) -> Result:
    res = Result(sid, status, notes=[detail] if detail else [], digest=digest)
    for gid, pts in template.tests.items():
        res.tests[gid] = {"points": 0.0, "max": pts, "message": "not graded"}
    return res


def _write_csv(path: Path, results: dict[str, Result], template: rebuild.Template) -> None:
    gids = list(template.tests)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student_id", "status", "total", "max_total", *gids])
        for sid in sorted(results):
            r = results[sid]
            w.writerow(
                [
                    sid,
                    r.status,
                    f"{r.total:g}",
                    f"{template.max_total:g}",
                    *(f"{r.tests.get(g, {}).get('points', 0.0):g}" for g in gids),
                ]
            )


def print_summary(s: Summary, stream=sys.stdout) -> None:
    """The terminal summary after a run."""
    counts = Counter(r.status for r in s.results.values())
    totals = [r.total for r in s.results.values() if r.status in (OK, RESTORED, OUT_OF_MEMORY)]
    print(
        f"graded {len(s.graded_now)} submission(s) now, {len(s.results)} in {s.out / 'grades.csv'} "
        f"({s.seconds:.1f} s)",
        file=stream,
    )
    print("status: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), file=stream)
    if totals:
        print(
            f"score: mean {sum(totals) / len(totals):.2f} / {s.max_total:g}, "
            f"min {min(totals):g}, max {max(totals):g}",
            file=stream,
        )
    flagged = sorted(sid for sid in s.graded_now if s.results[sid].flags)
    if flagged:
        print(
            f"flagged for review (suspicious code in answers, see report.json): {', '.join(flagged)}",
            file=stream,
        )
    if s.canary is not None:
        print(
            f"canary (untouched release): {s.canary.total:g} / {s.max_total:g} "
            f"{'OK' if s.canary.total == 0 else 'FAILED'}",
            file=stream,
        )
    for w in s.warnings:
        print(f"WARNING: {w}", file=stream)
