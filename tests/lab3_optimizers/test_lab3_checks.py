"""check_optimizer: correct optimizers written in several ways pass; the usual formula mistakes fail the parts they
show in, with a hint that names them. The torch.optim contract (save/load, in-place gradients, closure, late and
missing gradients, schedulers) is in test_lab3_contract.py; non-attempts and bad input in test_lab3_non_attempts.py.
"""
from __future__ import annotations

import pytest
import torch
from lab3_reference import (
    CORRECT,
    RMS,
    TITLES,
    Adaptive,
    DecoupledAdaptive,
    Heavy,
    PlainSGD,
    failed_parts,
    points,
    rejects,
    run_closure,
    verdicts,
)

from labs_utils import exercises
from labs_utils.checks import OPTIMIZER_NAMES, check_optimizer
from labs_utils.lab3_optimizers.checks import CHECKS
from labs_utils.lab3_optimizers.optimizer_cases import BASIC, CHANGES, CONTRACT, DECAY, EPS, GROUPS, STATE

# ---------------------------------------------------------------- correct, written differently


class AdamMulAdd(torch.optim.Optimizer):
    """Adam in out-of-place float arithmetic, the step size folded as in the paper's efficient form."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                state = self.state[p]
                t = state["t"] = state.get("t", 0) + 1
                m = b1 * state.get("m", torch.zeros(p.shape)) + (1 - b1) * g
                v = b2 * state.get("v", torch.zeros(p.shape)) + (1 - b2) * g * g
                state["m"], state["v"] = m, v
                step_size = group["lr"] / (1 - b1 ** t)
                p.sub_(step_size * m / (torch.sqrt(v) / (1 - b2 ** t) ** 0.5 + group["eps"]))
        return loss


class AdamWMulAdd(AdamMulAdd):
    """AdamW as 'decay, then Adam without L2' (weight_decay zeroed in the groups for the call, then put back)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr, betas, eps, weight_decay)

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        decays = [group["weight_decay"] for group in self.param_groups]
        for group, wd in zip(self.param_groups, decays):
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(1 - group["lr"] * wd)
            group["weight_decay"] = 0.0
        try:
            super().step()
        finally:
            for group, wd in zip(self.param_groups, decays):
                group["weight_decay"] = wd
        return loss


class MomentumTorchStyle(torch.optim.Optimizer):
    """Momentum with the buffer created on the first step as a copy of the gradient (torch's own way)."""

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.clone(p.grad).detach()
                else:
                    buf.mul_(group["momentum"]).add_(p.grad)
                p.sub_(group["lr"] * buf)
        return loss


class ForeachMomentum(Heavy):
    """Momentum over lists of tensors with torch's _foreach_ kernels (no loop over parameters in Python math)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = [self.buffer(p) for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss


class ForeachAdam(Adaptive):
    """Adam over lists with _foreach_ kernels, a tensor step count per parameter (as torch keeps it)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            for p in params:
                if not self.state[p]:
                    self.state[p].update(step=torch.tensor(0.0), m=torch.zeros_like(p), v=torch.zeros_like(p))
            grads = torch._foreach_add([p.grad for p in params], params, alpha=group["weight_decay"])
            ms, vs = [self.state[p]["m"] for p in params], [self.state[p]["v"] for p in params]
            for p in params:
                self.state[p]["step"] += 1
            torch._foreach_lerp_(ms, grads, 1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            for p, m, v in zip(params, ms, vs):
                t = self.state[p]["step"].item()
                denom = (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
                p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1 ** t))
        return loss


