"""The grading pipeline end to end: a generated class with honest and adversarial submissions.

One ``course-grade autograde`` run (shared with test_exercises.py through adversarial.runner)
grades honest students, the catalogue of exploits in tests/adversarial/ and the ex01 variants
together; the tests then assert every student's exact status and points, that no exploit
affected anyone else, that feedback hides the hidden tests, and that nothing is left running.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import pytest
from adversarial import catalogue
from adversarial.runner import REPO, class_run

from course_lib.grading import rebuild, sandbox
from course_lib.grading.cli import main

pytestmark = pytest.mark.slow
A = catalogue.ASSIGNMENT
needs_bwrap = pytest.mark.skipif(not sandbox.sandbox_available(), reason="bubblewrap not installed")


@pytest.fixture(scope="module")
def run():
    return class_run(A)


def test_every_student_has_the_expected_status_and_total(run):
    wrong = {}
    for sid, (status, total) in run.expected.items():
        row = run.rows[sid]
        if (row["status"], float(row["total"])) != (status, total):
            wrong[sid] = (row["status"], row["total"], run.report["students"][sid]["notes"])
    assert not wrong, wrong


def test_exploits_earn_no_more_than_an_honest_wrong_answer(run):
    honest_wrong = float(run.rows["honest_wrong"]["total"])
    assert honest_wrong == 0
    for name, spec in catalogue.EXPLOITS.items():
        total = float(run.rows[f"x_{name}"]["total"])
        assert total <= spec.get("total", honest_wrong), name


def test_honest_students_are_unaffected_by_the_exploits(run):
    row = run.rows["honest_correct"]
    assert row["status"] == "ok" and float(row["total"]) == 20.0
    assert all(float(row[g]) > 0 for g in run.report["reference"]["tests"])
    naive = run.report["students"]["honest_naive_softmax"]["tests"]
    assert (
        naive["test_softmax_stable"]["points"] == 0 and naive["test_softmax_hidden"]["points"] == 2
    )


def test_grades_csv_columns(run):
    with open(run.out / "grades.csv") as f:
        header = f.readline().strip().split(",")
    assert header[:5] == ["student_id", "status", "total", "max_total", "flags"]
    assert header[5:] == list(run.report["reference"]["tests"])
    assert run.rows["honest_correct"]["flags"] == "0"
    assert int(run.rows["x_library_through_strings"]["flags"]) > 0
    assert set(run.rows) == set(run.expected) | {f"v_{n}" for n in run.variants}


def test_forbidden_routes_are_flagged_for_review_with_lines(run):
    for name, spec in catalogue.EXPLOITS.items():
        if spec.get("flagged"):
            assert run.report["students"][f"x_{name}"]["flags"], name
    flags = run.report["students"]["x_forbidden_bypass"]["flags"]
    assert any("line 3: uses course_lib.grading" in f for f in flags), flags
    strings = run.report["students"]["x_library_through_strings"]["flags"]
    assert any("computed name" in f for f in strings) and any("importlib" in f for f in strings)
    for honest in ("honest_correct", "honest_naive_softmax", "honest_wrong", "reordered_correct"):
        assert run.report["students"][honest]["flags"] == [], honest


def test_forbidden_routes_fail_at_run_time(run):
    """Captured references, dispatch escapes and library shortcuts earn 0 for their parts."""
    students = run.report["students"]
    captured = students["x_captured_references"]["tests"]
    assert "forbidden" in captured["test_softmax_hidden"]["message"]
    assert "forbidden" in captured["test_cross_entropy_hidden"]["message"]
    assert "forbidden" in captured["test_hinge_hidden"]["message"]
    escape = students["x_dispatch_escape"]["tests"]
    assert escape["test_log_softmax_hidden"]["points"] == 0
    assert (
        "scipy" in students["x_library_through_strings"]["tests"]["test_softmax_hidden"]["message"]
    )
    assert any("forbidden route" in f for f in students["x_dispatch_escape"]["flags"])


def test_student_code_in_the_trusted_phase_gets_no_frames_and_no_points(run):
    """Threads, kernels registered with the dispatcher, same-maths operators, finalizers."""
    students = run.report["students"]
    for sid in ("x_trusted_phase", "x_thread", "x_clone_kernel", "x_altops"):
        assert students[sid]["status"] == "ok" and students[sid]["total"] == 0, sid
    finalizer = students["x_trusted_phase_finalizer"]["flags"]
    assert "softmax: runtime: blocked sys._getframe" in finalizer, finalizer
    assert "softmax: runtime: blocked frame access (tb_frame)" in finalizer, finalizer
    assert "BEGIN HIDDEN" not in _feedback(run, "x_trusted_phase")
    thread = students["x_thread"]["flags"]
    assert any("start_new_thread was called" in f for f in thread), thread
    assert any("blocked _dispatch_library" in f for f in students["x_clone_kernel"]["flags"])
    assert any("aten._masked_softmax ran" in f for f in students["x_altops"]["flags"])


def test_profiler_controls_are_the_graders(run):
    """Stopping or restarting the grader's profiler is refused by rule, never left to timing."""
    for sid in ("x_dispatch_escape", "x_profiler_hijack"):
        student = run.report["students"][sid]
        assert student["status"] == "ok" and student["total"] == 0, sid
        assert any("autograd profiler" in f for f in student["flags"]), sid
    hijack = run.report["students"]["x_profiler_hijack"]
    assert any("operator trace was stopped" in f for f in hijack["flags"])


