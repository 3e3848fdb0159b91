"""Lab 1 support: PCA baseline, measurements (MSE, PSNR, k-NN), classical filters and the lab's figures.

Nothing here solves an exercise: the autoencoders, corruptions and denoising batches are the
student's own code, passed in as arguments.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from .plotting import COLORS, figure_and_axis, new_figure, show_images, styled
from .training import History, model_device
from .widgets import slider_figure

# Okabe-Ito has 8 colours; two more from Paul Tol's palette (grey, wine) make 10 distinguishable digits.
DIGIT_COLORS = (*COLORS[:6], COLORS[7], "#F0C400", "#999999", "#882255")

Images = torch.Tensor  # (N, 1, 28, 28), values in [0, 1]


def epochs_for(steps: int, n_samples: int, batch_size: int) -> int:
    """Lab 1: epochs giving about ``steps`` optimizer steps, so full MNIST trains no longer than the subset."""
    if steps < 1 or n_samples < 1 or batch_size < 1:
        raise ValueError(f"steps, n_samples and batch_size must be positive, got {steps}, {n_samples}, {batch_size}")
    return max(1, round(steps / math.ceil(n_samples / batch_size)))


def count_parameters(model: nn.Module) -> int:
    """Lab 1: number of trainable parameters (scalars)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def apply_in_batches(module: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                     batch_size: int = 500) -> torch.Tensor:
    """Lab 1: ``module(inputs)`` in eval mode, batch by batch, on the module's device; result on the CPU.

    Works for a whole autoencoder (images -> images), an encoder (images -> codes) or a decoder.
    """
    device = model_device(module) if isinstance(module, nn.Module) else torch.device("cpu")
    was_training = getattr(module, "training", False)
    if isinstance(module, nn.Module):
        module.eval()
    try:
        outputs = [module(chunk.to(device)).cpu() for chunk in inputs.split(batch_size)]
    finally:
        if isinstance(module, nn.Module):
            module.train(was_training)
    return torch.cat(outputs)


def reconstruction_mse(model: nn.Module, images: Images) -> float:
    """Lab 1: mean squared error per pixel between ``images`` and ``model(images)``."""
    return F.mse_loss(apply_in_batches(model, images), images.cpu()).item()


@dataclass
class PCA:
    """Principal component analysis of flattened images, fitted by :func:`fit_pca` (Lab 1).

    ``mean``: (784,); ``components``: (K, 784), orthonormal rows sorted by decreasing variance;
    ``variances``: (K,), the variance of the data along each component.
    """

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor

    def encode(self, images: Images, k: int) -> torch.Tensor:
        """Images (N, 1, 28, 28) -> codes (N, k): coordinates along the first ``k`` components."""
        self._check_k(k)
        return (images.flatten(1) - self.mean.to(images.device)) @ self.components[:k].T.to(images.device)

    def decode(self, codes: torch.Tensor) -> Images:
        """Codes (N, k) -> images (N, 1, 28, 28); not clamped, like any linear reconstruction."""
        self._check_k(codes.shape[1])
        components, mean = self.components[: codes.shape[1]].to(codes.device), self.mean.to(codes.device)
        return (codes @ components + mean).view(-1, 1, 28, 28)

    def reconstruct(self, images: Images, k: int) -> Images:
        """Project onto the first ``k`` components and back."""
        return self.decode(self.encode(images, k))

    def reconstruction_mse(self, images: Images, k: int) -> float:
        """Mean squared error per pixel of the rank-``k`` reconstruction of ``images``."""
        return F.mse_loss(self.reconstruct(images, k), images).item()

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= len(self.components):
            raise ValueError(f"k must be between 1 and {len(self.components)} (the components fitted), got {k}")


def fit_pca(images: Images, max_components: int = 64) -> PCA:
    """Lab 1: PCA with torch's SVD of the centred data matrix X - mean = U S V^T (components = rows of V^T)."""
    flat = images.flatten(1).double()
    mean = flat.mean(dim=0)
    _, singular_values, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    k = min(max_components, vh.shape[0])
    return PCA(mean=mean.float(), components=vh[:k].float(),
               variances=(singular_values[:k] ** 2 / max(len(flat) - 1, 1)).float())


