"""check_optimizer accepts correct optimizers written in several ways and rejects the usual mistakes.

The reference implementations live here only (never in labs_utils). ``Heavy`` (SGD, momentum,
Nesterov), ``RMS`` and ``Adaptive`` (Adam, AdamW) follow torch.optim; each wrong variant is a
subclass that flips one knob, so every test shows exactly one mistake.
"""
from __future__ import annotations

import inspect

import pytest
import torch

from labs_utils import exercises
from labs_utils.checks import OPTIMIZER_NAMES, check_optimizer
from labs_utils.lab3_optimizers.checks import GRADING

TITLES = {"sgd": "SGD", "momentum": "Momentum", "nesterov": "Nesterov", "rmsprop": "RMSProp", "adam": "Adam",
          "adamw": "AdamW"}


class Heavy(torch.optim.Optimizer):
    """SGD with optional momentum and Nesterov, torch's conventions."""

    nesterov = False
    ema = False  # the slides' v = βv + (1 − β)g
    uses_momentum = True

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    def hyper(self, group, key):
        return group[key]

    @torch.no_grad()
    def step(self, closure=None):  # torch.optim's signature; RMS below leaves the closure out
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, beta = self.hyper(group, "lr"), self.hyper(group, "momentum")
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if self.uses_momentum:
                    buf = self.buffer(p)
                    buf.mul_(beta).add_(p.grad, alpha=(1 - beta) if self.ema else 1.0)
                    update = p.grad + beta * buf if self.nesterov else buf
                p.add_(update, alpha=-lr)
        return loss

    def buffer(self, p):
        state = self.state[p]
        if "v" not in state:
            state["v"] = torch.zeros_like(p)
        return state["v"]


class PlainSGD(Heavy):
    uses_momentum = False

    def __init__(self, params, lr):
        torch.optim.Optimizer.__init__(self, params, dict(lr=lr, momentum=0.0))


class NesterovMomentum(Heavy):
    nesterov = True


class RMS(torch.optim.Optimizer):
    eps_inside = False
    swapped = False

    def __init__(self, params, lr, alpha=0.99, eps=1e-8):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))

    def hyper(self, group, key):
        return group[key]

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            alpha = self.hyper(group, "alpha")
            alpha = 1 - alpha if self.swapped else alpha
            lr, eps = self.hyper(group, "lr"), self.hyper(group, "eps")
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["s"] = torch.zeros_like(p)
                s = state["s"]
                s.mul_(alpha).addcmul_(p.grad, p.grad, value=1 - alpha)
                denom = (s + eps).sqrt() if self.eps_inside else s.sqrt().add_(eps)
                p.addcdiv_(p.grad, denom, value=-lr)


class Adaptive(torch.optim.Optimizer):
    """Adam (L2) or AdamW (decoupled), torch's arithmetic with lerp_."""

    decoupled = False
    bias_correction = True
    eps_inside = False
    decay_times_lr = True
    decay_after_update = False
    default_weight_decay = 0.0

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=None):
        wd = self.default_weight_decay if weight_decay is None else weight_decay
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=wd))

    def hyper(self, group, key):
        return group[key]

    def moments(self, p):
        state = self.state[p]
        if not state:
            state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["step"] += 1
        return state["step"], state["m"], state["v"]

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (b1, b2) = self.hyper(group, "lr"), self.hyper(group, "betas")
            eps, wd = self.hyper(group, "eps"), self.hyper(group, "weight_decay")
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                shrink = 1 - (lr * wd if self.decay_times_lr else wd)
                if self.decoupled and not self.decay_after_update:
                    p.mul_(shrink)
                elif not self.decoupled:
                    g = g.add(p, alpha=wd)
                t, m, v = self.moments(p)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1 ** t) if self.bias_correction else m
                v_hat = v / (1 - b2 ** t) if self.bias_correction else v
                denom = (v_hat + eps).sqrt() if self.eps_inside else v_hat.sqrt() + eps
                p.addcdiv_(m_hat, denom, value=-lr)
                if self.decoupled and self.decay_after_update:
                    p.mul_(shrink)


