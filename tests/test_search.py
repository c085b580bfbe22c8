import numpy as np
import optuna
import pytest

from course_lib.search import Range, best_so_far, grid_points, random_points, run_search

SPACE = {"lr": Range(1e-3, 1.0, log=True), "wd": Range(0.0, 0.5)}


def quadratic(p):
    return (np.log10(p["lr"]) + 1.5) ** 2 + (p["wd"] - 0.2) ** 2


def test_grid_is_the_full_product_of_evenly_spaced_values():
    points = grid_points(SPACE, 9, seed=0)
    lrs = sorted({p["lr"] for p in points})
    np.testing.assert_allclose(lrs, [1e-3, np.sqrt(1e-3), 1.0])
    assert sorted({p["wd"] for p in points}) == pytest.approx([0.0, 0.25, 0.5])
    assert len({(p["lr"], p["wd"]) for p in points}) == 9
    with pytest.raises(ValueError):
        grid_points(SPACE, 10)


def test_random_points_stay_in_range_and_repeat_with_the_seed():
    pts = random_points(SPACE, 200, seed=1)
    lrs = np.array([p["lr"] for p in pts])
    assert lrs.min() >= 1e-3 and lrs.max() <= 1.0
    assert np.median(np.log10(lrs)) == pytest.approx(-1.5, abs=0.3)  # log-uniform
    assert pts == random_points(SPACE, 200, seed=1)


def test_best_so_far_is_a_running_minimum_with_nan_as_inf():
    np.testing.assert_array_equal(best_so_far([3.0, np.nan, 2.0, 5.0, 1.0]), [3, 3, 2, 2, 1])


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_every_method_spends_the_budget_and_records_every_trial(method):
    res = run_search(method, quadratic, SPACE, 16, seed=0)
    assert len(res.values) == len(res.params) == 16
    assert res.values == [quadratic(p) for p in res.params]
    assert res.best[1] == min(res.values) == res.best_so_far[-1]


def test_tpe_follows_optuna_and_beats_random_on_a_smooth_objective():
    res = run_search("tpe", quadratic, SPACE, 40, seed=0, n_startup=5)
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=5)
    study = optuna.create_study(sampler=sampler)
    study.optimize(
        lambda t: quadratic(
            {"lr": t.suggest_float("lr", 1e-3, 1.0, log=True), "wd": t.suggest_float("wd", 0, 0.5)}
        ),
        n_trials=40,
    )
    assert res.values == pytest.approx([t.value for t in study.trials])
    tpe = np.mean([run_search("tpe", quadratic, SPACE, 30, seed=s).best[1] for s in range(3)])
    rnd = np.mean([run_search("random", quadratic, SPACE, 30, seed=s).best[1] for s in range(3)])
    assert tpe < rnd
