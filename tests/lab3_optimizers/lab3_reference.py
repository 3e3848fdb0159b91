"""Reference optimizers of the Lab 3 tests (they live in the tests only, never in labs_utils), and helpers.

``Heavy`` (SGD, momentum, Nesterov), ``RMS``, ``Adaptive`` (Adam, AdamW) and ``Accumulating`` (AdaGrad)
follow torch.optim; a wrong
variant is a subclass that flips one knob or overrides one hook, so every test shows exactly one mistake.
"""
from __future__ import annotations

import pytest
import torch

from labs_utils import exercises
from labs_utils.checks import check_optimizer
from labs_utils.lab3_optimizers.checks import CHECKS
from labs_utils.lab3_optimizers.optimizer_cases import SPECS


def run_closure(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class Heavy(torch.optim.Optimizer):
    """SGD with optional momentum and Nesterov, torch's conventions."""

    nesterov = False
    ema = False  # the slides' v = βv + (1 − β)g
    uses_momentum = True

    def __init__(self, params, lr, momentum=0.9):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    def hyper(self, group, key):
        return group[key]

    def gradient(self, p):
        return p.grad

    def buffer(self, p):
        state = self.state[p]
        if "v" not in state:
            state["v"] = torch.zeros_like(p)
        return state["v"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            lr, beta = self.hyper(group, "lr"), self.hyper(group, "momentum")
            for p in group["params"]:
                g = self.gradient(p)
                if g is None:
                    continue
                update = g
                if self.uses_momentum:
                    buf = self.buffer(p)
                    buf.mul_(beta).add_(g, alpha=(1 - beta) if self.ema else 1.0)
                    update = g + beta * buf if self.nesterov else buf
                p.add_(update, alpha=-lr)
        return loss


class PlainSGD(Heavy):
    uses_momentum = False

    def __init__(self, params, lr):
        torch.optim.Optimizer.__init__(self, params, dict(lr=lr, momentum=0.0))


class NesterovMomentum(Heavy):
    nesterov = True


class RMS(torch.optim.Optimizer):
    """RMSProp, torch's conventions: L2 in the gradient, s ← alpha·s + (1 − alpha)·g², θ ← θ − lr·g/(√s + eps)."""

    eps_inside = False
    swapped = False
    bias_correction = False
    start_at_g2 = False
    new_weight = None  # the weight of g² in the average: None for (1 − alpha); 1.0 for alpha·s + g²
    keep_weight = None  # the weight of the old s: None for alpha; 1.0 with new_weight=1.0 is AdaGrad's sum
    decay_after_average = False  # s averages the raw gradient, the step uses g + weight_decay·θ

    def __init__(self, params, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay))

    def hyper(self, group, key):
        return group[key]

    def gradient(self, p):
        return p.grad

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            alpha = self.hyper(group, "alpha")
            alpha = 1 - alpha if self.swapped else alpha
            lr, eps = self.hyper(group, "lr"), self.hyper(group, "eps")
            wd = self.hyper(group, "weight_decay")
            for p in group["params"]:
                raw = self.gradient(p)
                if raw is None:
                    continue
                g = raw.add(p, alpha=wd)
                averaged = raw if self.decay_after_average else g
                state = self.state[p]
                if not state:
                    state["s"] = g * g if self.start_at_g2 else torch.zeros_like(p)
                    state["t"] = 0
                state["t"] += 1
                s = state["s"]
                keep = alpha if self.keep_weight is None else self.keep_weight
                new = 1 - alpha if self.new_weight is None else self.new_weight
                s.mul_(keep).addcmul_(averaged, averaged, value=new)
                s_hat = s / (1 - alpha ** state["t"]) if self.bias_correction else s
                denom = (s_hat + eps).sqrt() if self.eps_inside else s_hat.sqrt().add_(eps)
                p.addcdiv_(g, denom, value=-lr)
        return loss


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

    def gradient(self, p):
        return p.grad

    def moments(self, p, group):
        state = self.state[p]
        if not state:
            state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        state["step"] += 1
        return state["step"], state["m"], state["v"]

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            lr, (b1, b2) = self.hyper(group, "lr"), self.hyper(group, "betas")
            eps, wd = self.hyper(group, "eps"), self.hyper(group, "weight_decay")
            for p in group["params"]:
                g = self.gradient(p)
                if g is None:
                    continue
                shrink = 1 - (lr * wd if self.decay_times_lr else wd)
                if self.decoupled and not self.decay_after_update:
                    p.mul_(shrink)
                elif not self.decoupled:
                    g = g.add(p, alpha=wd)
                t, m, v = self.moments(p, group)
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                m_hat = m / (1 - b1 ** t) if self.bias_correction else m
                v_hat = v / (1 - b2 ** t) if self.bias_correction else v
                denom = (v_hat + eps).sqrt() if self.eps_inside else v_hat.sqrt() + eps
                p.addcdiv_(m_hat, denom, value=-lr)
                if self.decoupled and self.decay_after_update:
                    p.mul_(shrink)
        return loss


class DecoupledAdaptive(Adaptive):
    decoupled = True
    default_weight_decay = 1e-2


class Accumulating(torch.optim.Optimizer):
    """AdaGrad, torch's conventions: L2 in the gradient, s ← s + g², θ ← θ − lr·g/(√s + eps)."""

    eps_inside = False
    forgets = False  # s ← g² every step (no memory: sign descent)
    averages = False  # s / t instead of the sum (an RMSProp with equal weights)
    start_at_g2 = False

    def __init__(self, params, lr, eps=1e-10, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def hyper(self, group, key):
        return group[key]

    @torch.no_grad()
    def step(self, closure=None):
        loss = run_closure(closure)
        for group in self.param_groups:
            lr, eps, wd = self.hyper(group, "lr"), self.hyper(group, "eps"), self.hyper(group, "weight_decay")
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=wd)
                state = self.state[p]
                if not state:
                    state.update(s=g * g if self.start_at_g2 else torch.zeros_like(p), t=0)
                state["t"] += 1
                s = state["s"]
                if self.forgets:
                    s.zero_()
                s.addcmul_(g, g)
                s_used = s / state["t"] if self.averages else s
                denom = (s_used + eps).sqrt() if self.eps_inside else s_used.sqrt().add_(eps)
                p.addcdiv_(g, denom, value=-lr)
        return loss


CORRECT = {"sgd": PlainSGD, "momentum": Heavy, "nesterov": NesterovMomentum, "rmsprop": RMS, "adam": Adaptive,
           "adamw": DecoupledAdaptive, "adagrad": Accumulating}
TITLES = {name: spec.title for name, spec in SPECS.items()}


# (name, class, seed) -> verdicts, within one test: a test that asks for the failed parts and then for their messages
# grades the answer once (tests/lab3_optimizers/conftest.py empties it before every test, so a fixture that changes
# the budget or a patched helper never sees another test's verdicts).
GRADED: dict = {}


def verdicts(name, cls, seed=12345):
    """Part name -> None or message, as the grader computes them (probe, JSON round trip, judge)."""
    key = (name, cls, seed)
    if key not in GRADED:
        GRADED[key] = exercises.grade_here(exercises.exercise_named(CHECKS, TITLES[name]), (cls,), seed)
    return dict(GRADED[key])


def failed_parts(name, cls, seed=12345):
    return sorted(part for part, message in verdicts(name, cls, seed).items() if message is not None)


def points(name, cls, seed=12345):
    exercise = exercises.exercise_named(CHECKS, TITLES[name])
    return exercises.points(exercise, verdicts(name, cls, seed))


def rejects(name, cls, *fragments):
    """The notebook's check fails, and its message holds every fragment."""
    with pytest.raises(AssertionError) as info:
        check_optimizer(name, cls)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    return message
