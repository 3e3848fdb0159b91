"""Checks of Lab 3: the student's optimizers against torch.optim, step for step.

``check_optimizer(name, cls)`` runs the student's class and its torch.optim counterpart side by side
on the same parameters and gradients, through a ladder of scenarios that each add one difficulty
(tiny gradients, non-default hyperparameters, twin parameters, a parameter without gradient, two
parameter groups, everything together). The first scenario that fails names the step, the
parameter and the likely mistake. ``step()`` is called without a closure, so torch's signature
``step(self, closure=None)`` and a plain ``step(self)`` both pass. Comparison in float32 with a
tolerance of 1e-5 (plus 1e-5 relative): equivalent arithmetic (mul_/add_ instead of lerp_) differs
by < 1e-6, real mistakes by 1e-4 and more.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ._common import Exercise, call_student, describe, fail, passed, require_parameters

__all__ = ["check_optimizer", "OPTIMIZER_NAMES"]  # GRADING stays per module (see checks/__init__)

ATOL = 1e-5
RTOL = 1e-5


@dataclass(frozen=True)
class _Spec:
    """One exercise: the student's signature, the torch reference and the update it must reproduce."""

    title: str
    reference: Callable[..., torch.optim.Optimizer]
    defaults: dict  # hyperparameters besides lr, with the exercise's default values
    unusual: dict  # non-default values used to catch hard-coded or ignored hyperparameters
    lr: float
    large_lr: float
    update: str  # the update torch performs, for hints

    @property
    def signature(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{self.title}(params, lr{', ' + args if args else ''})"


def _sgd(nesterov: bool = False):
    def make(groups, lr, **kw):
        return torch.optim.SGD(groups, lr=lr, foreach=False, nesterov=nesterov, **kw)
    return make


_SPECS = {
    "sgd": _Spec("SGD", _sgd(), {}, {}, 0.05, 0.3,
                 "θ ← θ − lr·g"),
    "momentum": _Spec("Momentum", _sgd(), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                      "v ← momentum·v + g (v starts at 0, so v₁ = g), then θ ← θ − lr·v"),
    "nesterov": _Spec("Nesterov", _sgd(nesterov=True), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                      "v ← momentum·v + g (v₁ = g), then θ ← θ − lr·(g + momentum·v)"),
    "rmsprop": _Spec("RMSProp", lambda groups, lr, **kw: torch.optim.RMSprop(groups, lr=lr, foreach=False, **kw),
                     {"alpha": 0.99, "eps": 1e-8}, {"alpha": 0.9, "eps": 1e-4}, 1e-3, 0.05,
                     "s ← alpha·s + (1 − alpha)·g², then θ ← θ − lr·g / (√s + eps)"),
    "adam": _Spec("Adam", lambda groups, lr, **kw: torch.optim.Adam(groups, lr=lr, foreach=False, **kw),
                  {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                  {"betas": (0.8, 0.95), "eps": 1e-4, "weight_decay": 0.1}, 1e-2, 0.1,
                  "g ← g + weight_decay·θ (L2); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; "
                  "m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) with t = 1, 2, ... counted per parameter; "
                  "θ ← θ − lr·m̂/(√v̂ + eps)"),
    "adamw": _Spec("AdamW", lambda groups, lr, **kw: torch.optim.AdamW(groups, lr=lr, foreach=False, **kw),
                   {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
                   {"betas": (0.8, 0.95), "eps": 1e-4, "weight_decay": 0.1}, 1e-2, 0.1,
                   "θ ← θ·(1 − lr·weight_decay) first (decoupled: the gradient is not changed), then Adam's "
                   "update θ ← θ − lr·m̂/(√v̂ + eps) with bias-corrected m̂, v̂"),
}
OPTIMIZER_NAMES = tuple(_SPECS)

# name -> shape of every parameter the scenarios use
_SHAPES = {"weight": (5, 4), "bias": (4,), "twin_a": (3, 3), "twin_b": (3, 3), "embedding": (6, 2),
           "gain": (1,), "frozen": (4,)}


@dataclass(frozen=True)
class _Scenario:
    """Parameters in groups ('unusual' groups override every hyperparameter), gradient scales, steps."""

    name: str
    groups: tuple  # tuples of parameter names; a group written ("unusual", names...) gets unusual values
    scales: tuple = (0.5, 2.0)  # gradient magnitudes drawn log-uniformly in this range, per element
    steps: int = 10
    constructor: str = "defaults"  # "defaults": cls(params, lr) | "unusual": every hyperparameter non-default
    likely: str = ""  # what a failure here most likely means
    no_grad: tuple = ("frozen",)


_SCENARIOS = (
    _Scenario("one parameter, default hyperparameters", (("weight",),), likely="basic"),
    _Scenario("tiny gradients (1e-7 to 1e-3)", (("weight",),), scales=(1e-7, 1e-3),
              likely="Tiny gradients expose where eps goes: torch adds it AFTER the square root of the running "
                     "average of g², …/(√s + eps) (the slides write √(s + eps), which acts like a much larger "
                     "eps, √eps)."),
    _Scenario("non-default hyperparameters and a large learning rate", (("weight",),), constructor="unusual",
              likely="unusual"),
    _Scenario("two parameters of the same shape", (("weight", "twin_a", "twin_b"),),
              likely="Each parameter needs its own state: keep buffers in self.state[p] (created on the first "
                     "step as torch.zeros_like(p)), never in one attribute or a dict keyed by shape or index."),
    _Scenario("a parameter whose .grad is None (with weight decay, if any)", (("weight", "frozen"),),
              constructor="unusual",
              likely="Skip parameters whose .grad is None (`if p.grad is None: continue`) before doing anything "
                     "to them, weight decay included: torch leaves them untouched."),
    _Scenario("two parameter groups with different hyperparameters", (("weight",), ("unusual", "embedding")),
              likely="Read every hyperparameter from the group inside `for group in self.param_groups:` "
                     "(group['lr'], ...), not from self.defaults or the constructor's arguments: each group "
                     "may override them."),
    _Scenario("everything together: two groups, seven parameters, gradients from 1e-6 to 10, 30 steps",
              (("weight", "bias", "twin_a", "twin_b"), ("unusual", "embedding", "gain", "frozen")),
              scales=(1e-6, 10.0), steps=30,
              likely="The simpler scenarios passed, so look at what only this one combines: state kept per "
                     "parameter across many steps and groups, and hyperparameters read per group."),
)


def _describe_values(lr: float, values: dict) -> str:
    return ", ".join([f"lr={lr:g}"] + [f"{k}={v}" for k, v in values.items()])


class _Probe:
    """Parameters, gradients and optimizers of one scenario, for the student and for torch."""

    def __init__(self, scenario: _Scenario, spec: _Spec, cls: type, seed: int):
        self.scenario, self.spec = scenario, spec
        generator = torch.Generator().manual_seed(seed)
        names = [n for group in scenario.groups for n in group if n != "unusual"]
        self.names = names
        self.initial = {n: torch.randn(_SHAPES[n], generator=generator) for n in names}
        low, high = (math.log10(s) for s in scenario.scales)
        self.grad_scale = {n: 10 ** (low + (high - low) * torch.rand(_SHAPES[n], generator=generator))
                           for n in names}
        # per step: a random sign and a jitter in [-0.25, 0.25] for every element
        self.noise = [{n: (torch.randint(0, 2, _SHAPES[n], generator=generator) * 2.0 - 1.0,
                           0.5 * torch.rand(_SHAPES[n], generator=generator) - 0.25) for n in names}
                      for _ in range(scenario.steps)]
        self.student = {n: t.clone().requires_grad_(True) for n, t in self.initial.items()}
        self.torch = {n: t.clone().requires_grad_(True) for n, t in self.initial.items()}
        base = spec.unusual if scenario.constructor == "unusual" else {}
        self.lr = spec.large_lr if scenario.constructor == "unusual" else spec.lr
        self.group_values = []  # per group: (lr, other hyperparameters in force, parameter names)
        student_groups, torch_groups = [], []
        for group in scenario.groups:
            override = {"lr": spec.large_lr, **spec.unusual} if group[0] == "unusual" else {}
            members = [n for n in group if n != "unusual"]
            student_groups.append({"params": [self.student[n] for n in members], **override})
            torch_groups.append({"params": [self.torch[n] for n in members], **override})
            values = {**spec.defaults, **base, **{k: v for k, v in override.items() if k != "lr"}}
            self.group_values.append((override.get("lr", self.lr), values, members))
        self.student_opt = call_student(cls, student_groups, lr=self.lr, **base,
                                        what=f"{describe(cls)}(params, lr={self.lr:g}"
                                             + "".join(f", {k}={v}" for k, v in base.items()) + ")")
        self.torch_opt = spec.reference(torch_groups, lr=self.lr, **{**spec.defaults, **base})

    def set_gradients(self, step: int) -> None:
        for params in (self.student, self.torch):
            for n, p in params.items():
                if n in self.scenario.no_grad:
                    p.grad = None
                else:  # |g| within 0.5-1.5 x its scale; depends on θ, so a wrong step changes later gradients
                    sign, jitter = self.noise[step][n]
                    p.grad = self.grad_scale[n] * sign * (1.0 + jitter + 0.25 * torch.tanh(p.detach()))

    def group_of(self, name: str) -> tuple:
        for index, (lr, values, members) in enumerate(self.group_values):
            if name in members:
                return index, lr, values
        raise KeyError(name)


def _ratio_diagnosis(name: str, values: dict, ratio: float) -> str | None:
    """Recognise a constant factor between the student's first step and torch's."""
    known = [(-1.0, "Your step goes the wrong way (uphill): subtract lr·(update) from the parameter.")]
    if name in ("momentum", "nesterov"):
        beta = values["momentum"]
        known.append((1 - beta, "Your step is (1 − momentum) times torch's: that is the slides' EMA form "
                                "v ← βv + (1−β)g. torch.optim.SGD accumulates v ← momentum·v + g (the two are "
                                "equivalent after rescaling lr by 1/(1−β), but the exercise matches torch)."))
    if name == "nesterov":
        known.append((1 / (1 + values["momentum"]),
                      "Your first step is lr·g, plain momentum's: Nesterov steps along the look-ahead "
                      "g + momentum·v, which is (1 + momentum)·g on the first step."))
    if name == "rmsprop":
        alpha = values["alpha"]
        known.append((math.sqrt((1 - alpha) / alpha),
                      "alpha and 1 − alpha look swapped: the running average keeps alpha of the old value, "
                      "s ← alpha·s + (1 − alpha)·g²."))
    if name in ("adam", "adamw"):
        beta1, beta2 = values["betas"]
        known += [((1 - beta1) / math.sqrt(1 - beta2),
                   "No bias correction: divide m by (1 − β₁ᵗ) and v by (1 − β₂ᵗ) (t = 1 on the first step)."),
                  (1 - beta1, "m is not bias-corrected: use m̂ = m / (1 − β₁ᵗ)."),
                  (1 / math.sqrt(1 - beta2), "v is not bias-corrected: use v̂ = v / (1 − β₂ᵗ).")]
    for value, message in known:
        if abs(ratio - value) <= 0.02 * abs(value):
            return message
    return None


def _decay_diagnosis(name: str, lr: float, values: dict, before: torch.Tensor, difference: torch.Tensor
                     ) -> str | None:
    """Recognise a difference proportional to the parameter itself: a weight-decay term that is off."""
    if name not in ("adam", "adamw") or before.numel() < 3 or difference.abs().max() == 0:
        return None
    x, y = before.flatten().double(), difference.flatten().double()
    c = float((x @ y) / (x @ x))
    if float(((y - c * x) ** 2).sum() / (y ** 2).sum()) > 1e-3:
        return None
    wd = values["weight_decay"]
    detail = f"Your result minus torch's is {c:+.3g}·θ, proportional to the parameter: the weight decay is off."
    if name == "adamw":
        if wd and abs(c + wd * (1 - lr)) <= 0.05 * wd:
            return detail + (" It looks like θ·(1 − weight_decay): multiply the decay by lr, "
                             "θ ← θ·(1 − lr·weight_decay).")
        return detail + (" AdamW decays the weights directly, θ ← θ·(1 − lr·weight_decay), before the Adam update, "
                         "and does not add weight_decay·θ to the gradient.")
    return detail + (" Adam's weight_decay is an L2 term added to the gradient, g ← g + weight_decay·θ, before "
                     "the moments (that is what torch.optim.Adam does; AdamW is the decoupled one).")


def _weight_decay_hint(name: str) -> str:
    if name == "adamw":
        return (" Weight decay: torch multiplies θ by (1 − lr·weight_decay) BEFORE the Adam update (decaying "
                "after it also shrinks the update), and never adds weight_decay·θ to the gradient.")
    if name == "adam":
        return " Weight decay in Adam is L2: add weight_decay·θ to the gradient before updating m and v."
    return ""


def _likely_cause(name: str, probe: _Probe, step: int, param: str, before: dict, student: dict,
                  reference: dict) -> str:
    spec, scenario = probe.spec, probe.scenario
    _, lr, values = probe.group_of(param)
    moved = (student[param] - before[param]).abs().max().item()
    if param in scenario.no_grad:
        return ("This parameter has no gradient (.grad is None) and must not change, but your step changed it. "
                "Skip it: `if p.grad is None: continue`, before any weight decay.")
    if moved == 0.0:
        return ("Your step() did not change this parameter. Update it in place under torch.no_grad(), e.g. "
                "p.add_(update, alpha=-lr); `p = p - ...` only rebinds a local name.")
    diagnosis = _decay_diagnosis(name, lr, values, before[param], student[param] - reference[param])
    if diagnosis is None and step == 1:
        torch_move = reference[param] - before[param]
        mask = torch_move.abs() > 1e-3 * torch_move.abs().max()
        ratios = ((student[param] - before[param])[mask] / torch_move[mask]).double()
        if ratios.numel() and float(ratios.max() - ratios.min()) <= 0.01 * abs(float(ratios.median())):
            diagnosis = _ratio_diagnosis(name, values, float(ratios.median()))
    if diagnosis is not None:
        return diagnosis
    if scenario.likely == "basic":
        return f"Compare your step with torch's update: {spec.update}."
    if scenario.likely == "unusual":
        hyper = ", ".join(["lr", *spec.defaults]) or "lr"
        return (f"With non-default values ({_describe_values(lr, values)}) your result differs: use every "
                f"hyperparameter ({hyper}) from group[...] instead of a hard-coded number."
                + _weight_decay_hint(name))
    return scenario.likely


def _compare(name: str, probe: _Probe, step: int, before: dict) -> None:
    cls_name = describe(type(probe.student_opt))
    for param in probe.names:
        mine, ref = probe.student[param].detach(), probe.torch[param].detach()
        if mine.shape != ref.shape or mine.dtype != ref.dtype:
            fail(f"{cls_name}: after step {step}, parameter {param!r} has shape {tuple(mine.shape)} and dtype "
                 f"{mine.dtype}; it should keep shape {tuple(ref.shape)} and dtype {ref.dtype}.",
                 "Update parameters in place (p.add_, p.mul_, p.addcdiv_) and keep state with zeros_like(p).")
        excess = (mine - ref).abs() - (ATOL + RTOL * ref.abs())
        if not torch.isfinite(mine).all() or excess.max() > 0:
            index, lr, values = probe.group_of(param)
            worst = (mine - ref).abs().max().item()
            cause = _likely_cause(name, probe, step, param, before,
                                  {n: t.detach() for n, t in probe.student.items()},
                                  {n: t.detach() for n, t in probe.torch.items()})
            fail(f"{cls_name} differs from torch.optim.{type(probe.torch_opt).__name__} in the scenario "
                 f"'{probe.scenario.name}': after step {step}, parameter {param!r} {tuple(ref.shape)} of group "
                 f"{index + 1} ({_describe_values(lr, values)}) is off by up to {worst:.3g} "
                 f"(tolerance {ATOL:g} + {RTOL:g}·|θ|).", f"Likely cause: {cause}")


def check_optimizer(name: str, cls: type) -> None:
    """Check an optimizer class of Lab 3 against its torch.optim counterpart, step for step.

    ``name`` is one of "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw".
    """
    if name not in _SPECS:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZER_NAMES)}")
    spec = _SPECS[name]
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        fail(f"check_optimizer({name!r}, ...) needs your optimizer class, got {cls!r:.80}.",
             f"Pass the class itself, {spec.title}, defined as `class {spec.title}(torch.optim.Optimizer):`.")
    require_parameters(cls, ["params", "lr", *spec.defaults], spec.signature)
    steps = 0
    for seed, scenario in enumerate(_SCENARIOS):
        probe = _Probe(scenario, spec, cls, seed)
        for step in range(1, scenario.steps + 1):
            probe.set_gradients(step - 1)
            before = {n: t.detach().clone() for n, t in probe.torch.items()}
            call_student(probe.student_opt.step, what=f"{describe(cls)}.step()")
            probe.torch_opt.step()
            _compare(name, probe, step, before)
        steps += scenario.steps
    passed(f"check_optimizer({name!r}, {describe(cls)})",
           f"matches torch.optim.{type(probe.torch_opt).__name__} step for step "
           f"({len(_SCENARIOS)} scenarios, {steps} steps, within {ATOL:g})")


GRADING = [
    Exercise("SGD", 1.0, ("SGD",), "check_optimizer('sgd', SGD)"),
    Exercise("Momentum", 1.0, ("Momentum",), "check_optimizer('momentum', Momentum)"),
    Exercise("Nesterov", 1.0, ("Nesterov",), "check_optimizer('nesterov', Nesterov)"),
    Exercise("RMSProp", 1.5, ("RMSProp",), "check_optimizer('rmsprop', RMSProp)"),
    Exercise("Adam", 2.0, ("Adam",), "check_optimizer('adam', Adam)"),
    Exercise("AdamW", 1.5, ("AdamW",), "check_optimizer('adamw', AdamW)"),
]
