"""check_optimizer exercises torch.optim's contract as a user relies on it: parameters whose gradients come late,
stop or skip steps, schedulers and edited param_groups, state_dict() loaded into a fresh optimizer, gradients
written in place, step(closure), parameters updated in place and p.grad left alone. Each wrong variant fails
the part that holds the scenario, with a message that names the mistake, and keeps the other parts.
"""
from __future__ import annotations

import pytest
import torch
from lab3_reference import (
    RMS,
    Adaptive,
    DecoupledAdaptive,
    Heavy,
    NesterovMomentum,
    PlainSGD,
    failed_parts,
    rejects,
    run_closure,
    verdicts,
)

from labs_utils.lab3_optimizers.optimizer_cases import CHANGES, CONTRACT, DECAY, GROUPS

# ---------------------------------------------------------------- state that torch.optim's state_dict() does not see


class StateInAnAttribute(Heavy):
    def buffer(self, p):
        return self.__dict__.setdefault("velocities", {}).setdefault(p, torch.zeros_like(p))


class StateKeyedById(Heavy):
    def buffer(self, p):
        state = self.state[id(p)]
        if "v" not in state:
            state["v"] = torch.zeros_like(p)
        return state["v"]


class StateKeyedByPosition(Heavy):
    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                index += 1
                if p.grad is None:
                    continue
                state = self.state[index]
                state.setdefault("v", torch.zeros_like(p)).mul_(group["momentum"]).add_(p.grad)
                p.add_(state["v"], alpha=-group["lr"])
        return loss


@pytest.mark.parametrize("cls", [StateInAnAttribute, StateKeyedById, StateKeyedByPosition])
def test_state_outside_self_state_fails_only_the_contract_after_save_and_load(cls):
    assert failed_parts("momentum", cls) == [CONTRACT]
    message = verdicts("momentum", cls)[CONTRACT]
    assert "After state_dict() was loaded into a fresh Momentum" in message and "after step 5" in message
    assert "self.state[p]" in message


class AdamCounterPerOptimizer(Adaptive):
    def moments(self, p, group):
        state = self.state[p]
        if not state:
            state.update(m=torch.zeros_like(p), v=torch.zeros_like(p))
        return self.t, state["m"], state["v"]

    def step(self, closure=None):
        self.t = getattr(self, "t", 0) + 1
        return super().step(closure)


class AdamCounterPerGroup(Adaptive):
    def moments(self, p, group):
        state = self.state[p]
        if not state:
            state.update(m=torch.zeros_like(p), v=torch.zeros_like(p))
        return group["t"], state["m"], state["v"]

    def step(self, closure=None):
        for group in self.param_groups:
            group["t"] = group.get("t", 0) + 1
        return super().step(closure)


@pytest.mark.parametrize("cls, parts", [(AdamCounterPerOptimizer, [GROUPS, CONTRACT]), (AdamCounterPerGroup, [GROUPS])])
def test_one_adam_step_count_per_optimizer_or_group_fails_when_a_parameter_starts_late(cls, parts):
    assert failed_parts("adam", cls) == sorted(parts)
    message = verdicts("adam", cls)[GROUPS]
    assert "'late' got its first gradient at this step" in message and "count steps in self.state[p]" in message


# ---------------------------------------------------------------- gradients written in place