class DecoupledAdaptive(Adaptive):
    decoupled = True
    default_weight_decay = 1e-2


# ---------------------------------------------------------------- correct, written differently


class AdamMulAdd(torch.optim.Optimizer):
    """Adam in out-of-place float arithmetic, step size folded as in the paper's efficient form for m."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.t = 0  # one counter for the optimizer: equivalent while every parameter gets a gradient

    @torch.no_grad()
    def step(self):
        self.t += 1
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                m = b1 * state.get("m", torch.zeros(p.shape)) + (1 - b1) * g
                v = b2 * state.get("v", torch.zeros(p.shape)) + (1 - b2) * g * g
                state["m"], state["v"] = m, v
                step_size = group["lr"] / (1 - b1 ** self.t)
                p.sub_(step_size * m / (torch.sqrt(v) / (1 - b2 ** self.t) ** 0.5 + group["eps"]))


class AdamWMulAdd(AdamMulAdd):
    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)

    @torch.no_grad()
    def step(self):
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, wd in zip(self.param_groups, decays):
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * wd)
            group["weight_decay"] = 0.0  # reuse Adam's step without its L2 term
        try:
            super().step()
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd


class MomentumOutOfPlace(torch.optim.Optimizer):
    """Momentum with buffers created on the first step from the gradient (torch's own way)."""

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].get("buf")
                buf = p.grad.clone() if buf is None else group["momentum"] * buf + p.grad
                self.state[p]["buf"] = buf
                p.data = p.data - group["lr"] * buf


CORRECT = {
    "sgd": PlainSGD,
    "momentum": Heavy,
    "nesterov": NesterovMomentum,
    "rmsprop": RMS,
    "adam": Adaptive,
    "adamw": DecoupledAdaptive,
}


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_reference_implementations_pass(name, capsys):
    check_optimizer(name, CORRECT[name])
    assert capsys.readouterr().out.startswith(f"\u2714 {TITLES[name]}: all ")


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@pytest.mark.parametrize("seed", [1, 987654])
def test_reference_implementations_pass_with_fresh_seeds(name, seed):
    assert all(message is None for message in verdicts(name, CORRECT[name], seed).values())


@pytest.mark.parametrize("name, cls", [("adam", AdamMulAdd), ("adamw", AdamWMulAdd), ("momentum", MomentumOutOfPlace)])
def test_equivalent_arithmetic_passes(name, cls, capsys):
    check_optimizer(name, cls)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("name, cls, takes_closure", [("momentum", Heavy, True), ("rmsprop", RMS, False)])
def test_step_with_or_without_a_closure_parameter_passes(name, cls, takes_closure, capsys):
    assert ("closure" in inspect.signature(cls.step).parameters) == takes_closure
    check_optimizer(name, cls)
    assert "passed" in capsys.readouterr().out


def verdicts(name, cls, seed=12345):
    """Part name -> None or message, as the grader computes them (probe, JSON round trip, judge)."""

    exercise = exercises.exercise_named(GRADING, TITLES[name])
    return exercises.grade_here(exercise, (cls,), seed)


def failed_parts(name, cls):
    return sorted(part for part, message in verdicts(name, cls).items() if message is not None)


def rejects(name, cls, *fragments):
    with pytest.raises(AssertionError) as info:
        check_optimizer(name, cls)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message


# ---------------------------------------------------------------- wrong implementations


def test_failure_names_step_parameter_and_group():
    class EMAMomentum(Heavy):
        ema = True

    message = rejects("momentum", EMAMomentum, "after step 1", "parameter 'weight'", "group 1", "Likely cause")
    assert "torch.optim.SGD" in message


def test_ema_form_momentum_is_rejected():
    class EMAMomentum(Heavy):
        ema = True

    rejects("momentum", EMAMomentum, "EMA form")


def test_nesterov_as_plain_momentum_is_rejected():
    rejects("nesterov", Heavy, "plain momentum", "look-ahead")


