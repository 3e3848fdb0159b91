"""The inputs Lab 1's probes hand to student code: images that look like MNIST digits, drawn from a seed.

Each exercise's ``inputs_...`` function draws them where the seed is (the grader's judge process, the notebook's
check) and the probe is sent the images alone (see :class:`labs_utils.exercises.Exercise`); the judge calls the
same function, so it recomputes what the student's code was given without trusting the evidence for it. Every
draw is from a :func:`~labs_utils.exercises.sub_seed` of the seed, never from the seed itself: a generator's
state (and so what it draws) holds its seed, and a student's function can ask the generators it is handed.
"""
from __future__ import annotations

import torch

from ..exercises import sub_seed

IMAGE_SHAPE = (1, 28, 28)
BACKGROUND, INK = 0.6, 0.1  # shares of exact 0 and exact 1 pixels; the rest are greys, uniform in (0, 1)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (any int)."""
    return torch.Generator().manual_seed(seed % 2**63)


def digit_like_images(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images like MNIST's, (n, 1, 28, 28): 60 % exact 0 (background), 10 % exact 1 (ink), grey in between.

    Their pixels span the whole range, so a corruption that depends on the pixel's value (noise multiplied by
    the pixel, a mask more likely on bright pixels) shows, as it would on digits.
    """
    g = generator(seed)
    u = torch.rand(n, *IMAGE_SHAPE, generator=g, dtype=torch.float64)
    grey = torch.rand(n, *IMAGE_SHAPE, generator=g, dtype=torch.float64)
    return torch.where(u < BACKGROUND, 0.0, torch.where(u > 1 - INK, 1.0, grey)).to(dtype)


def draw_images(seed: int, name: str, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``digit_like_images(n, ...)`` drawn from the sub-seed ``name`` of ``seed``."""
    return digit_like_images(n, sub_seed(seed, name), dtype)
