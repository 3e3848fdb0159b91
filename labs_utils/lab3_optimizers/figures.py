"""Figures of Lab 3: contour maps with optimizer paths, loss curves, learning-rate sweeps, rate maps."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ..plotting import COLORS, LINESTYLES, figure_and_axis, new_figure, styled
from .convergence import (
    _check_eigenvalues,
    _tail_rate,
    gd_optimal_lr,
    heavy_ball_errors,
    heavy_ball_optimal,
    heavy_ball_radius,
    heavy_ball_rate,
    quadratic_gaps,
)
from .landscapes import Landscape, Run
from .noise import NoiseSweep, sharp_flat_loss


def _log_levels(gaps: np.ndarray, n: int) -> np.ndarray:
    positive = gaps[gaps > 0]
    low, high = np.quantile(positive, 0.005), np.quantile(positive, 0.98)
    return np.geomspace(low, high, n)



def draw_landscape(ax: Axes, landscape: Landscape, *, levels: int = 14, resolution: int = 300) -> None:
    """Contour lines of ``landscape`` at log-spaced loss levels and its minimum (a star) on ``ax``."""
    xmin, xmax, ymin, ymax = landscape.bounds
    xs, ys = np.linspace(xmin, xmax, resolution), np.linspace(ymin, ymax, resolution)
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), axis=-1))
    with torch.no_grad():
        gaps = landscape(grid).numpy() - landscape.min_value
    lv = _log_levels(gaps, levels)
    ax.contour(xs, ys, np.maximum(gaps, lv[0] * 1e-3), levels=lv, cmap="Greys_r", norm=LogNorm(lv[0] / 30, lv[-1]),
               linewidths=0.8)
    ax.plot(*landscape.minimum, marker="*", markersize=13, color="black", linestyle="none", label="minimum",
            zorder=5)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.grid(False)



def _until_it_leaves(path: np.ndarray, ax: Axes) -> np.ndarray:
    """The path up to and including its first point outside the axes' window (the rest would be off-screen)."""
    (xmin, xmax), (ymin, ymax) = ax.get_xlim(), ax.get_ylim()
    outside = (path[:, 0] < xmin) | (path[:, 0] > xmax) | (path[:, 1] < ymin) | (path[:, 1] > ymax)
    return path[: int(np.argmax(outside)) + 1] if outside.any() else path



# The runs' colours: the palette with its two oranges apart (the 2nd and 5th run of a comparison), so that runs
# drawn near each other never get the two oranges.
RUN_COLORS = (COLORS[0], COLORS[1], COLORS[2], COLORS[4], COLORS[3], *COLORS[5:])


def _style(i: int) -> dict:
    """Colour and line style of the i-th run: styles differ too, so overlapping paths stay visible."""
    return {"color": RUN_COLORS[i % len(RUN_COLORS)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}



def draw_trajectories(ax: Axes, runs: Mapping[str, Run], *, max_markers: int = 120) -> None:
    """Each run's path (dots at the iterates) in its own colour and line style, up to where it leaves the window.

    Call after the window is set (e.g. by :func:`draw_landscape`); a cross marks where a path leaves it (or
    diverges), a large dot in the run's colour where it ends inside the window, drawn above every path so that a
    run whose path another one covers still shows where it stopped.
    """
    end_dot = {"marker": "o", "markersize": 7, "markeredgecolor": "black", "markeredgewidth": 0.8, "linestyle": "none"}
    ended_inside = False
    for i, (label, run) in enumerate(runs.items()):
        path = _until_it_leaves(run.trajectory, ax)
        ax.plot(path[:, 0], path[:, 1], linewidth=1.4, marker="o" if len(path) <= max_markers else None,
                markersize=2.5, label=f"{label} ({run.status})", **_style(i))
        if len(path) < len(run.trajectory) or run.diverged:
            ax.plot(*path[-1], marker="x", markersize=9, color=_style(i)["color"], linestyle="none")
        else:
            ax.plot(*path[-1], color=_style(i)["color"], zorder=6, **end_dot)
            ended_inside = True
    if ended_inside:
        ax.plot([], [], color="white", label="end of a run (its colour)", **end_dot)
    if runs:
        start = next(iter(runs.values())).trajectory[0]
        ax.plot(*start, marker="s", markersize=6, color="black", linestyle="none", label="start", zorder=5)



@styled
def plot_trajectories(landscape: Landscape, runs: Mapping[str, Run], *, title: str | None = None,
                      ax: Axes | None = None, legend: bool = True) -> Figure:
    """Contours of ``landscape`` (log-spaced levels) with several optimizer paths and a legend."""
    fig, ax = figure_and_axis(ax, size=(7.0, 4.2))
    draw_landscape(ax, landscape)
    draw_trajectories(ax, runs)
    ax.set_title(title or landscape.name)
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig



@styled
def plot_losses(runs: Mapping[str, Run], *, title: str = "loss gap f(θ) − f* per step", ax: Axes | None = None,
                ylim_low: float = 1e-16) -> Figure:
    """Loss gap to the minimum against the step, on a log scale; diverged runs end in a cross."""
    if not runs:
        raise ValueError("plot_losses needs at least one run")
    fig, ax = figure_and_axis(ax, size=(6.0, 3.6))
    for i, (label, run) in enumerate(runs.items()):
        gaps = np.maximum(run.gaps, ylim_low)
        ax.plot(np.arange(len(gaps)), gaps, label=label, **_style(i))
        if run.diverged:
            ax.plot(len(gaps) - 1, gaps[-1], marker="x", markersize=9, color=_style(i)["color"])
    ax.set_yscale("log")
    ax.set_ylim(bottom=ylim_low)
    ax.set_xlabel("step")
    ax.set_ylabel("f(θ) − f*")
    ax.set_title(title)
    ax.legend()
    return fig



@styled
def plot_comparison(landscape: Landscape, runs: Mapping[str, Run], *, title: str | None = None) -> Figure:
    """Paths on the contours (left) and loss gaps (right) of the same runs, one shared legend."""
    fig, axes = new_figure(1, 2, size=(11.0, 4.0))
    plot_trajectories(landscape, runs, ax=axes[0, 0], legend=False, title=title)
    plot_losses(runs, ax=axes[0, 1], ylim_low=max(1e-30, min(float(np.min(r.gaps[r.gaps > 0], initial=1.0))
                                                              for r in runs.values()) / 3))
    axes[0, 1].get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)))
    return fig



