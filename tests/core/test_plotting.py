"""labs_utils.plotting: figures that tests can inspect."""
import matplotlib.colors
import pytest
import torch
from matplotlib.figure import Figure

from labs_utils import plotting, training


def test_show_images_draws_one_axes_per_image_with_row_titles():
    rows = [torch.rand(5, 1, 28, 28), torch.rand(5, 1, 28, 28)]
    fig = plotting.show_images(rows, row_titles=["original", "noisy"], titles=list("abcde"))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 10
    assert [fig.axes[0].get_ylabel(), fig.axes[5].get_ylabel()] == ["original", "noisy"]
    assert fig.axes[0].get_title() == "a"


def test_show_images_wraps_a_single_batch_into_rows_and_accepts_flat_vectors():
    fig = plotting.show_images(torch.rand(25, 784), ncols=10)
    assert len(fig.axes) == 30
    assert sum(1 for ax in fig.axes if ax.images) == 25


def test_show_images_titles_every_image_of_a_wrapped_batch():
    fig = plotting.show_images(torch.rand(12, 1, 28, 28), titles=[str(i) for i in range(12)], ncols=6)
    assert [ax.get_title() for ax in fig.axes] == [str(i) for i in range(12)]


def test_figures_are_drawn_in_the_course_style():
    fig = plotting.plot_curves({"a": [1, 2]})
    assert not fig.axes[0].get_legend().get_frame().get_visible()
    assert not fig.axes[0].spines["top"].get_visible()


def test_show_images_rejects_wrong_shapes_with_the_expected_ones():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        plotting.show_images(torch.rand(3, 3, 28, 28))


def test_show_images_checks_the_number_of_row_titles():
    with pytest.raises(ValueError, match="2 row_titles for 1 rows"):
        plotting.show_images([torch.rand(2, 28, 28)], row_titles=["a", "b"])


def test_plot_curves_labels_axes_and_uses_the_colour_blind_safe_palette():
    fig = plotting.plot_curves({"train": [3, 2, 1], "test": [4, 3, 2]}, ylabel="MSE", logy=True)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "MSE" and ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
    colours = [matplotlib.colors.to_hex(line.get_color()).upper() for line in ax.lines]
    assert colours == [c.upper() for c in plotting.COLORS[:2]]


def test_plot_curves_takes_x_values_and_draws_model_curves_dashed():
    fig = plotting.plot_curves({"measured": ([2, 4, 8], [5.0, 7.0, 11.0]), "model": ([2, 4, 8], [5, 7, 11])},
                               dashed=["model"], y_from_zero=True)
    measured, model = fig.axes[0].lines
    assert list(measured.get_xdata()) == [2, 4, 8] and measured.get_marker() == "o"
    assert model.get_linestyle() == "--" and model.get_marker() in ("None", None, "")
    assert fig.axes[0].get_ylim()[0] == 0


def test_plot_curves_rejects_mismatched_x_values_and_unknown_dashed_names():
    with pytest.raises(ValueError, match="3 x values but 2 y values"):
        plotting.plot_curves({"a": ([1, 2, 3], [1, 2])})
    with pytest.raises(ValueError, match="dashed names"):
        plotting.plot_curves({"a": [1, 2]}, dashed=["b"])


def test_plot_history_draws_train_and_validation_of_several_runs():
    history = training.History(train_loss=[2.0, 1.0], val_loss=[2.5, 1.5])
    fig = plotting.plot_history({"dense": history, "conv": training.History(train_loss=[1.0, 0.5])})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["dense train", "dense validation", "conv train"]
    dense_train, dense_val, conv_train = fig.axes[0].lines
    assert dense_train.get_color() == dense_val.get_color() != conv_train.get_color()
    assert (dense_train.get_linestyle(), dense_val.get_linestyle()) == ("-", "--")


def test_plot_history_explains_what_it_expects():
    with pytest.raises(TypeError, match="History objects from fit"):
        plotting.plot_history({"x": [1, 2, 3]})


def test_figure_and_axis_reuses_a_given_axis_or_makes_a_styled_one():
    fig, ax = plotting.figure_and_axis()
    assert ax.figure is fig and not ax.spines["top"].get_visible()
    other_fig, axes = plotting.new_figure(1, 2)
    assert plotting.figure_and_axis(axes[0, 1]) == (other_fig, axes[0, 1])