class VelocityIsTheGradient(Heavy):
    """Keeps p.grad itself as the velocity on the first step (no copy)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "v" not in state:
                    state["v"] = p.grad
                else:
                    state["v"].mul_(group["momentum"]).add_(p.grad)
                p.add_(state["v"], alpha=-group["lr"])
        return loss


def test_a_velocity_that_is_p_grad_passes_with_fresh_gradients_and_fails_with_gradients_written_in_place():
    assert failed_parts("momentum", VelocityIsTheGradient) == [CONTRACT]
    message = verdicts("momentum", VelocityIsTheGradient)[CONTRACT]
    assert "[in place]" in message and "Your state holds p.grad itself (no copy)" in message
    assert "in-place gradients" in message  # listed among the other failures


class AdamL2InPlace(Adaptive):
    """Right numbers, but the L2 term is added into p.grad itself (torch leaves .grad untouched)."""

    @torch.no_grad()
    def step(self, closure=None):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["weight_decay"]:
                    p.grad.add_(p, alpha=group["weight_decay"])
            group["weight_decay"] = 0.0
        try:
            return super().step(closure)
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd


def test_adam_adding_l2_into_grad_in_place_fails_only_the_contract():
    assert failed_parts("adam", AdamL2InPlace) == [CONTRACT]
    message = rejects("adam", AdamL2InPlace, "changed p.grad", "p.grad.add(p, alpha=weight_decay)", "1.75/2 points")
    assert "torch.optim leaves .grad untouched" in message and "Weight decay in Adam is L2" in message


# ---------------------------------------------------------------- step(closure)


class NeverCallsTheClosure(Heavy):
    def step(self, closure=None):
        return super().step()


class DropsTheLoss(Heavy):
    def step(self, closure=None):
        super().step(closure)


class ReturnsAFloat(Heavy):
    def step(self, closure=None):
        loss = super().step(closure)
        return None if loss is None else loss.item()


class ClosureAfterTheUpdate(Heavy):
    def step(self, closure=None):
        super().step()
        return run_closure(closure)


class NoClosureParameter(RMS):
    @torch.no_grad()
    def step(self):
        return super().step()


@pytest.mark.parametrize("name, cls, fragment", [
    ("momentum", NeverCallsTheClosure, "step(closure) never called the closure"),
    ("momentum", DropsTheLoss, "returned NoneType None at step 1, not the closure's loss"),
    ("momentum", ReturnsAFloat, "returned float"),
    ("momentum", ClosureAfterTheUpdate, "call the closure before the update"),
    ("rmsprop", NoClosureParameter, "def step(self, closure=None)"),
])
def test_step_closure_mistakes_fail_only_the_contract(name, cls, fragment):
    assert failed_parts(name, cls) == [CONTRACT]
    assert fragment in verdicts(name, cls)[CONTRACT]


# ---------------------------------------------------------------- parameters in place, p.grad and groups left alone


class RebindsData(Heavy):
    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    buf = self.buffer(p)
                    buf.mul_(group["momentum"]).add_(p.grad)
                    p.data = p.data - group["lr"] * buf
        return loss


def test_rebinding_p_data_fails_only_the_contract():
    assert failed_parts("momentum", RebindsData) == [CONTRACT]
    message = verdicts("momentum", RebindsData)[CONTRACT]
    assert "to new storage" in message and "p.copy_(new_value)" in message


def test_rebinding_a_local_name_moves_nothing_and_says_so():
    class RebindsName(PlainSGD):
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p = p - group["lr"] * p.grad  # noqa: F841

    found = verdicts("sgd", RebindsName)
    assert all(message is not None for message in found.values())
    assert "did not change this parameter" in found["basic step"] and "in place" in found["basic step"]


def test_a_step_that_writes_the_learning_rate_is_told_to_leave_the_groups_alone():
    class DecaysLr(Heavy):
        def step(self, closure=None):
            loss = super().step(closure)
            for group in self.param_groups:
                group["lr"] *= 0.99
            return loss

    assert "changed group 1 lr" in verdicts("momentum", DecaysLr)[CONTRACT]


# ---------------------------------------------------------------- gradients that come late, stop or skip steps


class ZerosForMissingGradients:
    def gradient(self, p):
        return torch.zeros_like(p) if p.grad is None else p.grad


@pytest.mark.parametrize("name, base, parts, fragment", [
    ("momentum", Heavy, [GROUPS], "A missing gradient is not a zero gradient"),
    ("nesterov", NesterovMomentum, [GROUPS], "A missing gradient is not a zero gradient"),
    ("adam", Adaptive, [DECAY, GROUPS], "A missing gradient is not a zero gradient"),
    ("rmsprop", RMS, [DECAY, GROUPS], "its state did not decay"),
])
def test_a_missing_gradient_treated_as_zeros_fails(name, base, parts, fragment):
    cls = type("Zeros", (ZerosForMissingGradients, base), {})
    assert failed_parts(name, cls) == sorted(parts)
    assert fragment in verdicts(name, cls)[GROUPS]


def test_decaying_a_parameter_without_gradient_is_told_to_skip_it():
    class DecaysEverything(DecoupledAdaptive):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
            return super().step(closure)

    message = verdicts("adamw", DecaysEverything)[DECAY]
    assert "'frozen'" in message and "if p.grad is None: continue" in message


def test_a_step_crashing_on_a_parameter_without_gradient_says_skip_it():
    class CrashesOnNone(Heavy):
        def gradient(self, p):
            return p.grad.clone()

    assert failed_parts("momentum", CrashesOnNone) == [GROUPS]
    message = verdicts("momentum", CrashesOnNone)[GROUPS]
    assert "skip such parameters" in message and "'late'" in message


# ---------------------------------------------------------------- hyperparameters changed between steps


class LrInsideTheVelocity(Heavy):
    """The other sign convention, v ← βv − lr·g, θ ← θ + v: torch's velocity times −lr."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                v = self.buffer(p)
                v.mul_(group["momentum"]).sub_(p.grad, alpha=group["lr"])
                p.add_(v if not self.nesterov else group["momentum"] * v - group["lr"] * p.grad)
        return loss


@pytest.mark.parametrize("name, nesterov", [("momentum", False), ("nesterov", True)])
def test_the_other_momentum_sign_convention_fails_only_when_lr_changes(name, nesterov):
    cls = type("LrInside", (LrInsideTheVelocity,), {"nesterov": nesterov})
    assert failed_parts(name, cls) == [CHANGES]
    message = verdicts(name, cls)[CHANGES]
    assert "LambdaLR" in message and "after step 4" in message
    assert "If your velocity holds the learning rate (v ← momentum·v − lr·g" in message


def test_a_learning_rate_cached_at_construction_is_named():
    class CachedLr(Heavy):
        def __init__(self, params, lr, momentum=0.9):
            super().__init__(params, lr, momentum)
            self.lr = lr

        def hyper(self, group, key):
            return self.lr if key == "lr" else group[key]

        def step(self, closure=None):
            return super().step(closure)

    assert failed_parts("momentum", CachedLr) == sorted([GROUPS, CHANGES])
    assert "uses the learning rate the optimizer was created with" in verdicts("momentum", CachedLr)[CHANGES]


def test_hyperparameters_saved_on_the_first_step_fail_when_param_groups_are_edited():
    class FirstStepBetas(Adaptive):
        def hyper(self, group, key):
            if key == "betas":
                return self.__dict__.setdefault("betas", {}).setdefault(id(group), group["betas"])
            return group[key]

    assert failed_parts("adam", FirstStepBetas) == [CHANGES]
    message = verdicts("adam", FirstStepBetas)[CHANGES]
    assert "edited in param_groups" in message and "betas (0.9, 0.999) → (0.8, 0.95)" in message