def test_forged_records_and_channel_earn_nothing(run):
    students = run.report["students"]
    assert students["x_forged_protocol"]["status"] == "tampered"
    assert students["x_forged_records_helpers"]["total"] == 0
    text = _feedback(run, "x_forged_sink")
    assert "SINK-REACHED: ['str', 'str', 'str']" in text  # every route raised


def _feedback(run, sid: str) -> str:
    return html.unescape((run.out / "feedback" / f"{sid}.html").read_text())


@needs_bwrap
def test_working_directory_is_capped(run):
    text = _feedback(run, "x_disk_fill")  # printed output, not the source that prints it
    stopped = re.search(r"DISK-STOPPED ENOSPC (\d+)", text)
    assert stopped and int(stopped.group(1)) <= 128 and not re.search(r"DISK-WROTE \d", text)


@needs_bwrap
def test_sandbox_blocks_network_files_and_grading_env(run):
    assert "NETWORK-REACHED: []" in _feedback(run, "x_network")
    assert "SOLUTIONS-VISIBLE: False False" in _feedback(run, "x_read_solutions")
    assert "OTHERS-VISIBLE: 0" in _feedback(run, "x_read_others")
    assert "ENV-SEEN: False" in _feedback(run, "x_env_aware")


def test_feedback_never_shows_hidden_test_code(run):
    source = rebuild.read_notebook(str(REPO / "solutions" / A / f"{A}.ipynb"))
    hidden_lines, visible_lines = set(), set()
    for cell in source.cells:
        inside = False
        for line in rebuild.cell_source(cell).split("\n"):
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) > 30:
                hidden_lines.add(line.strip())
            else:
                visible_lines.add(line.strip())
    hidden_lines -= visible_lines  # e.g. a FORBID tuple shown in a visible test too
    assert hidden_lines
    pages = list((run.out / "feedback").glob("*.html"))
    assert len(pages) == len(run.rows)
    for page in pages:
        text = html.unescape(page.read_text())
        if not page.name.startswith("x_read_solutions"):  # its answer code names the marker
            assert "BEGIN HIDDEN TESTS" not in text, page.name
        leaked = [line for line in hidden_lines if line in text]
        assert not leaked, (page.name, leaked[:2])
        assert "<script" not in text.lower() or page.name.startswith("x_"), page.name


def test_no_hidden_code_reaches_the_student_through_history_or_frames(run):
    text = _feedback(run, "x_history_frame_leak")
    leak = text.split("LEAK:", 2)[-1].split("<", 1)[0]
    assert "NameError" in leak and "ValueError" in leak and "AttributeError" in leak, leak
    assert "FORBID" not in leak and "manual_seed" not in leak and "CASES" not in leak
    assert "co_consts" not in leak or "softmax of" not in leak


def test_memory_limit_counts_shared_memory(run):
    """RLIMIT_AS (measured after torch is imported) stops anonymous shared mappings too."""
    for name in ("shared_memory_bomb", "shared_memory_held", "memory_bomb", "memory_bomb_held"):
        row = run.report["students"][f"x_{name}"]
        assert row["status"] == "out-of-memory" and row["total"] == 0, (name, row["notes"])


def test_feedback_explains_failures(run):
    text = _feedback(run, "honest_naive_softmax")
    assert "NaN where a number is expected" in text
    assert "19 / 20" in text


def _started_by_this_test_process(pid: str) -> bool:
    """Under pytest-xdist another worker may be grading at the same time: only count
    processes that inherited this worker's id (grading workers keep the environment)."""
    me = os.environ.get("PYTEST_XDIST_WORKER")
    if me is None:
        return True
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"PYTEST_XDIST_WORKER={me}".encode() in env


def _grading_processes() -> dict[str, str]:
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "sleep 987" in cmd:  # the detached process of the adversarial catalogue
            found[pid] = cmd
        elif (
            "course_lib.grading.runner" in cmd or "course_lib.grading.sandbox" in cmd
        ) and _started_by_this_test_process(pid):
            found[pid] = cmd
    return found