def psnr(estimate: Images, clean: Images) -> float:
    """Lab 1: peak signal-to-noise ratio in dB for images in [0, 1], averaged over images.

    PSNR = 10 log10(1 / MSE) per image (MSE floored at 1e-10, i.e. 100 dB for a perfect copy).
    """
    if estimate.shape != clean.shape:
        raise ValueError(f"psnr needs two batches of the same shape, got {tuple(estimate.shape)} "
                         f"and {tuple(clean.shape)}")
    mse = (estimate.float().to(clean.device) - clean.float()).pow(2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean().item()


def median_filter(images: Images, size: int = 3) -> Images:
    """Lab 1: the classical median filter (size x size window, borders mirrored), written with torch ops."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"the median filter needs an odd window size, got {size}")
    pad = size // 2
    outputs = []
    for chunk in images.split(500):  # unfold makes size*size copies: keep the memory bounded
        n, c, h, w = chunk.shape
        windows = F.unfold(F.pad(chunk, (pad, pad, pad, pad), mode="reflect"), size)  # (n, c*size*size, h*w)
        outputs.append(windows.view(n, c, size * size, h * w).median(dim=2).values.view(n, c, h, w))
    return torch.cat(outputs)


def gaussian_filter(images: Images, sigma: float = 1.0) -> Images:
    """Lab 1: the classical Gaussian blur (std ``sigma`` pixels, kernel radius 3 sigma, borders mirrored)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    rows = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    blurred = F.conv2d(F.pad(images, (radius, radius, 0, 0), mode="reflect"), rows, groups=channels)
    columns = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    return F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="reflect"), columns, groups=channels)


MEDIAN_SIZES = (3, 5)
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5)


def denoising_psnr(noisy: Images, clean: Images, models: Mapping[str, nn.Module]) -> dict[str, float]:
    """Lab 1: PSNR (dB) of the noisy input, the best median and Gaussian filters, and each model.

    The filters' window size and sigma are picked per call with the clean images (an oracle
    choice that flatters the classical baselines).
    """
    scores = {
        "noisy input": psnr(noisy, clean),
        "median filter": max(psnr(median_filter(noisy, s), clean) for s in MEDIAN_SIZES),
        "Gaussian filter": max(psnr(gaussian_filter(noisy, s), clean) for s in GAUSSIAN_SIGMAS),
    }
    for name, model in models.items():
        scores[name] = psnr(apply_in_batches(model, noisy), clean)
    return scores


