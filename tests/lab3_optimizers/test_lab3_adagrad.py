"""check_optimizer("adagrad", ...): AdaGrad against torch.optim.Adagrad, the whole contract the other optimizers
get (groups, late and missing gradients, schedulers, save/load, closure). Correct variants written differently
pass; the mistakes a classmate makes fail the parts they show in; non-attempts earn nothing.
"""
from __future__ import annotations

import pytest
import torch
from lab3_reference import Accumulating, PlainSGD, failed_parts, points, run_closure, verdicts

from labs_utils.lab3_optimizers.optimizer_cases import BASIC, CONTRACT, DECAY, EPS, GROUPS, STATE


def _variant(**knobs):
    return type("AdaGradVariant", (Accumulating,), knobs)


class TorchStyleAdaGrad(torch.optim.Optimizer):
    """Like torch: the sum created for every parameter in __init__, out-of-place arithmetic, a step counter."""

    def __init__(self, params, lr, eps=1e-10, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"] = torch.zeros_like(p)
                self.state[p]["step"] = 0

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state["step"] += 1
                state["sum"] = state["sum"] + g * g
                p.sub_(group["lr"] * g / (torch.sqrt(state["sum"]) + group["eps"]))
        return loss


def test_correct_variants_pass():
    assert failed_parts("adagrad", Accumulating) == []
    assert failed_parts("adagrad", TorchStyleAdaGrad, seed=77) == []


def test_eps_inside_the_root_loses_only_the_eps_part():
    assert failed_parts("adagrad", _variant(eps_inside=True)) == [EPS]
    assert "AFTER the square root" in verdicts("adagrad", _variant(eps_inside=True))[EPS]


@pytest.mark.parametrize("knob", ["forgets", "averages"])
def test_a_sum_that_forgets_or_averages_matches_the_first_step_only(knob):
    found = verdicts("adagrad", _variant(**{knob: True}))
    assert found[BASIC] is None and found[CONTRACT] is None
    assert found[STATE] is not None and "never forgotten" in found[STATE]


def test_a_sum_started_at_g_squared_is_named():
    found = verdicts("adagrad", _variant(start_at_g2=True))
    assert "1/√2" in found[BASIC] and "Start it at 0" in found[BASIC]


def test_decoupled_decay_loses_only_the_decay_part():
    class Decoupled(Accumulating):
        @torch.no_grad()
        def step(self, closure=None):
            decays = [group["weight_decay"] for group in self.param_groups]
            for group, wd in zip(self.param_groups, decays):
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * wd)
                group["weight_decay"] = 0.0
            try:
                return super().step(closure)
            finally:
                for group, wd in zip(self.param_groups, decays):
                    group["weight_decay"] = wd

    assert failed_parts("adagrad", Decoupled) == [DECAY]
    assert "L2 term" in verdicts("adagrad", Decoupled)[DECAY]


def test_hyperparameters_read_once_fail_the_groups():
    class ReadsDefaults(Accumulating):
        def hyper(self, group, key):
            return self.defaults[key]

    assert GROUPS in failed_parts("adagrad", ReadsDefaults)


def test_plain_sgd_handed_in_as_adagrad_earns_nothing():
    class SGDWithAdaGradsSignature(PlainSGD):
        def __init__(self, params, lr, eps=1e-10, weight_decay=0.0):
            torch.optim.Optimizer.__init__(self, params, dict(lr=lr, momentum=0.0, eps=eps, weight_decay=weight_decay))

    assert points("adagrad", SGDWithAdaGradsSignature) == 0
    assert "follows the size of each gradient" in verdicts("adagrad", SGDWithAdaGradsSignature)[CONTRACT]


def test_torch_optim_adagrad_itself_earns_nothing():
    class Wrapped(torch.optim.Adagrad):
        def __init__(self, params, lr, eps=1e-10, weight_decay=0.0):
            super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay)

    assert points("adagrad", Wrapped) == 0