def test_rmsprop_with_eps_inside_the_sqrt_is_rejected():
    class EpsInside(RMS):
        eps_inside = True

    rejects("rmsprop", EpsInside, "tiny gradients", "AFTER the square root")


def test_rmsprop_with_alpha_swapped_is_rejected():
    class Swapped(RMS):
        swapped = True

    rejects("rmsprop", Swapped, "swapped")


def test_adam_without_bias_correction_is_rejected():
    class NoBiasCorrection(Adaptive):
        bias_correction = False

    rejects("adam", NoBiasCorrection, "No bias correction")


def test_adam_with_eps_inside_the_sqrt_is_rejected():
    class EpsInside(Adaptive):
        eps_inside = True

    rejects("adam", EpsInside, "AFTER the square root")


def test_adam_with_decoupled_decay_is_rejected():
    rejects("adam", type("AdamDecoupled", (Adaptive,), {"decoupled": True}), "L2 term added to the gradient")


def test_adamw_with_l2_instead_of_decoupled_decay_is_rejected():
    class L2AdamW(Adaptive):
        default_weight_decay = 1e-2

    rejects("adamw", L2AdamW, "weight decay is off", "does not add weight_decay")


def test_adamw_with_decay_not_scaled_by_lr_is_rejected():
    class UnscaledDecay(DecoupledAdaptive):
        decay_times_lr = False

    rejects("adamw", UnscaledDecay, "multiply the decay by lr")


def test_adamw_decaying_after_the_update_is_rejected():
    class DecayAfter(DecoupledAdaptive):
        decay_after_update = True

    rejects("adamw", DecayAfter, "large learning rate", "BEFORE the Adam update")


@pytest.mark.parametrize("name, base", [("momentum", Heavy), ("rmsprop", RMS), ("adam", Adaptive),
                                        ("adamw", DecoupledAdaptive)])
def test_ignoring_group_hyperparameters_is_rejected(name, base):
    class DefaultsOnly(base):
        def hyper(self, group, key):
            return self.defaults[key]

    rejects(name, DefaultsOnly, "two parameter groups", "group['lr']")


def test_hard_coded_hyperparameter_is_rejected():
    class HardCodedBetas(Adaptive):
        def hyper(self, group, key):
            return (0.9, 0.999) if key == "betas" else group[key]

    rejects("adam", HardCodedBetas, "non-default hyperparameters", "from group[...]")


def test_momentum_buffer_shared_between_parameters_is_rejected():
    class SharedByShape(Heavy):
        def buffer(self, p):
            return self.__dict__.setdefault("shared", {}).setdefault(p.shape, torch.zeros_like(p))

    rejects("momentum", SharedByShape, "same shape", "self.state[p]")


def test_adam_moments_shared_between_parameters_are_rejected():
    class SharedByShape(Adaptive):
        def moments(self, p):
            state = self.__dict__.setdefault("shared", {}).setdefault(
                p.shape, dict(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p)))
            state["step"] += 1
            return state["step"], state["m"], state["v"]

    rejects("adam", SharedByShape, "same shape", "self.state[p]")


def test_step_counter_shared_by_all_parameters_is_rejected():
    class OneCounter(Adaptive):
        def moments(self, p):  # counts parameters, not steps
            self.t = getattr(self, "t", 0) + 1
            state = self.state[p]
            if not state:
                state.update(m=torch.zeros_like(p), v=torch.zeros_like(p))
            return self.t, state["m"], state["v"]

    rejects("adam", OneCounter, "same shape")


def test_decaying_a_parameter_without_gradient_is_rejected():
    class DecaysEverything(DecoupledAdaptive):
        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        p.mul_(1 - group["lr"] * group["weight_decay"])
            super().step()

    rejects("adamw", DecaysEverything, "'frozen'", "if p.grad is None: continue")


def test_rebinding_instead_of_updating_in_place_is_rejected():
    class Rebinds(PlainSGD):
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p = p - group["lr"] * p.grad  # noqa: F841

    rejects("sgd", Rebinds, "did not change this parameter", "in place")


