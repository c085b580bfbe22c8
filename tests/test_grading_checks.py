"""course_lib.grading.checks: the helpers exercise authors use in nbgrader test cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import __main__
from course_lib.grading.checks import (
    ForbiddenCallError,
    assert_close,
    forbidden,
    plain,
    record,
)


def test_forbidden_dotted_name_raises_and_is_restored():
    x = torch.randn(2, 3)
    original = F.softmax
    with forbidden("torch.nn.functional.softmax"):
        with pytest.raises(ForbiddenCallError, match="torch.nn.functional.softmax"):
            F.softmax(x, dim=-1)
    assert F.softmax is original
    with pytest.raises(ValueError), forbidden("torch.nn.functional.softmax"):
        raise ValueError("restored even when the block raises")
    assert F.softmax is original


def test_forbidden_aten_catches_every_route_including_captured_references():
    captured = F.log_softmax  # a reference taken "at import", before the test
    x = torch.randn(4, 5)
    for call in (
        lambda: captured(x, dim=1),
        lambda: x.log_softmax(1),
        lambda: torch.log_softmax(x, 1),
        lambda: F.cross_entropy(x, torch.zeros(4, dtype=torch.long)),
    ):
        with (
            forbidden("aten._log_softmax"),
            pytest.raises(ForbiddenCallError, match="aten._log_softmax"),
        ):
            call()
    with forbidden("aten._log_softmax"):  # unrelated ops still work
        y = torch.exp(x - x.amax(1, keepdim=True))
    assert torch.allclose(captured(x, dim=1), torch.log(y / y.sum(1, keepdim=True)), atol=1e-6)


def test_forbidden_replaces_notebook_globals_bound_to_the_target():
    __main__.sneaky = F.softmax  # what `from torch.nn.functional import softmax as sneaky` does
    try:
        with forbidden("torch.nn.functional.softmax"):
            with pytest.raises(ForbiddenCallError):
                __main__.sneaky(torch.randn(3), dim=0)
        assert __main__.sneaky is F.softmax
    finally:
        del __main__.sneaky


def test_forbidden_rejects_unknown_modules():
    with pytest.raises(ValueError), forbidden("nonexistent_pkg_xyz.thing"):
        pass


def test_assert_close_messages_name_the_problem():
    expected = torch.ones(2, 3)
    with pytest.raises(AssertionError, match=r"wrong shape \(3, 2\), expected \(2, 3\)"):
        assert_close(torch.ones(3, 2), expected, what="softmax")
    with pytest.raises(AssertionError, match="wrong dtype torch.float64"):
        assert_close(torch.ones(2, 3, dtype=torch.float64), expected)
    with pytest.raises(AssertionError, match="NaN"):
        assert_close(torch.full((2, 3), float("nan")), expected)
    with pytest.raises(AssertionError, match="max abs error 0.5"):
        assert_close(expected + 0.5, expected, what="x")
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got list"):
        assert_close([[1.0] * 3] * 2, expected)
    with pytest.raises(AssertionError, match="expected a tensor or number"):
        assert_close(None, expected)
    assert_close(expected + 1e-7, expected)
    assert_close(np.float64(2.0), 2.0)


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        with torch._C.DisableTorchFunctionSubclass():
            if name in ("__eq__", "eq", "isclose", "__le__", "le", "__lt__", "lt"):
                return torch.ones(args[0].shape, dtype=torch.bool)
            if name in ("__sub__", "sub", "abs", "__abs__", "clone", "detach"):
                return torch.zeros(args[0].shape)
            return func(*args, **(kwargs or {}))


def test_plain_and_assert_close_see_through_lying_subclasses():
    liar = torch.full((2, 2), 7.0).as_subclass(Liar)
    assert bool((liar == torch.zeros(2, 2)).all())  # it lies ...
    p = plain(liar)
    assert type(p) is torch.Tensor and torch.equal(
        p, torch.full((2, 2), 7.0)
    )  # ... plain() does not
    with pytest.raises(AssertionError, match="values differ"):
        assert_close(liar, torch.zeros(2, 2))


def test_record_is_a_no_op_outside_grading_and_hands_values_to_the_sink():
    record("test_x/a", torch.ones(2))  # no sink bound: nothing happens, nothing is written
    got = []
    record("test_x/a", torch.arange(3.0), atol=0.5, _sink=lambda *a: got.append(a))
    assert got[0][0] == "test_x/a" and got[0][2:] == (0.5, 1e-5)
    with pytest.raises(ValueError, match="grade id"):
        record("no-slash", 1.0)


def test_forbidden_target_order_does_not_matter():
    import torch

    from course_lib.grading.checks import ForbiddenCallError, forbidden

    params = [torch.nn.Parameter(torch.zeros(2))]
    with forbidden("torch.optim.Adam", "torch.optim.Adam.step"):
        with pytest.raises(ForbiddenCallError):
            torch.optim.Adam(params)
    assert torch.optim.Adam.step is not None and torch.optim.Adam(params).step() is None


def test_forbidden_public_name_also_blocks_its_defining_module():
    import course_lib.metrics as metrics
    import course_lib.metrics.ranking as ranking

    original = ranking.roc_curve
    assert metrics.roc_curve is original and original.__module__ == "course_lib.metrics.ranking"
    with forbidden("course_lib.metrics.roc_curve"):
        for route in (metrics.roc_curve, ranking.roc_curve):
            with pytest.raises(ForbiddenCallError, match="course_lib.metrics.roc_curve"):
                route(np.array([0, 1]), np.array([0.2, 0.8]))
    assert metrics.roc_curve is original and ranking.roc_curve is original


def test_plain_never_runs_a_torch_dispatch_subclass():
    """A wrapper subclass runs its own code for every operator: plain() returns it untouched."""
    ran = []

    class Wrapper(torch.Tensor):
        @classmethod
        def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
            ran.append(func)
            return torch.zeros(2)

    w = torch.Tensor._make_wrapper_subclass(Wrapper, (2,))
    assert plain(w) is w and ran == []
    assert type(plain(torch.nn.Parameter(torch.ones(2)))) is torch.Tensor