class RMSOutOfPlace(RMS):
    """RMSProp with new tensors for s and `p -= ...` (in place on the parameter)."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            a = group["alpha"]
            for p in group["params"]:
                if p.grad is not None:
                    g = p.grad + group["weight_decay"] * p
                    s = a * self.state[p].get("s", torch.zeros_like(p)) + (1 - a) * g ** 2
                    self.state[p]["s"] = s
                    p -= group["lr"] * g / (torch.sqrt(s) + group["eps"])
        return loss


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_reference_implementations_pass(name, capsys):
    check_optimizer(name, CORRECT[name])
    assert capsys.readouterr().out.startswith(f"\u2714 {TITLES[name]}: all ")


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
@pytest.mark.parametrize("seed", [1, 987654])
def test_reference_implementations_pass_with_fresh_seeds(name, seed):
    assert failed_parts(name, CORRECT[name], seed) == []


@pytest.mark.parametrize("name, cls", [("adam", AdamMulAdd), ("adamw", AdamWMulAdd), ("momentum", MomentumTorchStyle),
                                       ("momentum", ForeachMomentum), ("adam", ForeachAdam),
                                       ("rmsprop", RMSOutOfPlace)])
def test_equivalent_formulations_pass(name, cls):
    assert failed_parts(name, cls) == []


# ---------------------------------------------------------------- wrong formulas: the parts they show in, and why


def _variant(base, **knobs):
    return type(f"{base.__name__}Variant", (base,), knobs)


def test_a_failure_names_the_step_the_parameter_and_the_group():
    message = rejects("momentum", _variant(Heavy, ema=True), "after step 1", "parameter 'weight'", "group 1",
                      "Likely cause", "torch.optim.SGD")
    assert "EMA form" in message


class VelocityStartsAtGradient(Heavy):
    """Reads torch's box half-way: the velocity starts at g and still takes v ← βv + g on the first step."""

    def buffer(self, p):
        state = self.state[p]
        if "v" not in state:
            state["v"] = p.grad.clone()
        return state["v"]


@pytest.mark.parametrize("name, cls, fragment, forbidden", [
    ("momentum", _variant(Heavy, ema=True), "EMA form", None),
    ("momentum", VelocityStartsAtGradient, "(1 + momentum) times torch's", "EMA form"),
    ("nesterov", Heavy, "plain momentum", None),
    ("rmsprop", _variant(RMS, swapped=True), "look swapped", "bias"),
    ("rmsprop", _variant(RMS, bias_correction=True), "do not divide s by (1 − alphaᵗ)", "swapped"),
    ("rmsprop", _variant(RMS, start_at_g2=True), "do not start s at g²", "swapped"),
    ("adam", _variant(Adaptive, bias_correction=False), "No bias correction", None),
])
def test_a_wrong_first_step_is_named_in_every_part_it_fails(name, cls, fragment, forbidden):
    found = verdicts(name, cls)
    assert found[BASIC] is not None and found[CONTRACT] is None  # the contract is judged on its own run
    for part, message in found.items():
        if message is not None and part != EPS:
            assert fragment in message, f"{part}: {message}"
            assert forbidden is None or forbidden not in message


class HalfCorrected(Adaptive):
    """Bias-corrects one moment only (``which``: "m" or "v")."""

    which = "m"

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            (b1, b2), lr, eps = group["betas"], group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is not None:
                    t, m, v = self.moments(p, group)
                    m.lerp_(p.grad, 1 - b1)
                    v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                    m_hat = m / (1 - b1 ** t) if self.which == "m" else m
                    v_hat = v / (1 - b2 ** t) if self.which == "v" else v
                    p.addcdiv_(m_hat, v_hat.sqrt() + eps, value=-lr)
        return loss


@pytest.mark.parametrize("which, fragment", [("m", "v is not bias-corrected"), ("v", "m is not bias-corrected")])
def test_adam_correcting_one_moment_only_is_told_which(which, fragment):
    assert fragment in verdicts("adam", type("Half", (HalfCorrected,), {"which": which}))[BASIC]


def test_a_mistake_only_many_steps_show_points_at_what_the_long_scenario_combines():
    class ForgetsEveryTwelveSteps(Heavy):
        def buffer(self, p):
            state = self.state[p]
            state["n"] = state.get("n", 0) + 1
            if "v" not in state or state["n"] % 12 == 0:
                state["v"] = torch.zeros_like(p)
            return state["v"]

    assert failed_parts("momentum", ForgetsEveryTwelveSteps) == [GROUPS]
    assert "what only this one combines" in verdicts("momentum", ForgetsEveryTwelveSteps)[GROUPS]


