r"""Weight penalties as constraints: where a quadratic loss meets an L1 or an L2 ball.

Minimising :math:`L(w) + \lambda\,\Omega(w)` is, for some radius :math:`t`, the same as
minimising :math:`L(w)` subject to :math:`\Omega(w) \le t`. For a quadratic loss

.. math:: L(w) = (w - c)^\top A\,(w - c), \qquad A \text{ symmetric positive definite},

with its unconstrained minimum :math:`c` outside the ball, the solution lies on the ball's
boundary where a contour of :math:`L` first touches it: on the L2 ball (a circle in 2-D) both
weights usually stay non-zero, on the L1 ball (a diamond) a corner, where some weights are
exactly zero, is often touched first.

* :func:`quadratic_loss` - :math:`L(w)` for ``w`` of shape ``(..., d)``;
* :func:`constrained_minimum` - the solution for ``norm="L1"`` or ``"L2"`` (SLSQP; the L1 norm is
  made smooth by writing :math:`w = u - v` with :math:`u, v \ge 0`);
* :func:`ball_boundary` and :func:`boundary_minimum` - the 2-D boundary as ``n`` points and the
  best of them: an independent, brute-force check of the solver.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import minimize

__all__ = ["Norm", "quadratic_loss", "constrained_minimum", "ball_boundary", "boundary_minimum"]

Norm = Literal["L1", "L2"]
TOLERANCE = {"ftol": 1e-12, "maxiter": 500}  # SLSQP's default ftol (1e-6) leaves errors ~1e-4


def quadratic_loss(w: np.ndarray, center: np.ndarray, curvature: np.ndarray) -> np.ndarray:
    """:math:`(w - c)^\\top A (w - c)` for ``w`` ``(..., d)``, ``center`` ``(d,)``, ``curvature`` ``(d, d)``.

    Returns shape ``w.shape[:-1]`` (a float for one ``(d,)`` point).
    """
    d = np.asarray(w, dtype=float) - center
    return np.einsum("...i,ij,...j->...", d, curvature, d)


def constrained_minimum(
    center: np.ndarray, curvature: np.ndarray, norm: Norm, radius: float = 1.0
) -> np.ndarray:
    """``argmin quadratic_loss(w)`` subject to ``||w||_1 <= radius`` or ``||w||_2 <= radius``.

    Solved with SciPy's SLSQP from ``w = 0`` (``ftol`` 1e-12). L2: the constraint ``radius**2 - w @ w >= 0``.
    L1: ``|w|`` is not differentiable at 0, so the solver works on ``z = (u, v)``, ``u, v >= 0``
    (``2 d`` variables), with ``w = u - v`` and ``radius - sum(z) >= 0``. Returns ``w`` ``(d,)``.
    """
    center, curvature = np.asarray(center, float), np.asarray(curvature, float)
    d = len(center)
    if norm == "L2":
        con = {"type": "ineq", "fun": lambda w: radius**2 - w @ w}
        res = minimize(
            quadratic_loss,
            np.zeros(d),
            (center, curvature),
            method="SLSQP",
            constraints=[con],
            options=TOLERANCE,
        )
        return res.x
    if norm != "L1":
        raise ValueError(f"norm must be 'L1' or 'L2', got {norm!r}")
    con = {"type": "ineq", "fun": lambda z: radius - z.sum()}
    res = minimize(
        lambda z: quadratic_loss(z[:d] - z[d:], center, curvature),
        np.full(2 * d, 0.1),
        method="SLSQP",
        bounds=[(0, None)] * (2 * d),
        constraints=[con],
        options=TOLERANCE,
    )
    return res.x[:d] - res.x[d:]


def ball_boundary(norm: Norm, radius: float = 1.0, n: int = 200_001) -> np.ndarray:
    """``n`` points ``(n, 2)`` on the boundary of the 2-D L2 ball (circle) or L1 ball (diamond).

    The circle's points are equally spaced in angle; the diamond's are the same points divided
    by their L1 norm (radial projection onto the diamond).
    """
    angle = np.linspace(0, 2 * np.pi, n)[:, None]
    circle = np.hstack([np.cos(angle), np.sin(angle)])
    if norm == "L2":
        return radius * circle
    if norm == "L1":
        return radius * circle / np.abs(circle).sum(1, keepdims=True)
    raise ValueError(f"norm must be 'L1' or 'L2', got {norm!r}")


def boundary_minimum(
    center: np.ndarray, curvature: np.ndarray, norm: Norm, radius: float = 1.0, n: int = 200_001
) -> np.ndarray:
    """The point of :func:`ball_boundary` with the smallest loss, ``(2,)``: a dense search.

    Equal to the constrained minimum (to about ``2 pi radius / n``) whenever ``center`` lies
    outside the ball, because the solution is then on the boundary.
    """
    points = ball_boundary(norm, radius, n)
    return points[np.argmin(quadratic_loss(points, center, curvature))]
