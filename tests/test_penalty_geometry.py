import numpy as np
import pytest

from course_lib.penalty_geometry import (
    ball_boundary,
    boundary_minimum,
    constrained_minimum,
    quadratic_loss,
)


def _project_l1(c, t=1.0):
    """Euclidean projection onto the L1 ball (Duchi et al., 2008): the oracle for A = I."""
    if np.abs(c).sum() <= t:
        return c
    u = np.sort(np.abs(c))[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, len(u) + 1) > css - t)[0][-1]
    theta = (css[rho] - t) / (rho + 1)
    return np.sign(c) * np.maximum(np.abs(c) - theta, 0)


def test_quadratic_loss_matches_the_matrix_product():
    rng = np.random.default_rng(0)
    c, m = rng.normal(size=3), rng.normal(size=(3, 3))
    a = m @ m.T + np.eye(3)
    w = rng.normal(size=(4, 5, 3))
    expected = np.array([[(x - c) @ a @ (x - c) for x in row] for row in w])
    assert np.allclose(quadratic_loss(w, c, a), expected)


@pytest.mark.parametrize("c", [(1.9, 0.9), (-0.3, 2.0), (0.8, -0.7, 1.5)])
def test_identity_curvature_gives_the_euclidean_projection(c):
    c = np.array(c)
    eye = np.eye(len(c))
    assert np.allclose(constrained_minimum(c, eye, "L2"), c / np.linalg.norm(c), atol=1e-5)
    assert np.allclose(constrained_minimum(c, eye, "L1"), _project_l1(c), atol=1e-5)


def test_a_minimum_inside_the_ball_is_returned_unchanged():
    c, a = np.array([0.2, -0.3]), np.array([[2.0, 0.3], [0.3, 1.0]])
    for norm in ("L1", "L2"):
        assert np.allclose(constrained_minimum(c, a, norm), c, atol=1e-5)


def test_l1_solution_is_the_corner_when_the_gradient_points_into_its_normal_cone():
    c, a = np.array([1.9, 0.9]), np.array([[1.2, 0.8], [0.8, 0.9]])
    g = 2 * a @ (c - np.array([1.0, 0.0]))  # minus the gradient of the loss at the corner (1, 0)
    assert g[0] >= abs(g[1])  # the KKT condition for the corner
    assert np.allclose(constrained_minimum(c, a, "L1"), [1.0, 0.0], atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_the_dense_boundary_search_agrees_with_the_solver(seed):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(2, 2))
    a = m @ m.T + 0.3 * np.eye(2)
    c = rng.normal(size=2)
    c = 2.5 * c / np.linalg.norm(c)  # outside both unit balls
    for norm in ("L1", "L2"):
        w = constrained_minimum(c, a, norm)
        assert np.allclose(boundary_minimum(c, a, norm, n=100_001), w, atol=2e-3)


def test_ball_boundary_lies_on_the_ball():
    assert np.allclose(np.linalg.norm(ball_boundary("L2", 2.0, 101), axis=1), 2.0)
    assert np.allclose(np.abs(ball_boundary("L1", 0.5, 101)).sum(1), 0.5)
    with pytest.raises(ValueError):
        ball_boundary("Linf")
    with pytest.raises(ValueError):
        constrained_minimum(np.ones(2), np.eye(2), "L0")
