"""StudentOptimizer: hyperparameters checked in the shared vocabulary, the closure handled, update() left to write."""
from __future__ import annotations

import pytest
import torch

from labs_utils import lab3_optimizers as lab3
from labs_utils.checks import check_optimizer


class Momentum(lab3.StudentOptimizer):
    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, lr=lr, momentum=momentum)

    def update(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.state[p].setdefault("v", torch.zeros_like(p))
                v.mul_(group["momentum"]).add_(p.grad)
                p.add_(v, alpha=-group["lr"])


def test_a_subclass_that_writes_update_passes_the_check(capsys):
    check_optimizer("momentum", Momentum)
    assert "\u2714 Momentum" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, fragment", [
    ({"lr": -1.0}, "lr must be at least 0"), ({"lr": float("nan")}, "lr must be a finite number"),
    ({"lr": 0.1, "momentum": 1.0}, "momentum must be below 1"), ({"lr": 0.1, "betas": (0.9,)}, "betas must be a pair"),
    ({"lr": 0.1, "betas": (0.9, 1.5)}, "beta must be below 1"), ({"lr": 0.1, "eps": -1e-8}, "eps must be at least 0"),
    ({"lr": 0.1, "alpha": 1.2}, "alpha must be at most 1")])
def test_hyperparameters_are_checked(kwargs, fragment):
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=fragment):
        lab3.StudentOptimizer([param], **kwargs)


def test_step_runs_the_closure_with_gradients_then_update_without():
    param = torch.ones(3, requires_grad=True)
    optimizer = Momentum([param], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (param ** 2).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 3.0
    assert torch.allclose(param.detach(), torch.full((3,), 0.8))


def test_update_is_left_to_write():
    param = torch.ones(1, requires_grad=True)
    param.grad = torch.ones(1)
    with pytest.raises(NotImplementedError):
        lab3.StudentOptimizer([param], lr=0.1).step()


def test_accuracy_summary_gives_mean_range_and_sampling_error():
    text = lab3.accuracy_summary([0.90, 0.92, 0.91], 1000)
    assert text.strip().startswith("91.00 % [90.00–92.00] ±1.81")