def test_no_grading_process_is_left_behind(run):
    leftovers = _grading_processes()
    # A class run of ex01 in another xdist worker starts the same detached `sleep 987` inside
    # its sandbox, which kills it within seconds; a real leftover of this run stays.
    deadline = time.monotonic() + 60
    while leftovers and time.monotonic() < deadline:
        time.sleep(2)
        now = _grading_processes()
        leftovers = {pid: cmd for pid, cmd in leftovers.items() if pid in now}
    assert not leftovers


def test_rerun_grades_only_the_late_submission_from_a_zip(run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(run.out, out)
    before = json.loads((out / "report.json").read_text())["students"]
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(run.submissions.rglob("*")):
            if path.is_file():
                zf.write(path, Path("export") / path.relative_to(run.submissions))
        zf.writestr(
            "export/zz_late.ipynb",
            json.dumps(
                json.loads(
                    (run.submissions / "honest_blank.ipynb").read_text()
                    if (run.submissions / "honest_blank.ipynb").exists()
                    else (run.submissions / "honest_blank" / f"{A}.ipynb").read_text()
                )
            ),
        )
    code = main(
        [
            "autograde",
            A,
            str(archive),
            "--out",
            str(out),
            "--quiet",
            "--timeout",
            "60",
            "--solutions",
            str(REPO / "solutions"),
            "--exercises",
            str(REPO / "exercises"),
        ]
    )
    assert code == 0
    after = json.loads((out / "report.json").read_text())["students"]
    assert set(after) == set(before) | {"zz_late"}
    assert after["zz_late"]["status"] == "ok" and after["zz_late"]["total"] == 0
    for sid, res in before.items():
        assert after[sid] == res, sid


def test_validate_passes_a_correct_notebook_and_fails_a_blank_one(run, tmp_path, capsys):
    correct = tmp_path / f"{A}.ipynb"
    src = run.submissions / "honest_correct.ipynb"
    src = src if src.exists() else run.submissions / "honest_correct" / f"{A}.ipynb"
    shutil.copy(src, correct)
    assert main(["validate", str(correct), "--exercises", str(REPO / "exercises")]) == 0
    blank = tmp_path / "blank.ipynb"
    shutil.copy(REPO / "exercises" / A / f"{A}.ipynb", blank)
    assert main(["validate", str(blank), "--exercises", str(REPO / "exercises")]) == 1
    out = capsys.readouterr().out
    assert "FAILED test_softmax_visible" in out
    assert "runs at grading test_softmax_hidden" in out and "passed test_softmax_hidden" not in out
    assert "TCP" not in out
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{")
    assert main(["validate", str(broken)]) == 2


def test_attacks_on_the_runner_itself_are_refused_by_rule(run):
    """The grader's helpers, code names, new threads/processes and /proc memory: by class."""
    students = run.report["students"]
    for sid in (
        "x_guard_pop",
        "x_renamed_code",
        "x_exec_finalizer",
        "x_new_tasks",
        "x_proc_memory_routes",
        "x_frozen_compile",
        "x_builtins_injection",
        "x_alarm",
    ):
        assert students[sid]["status"] == "ok" and students[sid]["total"] == 0, sid
    flags = {sid: "\n".join(students[sid]["flags"]) for sid in students}
    # record()/forbidden() answer only to the code objects the runner compiled from test cells
    for what in ("forbidden()", "record()"):
        assert f"runtime: blocked {what} called from student code" in flags["x_guard_pop"], what
    # no code object can be renamed to a test cell's or a library's file name
    for route in ("creating a code object", "_fix_co_filename", "compile as <test forged>"):
        assert f"softmax: runtime: blocked {route}" in flags["x_renamed_code"], route
    assert "test_softmax_hidden: runtime: blocked sys._getframe" in flags["x_renamed_code"]
    # code compiled by exec is student code too, also while the runner is trusted
    for route in ("sys._getframe", "frame access (tb_frame)"):
        assert f"softmax: runtime: blocked {route}" in flags["x_exec_finalizer"], route
    # the kernel refuses new threads and processes (seccomp), whatever the Python route
    tasks = _feedback(run, "x_new_tasks")
    assert "NEW-TASKS: ['thread RuntimeError', 'process PermissionError']" in tasks, tasks[-3000:]
    proc = _feedback(run, "x_proc_memory_routes")
    routes = ("bytes", "slashes", "dir_fd", "root_fd", "symlink", "chdir")
    assert "PROC-MEM: [" + ", ".join(f"'{r} PermissionError'" for r in routes) + "]" in proc, proc[
        -3000:
    ]
    # compiled under an import-machinery or a library file name: refused
    frozen = _feedback(run, "x_frozen_compile")
    assert "FROZEN: ['compile RuntimeError', 'compile RuntimeError']" in frozen, frozen[-3000:]
    # a timer would end the runner at a moment set by the load: the kernel refuses it
    assert "ALARM: itimer_error" in _feedback(run, "x_alarm")  # signal.ItimerError(EPERM)
