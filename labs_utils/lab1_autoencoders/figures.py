"""Figures and explorers of the autoencoder lab: codes by digit, curves, latent grids, sliders, denoising grids."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from torch import nn

from ..plotting import COLORS, decimal_log_axis, figure_and_axis, new_figure, show_images, styled
from ..training import History, apply_in_batches, model_device
from ..widgets import slider_figure
from .analysis import PCA, Corruption, Images, median_filter, psnr

# Okabe-Ito has 8 colours; two more from Paul Tol's palette (grey, wine) make 10. They are assigned so that the
# digits whose codes overlap (4/7/9, 3/5/8, 1/7, 1/9, 3/4, 2/5/6, 0/6) never get two similar hues, and every digit
# has its own marker too, so that the classes stay apart for colour-blind readers and in the crowded centre.
DIGIT_COLORS = ("#E69F00", "#999999", "#F0C400", "#882255", "#009E73", "#D55E00", "#000000", "#0072B2", "#56B4E9",
                "#CC79A7")
DIGIT_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _draw_codes(ax, codes: torch.Tensor, labels: torch.Tensor, size: float = 10.0, alpha: float = 0.7) -> None:
    codes = codes.detach().cpu()
    centres = {}
    for digit in range(10):
        chosen = codes[labels == digit]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=size, alpha=alpha, color=DIGIT_COLORS[digit],
                   marker=DIGIT_MARKERS[digit], label=str(digit), linewidths=0)
        if len(chosen):
            centres[digit] = chosen.median(dim=0).values.tolist()
    # Zoom on the 1st-99th percentile of the codes: a few far outliers would squeeze the rest into a corner.
    (x_low, x_high), (y_low, y_high) = _code_ranges(codes, 0.01)
    margin_x, margin_y = 0.05 * (x_high - x_low), 0.05 * (y_high - y_low)
    ax.set_xlim(x_low - margin_x, x_high + margin_x)
    ax.set_ylim(y_low - margin_y, y_high + margin_y)
    scale = (x_high - x_low + 2 * margin_x, y_high - y_low + 2 * margin_y)
    for digit, (x, y) in _spread_labels(centres, scale).items():
        true_x, true_y = centres[digit]
        if (x, y) != (true_x, true_y):  # moved apart from a neighbour: a thin line points at the true median
            ax.plot([true_x, x], [true_y, y], color=DIGIT_COLORS[digit], linewidth=1.0, zorder=3)
        ax.text(x, y, str(digit), fontsize=12, fontweight="bold", ha="center", va="center", color="black", zorder=4,
                bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": DIGIT_COLORS[digit], "lw": 1.5,
                      "alpha": 0.9})
    ax.set_xlabel("code $z_1$")
    ax.set_ylabel("code $z_2$")



def _spread_labels(centres: Mapping[int, list[float]], scale: tuple[float, float],
                   gap: float = 0.075, rounds: int = 200) -> dict[int, tuple[float, float]]:
    """Label positions near ``centres`` with at least ``gap`` (a fraction of the axes) between any two: overlapping
    labels are pushed apart symmetrically, a little per round, so that none hides another."""
    points = {d: [c[0] / scale[0], c[1] / scale[1]] for d, c in centres.items()}
    moved_digits: set[int] = set()
    for _ in range(rounds):
        moved = False
        for a in points:
            for b in points:
                if a >= b:
                    continue
                dx, dy = points[b][0] - points[a][0], points[b][1] - points[a][1]
                distance = math.hypot(dx, dy)
                if distance >= gap:
                    continue
                if distance < 1e-9:  # on top of each other: separate them sideways
                    dx, dy, distance = 1.0, 0.0, 1.0
                push = (gap - distance) / 2 + 1e-4
                points[a][0] -= push * dx / distance
                points[a][1] -= push * dy / distance
                points[b][0] += push * dx / distance
                points[b][1] += push * dy / distance
                moved = True
                moved_digits.update((a, b))
        if not moved:
            break
    return {d: (p[0] * scale[0], p[1] * scale[1]) if d in moved_digits else (centres[d][0], centres[d][1])
            for d, p in points.items()}


@styled
def plot_codes(panels: Mapping[str, torch.Tensor], labels: torch.Tensor) -> Figure:
    """2-D codes (N, 2) side by side, each point coloured by its digit, digits written at the medians."""
    labels = labels.cpu()
    fig, axes = new_figure(1, len(panels), size=(4.6 * len(panels) + 0.8, 4.4))
    for ax, (title, codes) in zip(axes[0], panels.items()):
        if codes.ndim != 2 or codes.shape[1] != 2:
            raise ValueError(f"plot_codes needs codes shaped (N, 2); {title!r} has shape {tuple(codes.shape)}")
        _draw_codes(ax, codes, labels)
        ax.set_title(title)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside right center", title="digit", markerscale=2.5)
    return fig



@styled
def plot_train_val(histories: Mapping[str, History], title: str, ylabel: str = "MSE per pixel") -> Figure:
    """Training loss (left) and validation loss (right, fit's val_loss) per epoch, one colour per model, log scale."""
    fig, axes = new_figure(1, 2, size=(9.0, 3.6))
    for column, (part, attribute) in enumerate((("training", "train_loss"), ("validation", "val_loss"))):
        ax = axes[0, column]
        for i, (name, history) in enumerate(histories.items()):
            values = getattr(history, attribute)
            ax.plot(range(1, len(values) + 1), values, color=COLORS[i % len(COLORS)], label=name,
                    marker="o" if len(values) < 15 else None, markersize=3)
        ax.set_yscale("log")
        decimal_log_axis(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{part} loss")
    axes[0, 1].sharey(axes[0, 0])
    axes[0, 1].legend()
    fig.suptitle(title)
    return fig



@styled
def plot_mse_vs_code_size(pca: PCA, images: Images, models: Mapping[str, Mapping[int, float]]) -> Figure:
    """Validation MSE of PCA (on `images`) for every number of components (line) and of autoencoders (markers)."""
    ks = list(range(1, len(pca.components) + 1))
    fig, ax = figure_and_axis(size=(6.0, 3.8))
    ax.plot(ks, [pca.reconstruction_mse(images, k) for k in ks], color=COLORS[7], label="PCA")
    markers = ("o", "s", "^", "D")
    for i, (name, results) in enumerate(models.items()):
        sizes = sorted(results)
        ax.plot(sizes, [results[s] for s in sizes], marker=markers[i % len(markers)], linestyle="--",
                color=COLORS[i % 6], label=name, markersize=7)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("code size (numbers per image)")
    ax.set_ylabel("validation MSE per pixel")
    ax.set_title("Reconstruction error vs code size")
    ax.legend()
    return fig



def _code_ranges(codes: torch.Tensor, tail: float = 0.01) -> list[tuple[float, float]]:
    """(low, high) of each of the first two code dimensions, leaving out a fraction ``tail`` at each end."""
    low = torch.quantile(codes[:, :2].float(), tail, dim=0)
    high = torch.quantile(codes[:, :2].float(), 1 - tail, dim=0)
    return [(float(lo), float(hi)) for lo, hi in zip(low, high)]



@styled
def plot_latent_grid(decoder: nn.Module, codes: torch.Tensor, n: int = 15) -> Figure:
    """Decode an n x n grid of the 2-D latent plane (spanning 98% of ``codes``) into one mosaic."""
    if codes.ndim != 2 or codes.shape[1] != 2:
        raise ValueError(f"plot_latent_grid needs a 2-D code (codes shaped (N, 2)), got {tuple(codes.shape)}")
    (x_low, x_high), (y_low, y_high) = _code_ranges(codes)
    z1 = torch.linspace(x_low, x_high, n)
    z2 = torch.linspace(y_high, y_low, n)  # top row of the mosaic = largest z2
    grid = torch.stack(torch.meshgrid(z2, z1, indexing="ij")[::-1], dim=-1).reshape(-1, 2)
    images = apply_in_batches(decoder, grid).view(n, n, 28, 28)
    mosaic = images.permute(0, 2, 1, 3).reshape(n * 28, n * 28).numpy()
    fig, ax = figure_and_axis(size=(6.2, 6.0))
    step_x, step_y = (x_high - x_low) / (n - 1), (y_high - y_low) / (n - 1)
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest",
              extent=(x_low - step_x / 2, x_high + step_x / 2, y_low - step_y / 2, y_high + step_y / 2),
              aspect="auto")
    ax.grid(False)
    ax.set_xlabel("code $z_1$")
    ax.set_ylabel("code $z_2$")
    ax.set_title(f"Decoder g(z) on a {n} x {n} grid of the latent plane")
    return fig



def plot_interpolations(interpolate, models: Mapping[str, nn.Module], images: Images, labels: torch.Tensor,
                        pairs: Sequence[tuple[int, int]] = ((4, 9), (1, 7)), steps: int = 8) -> Figure:
    """For each pair of digit classes (the first image of each in `images`): the pixels faded from x_a to x_b, then
    each model's path ``interpolate(model, x_a, x_b, steps)`` (the student's function), one row each."""
    rows, row_titles = [], []
    t = torch.linspace(0, 1, steps)
    for a, b in pairs:
        found = [torch.nonzero(labels == digit).flatten() for digit in (a, b)]
        if any(len(f) == 0 for f in found):
            raise ValueError(f"no image of digit {a if len(found[0]) == 0 else b}: choose other pairs")
        x_a, x_b = images[found[0][0]], images[found[1][0]]
        rows.append(torch.stack([torch.lerp(x_a, x_b, float(w)) for w in t]))  # a cross-fade of the pixels
        row_titles.append(f"{a} to {b}: pixels")
        for name, model in models.items():
            device = model_device(model)
            model.eval()
            with torch.no_grad():
                path = interpolate(model, x_a.to(device), x_b.to(device), steps=steps)
            rows.append(path.detach().cpu().reshape(steps, 1, 28, 28))
            row_titles.append(f"{a} to {b}: {name}")
    return show_images(rows, row_titles=row_titles, titles=[f"t = {v:.2f}" for v in t.tolist()],
                       title="From one digit to another: blending pixels, or walking in code space")


def latent_explorer(decoder: nn.Module, codes: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Two sliders pick a point z of the 2-D latent plane; the figure shows where it is and g(z)."""
    (x_low, x_high), (y_low, y_high) = _code_ranges(codes)
    labels = labels.cpu()

    @styled
    def draw(z1: float, z2: float) -> Figure:
        fig, axes = new_figure(1, 2, size=(9.2, 3.9))
        _draw_codes(axes[0, 0], codes, labels, size=5.0, alpha=0.4)
        # The chosen point is a red crosshair (ring and plus): a shape and colour that no digit's marker uses.
        crosshair = ({"marker": "o", "markersize": 15, "markerfacecolor": "none", "markeredgewidth": 2.5},
                     {"marker": "+", "markersize": 22, "markeredgewidth": 1.5})
        for style in crosshair:
            axes[0, 0].plot([z1], [z2], color="red", linestyle="none", zorder=5, **style)
        handles, names = axes[0, 0].get_legend_handles_labels()
        scale = 3.0  # the legend draws markers 3x larger: the crosshair's entry is a third of its size, to match
        legend_crosshair = tuple(Line2D([], [], color="red", linestyle="none",
                                        **{**style, "markersize": style["markersize"] / scale}) for style in crosshair)
        legend = axes[0, 0].legend([*handles, legend_crosshair], [*names, "chosen\npoint"], loc="center left",
                                   bbox_to_anchor=(1.0, 0.5), title="digit", markerscale=scale)
        for handle in legend.legend_handles[:len(handles)]:
            handle.set_alpha(1.0)
        axes[0, 0].set_title("the digits' codes and the chosen point")
        image = apply_in_batches(decoder, torch.tensor([[z1, z2]], dtype=torch.float32))[0, 0]
        axes[0, 1].imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, 1].set_axis_off()
        axes[0, 1].set_title(f"g(z) at z = ({z1:.2f}, {z2:.2f})")
        return fig

    def slider(low: float, high: float) -> tuple[float, float, float, float]:
        step = float(f"{(high - low) / 100:.1g}")
        low, high = math.floor(low / step) * step, math.ceil(high / step) * step
        return (round(low, 6), round(high, 6), step, round(step * round((low + high) / 2 / step), 6))

    return slider_figure(draw, z1=slider(x_low, x_high), z2=slider(y_low, y_high))



def noise_explorer(corruptions: Mapping[str, Corruption], denoisers: Mapping[str, nn.Module], images: Images,
                   level: tuple[float, float, float, float] = (0.0, 0.8, 0.05, 0.5), seed: int = 0,
                   median_size: int = 3) -> dict[str, object]:
    """A noise type and a level slider; rows: noisy, denoising autoencoder, median filter, clean.

    ``corruptions``: {kind: fn(x, level, generator=...)}; ``denoisers``: {kind: model trained on that kind}.
    Each row title gives the mean PSNR of the row (dB).
    """
    missing = sorted(set(corruptions) - set(denoisers))
    if missing:
        raise ValueError(f"There is no trained denoiser for the noise type(s) {', '.join(missing)}: the cell of "
                         "section 6 that trains them stopped or has not run. It needs ConvAutoencoder (exercise 3) and "
                         "the three corruptions (exercise 4): run their checks, fix the first that fails, run the "
                         "training cell again, then this cell.")
    images = images.cpu()  # the corruptions draw from a CPU generator; apply_in_batches moves each batch

    def draw(kind: str, level: float) -> Figure:
        noisy = corruptions[kind](images, level, generator=torch.Generator().manual_seed(seed))
        rows = {"noisy": noisy, "denoising AE": apply_in_batches(denoisers[kind], noisy),
                f"median {median_size}x{median_size}": median_filter(noisy, median_size), "clean": images}
        titles = [name if name == "clean" else f"{name}\n{psnr(row, images):.1f} dB" for name, row in rows.items()]
        return show_images(list(rows.values()), row_titles=titles, title=f"{kind} noise, level {level:.2f}")

    return slider_figure(draw, kind=list(corruptions), level=level)



@styled
def denoising_grid(noisy: Images, models: Mapping[str, nn.Module], clean: Images,
                   title: str | None = None) -> Figure:
    """Rows noisy / each model's output / clean, with the mean PSNR (dB) of each row."""
    rows = {"noisy": noisy, **{name: apply_in_batches(model, noisy) for name, model in models.items()}}
    titles = [f"{name}\n{psnr(row, clean):.1f} dB" for name, row in rows.items()] + ["clean"]
    return show_images([*rows.values(), clean], row_titles=titles, title=title)



@styled
def plot_architecture(widths: Sequence[int] = (784, 256, 64, 2, 64, 256, 784)) -> Figure:
    """The bottleneck of an autoencoder: one bar per layer (height ~ log of its width)."""
    if len(widths) % 2 == 0 or len(widths) < 3:
        raise ValueError(f"an autoencoder has an odd number of layers (code in the middle), got {len(widths)}")
    middle = len(widths) // 2
    heights = [0.6 + math.log2(w) / math.log2(max(widths)) * 4 for w in widths]
    colors = [COLORS[0] if i < middle else COLORS[3] if i == middle else COLORS[2] for i in range(len(widths))]
    fig, ax = figure_and_axis(size=(7.5, 3.4))
    for i, (width, height, color) in enumerate(zip(widths, heights, colors)):
        ax.add_patch(Rectangle((i - 0.12, -height / 2), 0.24, height, color=color))
        ax.text(i, -height / 2 - 0.25, str(width), ha="center", va="top", fontsize=10)
        if i + 1 < len(widths):
            nxt = heights[i + 1]
            ax.fill([i + 0.12, i + 0.88, i + 0.88, i + 0.12], [-height / 2, -nxt / 2, nxt / 2, height / 2],
                    color="#DDDDDD", zorder=0)
    labels = {0: "input $x$", middle: "code $z$", len(widths) - 1: r"output $\hat{x}$"}
    for i, text in labels.items():
        ax.text(i, heights[i] / 2 + 0.2, text, ha="center", va="bottom", fontsize=11)
    ax.text(middle / 2, -max(heights) / 2 - 0.9, r"encoder $f_\theta$", ha="center", color=COLORS[0], fontsize=12)
    ax.text(middle * 1.5, -max(heights) / 2 - 0.9, r"decoder $g_\phi$", ha="center", color=COLORS[2], fontsize=12)
    ax.set_xlim(-0.6, len(widths) - 0.4)
    ax.set_ylim(-max(heights) / 2 - 1.2, max(heights) / 2 + 0.8)
    ax.set_axis_off()
    ax.set_title("Training goal: make $\\hat{x} = g_\\phi(f_\\theta(x))$ close to $x$ (numbers: layer widths)")
    return fig
