"""Lab 1's probes of trained autoencoders, each a short notebook cell: what reaches the last sigmoid (BatchNorm
on and off), images decoded from random codes, nearest neighbours in code space shown as images, and inputs
that are not digits.

    display(lab1.plot_sigmoid_inputs(bn_runs))
    display(lab1.random_codes(conv, x_val))
    display(lab1.retrieval(conv, x_train, x_test[:5]))  # the whole model: it encodes with model.encoder
    display(lab1.out_of_distribution(conv, digits=x_val))  # draws its own non-digits; digits for comparison
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from ..plotting import COLORS, LINESTYLES, new_figure, show_images, styled
from ..training import apply_in_batches
from .experiments import FLAT, SeedRuns


@styled
def plot_sigmoid_inputs(runs: SeedRuns, bins: int = 60) -> Figure:
    """Histograms of what enters the last sigmoid: rows with / without BatchNorm, columns at initialisation /
    after training, one line per seed, on a symmetric log axis (linear within ±1); the grey bands are
    |input| > FLAT."""
    variants = list(runs.sigmoid)
    moments = ("initialisation", "after training")
    values = [v for variant in variants for found in runs.sigmoid[variant].values() for v in found.values()
              if v is not None]
    reach = max([float(v.abs().max()) for v in values] + [2 * FLAT])
    edge = float(np.arcsinh(reach * 1.05))
    edges = np.sinh(np.linspace(-edge, edge, bins + 1))  # even bins on the symmetric log axis
    fig, axes = new_figure(len(variants), 2, size=(10.0, 2.9 * len(variants) + 0.4))
    for row, variant in enumerate(variants):
        for column, moment in enumerate(moments):
            ax = axes[row, column]
            for i, (seed, found) in enumerate(runs.sigmoid[variant].items()):
                v = found[moment]
                if v is None:
                    continue
                counts, _ = np.histogram(v.double().numpy(), bins=edges)
                ax.stairs(counts / counts.sum(), edges, color=COLORS[i % len(COLORS)],
                          linestyle=LINESTYLES[i % len(LINESTYLES)], linewidth=1.6,
                          label=f"seed {seed}" + (f" (val. MSE {runs.mse[variant][seed]:.3f})" if column else ""))
            ax.set_xscale("symlog", linthresh=1.0)
            ax.set_xlim(-reach * 1.05, reach * 1.05)
            for side in (-1, 1):
                ax.axvspan(side * FLAT, side * reach * 1.05, color="0.85", zorder=0)
            ax.set_title(f"{variant}, at {moment}" if moment == "initialisation" else f"{variant}, {moment}")
            ax.set_xlabel("input of the last sigmoid (symmetric log scale)")
            ax.set_ylabel("share of pixels")
            ax.legend(fontsize=8, loc="upper right")
    fig.suptitle(f"What enters the decoder's last sigmoid (grey: |input| > {FLAT:g})")
    return fig


def random_codes(model: nn.Module, images: torch.Tensor, n: int = 10, seed: int = 0) -> Figure:
    """Rows: the decodings of ``n`` codes of real digits, of ``n`` random codes with each coordinate drawn from a
    normal distribution with the codes' own mean and standard deviation (per coordinate), and of ``n`` codes
    drawn from N(0, I)."""
    codes = _encode(model, images)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(2, n, codes.shape[1], generator=g)
    matched = codes.mean(0) + codes.std(0) * noise[0]
    with torch.no_grad():
        rows = [apply_in_batches(model.decoder, z) for z in (codes[:n], matched, noise[1])]
    return show_images(rows, row_titles=["codes of\nreal digits", "random codes,\nsame mean/std",
                                         "random codes,\nN(0, I)"],
                       title="What the decoder draws from real codes, and from random codes no image was encoded to")


def _encode(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The codes of ``images`` in eval mode, without gradients, flat, on the CPU."""
    with torch.no_grad():
        return apply_in_batches(model.encoder, images).flatten(1)


def nearest_codes(model: nn.Module, memory: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """(len(queries), k): the indices in ``memory`` of each query's ``k`` nearest images by the Euclidean distance
    between their codes, closest first."""
    memory_codes, query_codes = _encode(model, memory), _encode(model, queries)
    return torch.cdist(query_codes, memory_codes).topk(k, largest=False).indices


def retrieval(model: nn.Module, memory: torch.Tensor, queries: torch.Tensor, k: int = 6) -> Figure:
    """For each query image (a row), its ``k`` nearest neighbours among ``memory`` by the distance between codes,
    closest first: retrieval with an autoencoder's code as the description of an image."""
    nearest = nearest_codes(model, memory, queries, k)
    rows = [torch.cat([queries[i:i + 1].cpu(), memory[nearest[i]].cpu()]) for i in range(len(queries))]
    return show_images(rows, row_titles=[f"query {i + 1}" for i in range(len(queries))],
                       titles=["query", *(f"neighbour {j + 1}" for j in range(k))],
                       title="Nearest training digits in code space (distance between codes, closest first)")


def non_digits(n: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs that are not digits, ``n`` of each, (n, 1, 28, 28) in [0, 1]: uniform noise, constant grey
    images, checkerboards and a letter-like bar pattern."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.linspace(0.2, 0.8, n).view(n, 1, 1, 1).expand(n, 1, 28, 28).clone()
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    boards = torch.stack([((rows // s + cols // s) % 2).float() for s in (2, 4, 7, 14)[:n]]).unsqueeze(1)
    bars = torch.zeros(n, 1, 28, 28)
    for i in range(n):  # a horizontal and a vertical bar at different places: strokes, but no digit
        bars[i, 0, 6 + 4 * i: 9 + 4 * i, 4:24] = 1.0
        bars[i, 0, 4:24, 20 - 4 * i: 23 - 4 * i] = 1.0
    return {"uniform noise": torch.rand(n, 1, 28, 28, generator=g), "constant grey": grey,
            "checkerboard": boards, "bars": bars}


def out_of_distribution(model: nn.Module, n: int = 4, digits: torch.Tensor | None = None) -> Figure:
    """Each kind of :func:`non_digits` input (left) next to its reconstruction (right), with the mean MSE of each.
    With ``digits``, their row comes first: the first ``n`` shown, the MSE over all of them, measured the same way,
    as the yardstick of a digit's error."""
    groups = ({} if digits is None else {"digits": digits}) | non_digits(n)
    rows, titles = [], []
    for name, x in groups.items():
        with torch.no_grad():
            out = apply_in_batches(model, x)
        mse = (out - x.cpu()).square().flatten(1).mean(1)
        rows += [x[:n].cpu(), out[:n]]
        titles += [name, f"reconstruction\nMSE {mse.mean():.3g}" + (f"\n(all {len(x)})" if len(x) > n else "")]
    return show_images(rows, row_titles=titles, title="Inputs that are not digits, and what the autoencoder makes "
                                                      "of them")