def test_wrong_sign_is_rejected():
    class Uphill(PlainSGD):
        @torch.no_grad()
        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=group["lr"])

    rejects("sgd", Uphill, "uphill")


def test_wrong_default_is_rejected():
    class LowMomentum(Heavy):
        def __init__(self, params, lr, momentum=0.5):
            super().__init__(params, lr, momentum)

    rejects("momentum", LowMomentum, "one parameter, default hyperparameters")


def test_missing_argument_name_is_rejected():
    class NoAlpha(torch.optim.Optimizer):
        def __init__(self, params, lr, rho=0.99, eps=1e-8):
            super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    rejects("rmsprop", NoAlpha, "no parameter(s) alpha", "RMSProp(params, lr, alpha=0.99, eps=1e-08)")


def test_not_an_optimizer_class_is_rejected():
    rejects("sgd", lambda params, lr: None, "needs your optimizer class", "torch.optim.Optimizer")


def test_unfinished_exercise_says_not_implemented():
    class Unfinished(PlainSGD):
        def step(self):
            raise NotImplementedError()

    rejects("sgd", Unfinished, "not implemented yet")


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="use one of sgd, momentum"):
        check_optimizer("lion", PlainSGD)


def test_grading_table_has_one_row_per_optimizer_with_todays_points():
    rows = GRADING[:len(OPTIMIZER_NAMES)]
    assert [row.name for row in GRADING[len(OPTIMIZER_NAMES):]] == ["Convergence rate"]
    assert [row.name for row in rows] == [TITLES[name] for name in OPTIMIZER_NAMES]
    assert [row.args for row in rows] == [(name,) for name in OPTIMIZER_NAMES]
    assert [row.points for row in rows] == [1, 1, 1, 1.5, 2, 1.5]
    assert all(row.needs == (row.name,) and row.forbidden == ("torch.optim",) for row in rows)
    assert [part.name for part in GRADING[4].parts] == [
        "basic step", "state across steps", "parameter groups and parameters without .grad", "weight decay"]


# ---------------------------------------------------------------- delegation to torch.optim


class SubclassedAdam(torch.optim.Adam):
    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


class WrappedSGD(torch.optim.Optimizer):
    """A plain Optimizer subclass that hides a torch.optim.SGD inside and forwards step()."""

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.inner = torch.optim.SGD(self.param_groups, lr=lr, momentum=momentum, foreach=False)

    def step(self):
        self.inner.step()


class FunctionalRMSProp(RMS):
    """Calls torch's functional kernel instead of writing the update."""

    @torch.no_grad()
    def step(self):
        from torch.optim.rmsprop import rmsprop

        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                self.state[p].setdefault("s", torch.zeros_like(p))
            rmsprop(params, [p.grad for p in params], [self.state[p]["s"] for p in params], [], [],
                    [torch.tensor(0.0) for _ in params], foreach=False, lr=group["lr"], alpha=group["alpha"],
                    eps=group["eps"], weight_decay=0.0, momentum=0.0, centered=False)


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adam", SubclassedAdam),
                                       ("momentum", WrappedSGD), ("rmsprop", FunctionalRMSProp)])
def test_delegating_to_torch_optim_fails_every_part(name, cls):
    message = rejects(name, cls, "reference implementation", "Write the update yourself")
    assert " 0/" in message
    assert set(failed_parts(name, cls)) == {part.name for part in exercises.exercise_named(
        GRADING, TITLES[name]).parts}


# ---------------------------------------------------------------- issue 14: .grad in place, crashes on None


