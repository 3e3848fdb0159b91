"""Figures for every lab, in one style: image grids, loss curves.

Every function returns a ``matplotlib.figure.Figure`` that is not registered with pyplot,
so a notebook shows it exactly once (as a cell's last value or with ``display(fig)``),
tests can inspect it, and no figures pile up in memory.
"""
from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

F = TypeVar("F", bound=Callable[..., Figure])

# Okabe & Ito (2008): distinguishable with the common forms of colour blindness.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
LINESTYLES = ("-", "--", "-.", ":")
STYLE = {
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "image.cmap": "gray",
}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _register_notebook_display() -> None:
    """Let Jupyter show a returned Figure even when pyplot's inline backend never started."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    png_formatter = shell.display_formatter.formatters["image/png"]
    try:
        png_formatter.lookup_by_type(Figure)  # pyplot's inline backend already shows figures
    except KeyError:
        png_formatter.for_type(Figure, _png)


_register_notebook_display()

ImageRows = torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray]


def styled(function: F) -> F:
    """Decorator: draw the whole figure inside the course style (legends, fonts, grid, colours)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None,
               **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A course-styled figure and a 2-D array of axes (``axes[row, col]``)."""
    if nrows < 1 or ncols < 1:
        raise ValueError(f"a figure needs at least one row and one column, got {nrows}x{ncols}")
    size = size or (4.2 * ncols, 3.2 * nrows)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, subplot_kw=subplot_kw or None)
    return fig, axes


def figure_and_axis(ax: Axes | None = None, size: tuple[float, float] | None = None) -> tuple[Figure, Axes]:
    """The axis to draw on: ``ax`` and its figure when given, else a new one-axis course figure."""
    if ax is not None:
        return ax.figure, ax
    fig, axes = new_figure(size=size)
    return fig, axes[0, 0]


def decimal_log_axis(ax: Axes, axis: str = "y") -> None:
    """Plain decimal tick labels (0.02, 0.05, 0.1) on a log axis, minor ticks at 2x and 5x labelled too, so
    that values between two powers of ten can be read off without 10^-2 notation."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def label(value: float, _position: object) -> str:
        leading = f"{value:.0e}"[0]
        return f"{value:g}" if leading in "125" else ""

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(label))
    target.set_minor_locator(LogLocator(base=10, subs=(2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
    target.set_minor_formatter(FuncFormatter(label))


def _as_image_batch(images: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    array = images.detach().cpu().float().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2 and array.shape[1] == 784:
        array = array.reshape(-1, 28, 28)
    if array.ndim != 3:
        raise ValueError(
            f"{name} must be images shaped (N, 1, H, W), (N, H, W) or flat (N, 784); got shape {tuple(array.shape)}"
        )
    return array


@styled
def show_images(
    rows: ImageRows,
    *,
    row_titles: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    title: str | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    cell_size: float = 1.0,
) -> Figure:
    """A grid of grey images: one row per batch in ``rows`` (e.g. original / noisy / reconstruction).

    A single tensor (N, 1, H, W) is wrapped into rows of ``ncols`` images (default 10) and ``titles``
    label each image (e.g. digit labels); with several rows ``titles`` label the columns of the first row.
    ``row_titles`` label the rows.
    """
    per_image_titles = isinstance(rows, (torch.Tensor, np.ndarray))
    if per_image_titles:
        batch = _as_image_batch(rows, "images")
        ncols = ncols or min(10, len(batch))
        grid = [batch[i:i + ncols] for i in range(0, len(batch), ncols)]
    else:
        grid = [_as_image_batch(r, f"rows[{i}]") for i, r in enumerate(rows)]
        ncols = ncols or max(len(r) for r in grid)
        grid = [r[:ncols] for r in grid]
    if not grid or ncols == 0:
        raise ValueError("show_images got no images")
    if row_titles is not None and len(row_titles) != len(grid):
        raise ValueError(f"got {len(row_titles)} row_titles for {len(grid)} rows")
    fig, axes = new_figure(len(grid), ncols, size=(cell_size * ncols + (1.2 if row_titles else 0.2),
                                                   cell_size * len(grid) + (0.4 if title else 0.1)))
    for r, batch in enumerate(grid):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(batch):
                ax.imshow(batch[c], cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
                index = r * ncols + c if per_image_titles else c
                if titles is not None and (per_image_titles or r == 0) and index < len(titles):
                    ax.set_title(str(titles[index]), fontsize=9)
        if row_titles is not None:
            axes[r, 0].set_ylabel(row_titles[r], rotation=0, ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title)
    return fig


def _xy(values: Sequence[float] | tuple[Sequence[float], Sequence[float]], x_start: int,
        name: str) -> tuple[np.ndarray, np.ndarray]:
    """A curve's (xs, ys): ``values`` is either the ys (x counted from ``x_start``) or a pair (xs, ys)."""
    if isinstance(values, tuple) and len(values) == 2 and all(np.ndim(v) == 1 for v in values):
        xs, ys = (np.asarray(v, dtype=float) for v in values)
        if len(xs) != len(ys):
            raise ValueError(f"curve {name!r}: {len(xs)} x values but {len(ys)} y values")
        return xs, ys
    ys = np.asarray([float(v) for v in values])
    return np.arange(x_start, x_start + len(ys)), ys


@styled
def plot_curves(
    curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "epoch",
    ylabel: str = "loss",
    title: str | None = None,
    logy: bool = False,
    ax: Axes | None = None,
    x_start: int = 1,
    dashed: Sequence[str] = (),
    y_from_zero: bool = False,
) -> Figure:
    """Line plot of named curves, e.g. ``{"train": [...], "test": [...]}`` with x counted from ``x_start``.

    A curve may also be a pair ``(xs, ys)`` (measurements at chosen x values). The curves named in
    ``dashed`` (e.g. an analytic model next to measurements) are drawn dashed, without markers.
    ``y_from_zero`` starts the y axis at 0.
    """
    if not curves:
        raise ValueError("plot_curves needs at least one named curve")
    unknown = set(dashed) - set(curves)
    if unknown:
        raise ValueError(f"dashed names curves that are not plotted: {', '.join(sorted(unknown))}")
    fig, ax = figure_and_axis(ax)
    for i, (name, values) in enumerate(curves.items()):
        xs, ys = _xy(values, x_start, name)
        style = (dict(linestyle="--", linewidth=2, alpha=0.7) if name in dashed else
                 dict(linestyle=LINESTYLES[(i // len(COLORS)) % len(LINESTYLES)],
                      marker="o" if len(ys) < 15 else None, markersize=3))
        ax.plot(xs, ys, label=name, color=COLORS[i % len(COLORS)], **style)
    if logy:
        ax.set_yscale("log")
    if y_from_zero:
        ax.set_ylim(bottom=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return fig


@styled
def plot_history(histories, *, title: str | None = None, logy: bool = False, ylabel: str = "loss") -> Figure:
    """Loss per epoch of one History or a {name: History} mapping (Lab 0).

    One colour per run: training solid, validation dashed.
    """
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, (name, history) in enumerate(histories.items()):
        if not hasattr(history, "train_loss"):
            raise TypeError(f"plot_history expects History objects from fit(), got {type(history).__name__}")
        prefix = f"{name} " if name else ""
        color = COLORS[i % len(COLORS)]
        for values, style, part in ((history.train_loss, "-", "train"), (history.val_loss, "--", "validation")):
            if values:
                ax.plot(np.arange(1, len(values) + 1), values, color=color, linestyle=style, label=prefix + part,
                        marker="o" if len(values) < 15 else None, markersize=3)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel=ylabel, title=title or "")
    ax.legend()
    return fig
