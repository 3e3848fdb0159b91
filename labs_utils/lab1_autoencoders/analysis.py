"""Computation of the autoencoder lab: the PCA baseline, measurements (MSE, PSNR, k-NN) and the classical filters.

Nothing here solves an exercise: the autoencoders, corruptions and denoising batches are the
student's own code, passed in as arguments.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import runtime
from ..training import apply_in_batches
from ..validation import finite_float, positive_int

Images = torch.Tensor  # (N, 1, 28, 28), values in [0, 1]


def epochs_for(steps: int, n_samples: int, batch_size: int) -> int:
    """Epochs giving about ``steps`` optimizer steps, so full MNIST trains no longer than the subset."""
    steps, n_samples = positive_int("steps", steps), positive_int("n_samples", n_samples)
    batch_size = positive_int("batch_size", batch_size)
    return max(1, round(steps / math.ceil(n_samples / batch_size)))


def reconstruction_mse(model: nn.Module, images: Images) -> float:
    """Mean squared error per pixel between ``images`` and ``model(images)``."""
    return F.mse_loss(apply_in_batches(model, images), images.cpu()).item()


@dataclass
class PCA:
    """Principal component analysis of flattened images, fitted by :func:`fit_pca`.

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
    """PCA with torch's SVD of the centred data matrix X - mean = U S V^T (components = rows of V^T)."""
    flat = images.flatten(1).double()
    mean = flat.mean(dim=0)
    _, singular_values, vh = torch.linalg.svd(flat - mean, full_matrices=False)
    k = min(max_components, vh.shape[0])
    return PCA(mean=mean.float(), components=vh[:k].float(),
               variances=(singular_values[:k] ** 2 / max(len(flat) - 1, 1)).float())


def psnr(estimate: Images, clean: Images) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1], averaged over images.

    PSNR = 10 log10(1 / MSE) per image (MSE floored at 1e-10, i.e. 100 dB for a perfect copy).
    """
    if estimate.shape != clean.shape:
        raise ValueError(f"psnr needs two batches of the same shape, got {tuple(estimate.shape)} "
                         f"and {tuple(clean.shape)}")
    mse = (estimate.float().to(clean.device) - clean.float()).pow(2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (10 * torch.log10(1.0 / mse)).mean().item()


def median_filter(images: Images, size: int = 3) -> Images:
    """The classical median filter (size x size window, borders mirrored), written with torch ops."""
    if positive_int("size", size) % 2 == 0:
        raise ValueError(f"the median filter needs an odd window size, got {size}")
    pad = size // 2
    outputs = []
    for chunk in images.split(500):  # unfold makes size*size copies: keep the memory bounded
        n, c, h, w = chunk.shape
        windows = F.unfold(F.pad(chunk, (pad, pad, pad, pad), mode="reflect"), size)  # (n, c*size*size, h*w)
        outputs.append(windows.view(n, c, size * size, h * w).median(dim=2).values.view(n, c, h, w))
    return torch.cat(outputs)


def gaussian_filter(images: Images, sigma: float = 1.0) -> Images:
    """The classical Gaussian blur (std ``sigma`` pixels, kernel radius 3 sigma, borders mirrored)."""
    sigma = finite_float("sigma", sigma, positive=True)
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
GAUSSIAN_SIGMAS = (0.35, 0.5, 0.75, 1.0, 1.5)


def choose_filters(noisy: Images, clean: Images) -> dict[str, float]:
    """The median window (from MEDIAN_SIZES) and Gaussian sigma (from GAUSSIAN_SIGMAS, pixels) with the best PSNR.

    Call it on held-out images (a validation split carved from the training digits), never on the test images:
    returns ``{"median filter": size, "Gaussian filter": sigma}``.
    """
    return {"median filter": max(MEDIAN_SIZES, key=lambda s: psnr(median_filter(noisy, s), clean)),
            "Gaussian filter": max(GAUSSIAN_SIGMAS, key=lambda s: psnr(gaussian_filter(noisy, s), clean))}


def denoising_psnr(noisy: Images, clean: Images, models: Mapping[str, nn.Module],
                   filters: Mapping[str, float]) -> dict[str, float]:
    """PSNR (dB) of the noisy input, the two classical filters and each model, on (noisy, clean) held-out images.

    ``filters`` holds the settings chosen beforehand by :func:`choose_filters` on validation images.
    """
    scores = {
        "noisy input": psnr(noisy, clean),
        "median filter": psnr(median_filter(noisy, int(filters["median filter"])), clean),
        "Gaussian filter": psnr(gaussian_filter(noisy, float(filters["Gaussian filter"])), clean),
    }
    for name, model in models.items():
        scores[name] = psnr(apply_in_batches(model, noisy), clean)
    return scores


def fast_note() -> None:
    """Print, in fast mode only (LABS_FAST / CI), that the numbers above are not the lab's results."""
    note = runtime.fast_note("tiny trainings")
    if note:
        print(note)


@torch.no_grad()
def knn_accuracy(train_codes: torch.Tensor, train_labels: torch.Tensor, test_codes: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) that classifies held-out codes by train codes.

    The vote is ``torch.mode`` of the k labels: a tie (say 2-2-1) goes to the smallest tied label, not to the
    nearer class; it affects every kind of code alike.
    """
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


Corruption = Callable[..., torch.Tensor]


