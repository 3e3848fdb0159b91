"""check_optimizer("rmsprop", ...): RMSProp (given in the notebook, checked on request) against torch.optim.RMSprop,
the whole contract the other optimizers get. Correct variants written differently pass; the mistakes a classmate
makes when turning the slides' formula into code fail the parts they show in, with a message that names them;
non-attempts earn nothing.
"""
from __future__ import annotations

import torch
from lab3_reference import RMS, Accumulating, PlainSGD, failed_parts, points, run_closure, verdicts

from labs_utils.lab3_optimizers.checks import GRADING, WORKED
from labs_utils.lab3_optimizers.optimizer_cases import BASIC, CONTRACT, DECAY, EPS, SPECS, STATE


def _variant(**knobs):
    return type("RMSPropVariant", (RMS,), knobs)


class EagerRMSProp(torch.optim.Optimizer):
    """Written differently: the average created for every parameter in __init__, out-of-place arithmetic, the
    average as a lerp towards g², eps added with torch.add."""

    def __init__(self, params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["avg"] = torch.zeros_like(p)

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                state["avg"] = torch.lerp(state["avg"], g * g, 1 - group["alpha"])
                p.sub_(group["lr"] * g / torch.add(state["avg"].sqrt(), group["eps"]))
        return loss


def test_rmsprop_is_given_not_graded_and_keeps_its_check():
    graded = {exercise.name: sum(part.points for part in exercise.parts) for exercise in GRADING}
    assert WORKED == ("RMSProp", "AdaGrad", "AdamW") and not set(WORKED) & set(graded)
    assert set(graded) == {"SGD", "Momentum", "Nesterov", "Adam", "Convergence rate", "Stability limit"}
    assert "weight_decay" in SPECS["rmsprop"].defaults


def test_correct_variants_pass():
    assert failed_parts("rmsprop", RMS) == []
    assert failed_parts("rmsprop", EagerRMSProp, seed=77) == []


def test_eps_inside_the_root_loses_only_the_eps_part():
    assert failed_parts("rmsprop", _variant(eps_inside=True)) == [EPS]
    assert "AFTER the square root" in verdicts("rmsprop", _variant(eps_inside=True))[EPS]


def test_an_average_without_the_weight_one_minus_alpha_is_named():
    found = verdicts("rmsprop", _variant(new_weight=1.0))  # s ← alpha·s + g²
    assert found[BASIC] is not None and "without that weight" in found[BASIC]
    assert found[STATE] is not None


def test_adagrads_sum_instead_of_an_average_is_rejected():
    found = verdicts("rmsprop", _variant(new_weight=1.0, keep_weight=1.0))  # s ← s + g²
    assert found[BASIC] is not None and "AdaGrad's" in found[BASIC]
    assert found[STATE] is not None
    assert points("rmsprop", _variant(new_weight=1.0, keep_weight=1.0)) <= 0.5


def test_adagrad_handed_in_as_rmsprop_fails():
    class AdaGradWithRMSPropsSignature(Accumulating):
        def __init__(self, params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
            torch.optim.Optimizer.__init__(self, params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    assert {BASIC, STATE} <= set(failed_parts("rmsprop", AdaGradWithRMSPropsSignature))


def test_weight_decay_after_the_average_loses_only_the_decay_part():
    variant = _variant(decay_after_average=True)
    assert failed_parts("rmsprop", variant) == [DECAY]
    assert "before g² joins the running average" in verdicts("rmsprop", variant)[DECAY]


def test_ignored_weight_decay_loses_only_the_decay_part():
    class NoDecay(RMS):
        @torch.no_grad()
        def step(self, closure=None):
            decays = [group["weight_decay"] for group in self.param_groups]
            for group in self.param_groups:
                group["weight_decay"] = 0.0
            try:
                return super().step(closure)
            finally:
                for group, wd in zip(self.param_groups, decays):
                    group["weight_decay"] = wd

    assert failed_parts("rmsprop", NoDecay) == [DECAY]


def test_plain_sgd_handed_in_as_rmsprop_earns_nothing():
    class SGDWithRMSPropsSignature(PlainSGD):
        def __init__(self, params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
            torch.optim.Optimizer.__init__(self, params, dict(lr=lr, momentum=0.0, alpha=alpha, eps=eps,
                                                              weight_decay=weight_decay))

    assert points("rmsprop", SGDWithRMSPropsSignature) == 0
    assert "follows the size of each gradient" in verdicts("rmsprop", SGDWithRMSPropsSignature)[CONTRACT]


def test_torch_optim_rmsprop_itself_earns_nothing():
    class Wrapped(torch.optim.RMSprop):
        def __init__(self, params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
            super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay)

    assert points("rmsprop", Wrapped) == 0
