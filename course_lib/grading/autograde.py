"""Grade a class: collect submissions, run them in parallel sandboxes, decide in the parent.

Flow of ``course-grade autograde ASSIGNMENT SUBMISSIONS --out DIR``::

    solutions/<a>  --nbgrader generate-->  release template (locked cells, grade ids, points)
    submissions    --parse + rebuild---->  one notebook per student: template + answer cells,
                                           test cells (hidden tests included) from the source
    reference (source notebook) + canary (untouched release)   run first, then the students,
    each in its own sandboxed runner (course_lib.grading.runner), cells sent one at a time
    parent: records x reference records -> points, statuses, flags, messages ->
            DIR/grades.csv, DIR/feedback/*.html, DIR/report.json, DIR/.course-grade-state.json

**Statuses by rule** (first match wins, nothing depends on timing except the wall clock):

1. the file could not be read as a notebook of this assignment: ``no-notebook``, ``ambiguous``,
   ``too-large``, ``malformed-json``, ``not-a-notebook``, ``wrong-assignment`` (0 points);
2. the runner's outcome (:mod:`course_lib.grading.worker`): ``timeout`` (the wall clock ran
   out before ``done``), ``kernel-died`` (the runner's pipe closed before ``done``: ``os._exit``,
   a signal, a crash), ``tampered`` (a message without the cell's token) -- the cells that
   finished before keep their points, the others earn 0;
3. a cell raised ``MemoryError`` (or ``ENOMEM``) under the address-space cap: ``out-of-memory``
   (that cell 0; the runner stops when the memory stays full, the cells not run earn 0);
4. test/locked cells or metadata were changed and restored from the source: ``restored``;
5. otherwise ``ok``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
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

from course_lib.grading import (  # term: issue 14 (the term)
    feedback,
    hints,
    late,
    lms,
    rebuild,
    sandbox,
    shards,
    static,
    verify,
    worker,
)
from course_lib.grading.release import generate

GRADER_VERSION = "2"
STATE_FILE = ".course-grade-state.json"
NO_NOTEBOOK = "no-notebook"
AMBIGUOUS = "ambiguous"
OK = "ok"
RESTORED = "restored"
OUT_OF_MEMORY = "out-of-memory"
_ID = re.compile(r"[^A-Za-z0-9_.@+-]")


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
    lms.apply_names(found, root, _student_id)  # term: LMS download names -> student ids
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
# the notebooks that run
# ----------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What the parent knows about an assignment before any student code runs."""

    template: rebuild.Template
    test_sources: dict[str, str]  # test grade id -> trusted source (hidden tests included)
    hidden: set[str]  # grade ids of test cells with hidden tests
    part_of: dict[str, str]  # test grade id -> grade id of the answer cell it tests
    forbidden: frozenset[str]  # targets named by the tests
    preload: list[str]  # modules the test and setup cells import (imported before student code)


def _imports(source: str) -> list[str]:
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append(node.module)
    return out


def make_plan(template: rebuild.Template, source_nb) -> Plan:  # noqa: ANN001
    tests, hidden, part_of, preload = {}, set(), {}, []
    answer = ""
    for cell in source_nb.cells:
        meta = rebuild.nbgrader_meta(cell)
        gid = meta.get("grade_id")
        src = rebuild.cell_source(cell)
        if cell.cell_type != "code":
            continue
        if gid in template.answers:
            answer = gid
        elif gid in template.tests:
            tests[gid] = src
            part_of[gid] = answer
            if "BEGIN HIDDEN TESTS" in src:
                hidden.add(gid)
            preload += _imports(src)
        else:
            preload += _imports(src)
    keep = sorted({m for m in preload if m.split(".")[0] not in ("subprocess", "google")})
    return Plan(
        template, tests, hidden, part_of, static.forbidden_targets(list(tests.values())), keep
    )