@pytest.mark.parametrize("name, base", [("rmsprop", RMS), ("adam", Adaptive), ("adamw", DecoupledAdaptive)])
def test_eps_inside_the_square_root_loses_only_the_eps_part(name, base):
    cls = _variant(base, eps_inside=True)
    assert failed_parts(name, cls) == [EPS]
    message = verdicts(name, cls)[EPS]
    assert "tiny gradients" in message and "AFTER the square root" in message
    assert "skip parameters whose .grad is None" not in message.lower()
    exercise = exercises.exercise_named(CHECKS, TITLES[name])
    assert points(name, cls) == exercise.points - dict((p.name, p.points) for p in exercise.parts)[EPS]


def test_eps_hint_is_withheld_when_the_basic_step_already_differs():
    message = verdicts("rmsprop", _variant(RMS, start_at_g2=True))[EPS]
    assert "fix the basic step first" in message and "AFTER the square root" not in message


def test_hard_coded_eps_fails_only_the_eps_part():
    class HardCodedEps(RMS):
        def hyper(self, group, key):
            return 1e-8 if key == "eps" else group[key]

    assert failed_parts("rmsprop", HardCodedEps) == [EPS]
    assert "Only the group with eps=1e-4 differs" in verdicts("rmsprop", HardCodedEps)[EPS]


@pytest.mark.parametrize("mutation, fragment", [({"decoupled": True}, "L2 term added to the gradient")])
def test_adam_with_decay_on_the_wrong_side_loses_only_the_decay_part(mutation, fragment):
    cls = _variant(Adaptive, **mutation)
    assert failed_parts("adam", cls) == [DECAY]
    assert fragment in verdicts("adam", cls)[DECAY]


@pytest.mark.parametrize("mutation, fragment", [
    ({"decay_times_lr": False}, "multiply the decay by lr"),
    ({"decay_after_update": True}, "BEFORE the Adam update"),
    ({"decoupled": False}, "does not add weight_decay·θ to the gradient"),
])
def test_adamw_with_wrong_decay_loses_only_the_decay_part(mutation, fragment):
    cls = _variant(DecoupledAdaptive, **mutation)
    assert failed_parts("adamw", cls) == [DECAY]
    assert fragment in verdicts("adamw", cls)[DECAY]
    assert "every hyperparameter" not in verdicts("adamw", cls)[DECAY]


@pytest.mark.parametrize("name, base, also", [("sgd", PlainSGD, []), ("momentum", Heavy, []),
                                              ("rmsprop", RMS, [EPS, DECAY])])
def test_ignoring_group_hyperparameters_fails_the_parts_with_groups_only(name, base, also):
    class DefaultsOnly(base):
        def hyper(self, group, key):
            return self.defaults[key]

    assert failed_parts(name, DefaultsOnly) == sorted([GROUPS, CHANGES, *also])
    assert "Only the second group differs" in verdicts(name, DefaultsOnly)[GROUPS]


def test_hard_coded_betas_are_told_to_read_the_group():
    class HardCodedBetas(Adaptive):
        def hyper(self, group, key):
            return (0.9, 0.999) if key == "betas" else group[key]

    found = verdicts("adam", HardCodedBetas)
    assert found[BASIC] is None and "from group[...]" in found[STATE]


@pytest.mark.parametrize("name, base", [("momentum", Heavy), ("adam", Adaptive)])
def test_state_shared_by_shape_fails_the_state_part_and_says_self_state(name, base):
    class SharedByShape(base):
        def buffer(self, p):
            return self.__dict__.setdefault("shared", {}).setdefault(p.shape, torch.zeros_like(p))

        def moments(self, p, group):
            state = self.__dict__.setdefault("shared", {}).setdefault(
                p.shape, dict(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p)))
            state["step"] += 1
            return state["step"], state["m"], state["v"]

    found = verdicts(name, SharedByShape)
    assert found[BASIC] is None and "self.state[p]" in found[STATE]


