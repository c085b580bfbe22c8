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