@torch.no_grad()
def knn_accuracy(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 5) -> float:
    """Lab 1: accuracy of a k-nearest-neighbour vote (Euclidean) that classifies test codes by train codes."""
    if len(train_codes) < k:
        raise ValueError(f"k-NN with k={k} needs at least {k} training codes, got {len(train_codes)}")
    train_codes = train_codes.flatten(1).float()
    test_codes = test_codes.flatten(1).float().to(train_codes.device)
    train_labels = train_labels.to(train_codes.device)
    predictions = []
    for chunk in test_codes.split(500):  # the distance matrix of one chunk: 500 x N floats
        nearest = torch.cdist(chunk, train_codes).topk(k, dim=1, largest=False).indices
        predictions.append(train_labels[nearest].mode(dim=1).values)
    return (torch.cat(predictions).cpu() == test_labels.cpu()).float().mean().item()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 4) -> str:
    """Lab 1: a Markdown table (show it with ``IPython.display.Markdown``); floats get ``digits`` decimals."""
    def cell(value: object) -> str:
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _draw_codes(ax, codes: torch.Tensor, labels: torch.Tensor, size: float = 7.0, alpha: float = 0.7) -> None:
    codes = codes.detach().cpu()
    for digit in range(10):
        chosen = codes[labels == digit]
        ax.scatter(chosen[:, 0], chosen[:, 1], s=size, alpha=alpha, color=DIGIT_COLORS[digit],
                   label=str(digit), linewidths=0)
        if len(chosen):
            centre = chosen.median(dim=0).values
            ax.text(float(centre[0]), float(centre[1]), str(digit), fontsize=12, fontweight="bold",
                    ha="center", va="center", color="black",
                    bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": DIGIT_COLORS[digit], "alpha": 0.85})
    # Zoom on the bulk of the codes: a few far outliers would squeeze everything else into a corner.
    (x_low, x_high), (y_low, y_high) = _code_ranges(codes, 0.005)
    margin_x, margin_y = 0.05 * (x_high - x_low), 0.05 * (y_high - y_low)
    ax.set_xlim(x_low - margin_x, x_high + margin_x)
    ax.set_ylim(y_low - margin_y, y_high + margin_y)
    ax.set_xlabel("code $z_1$")
    ax.set_ylabel("code $z_2$")


@styled
def plot_codes(panels: Mapping[str, torch.Tensor], labels: torch.Tensor) -> Figure:
    """Lab 1: 2-D codes (N, 2) side by side, each point coloured by its digit, digits written at the medians."""
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
def plot_train_test(histories: Mapping[str, History], title: str, ylabel: str = "MSE per pixel") -> Figure:
    """Lab 1: training loss (left) and test loss (right) per epoch, one colour per model, log scale."""
    fig, axes = new_figure(1, 2, size=(9.0, 3.6))
    for column, (part, attribute) in enumerate((("training", "train_loss"), ("test", "val_loss"))):
        ax = axes[0, column]
        for i, (name, history) in enumerate(histories.items()):
            values = getattr(history, attribute)
            ax.plot(range(1, len(values) + 1), values, color=COLORS[i % len(COLORS)], label=name,
                    marker="o" if len(values) < 15 else None, markersize=3)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{part} loss")
    axes[0, 1].sharey(axes[0, 0])
    axes[0, 1].legend()
    fig.suptitle(title)
    return fig


@styled
def plot_mse_vs_code_size(pca: PCA, images: Images, models: Mapping[str, Mapping[int, float]]) -> Figure:
    """Lab 1: test MSE of PCA for every number of components (line) and of autoencoders (markers)."""
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
    ax.set_ylabel("test MSE per pixel")
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
    """Lab 1: decode an n x n grid of the 2-D latent plane (spanning 98% of ``codes``) into one mosaic."""
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


def latent_explorer(decoder: nn.Module, codes: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Lab 1: two sliders pick a point z of the 2-D latent plane; the figure shows where it is and g(z)."""
    (x_low, x_high), (y_low, y_high) = _code_ranges(codes)
    labels = labels.cpu()

    @styled
    def draw(z1: float, z2: float) -> Figure:
        fig, axes = new_figure(1, 2, size=(8.4, 3.9))
        _draw_codes(axes[0, 0], codes, labels, size=5.0, alpha=0.4)
        axes[0, 0].plot([z1], [z2], marker="X", markersize=14, color="black", markeredgecolor="white")
        axes[0, 0].set_title("test codes and the chosen point")
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


Corruption = Callable[..., torch.Tensor]


def noise_explorer(corruptions: Mapping[str, Corruption], denoisers: Mapping[str, nn.Module], images: Images,
                   level: tuple[float, float, float, float] = (0.0, 0.8, 0.05, 0.5), seed: int = 0,
                   median_size: int = 3) -> dict[str, object]:
    """Lab 1: a noise type and a level slider; rows: noisy, denoising autoencoder, median filter, clean.

    ``corruptions``: {kind: fn(x, level, generator=...)}; ``denoisers``: {kind: model trained on that kind}.
    Each row title gives the mean PSNR of the row (dB).
    """
    missing = sorted(set(corruptions) - set(denoisers))
    if missing:
        raise ValueError(f"There is no denoiser for the noise type(s) {', '.join(missing)} yet: finish "
                         "Exercise 4 (denoising_batch) and run the cell of section 6 that trains the denoisers, "
                         "then run this cell again.")
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
    """Lab 1: rows noisy / each model's output / clean, with the mean PSNR (dB) of each row."""
    rows = {"noisy": noisy, **{name: apply_in_batches(model, noisy) for name, model in models.items()}}
    titles = [f"{name}\n{psnr(row, clean):.1f} dB" for name, row in rows.items()] + ["clean"]
    return show_images([*rows.values(), clean], row_titles=titles, title=title)


@styled
def plot_architecture(widths: Sequence[int] = (784, 256, 64, 2, 64, 256, 784)) -> Figure:
    """Lab 1: the bottleneck of an autoencoder: one bar per layer (height ~ log of its width)."""
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
