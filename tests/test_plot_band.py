import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.plotting import plot_band  # noqa: E402


def _band_limits(ax):
    path = ax.collections[0].get_paths()[0].vertices
    return path[:, 1].min(), path[:, 1].max()


def test_plot_band_draws_the_seed_mean_and_a_std_band():
    x = np.array([1.0, 2.0, 4.0])
    v = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.9, 0.7, 0.8]])
    fig, ax = plt.subplots()
    plot_band(x, v, ax=ax, label="BN", marker="o")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), v.mean(1))
    lo, hi = _band_limits(ax)
    sd = v.std(1, ddof=1)
    assert lo == pytest.approx((v.mean(1) - sd).min()) and hi == pytest.approx(
        (v.mean(1) + sd).max()
    )
    assert ax.lines[0].get_label() == "BN"
    plt.close(fig)


def test_plot_band_minmax_and_shape_check():
    x = np.arange(2)
    v = np.array([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    fig, ax = plt.subplots()
    plot_band(x, v, ax=ax, spread="minmax")
    assert _band_limits(ax) == (0.0, 3.0)
    with pytest.raises(ValueError):
        plot_band(x, v.T, ax=ax)
    with pytest.raises(ValueError):
        plot_band(x, v, ax=ax, spread="iqr")
    plt.close(fig)
