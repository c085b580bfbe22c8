"""Per-test hints: shown for failed tests only, never hidden code or values."""

from __future__ import annotations

import pytest

from course_lib.grading import feedback, hints


def _test_cell(gid: str, source: str, hint: str | None) -> dict:
    meta = {"nbgrader": {"grade": True, "solution": False, "grade_id": gid, "points": 2}}
    if hint is not None:
        meta["course"] = {"hint": hint}
    return {"cell_type": "code", "metadata": meta, "source": source, "outputs": []}


HIDDEN = (
    "from course_lib.grading.checks import assert_close\n"
    "# hidden tests: random shapes\n"
    "### BEGIN HIDDEN TESTS\n"
    "x = torch.randn(4, 7, generator=g) * 3.75\n"
    "assert_close(softmax(x), torch.softmax(x, -1), what='softmax')\n"
    "### END HIDDEN TESTS\n"
)


def test_hints_are_read_and_attached_to_failed_tests_only():
    nb = {
        "cells": [
            _test_cell("test_softmax_hidden", HIDDEN, "Subtract the row maximum before exp."),
            _test_cell("test_ce_hidden", "### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n", None),
            {"cell_type": "code", "metadata": {"nbgrader": {"solution": True}}, "source": ""},
        ]
    }
    got = hints.collect(nb)
    assert got == {"test_softmax_hidden": "Subtract the row maximum before exp."}
    tests = {
        "test_softmax_hidden": {"points": 0.0, "max": 2, "message": "AssertionError: softmax"},
        "test_ce_hidden": {"points": 0.0, "max": 2, "message": "failed"},
    }
    hints.attach(tests, got)
    hints.attach(tests, got)  # idempotent (incremental re-runs)
    assert tests["test_softmax_hidden"]["message"] == (
        "AssertionError: softmax\nHint: Subtract the row maximum before exp."
    )
    assert tests["test_ce_hidden"]["message"] == "failed"
    passed = {"test_softmax_hidden": {"points": 2.0, "max": 2, "message": "passed"}}
    assert hints.attach(passed, got)["test_softmax_hidden"]["message"] == "passed"
    page = feedback.render(
        "ana", "ex01", "ok", 0.0, 4.0, tests, [], None, {"test_softmax_hidden"}
    )  # the feedback page shows the message, so the hint
    assert "Hint: Subtract the row maximum before exp." in page
    assert "torch.randn(4, 7" not in page and "3.75" not in page


@pytest.mark.parametrize(
    "bad",
    [
        "Check: assert_close(softmax(x), torch.softmax(x, -1), what='softmax')",  # hidden line
        "Inputs are scaled by 3.75",  # a hidden value
    ],
)
def test_hints_that_quote_hidden_tests_are_refused(bad):
    with pytest.raises(hints.HintError, match="repeats its hidden tests"):
        hints.collect({"cells": [_test_cell("test_softmax_hidden", HIDDEN, bad)]})
