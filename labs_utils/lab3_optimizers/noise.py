"""Gradient noise on a 1-D landscape with a sharp and a flat minimum: which minimum do noisy runs end in?

The landscape is two Gaussian wells, f(x) = −Σ depth·exp(−(x − centre)²/(2·width²)): a deep, narrow one
(the sharp minimum) at x = −1 and a shallower, wide one (the flat minimum) at x = +1. Noise of scale σ
is added to every gradient (a stand-in for mini-batch noise: isotropic and of fixed scale, where real mini-batch
noise depends on where the weights are); many runs (one coordinate each) are stepped together.
:func:`descend` is one noise-free run; :func:`minibatch_gradient_noise` measures real mini-batch noise on the
MNIST classifier.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import finite_float, positive_int

# (centre, width, depth) of each well
SHARP = (-1.0, 0.05, 1.0)
FLAT = (1.0, 0.5, 0.8)


def sharp_flat_loss(x: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """f(x) of the two-well landscape, element-wise."""
    exp = torch.exp if isinstance(x, torch.Tensor) else np.exp
    return -sum(depth * exp(-(x - centre) ** 2 / (2 * width ** 2)) for centre, width, depth in (SHARP, FLAT))


def sharp_flat_gradient(x: torch.Tensor) -> torch.Tensor:
    """f'(x), element-wise."""
    return sum(depth * (x - centre) / width ** 2 * torch.exp(-(x - centre) ** 2 / (2 * width ** 2))
               for centre, width, depth in (SHARP, FLAT))


@dataclass
class NoiseSweep:
    """Fractions of runs ending near each minimum, per noise scale σ and start (shapes (len(sigmas),))."""

    sigmas: np.ndarray
    sharp_from_sharp: np.ndarray  # started in the sharp minimum, ended within 3 widths of it
    flat_from_sharp: np.ndarray  # started in the sharp minimum, ended in the flat one (within 2 widths)
    flat_from_flat: np.ndarray  # started in the flat minimum, still there


def _final_positions(make_optimizer: Callable, start: float, sigma: float, runs: int, steps: int,
                     generator: torch.Generator) -> torch.Tensor:
    x = torch.full((runs,), start, dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([x])
    for _ in range(steps):
        noise = torch.randn(runs, dtype=torch.float64, generator=generator)
        x.grad = sharp_flat_gradient(x.detach()) + sigma * noise
        optimizer.step()
    return x.detach()


def noise_sweep(make_optimizer: Callable, sigmas: Sequence[float], *, runs: int = 500, steps: int = 2_000,
                seed: int = 0) -> NoiseSweep:
    """Run ``runs`` noisy descents per σ from each minimum with ``make_optimizer([x])`` (x: shape (runs,))."""
    runs, steps = positive_int("runs", runs), positive_int("steps", steps)
    sigmas = np.array([finite_float("sigma", s, minimum=0.0) for s in sigmas])
    generator = torch.Generator().manual_seed(seed)
    near = {"sharp": lambda x: (x - SHARP[0]).abs() < 3 * SHARP[1], "flat": lambda x: (x - FLAT[0]).abs() < 2 * FLAT[1]}
    rows = []
    for sigma in sigmas:
        from_sharp = _final_positions(make_optimizer, SHARP[0], float(sigma), runs, steps, generator)
        from_flat = _final_positions(make_optimizer, FLAT[0], float(sigma), runs, steps, generator)
        rows.append((near["sharp"](from_sharp).double().mean().item(), near["flat"](from_sharp).double().mean().item(),
                     near["flat"](from_flat).double().mean().item()))
    columns = np.array(rows).T
    return NoiseSweep(sigmas, columns[0], columns[1], columns[2])


def curvature(well: tuple[float, float, float]) -> float:
    """f'' at the bottom of a well, depth / width²: the λ of section 1's stability limit 2/λ."""
    return well[2] / well[1] ** 2


def descend(make_optimizer: Callable, start: float, steps: int) -> float:
    """Where one noise-free run from ``start`` is after ``steps`` steps of ``make_optimizer([x])``."""
    x = torch.tensor([float(start)], dtype=torch.float64, requires_grad=True)
    optimizer = make_optimizer([x])
    for _ in range(positive_int("steps", steps)):
        x.grad = sharp_flat_gradient(x.detach())
        optimizer.step()
    return float(x.detach())


def minibatch_gradient_noise(batch_sizes: Sequence[int], *, digits: int = 1_000, draws: int = 12,
                             seed: int = 0) -> dict[int, float]:
    """batch size -> RMS distance between a mini-batch gradient and the full-batch gradient (all parameters of
    the freshly initialised MNIST classifier, cross-entropy over ``digits`` training digits), over ``draws``
    random mini-batches."""
    from ..runtime import set_seed
    from .mnist import make_classifier, split_training_digits

    (images, labels), _ = split_training_digits(digits)
    set_seed(seed)
    model = make_classifier()
    loss_fn = torch.nn.CrossEntropyLoss()

    def gradient(index: torch.Tensor) -> torch.Tensor:
        model.zero_grad()
        loss_fn(model(images[index]), labels[index]).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    full = gradient(torch.arange(len(images)))
    generator = torch.Generator().manual_seed(seed)
    found = {}
    for size in batch_sizes:
        squares = [float(((gradient(torch.randperm(len(images), generator=generator)[:size]) - full) ** 2).sum())
                   for _ in range(positive_int("draws", draws))]
        found[int(size)] = float(np.sqrt(np.mean(squares)))
    return found