class AdamL2InPlace(Adaptive):
    """Right numbers, but the L2 term is added into p.grad itself (torch leaves .grad untouched)."""

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and group["weight_decay"]:
                    p.grad.add_(p, alpha=group["weight_decay"])
            wd = group["weight_decay"]
            group["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for group in self.param_groups:
                group["weight_decay"] = wd


def test_adam_adding_l2_into_grad_in_place_fails_only_weight_decay():
    assert failed_parts("adam", AdamL2InPlace) == ["weight decay"]
    message = rejects("adam", AdamL2InPlace, "changed p.grad", "p.grad.add(p, alpha=weight_decay)",
                      "1.5/2 points")
    assert "torch.optim leaves .grad untouched" in message


class CrashesOnNone(Heavy):
    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                buf = self.buffer(p)
                buf.mul_(group["momentum"]).add_(p.grad)
                p.add_(buf, alpha=-group["lr"])


def test_step_crashing_on_a_parameter_without_grad_says_skip_it():
    message = rejects("momentum", CrashesOnNone, "skip parameters whose .grad is None", "0.75/1 points")
    assert "traceback above" not in message
    assert failed_parts("momentum", CrashesOnNone) == ["parameter groups and parameters without .grad"]


def test_weight_decay_hints_say_where_the_decay_goes():
    class AdamDecoupled(Adaptive):
        decoupled = True

    message = rejects("adam", AdamDecoupled, "added to the gradient")
    assert "every hyperparameter" not in message
    message = rejects("adamw", type("UnscaledDecay", (DecoupledAdaptive,), {"decay_times_lr": False}),
                      "multiply the decay by lr")
    assert "every hyperparameter" not in message


# ---------------------------------------------------------------- partial credit: one part wrong


def test_momentum_sharing_buffers_loses_only_the_state_part():
    class SharedByShape(Heavy):
        def buffer(self, p):
            return self.__dict__.setdefault("shared", {}).setdefault(p.shape, torch.zeros_like(p))

    assert "state across steps" in failed_parts("momentum", SharedByShape)
    assert "basic step" not in failed_parts("momentum", SharedByShape)


def test_momentum_without_memory_passes_the_first_step_only():
    class Forgetful(Heavy):
        def buffer(self, p):
            return torch.zeros_like(p)

    assert failed_parts("momentum", Forgetful) == ["parameter groups and parameters without .grad",
                                                   "state across steps"]
    rejects("momentum", Forgetful, "0.25/1 points", "Passed: basic step")


@pytest.mark.parametrize("name, base, points", [("sgd", PlainSGD, "0.5/1"), ("rmsprop", RMS, "1/1.5"),
                                                ("momentum", Heavy, "0.75/1")])
def test_ignoring_group_hyperparameters_loses_only_the_groups_part(name, base, points):
    class DefaultsOnly(base):
        def hyper(self, group, key):
            return self.defaults[key]

    assert failed_parts(name, DefaultsOnly) == ["parameter groups and parameters without .grad"]
    rejects(name, DefaultsOnly, f"{points} points")


@pytest.mark.parametrize("mutation", [{"decay_times_lr": False}, {"decay_after_update": True},
                                      {"decoupled": False}])
def test_adamw_with_wrong_decay_loses_only_the_decay_part(mutation):
    cls = type("WrongDecay", (DecoupledAdaptive,), mutation)
    assert failed_parts("adamw", cls) == ["weight decay"]
    rejects("adamw", cls, "1/1.5 points")


def test_adam_with_decay_on_the_wrong_side_loses_only_the_decay_part():
    assert failed_parts("adam", type("AdamDecoupled", (Adaptive,), {"decoupled": True})) == ["weight decay"]


# ---------------------------------------------------------------- untrusted evidence


@pytest.mark.parametrize("evidence", [None, 3, "passed", {"scenarios": "all good"}, {"scenarios": {}},
                                      {"scenarios": {"one parameter, default hyperparameters": {"values": [1]}}}])
def test_malformed_evidence_fails_every_part_without_crashing(evidence):
    exercise = exercises.exercise_named(GRADING, "Adam")
    found = exercises.judge(exercise, evidence, seed=5)
    assert all(isinstance(message, str) for message in found.values())


def test_evidence_from_another_seed_is_rejected():
    exercise = exercises.exercise_named(GRADING, "Momentum")
    stale = exercises.probe(exercise, (Heavy,), seed=1)
    assert all(message is not None for message in exercises.judge(exercise, stale, seed=2).values())