def test_momentum_without_memory_keeps_the_first_step_and_the_contract():
    class Forgetful(Heavy):
        def buffer(self, p):
            return torch.zeros_like(p)

    assert failed_parts("momentum", Forgetful) == sorted([STATE, GROUPS, CHANGES])
    rejects("momentum", Forgetful, "0.375/1 points", "Passed: basic step, torch.optim contract")


def test_wrong_sign_is_called_uphill():
    class Uphill(PlainSGD):
        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=group["lr"])

    assert "uphill" in verdicts("sgd", Uphill)[BASIC]


def test_wrong_default_is_caught_by_the_default_scenario():
    class LowMomentum(Heavy):
        def __init__(self, params, lr, momentum=0.5):
            super().__init__(params, lr, momentum)

    found = verdicts("momentum", LowMomentum)
    assert found[BASIC] is None  # v₁ = g whatever the momentum
    assert "one parameter, default hyperparameters, six steps" in found[STATE]


def test_missing_argument_name_is_rejected():
    class NoAlpha(torch.optim.Optimizer):
        def __init__(self, params, lr, rho=0.99, eps=1e-8):
            super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    rejects("rmsprop", NoAlpha, "no parameter(s) alpha", "RMSProp(params, lr, alpha=0.99, eps=1e-08, weight_decay=0.0)")


def test_not_an_optimizer_class_is_rejected():
    rejects("sgd", lambda params, lr: None, "needs your optimizer class", "torch.optim.Optimizer")


def test_unfinished_exercise_says_not_implemented_in_every_part():
    class Unfinished(PlainSGD):
        def step(self, closure=None):
            raise NotImplementedError()

    assert all("not implemented yet" in message for message in verdicts("sgd", Unfinished).values())


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="use one of sgd, momentum"):
        check_optimizer("lion", PlainSGD)


# ---------------------------------------------------------------- delegation to torch.optim


class SubclassedAdam(torch.optim.Adam):
    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)


class WrappedSGD(torch.optim.Optimizer):
    """A plain Optimizer subclass that hides a torch.optim.SGD inside and forwards step()."""

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))
        self.inner = torch.optim.SGD(self.param_groups, lr=lr, momentum=momentum, foreach=False)

    def step(self, closure=None):
        return self.inner.step(closure)


class FunctionalRMSProp(RMS):
    """Calls torch's functional kernel instead of writing the update."""

    @torch.no_grad()
    def step(self, closure=None):
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
        CHECKS, TITLES[name]).parts}


# ---------------------------------------------------------------- untrusted evidence


@pytest.mark.parametrize("evidence", [None, 3, "passed", {"runs": "all good"}, {"runs": {}},
                                      {"runs": {"one parameter, default hyperparameters: the first step":
                                                {"values": [1], "rebound": 5, "grad_changed": ["x"]}}}])
def test_malformed_evidence_fails_every_part_without_crashing(evidence):
    exercise = exercises.exercise_named(CHECKS, "Adam")
    found = exercises.judge(exercise, evidence, seed=5)
    assert all(isinstance(message, str) for message in found.values())


def test_evidence_from_another_seed_is_rejected():
    exercise = exercises.exercise_named(CHECKS, "Momentum")
    stale = exercises.probe(exercise, (Heavy,), exercises.draw_inputs(exercise, 1))
    assert all(message is not None for message in exercises.judge(exercise, stale, seed=2).values())


class MomentumThatIsSGD(PlainSGD):
    """A first try at Momentum: its signature, plain gradient descent's step (right on step 1 only)."""

    def __init__(self, params, lr, momentum=0.9):
        torch.optim.Optimizer.__init__(self, params, dict(lr=lr, momentum=momentum))


def test_an_unrecognised_mistake_is_sent_to_torchs_algorithm_box_not_told_the_update():
    """The notebook asks students to read torch's convention (velocity, first step) from its documentation; the
    hint for a mistake the check does not name sends them there instead of writing the update out."""
    message = verdicts("momentum", MomentumThatIsSGD)[STATE]  # right on step 1, off from step 2
    assert message is not None and "algorithm box of torch.optim.SGD's documentation" in message
    assert not any(spelled in message for spelled in ("v₁ = g", "momentum·v + g", "θ − lr·v"))
