"""The wing's experiment helpers: gradient noise on the two-well landscape, per-step learning-rate factors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labs_utils import lab3_optimizers as lab3
from labs_utils.lab3_optimizers.noise import FLAT, SHARP, sharp_flat_gradient


def test_the_two_minima_are_where_the_docstring_says():
    xs = torch.linspace(-2, 3, 50_001, dtype=torch.float64)
    loss = lab3.sharp_flat_loss(xs)
    assert xs[loss.argmin()].item() == pytest.approx(SHARP[0], abs=1e-3)
    right = xs > 0
    assert xs[right][loss[right].argmin()].item() == pytest.approx(FLAT[0], abs=1e-3)


def test_gradient_is_the_derivative_of_the_loss():
    x = torch.linspace(-2, 3, 101, dtype=torch.float64, requires_grad=True)
    lab3.sharp_flat_loss(x).sum().backward()
    assert torch.allclose(x.grad, sharp_flat_gradient(x.detach()))


def test_without_noise_every_run_stays_and_with_huge_noise_none_does():
    sweep = lab3.noise_sweep(lambda p: torch.optim.SGD(p, lr=0.01), [0.0, 200.0], runs=50, steps=300)
    assert sweep.sharp_from_sharp[0] == 1.0 and sweep.flat_from_flat[0] == 1.0 and sweep.flat_from_sharp[0] == 0.0
    assert sweep.sharp_from_sharp[1] < 0.2 and sweep.flat_from_flat[1] < 0.5


@pytest.mark.parametrize("bad", [{"runs": 0}, {"steps": -1}, {"sigmas": [-1.0]}])
def test_noise_sweep_rejects_bad_arguments(bad):
    kwargs = {"sigmas": [1.0], "runs": 5, "steps": 5, **bad}
    with pytest.raises(ValueError):
        lab3.noise_sweep(lambda p: torch.optim.SGD(p, lr=0.01), kwargs.pop("sigmas"), **kwargs)


def test_step_factor_multiplies_the_learning_rate_of_step_t():
    param = torch.ones(1, requires_grad=True)
    optimizer = lab3.with_step_factor(lambda p: torch.optim.SGD(p, lr=0.1), lambda t: float(t))([param])
    moves = []
    for _ in range(3):
        param.grad = torch.ones(1)
        before = param.item()
        optimizer.step()
        moves.append(before - param.item())
    assert np.allclose(moves, [0.1, 0.2, 0.3])


def test_adam_without_bias_correction_is_a_step_factor():
    b1, b2 = 0.9, 0.999
    first = []
    for factor in (lambda t: 1.0, lambda t: (1 - b1 ** t) / math.sqrt(1 - b2 ** t)):
        param = torch.ones(1, requires_grad=True)
        optimizer = lab3.with_step_factor(lambda p: torch.optim.Adam(p, lr=0.01), factor)([param])
        param.grad = torch.ones(1)
        optimizer.step()
        first.append(1 - param.item())
    assert first[1] / first[0] == pytest.approx((1 - b1) / math.sqrt(1 - b2), rel=1e-4)