@styled
def plot_lr_sweep(lrs: Sequence[float], gaps: Sequence[float], diverging: Sequence[bool], *,
                  threshold: float | None = None, steps: int | None = None) -> Figure:
    """Final loss gap against the learning rate; diverging runs (gap still growing) are crosses, blown-up ones on
    the top edge."""
    lrs, gaps, diverging = np.asarray(lrs, dtype=float), np.asarray(gaps, dtype=float), np.asarray(diverging)
    fig, axes = new_figure(size=(6.4, 3.8))
    ax = axes[0, 0]
    finite = np.isfinite(gaps)
    top = gaps[finite].max() * 10 if finite.any() else 1.0
    shown = np.where(finite, np.maximum(gaps, 1e-300), top)
    ax.plot(lrs[~diverging], shown[~diverging], marker="o", markersize=3, color=COLORS[0], label="not diverging")
    if diverging.any():
        ax.plot(lrs[diverging], shown[diverging], marker="x", linestyle="none", color=COLORS[3],
                label="diverging (gap still growing;\nblown-up runs on the top edge)")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"2/λ_max = {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate α")
    ax.set_ylabel("f(θ) − f*" + (f" after {steps} steps" if steps else ""))
    ax.legend(loc="lower left")
    return fig


@styled
def plot_rate_map(lam_min: float, lam_max: float, *, resolution: int = 300, ax: Axes | None = None) -> Figure:
    """Heavy ball's rate over (α, β) as a heat map, with the edge 0 < αλ_max < 2 + 2β and Polyak's optimum."""
    _check_eigenvalues(lam_min, lam_max)
    lrs = np.linspace(1e-3, 4.2 / lam_max, resolution)
    betas = np.linspace(0.0, 0.999, resolution)
    rates = heavy_ball_radius(lrs[None, :], betas[:, None], lam_min, lam_max)
    fig, ax = figure_and_axis(ax, size=(6.4, 4.4))
    shown = np.ma.masked_where(rates >= 1.0, rates)
    mesh = ax.pcolormesh(lrs, betas, 1.0 - shown, cmap="viridis", norm=LogNorm(vmin=max((1 - shown).min(), 1e-4),
                                                                                vmax=1.0), shading="auto")
    ax.set_facecolor("#dddddd")
    ax.grid(False)
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label("1 − rate (larger = faster); grey: diverges")
    ax.plot(2 * (1 + betas) / lam_max, betas, color="black", linestyle="--", linewidth=1.2,
            label="edge: α·λ_max = 2 + 2β")
    lr_opt, beta_opt = heavy_ball_optimal(lam_min, lam_max)
    ax.plot(lr_opt, beta_opt, marker="*", markersize=14, color=COLORS[1], linestyle="none",
            markeredgecolor="black", label=f"Polyak: α={lr_opt:.2f}, β={beta_opt:.3f}")
    ax.plot(gd_optimal_lr(lam_min, lam_max), 0.0, marker="o", markersize=8, color=COLORS[3], linestyle="none",
            markeredgecolor="black", clip_on=False, label="best plain GD (β = 0)")
    ax.set_xlim(lrs[0], lrs[-1])
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("learning rate α")
    ax.set_ylabel("momentum β")
    ax.set_title(f"heavy-ball rate, κ = {lam_max / lam_min:g}")
    ax.legend(loc="lower right", frameon=True)
    return fig