def cells_to_run(plan: Plan, nb) -> list[worker.Cell]:  # noqa: ANN001
    """The code cells of a rebuilt notebook, test cells replaced by their trusted source."""
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = rebuild.nbgrader_meta(cell)
        gid = meta.get("grade_id") or ""
        if gid in plan.test_sources:
            cells.append(worker.Cell(i, "test", gid, plan.test_sources[gid]))
        elif gid in plan.template.answers:
            cells.append(worker.Cell(i, "answer", gid, rebuild.cell_source(cell)))
        else:
            cells.append(worker.Cell(i, "setup", gid, rebuild.cell_source(cell)))
    return cells


class Pool:
    """Run many submissions, ``n`` sandboxed runners at a time (threads waiting on pipes)."""

    def __init__(self, n: int, timeout: float, memory_mb: int, sandboxed: bool, preload: list[str]):
        self.n, self.timeout, self.memory_mb = max(1, n), timeout, memory_mb
        self.sandboxed, self.preload = sandboxed, preload

    def run(self, jobs: list[tuple[str, list[worker.Cell], str, str]], on_done=None):  # noqa: ANN001
        """jobs: (id, cells, sandbox dir, mode) -> {id: worker.Run}."""
        queue: Queue = Queue()
        for job in jobs:
            queue.put(job)
        results: dict[str, worker.Run] = {}
        lock = threading.Lock()

        def slot() -> None:
            while True:
                try:
                    jid, cells, box, mode = queue.get_nowait()
                except Empty:
                    return
                try:
                    run = worker.run_cells(
                        cells,
                        sandbox_dir=box,
                        timeout=self.timeout,
                        memory_mb=self.memory_mb,
                        sandboxed=self.sandboxed,
                        mode=mode,
                        preload=self.preload,
                        oracle_libraries=tuple(sorted(ORACLE_LIBRARIES)),
                    )
                except Exception as exc:  # noqa: BLE001 - a grader bug is a status, never a crash
                    run = worker.Run("kernel-died", detail=f"grader error: {exc!r}"[:300])
                    run.outcome = "error"  # type: ignore[assignment]
                with lock:
                    results[jid] = run
                if on_done:
                    on_done(jid, run)
                shutil.rmtree(box, ignore_errors=True)

        threads = [
            threading.Thread(target=slot, daemon=True) for _ in range(min(self.n, len(jobs)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results


# ----------------------------------------------------------------------------------------------
# deciding: records x reference -> points, messages, flags
# ----------------------------------------------------------------------------------------------
def reference_records(plan: Plan, run: worker.Run, cells: list[worker.Cell]) -> verify.Records:
    by_index = {c.index: c for c in cells}
    out: verify.Records = {}
    for index, result in run.results.items():
        cell = by_index.get(index)
        if cell is not None and cell.kind == "test":
            out[cell.gid] = verify.records_of(cell.gid, result)
    return out


def _imported(run: worker.Run) -> set[str]:
    return {m for r in run.results.values() for m in r.get("imports", []) if isinstance(m, str)}


def merge(
    sid: str,
    run: worker.Run,
    plan: Plan,
    cells: list[worker.Cell],
    reference: verify.Records,
    reference_imports: set[str],
    notes: list[str],
    status: str,
) -> tuple[Result, object]:
    """Points, status, messages and runtime flags of one run; returns (result, feedback notebook)."""
    template = plan.template
    res = Result(sid, status, notes=list(notes))
    res.seconds = round(run.timings.get("total", 0.0), 2)
    for gid, pts in template.tests.items():
        res.tests[gid] = {"points": 0.0, "max": pts, "message": "not run"}
    if run.outcome != "done":
        res.status = run.outcome
        res.notes.append(
            {
                "timeout": "the notebook did not finish within the time limit (wall clock)",
                "kernel-died": "the grading process died while running the notebook",
                "tampered": "a message on the grader's channel was forged",
                "error": "the grader failed (a bug: please report it)",
            }.get(run.outcome, run.outcome)
            + (f" ({run.detail})" if run.detail else "")
        )
    gid_of = {c.index: c for c in cells}
    memory = False
    penalised: dict[str, str] = {}  # answer gid -> why its tests earn nothing
    flags: list[str] = []
    for index, result in sorted(run.results.items()):
        cell = gid_of.get(index)
        if cell is None:
            continue
        where = cell.gid or f"cell {index}"
        memory = memory or bool(result.get("memory"))
        for event in result.get("events", [])[:10]:
            flags.append(f"{where}: runtime: {event}")
        for name in result.get("patched", [])[:10]:
            flags.append(f"{where}: runtime: changed {name} (restored before the tests)")
        if result.get("threads"):
            flags.append(f"{where}: runtime: started {result['threads']} thread(s)")
        for key in result.get("foreign", [])[:5]:
            flags.append(f"{where}: runtime: recorded {key} outside its test cell (ignored)")
        for why in result.get("violations", [])[:5]:
            flags.append(f"{where}: runtime: forbidden route: {why}")
        new = sorted(m for m in result.get("imports", []) if m not in reference_imports)
        oracle = [m for m in new if m.split(".")[0] in ORACLE_LIBRARIES]
        if new:
            flags.append(f"{where}: runtime: imported {', '.join(new[:8])}")
        if oracle:
            part = cell.gid if cell.kind == "answer" else plan.part_of.get(cell.gid, "")
            lib = min(oracle, key=len)
            penalised.setdefault(
                part,
                f"your code imported {lib}, a library that "
                "implements what this exercise asks you to write",
            )
    if memory:
        res.status = OUT_OF_MEMORY if res.status in (OK, RESTORED) else res.status
        res.notes.append("a cell ran out of memory (limit reached): that cell earns nothing")
    student_records: verify.Records = {}
    for cell in cells:
        if cell.kind != "test":
            continue
        result = run.results.get(cell.index)
        if result is None:
            continue
        student_records[cell.gid] = verify.records_of(cell.gid, result)
        pts = template.tests[cell.gid]
        ok, why = verify.compare(reference, student_records, cell.gid)
        dup = result.get("dup") or []
        part = plan.part_of.get(cell.gid, "")
        if part in penalised:
            points, message = 0.0, penalised[part]
        elif result.get("memory"):
            points, message = 0.0, "ran out of memory"
        elif result.get("violations"):
            points, message = 0.0, f"forbidden: {result['violations'][0]}"
        elif dup:
            points, message = 0.0, f"{dup[0]}: recorded twice (a forged record)"
        elif not result.get("ok") and (result.get("origin") == "student" or ok):
            points, message = 0.0, _failure_message(result)
        elif not ok:
            points, message = 0.0, why
        else:
            points, message = pts, "passed"
        res.tests[cell.gid] = {"points": points, "max": pts, "message": message}
    res.total = round(sum(t["points"] for t in res.tests.values()), 6)
    res.flags = flags
    return res, _feedback_notebook(plan, cells, run, res)


ORACLE_LIBRARIES = frozenset(
    {"scipy", "sklearn", "jax", "tensorflow", "keras", "torchmetrics", "lightning",
     "pytorch_lightning", "mlxtend", "captum", "timm", "torchvision", "statsmodels", "numba"}
)  # fmt: skip


def _failure_message(result: dict) -> str:
    """The parent's message for a test cell that stopped with an error."""
    ename = str(result.get("ename") or "Error")[:60]
    if result.get("origin") == "student":
        text = str(result.get("evalue") or "").split("\n")[0][:200]
        return f"your code raised {ename}" + (f": {text}" if text else "")
    if ename == "AssertionError":
        text = str(result.get("evalue") or "").split("\n")[0][:200]
        return f"a check failed: {text}" if text else "a check failed"
    if ename == "ForbiddenCallError":
        return "your code called a function this exercise asks you to write yourself"
    return f"the test stopped with {ename}"


def _feedback_notebook(plan: Plan, cells: list[worker.Cell], run: worker.Run, res: Result):  # noqa: ANN202
    """The rebuilt notebook with outputs written by the parent (tests: its messages only)."""
    nb = nbformat.v4.new_notebook()
    for cell in plan.template.notebook.cells:
        nb.cells.append(nbformat.from_dict(json.loads(json.dumps(cell))))
    by_index = {c.index: c for c in cells}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        spec = by_index.get(index)
        result = run.results.get(index)
        cell.outputs = []
        if spec is None:
            continue
        if spec.kind == "answer":
            cell.source = spec.source
        if result is None:
            continue
        if spec.kind == "test":
            test = res.tests.get(spec.gid, {})
            if test.get("points", 0) < test.get("max", 0):
                cell.outputs.append(
                    nbformat.v4.new_output(
                        "error", ename="Failed", evalue=test.get("message", ""), traceback=[]
                    )
                )
            continue
        text = result.get("stdout") or ""
        if text:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text))
        if not result.get("ok"):
            cell.outputs.append(
                nbformat.v4.new_output(
                    "error",
                    ename=str(result.get("ename", "Error"))[:100],
                    evalue=str(result.get("evalue", ""))[:300],
                    traceback=[],
                )
            )
    return nb


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
    timings: dict[str, dict[str, float]] = field(default_factory=dict)  # student -> phase -> s


def _fingerprint(source: Path) -> str:
    """Changes when the source notebook or any file of the grading code changes."""
    h = hashlib.sha256(GRADER_VERSION.encode())
    h.update(source.read_bytes())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
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
    late_options: late.Options | None = None,  # term: --due/--extensions/--late-policy
    shard: tuple[int, int] | None = None,  # term: --shard I/N
) -> Summary:
    """Grade every submission of ``assignment``; write grades.csv, feedback, report and state.

    ``extra_notebooks`` (tests only): student id -> notebook dict graded like a submission.
    """
    t0 = time.time()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    warnings: list[str] = []
    sandboxed = sandbox.sandbox_available()
    if not sandboxed:
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
        plan = make_plan(template, source_nb)
        hint_map = hints.collect(source_nb)  # term: per-test hints
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

        subs = shards.select(subs, shard)  # term: --shard I/N
        late_options = late_options or late.Options()  # term: late policy
        lateness = late.assess(subs, submissions, late_options) if submissions else {}  # term:
        counter = iter(range(1, 10**6))
        pool = Pool(jobs or os.cpu_count() or 1, timeout, memory_mb, sandboxed, plan.preload)

        def box() -> str:
            return str(work / f"s{next(counter)}")

        # phase 1: reference solution (the source notebook, trusted) and canary
        ref_cells = cells_to_run(plan, source_nb)
        can_built = rebuild.rebuild(template, canary_nb)
        can_cells = cells_to_run(plan, can_built.notebook)
        phase1 = pool.run(
            [("__reference__", ref_cells, box(), "reference"),
             ("__canary__", can_cells, box(), "student")]
        )  # fmt: skip
        ref_run = phase1["__reference__"]
        reference = reference_records(plan, ref_run, ref_cells)
        reference_imports = _imported(ref_run)
        ref_res, _ = merge("__reference__", ref_run, plan, ref_cells, reference,
                           reference_imports, [], OK)  # fmt: skip
        if ref_res.total < template.max_total:
            failing = {g: t["message"] for g, t in ref_res.tests.items() if t["points"] < t["max"]}
            errors = {
                c.gid: f"{r.get('ename')}: {r.get('evalue')}"
                for c in ref_cells
                if not (r := ref_run.results.get(c.index, {"ok": True})).get("ok")
            }
            raise GradingSetupError(
                f"the reference solution of {assignment} scores {ref_res.total:g}/{template.max_total:g} "
                f"(status {ref_res.status}: {'; '.join(ref_res.notes)}); failing: {failing}; "
                f"errors: {errors}"
            )
        can_res, _ = merge("__canary__", phase1["__canary__"], plan, can_cells, reference,
                           reference_imports, can_built.notes, OK)  # fmt: skip
        if can_res.total > 0:
            warnings.append(
                f"CANARY FAILED: the untouched release scores {can_res.total:g} points "
                f"({[g for g, t in can_res.tests.items() if t['points'] > 0]}); a test cell gives points "
                "for a blank answer, or grading is broken"
            )

        # phase 2: the students that are new or changed
        results: dict[str, Result] = {sid: Result(**r) for sid, r in previous.items()}
        to_grade: list[tuple[Submission, list[worker.Cell], rebuild.Rebuilt, list[str]]] = []
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
            built = rebuild.rebuild(template, nb_json)
            if built.notebook is None:
                results[sub.student_id] = _failed(
                    sub.student_id, built.status, "; ".join(built.notes), template, sub.digest
                )
                continue
            cells = cells_to_run(plan, built.notebook)
            static_flags = [
                f
                for c in cells
                if c.kind == "answer"
                for f in static.scan(c.source, plan.forbidden, cell=c.gid)
            ]
            to_grade.append((sub, cells, built, static_flags))

        bar = _progress(len(to_grade), progress)
        runs = pool.run(
            [(sub.student_id, cells, box(), "student") for sub, cells, _, _ in to_grade],
            on_done=(lambda *_: bar.update(1)) if bar else None,
        )
        if bar:
            bar.close()
        verify_seconds: dict[str, float] = {}
        for sub, cells, built, static_flags in to_grade:
            t_merge = time.time()
            res, nb = merge(
                sub.student_id,
                runs[sub.student_id],
                plan,
                cells,
                reference,
                reference_imports,
                built.notes,
                RESTORED if built.tampered else OK,
            )
            verify_seconds[sub.student_id] = time.time() - t_merge
            res.digest = sub.digest
            res.flags = static_flags + res.flags
            hints.attach(res.tests, hint_map)  # term: per-test hints
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
                plan.hidden,
            )
            (out / "feedback" / f"{sub.student_id}.html").write_text(page)
        for sid in graded_now:
            if not (out / "feedback" / f"{sid}.html").exists() or results[sid].status in (
                *rebuild.UNREADABLE,
                NO_NOTEBOOK,
                AMBIGUOUS,
            ):
                res = results[sid]
                page = feedback.render(sid, assignment, res.status, res.total, template.max_total,
                                       res.tests, res.notes, None, plan.hidden)  # fmt: skip
                (out / "feedback" / f"{sid}.html").write_text(page)

        _write_csv(out / "grades.csv", results, template)
        state["students"] = {sid: r.to_json() for sid, r in results.items()}
        state_path.write_text(json.dumps(state, indent=1))
        report = {
            "assignment": assignment,
            "max_total": template.max_total,
            "sandbox": sandboxed,
            "warnings": warnings,
            "reference": ref_res.to_json(),
            "reference_records": {gid: len(reference.get(gid, {})) for gid in template.tests},
            "reference_timings": {k: round(v, 3) for k, v in ref_run.timings.items()},
            "hidden_cells": sorted(g for g in plan.hidden if g),
            "canary": can_res.to_json(),
            "students": {sid: r.to_json() for sid, r in sorted(results.items())},
        }
        (out / "report.json").write_text(json.dumps(report, indent=1))
        warnings += late.finish(out, lateness, late_options)  # term: late policy
        shards.stamp(out, shard)  # term: --shard I/N
        return Summary(
            results,
            graded_now,
            can_res,
            ref_res,
            template.max_total,
            time.time() - t0,
            out,
            warnings,
            timings={
                sid: runs[sid].timings
                | {"t_import": runs[sid].ready.get("t_import", 0.0),
                   "verify": verify_seconds.get(sid, 0.0)}
                for sid in runs
            },
        )  # fmt: skip
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
        w.writerow(["student_id", "status", "total", "max_total", "flags", *gids])
        for sid in sorted(results):
            r = results[sid]
            w.writerow(
                [
                    sid,
                    r.status,
                    f"{r.total:g}",
                    f"{template.max_total:g}",
                    len(r.flags),
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
            f"flagged for review ({len(flagged)}; forbidden routes, dynamic code, changed libraries; "
            f"see the flags in report.json): {', '.join(flagged[:20])}"
            + (" ..." if len(flagged) > 20 else ""),
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
