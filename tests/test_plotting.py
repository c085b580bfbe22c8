import matplotlib.pyplot as plt
import pytest
import torch

from course_lib.plotting import image_grid, plot_history
from course_lib.train import History


def _hist(offset=0.0):
    h = History()
    for e in range(1, 4):
        h.append(
            {"epoch": e, "train_loss": 1 / e + offset, "train_acc": 0.5 + 0.1 * e,
             "val_loss": 1.2 / e + offset, "val_acc": 0.45 + 0.1 * e, "lr": 0.1, "time": 1.0}
        )  # fmt: skip
    return h


def test_plot_history_single_run_has_labelled_axes_and_legend():
    fig = plot_history(_hist(), title="demo")
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and loss_ax.get_ylabel() == "loss"
    assert acc_ax.get_ylabel() == "accuracy"
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["train", "val"]
    assert list(loss_ax.lines[0].get_ydata()) == _hist().train_loss
    plt.close(fig)


def test_plot_history_overlays_runs_and_accepts_dicts():
    runs = {"plain": _hist(), "resnet": _hist(0.5).to_dict()}
    fig = plot_history(runs, metrics=("loss",))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["plain train", "plain val", "resnet train", "resnet val"]
    plt.close(fig)


def test_image_grid_marks_wrong_predictions():
    x = torch.rand(5, 1, 8, 8)
    fig = image_grid(x, labels=[0, 1, 2, 3, 4], preds=[0, 1, 2, 3, 9], ncols=3)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[-1] == "4 →9" and fig.axes[4].title.get_color() == "red"
    assert len(fig.axes) == 6  # 2 rows × 3 columns, the last one blank
    plt.close(fig)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        image_grid(torch.rand(2, 2, 2, 2, 2))


def test_confusion_matrix_plot_normalises_rows():
    from course_lib.plotting import plot_confusion_matrix

    cm = [[8, 2], [1, 9]]
    ax = plot_confusion_matrix(cm, classes=["cat", "dog"], normalize=True)
    assert ax.images[0].get_array()[0, 0] == pytest.approx(0.8)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.texts] == ["0.80", "0.20", "0.10", "0.90"]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix([[1, 2, 3]])


def test_reliability_diagram_reports_ece():
    import numpy as np

    from course_lib.metrics import expected_calibration_error
    from course_lib.plotting import plot_reliability

    rng = np.random.default_rng(0)
    prob = rng.dirichlet(np.ones(3) * 0.5, size=300)
    y = rng.integers(0, 3, size=300)
    ax = plot_reliability(y, prob, n_bins=10)
    assert f"{100 * expected_calibration_error(y, prob, n_bins=10):.2f} %" in ax.get_title()
    assert ax.get_xlabel() == "confidence" and ax.get_legend() is not None
    plt.close(ax.figure)


def test_filter_feature_map_and_boundary_plots():
    import numpy as np

    from course_lib.plotting import plot_decision_boundary, plot_feature_maps, plot_filters

    fig = plot_filters(torch.randn(6, 3, 5, 5), ncols=3)
    assert len([a for a in fig.axes if a.images]) == 6
    fig2 = plot_feature_maps(torch.randn(2, 4, 7, 7), ncols=4)
    assert len([a for a in fig2.axes if a.images]) == 4
    x = np.random.default_rng(0).normal(size=(20, 2))
    ax = plot_decision_boundary(lambda p: (p[:, 0] > 0).astype(int), x, (x[:, 0] > 0).astype(int))
    assert ax.get_xlabel() == "$x_1$"
    for f in (fig, fig2, ax.figure):
        plt.close(f)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        plot_decision_boundary(lambda p: p, np.zeros((3, 3)), np.zeros(3))