@styled
def plot_steps_vs_kappa(kappas: Sequence[float], measured: dict, predicted: dict, *,
                        tol: float = 1e-6) -> Figure:
    """Steps to reach ``tol`` against κ on log-log axes: measured (dots) and theory (lines), per method."""
    fig, axes = new_figure(size=(6.0, 3.8))
    ax = axes[0, 0]
    for i, (label, values) in enumerate(measured.items()):
        ax.plot(kappas, values, marker="o", linestyle="none", color=COLORS[i % len(COLORS)], label=label)
    for i, (label, values) in enumerate(predicted.items()):
        ax.plot(kappas, values, linestyle="--", color=COLORS[i % len(COLORS)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("condition number κ = λ_max / λ_min")
    ax.set_ylabel(f"steps until f − f* ≤ {tol:g}·(f₀ − f*)")
    ax.legend()
    return fig



@styled
def plot_heavy_ball_decay(landscape: Landscape, gaps: np.ndarray, lr: float, beta: float, *,
                          tail: tuple[int, int]) -> Figure:
    """Measured heavy-ball loss gaps against the exact formula, the naive r^2k line and the mean rate over a tail."""
    steps = len(gaps) - 1
    k = np.arange(steps + 1)
    lam_min, lam_max = landscape.eigenvalues
    exact = quadratic_gaps(landscape, heavy_ball_errors(lr, beta, (lam_min, lam_max), steps))
    r = heavy_ball_rate(lam_max / lam_min)
    fitted = _tail_rate(gaps, *tail)
    anchor = gaps[tail[1]] / fitted ** (2 * tail[1])
    fig, axes = new_figure(size=(6.4, 4.0))
    ax = axes[0, 0]
    ax.plot(k, gaps, color=COLORS[0], linewidth=2.5, label="measured (your Momentum)")
    ax.plot(k, exact, color=COLORS[1], linestyle="--", label="exact formula (1 + c·k)²·r^2k terms")
    ax.plot(k, gaps[0] * r ** (2 * k), color=COLORS[3], linestyle=":", label=f"naive r^2k, r = {r:.4f}")
    ax.plot(k[tail[0]:], anchor * fitted ** (2 * k[tail[0]:]), color=COLORS[2], linestyle="-.",
            label=f"mean rate over the tail, {fitted:.4f}")
    ax.set_yscale("log")
    ax.set_xlabel("step k")
    ax.set_ylabel("f(θ_k) − f*")
    ax.set_title(f"tuned heavy ball on the {landscape.name}")
    ax.legend()
    return fig


def plot_yours_vs_torch(step_losses: Mapping[str, tuple[np.ndarray, np.ndarray]], *, show: str = "Adam") -> Figure:
    """Left: your ``show`` optimizer's per-batch loss over torch's; right: the largest difference per optimizer."""
    fig, axes = new_figure(1, 2, size=(11.0, 3.8))
    mine, theirs = step_losses[show]
    axes[0, 0].plot(theirs, color=COLORS[0], lw=3, alpha=0.5, label=f"torch.optim.{show}")
    axes[0, 0].plot(mine, color=COLORS[1], lw=1, ls="--", label=f"your {show}")
    axes[0, 0].set(xlabel="batch", ylabel="cross-entropy", title="one epoch, same start and batches")
    axes[0, 0].legend()
    largest = {name: float(np.abs(a - b).max()) for name, (a, b) in step_losses.items()}
    bars = axes[0, 1].bar(list(largest), [max(d, 1e-10) for d in largest.values()], color=COLORS[0])
    axes[0, 1].bar_label(bars, labels=["identical" if d == 0 else f"{d:.0e}" for d in largest.values()], fontsize=8)
    axes[0, 1].set(yscale="log", ylim=(1e-10, 1e-4), ylabel="largest |your loss − torch's loss|",
                   title="per optimizer, over the epoch")
    axes[0, 1].tick_params(axis="x", labelrotation=30, labelsize=8)
    return fig


def plot_noise_sweep(sweep: NoiseSweep, *, lr: float) -> Figure:
    """Left: the two-well landscape; right: where noisy runs end, against the noise scale σ."""
    fig, axes = new_figure(1, 2, size=(11.0, 3.8))
    xs = np.linspace(-2.0, 3.0, 800)
    axes[0, 0].plot(xs, sharp_flat_loss(xs), color=COLORS[7])
    axes[0, 0].set(xlabel="x", ylabel="f(x)", title="a sharp minimum (x = −1) and a flat one (x = +1)")
    series = [("started sharp, still sharp", sweep.sharp_from_sharp, COLORS[3], "-"),
              ("started sharp, now flat", sweep.flat_from_sharp, COLORS[0], "--"),
              ("started flat, still flat", sweep.flat_from_flat, COLORS[2], ":")]
    for label, values, color, style in series:
        axes[0, 1].plot(sweep.sigmas, 100 * values, marker="o", color=color, linestyle=style, label=label)
    axes[0, 1].set(xlabel="gradient noise σ", ylabel="runs (%)", ylim=(-3, 103),
                   title=f"where noisy gradient descent ends (lr = {lr:g})")
    axes[0, 1].legend(fontsize=8)
    return fig
