"""Checks of the optimizer exercises: the student's optimizers against torch.optim, step for step.

``check_optimizer(name, cls)`` runs the student's class on scenarios drawn from a seed (parameters,
gradients, hyperparameters), each adding one difficulty: tiny gradients, non-default hyperparameters,
twin parameters, a parameter without gradient, two parameter groups, weight decay. The *probe*
records the parameters after every step (and whether ``step()`` changed ``p.grad``); the *judge*
regenerates the scenarios, runs torch.optim itself and compares, part by part:

- "basic step": the first update (and, for SGD, every update) of one parameter;
- "state across steps": the updates after the first, and per-parameter state (twin parameters);
- "parameter groups and parameters without .grad": per-group hyperparameters, ``.grad is None``;
- "weight decay" (Adam, AdamW): where the decay goes, and that ``p.grad`` is left untouched.

``step()`` is called without a closure, so ``step(self, closure=None)`` and ``step(self)`` both pass.
Comparison in float32 within 1e-5 (+ 1e-5 relative): equivalent arithmetic differs by < 1e-6, real
mistakes by 1e-4 and more. Calling torch.optim's optimizers (subclassing, wrapping, functional
kernels) is trip-wired: the check compares against them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..checking import call_student, describe, fail, require_parameters
from ..exercises import Exercise, LabInfo, Part, exercise_named, run_exercise
from .hints import likely_cause, weight_decay_hint
from .rate_check import CURVES, judge_fit_rate, probe_fit_rate

# GRADING and LAB stay in the wing (labs_utils.checks is a façade)
__all__ = ["check_optimizer", "check_fit_rate", "OPTIMIZER_NAMES"]

LAB = LabInfo(3, "optimizers", "lab3_optimizers")

ATOL = 1e-5
RTOL = 1e-5
BASIC, STATE, GROUPS, DECAY = ("basic step", "state across steps", "parameter groups and parameters without .grad",
                               "weight decay")


@dataclass(frozen=True)
class _Spec:
    """One exercise: the student's signature, the torch reference and the update it must reproduce."""

    title: str
    reference: Callable[..., torch.optim.Optimizer]
    defaults: dict[str, Any]  # hyperparameters besides lr, with the exercise's default values
    unusual: dict[str, Any]  # non-default values used to catch hard-coded or ignored hyperparameters
    lr: float
    large_lr: float
    update: str  # the update torch performs, for hints
    points: dict[str, float]  # part name -> points
    decay: dict[str, Any] | None = None  # weight_decay of the decay scenarios' constructor (None: no decay)

    @property
    def signature(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{self.title}(params, lr{', ' + args if args else ''})"


def _torch(kind: str, **fixed: Any) -> Callable[..., torch.optim.Optimizer]:
    def make(groups: list, lr: float, **kw: Any) -> torch.optim.Optimizer:
        return getattr(torch.optim, kind)(groups, lr=lr, foreach=False, **fixed, **kw)
    return make


_ADAM_UPDATE = ("m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ) with t = 1, 2, ... "
                "counted per parameter; θ ← θ − lr·m̂/(√v̂ + eps)")
_SPECS = {
    "sgd": _Spec("SGD", _torch("SGD"), {}, {}, 0.05, 0.3, "θ ← θ − lr·g", {BASIC: 0.5, GROUPS: 0.5}),
    "momentum": _Spec("Momentum", _torch("SGD"), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                      "v ← momentum·v + g (v starts at 0, so v₁ = g), then θ ← θ − lr·v",
                      {BASIC: 0.25, STATE: 0.5, GROUPS: 0.25}),
    "nesterov": _Spec("Nesterov", _torch("SGD", nesterov=True), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                      "v ← momentum·v + g (v₁ = g), then θ ← θ − lr·(g + momentum·v)",
                      {BASIC: 0.25, STATE: 0.5, GROUPS: 0.25}),
    "rmsprop": _Spec("RMSProp", _torch("RMSprop"), {"alpha": 0.99, "eps": 1e-8}, {"alpha": 0.9, "eps": 1e-4},
                     1e-3, 0.05, "s ← alpha·s + (1 − alpha)·g², then θ ← θ − lr·g / (√s + eps)",
                     {BASIC: 0.5, STATE: 0.5, GROUPS: 0.5}),
    "adam": _Spec("Adam", _torch("Adam"), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                  {"betas": (0.8, 0.95), "eps": 1e-4}, 1e-2, 0.1, _ADAM_UPDATE,
                  {BASIC: 0.5, STATE: 0.5, GROUPS: 0.5, DECAY: 0.5}, decay={"weight_decay": 0.05}),
    "adamw": _Spec("AdamW", _torch("AdamW"), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
                   {"betas": (0.8, 0.95), "eps": 1e-4}, 1e-2, 0.1, _ADAM_UPDATE,
                   {BASIC: 0.25, STATE: 0.5, GROUPS: 0.25, DECAY: 0.5}, decay={}),
}
OPTIMIZER_NAMES = tuple(_SPECS)
_UNUSUAL_DECAY = 0.1  # weight_decay of "unusual" groups in the decay scenarios

# name -> shape of every parameter the scenarios use
_SHAPES = {"weight": (5, 4), "bias": (4,), "twin_a": (3, 3), "twin_b": (3, 3), "embedding": (6, 2),
           "gain": (1,), "frozen": (4,)}


@dataclass(frozen=True)
class _Scenario:
    """Parameters in groups ('unusual' groups override every hyperparameter), gradient scales, steps."""

    name: str
    part: str  # BASIC (first step BASIC, later steps STATE), STATE, GROUPS or DECAY
    groups: tuple[tuple[str, ...], ...]  # a group written ("unusual", names...) gets unusual values
    scales: tuple[float, float] = (0.5, 2.0)  # gradient magnitudes drawn log-uniformly in this range
    steps: int = 5
    constructor: str = "defaults"  # "defaults": cls(params, lr) | "unusual": every hyperparameter non-default
    likely: str = ""  # what a failure here most likely means
    no_grad: tuple[str, ...] = ("frozen",)


_SCENARIOS = (
    _Scenario("one parameter, default hyperparameters", BASIC, (("weight",),), likely="basic"),
    _Scenario("tiny gradients (1e-7 to 1e-3)", BASIC, (("weight",),), scales=(1e-7, 1e-3),
              likely="Tiny gradients expose where eps goes: torch adds it AFTER the square root of the running "
                     "average of g², …/(√s + eps) (the slides write √(s + eps), which acts like a much larger "
                     "eps, √eps)."),
    _Scenario("non-default hyperparameters and a large learning rate", BASIC, (("weight",),),
              constructor="unusual", likely="unusual"),
    _Scenario("two parameters of the same shape", STATE, (("weight", "twin_a", "twin_b"),), steps=8,
              likely="Each parameter needs its own state: keep buffers in self.state[p] (created on the first "
                     "step as torch.zeros_like(p)), never in one attribute or a dict keyed by shape or index."),
    _Scenario("a parameter whose .grad is None", GROUPS, (("weight", "frozen"),), constructor="unusual",
              likely="Skip parameters whose .grad is None (`if p.grad is None: continue`) before doing anything "
                     "to them: torch leaves them untouched."),
    _Scenario("two parameter groups with different hyperparameters", GROUPS, (("weight",), ("unusual", "embedding")),
              likely="Read every hyperparameter from the group inside `for group in self.param_groups:` "
                     "(group['lr'], ...), not from self.defaults or the constructor's arguments: each group "
                     "may override them."),
    _Scenario("everything together: two groups, seven parameters, gradients from 1e-6 to 10, 30 steps", GROUPS,
              (("weight", "bias", "twin_a", "twin_b"), ("unusual", "embedding", "gain", "frozen")),
              scales=(1e-6, 10.0), steps=30,
              likely="The simpler scenarios passed, so look at what only this one combines: state kept per "
                     "parameter across many steps and groups, and hyperparameters read per group."),
    _Scenario("weight decay, default hyperparameters", DECAY, (("weight",),), likely="decay"),
    _Scenario("weight decay with a large learning rate, non-default hyperparameters and a parameter whose .grad "
              "is None", DECAY, (("weight", "frozen"),), constructor="unusual", likely="decay"),
    _Scenario("weight decay in two parameter groups", DECAY, (("weight",), ("unusual", "embedding")),
              likely="decay"),
)


def scenarios_of(name: str) -> tuple[_Scenario, ...]:
    """The scenarios an optimizer is run through (the weight-decay ones only where it has weight decay)."""
    return tuple(s for s in _SCENARIOS if s.part != DECAY or _SPECS[name].decay is not None)


class Setup:
    """Everything one scenario draws from the seed: parameters, gradients, constructor and groups."""

    def __init__(self, name: str, scenario: _Scenario, seed: int):
        self.spec, self.scenario = _SPECS[name], scenario
        spec = self.spec
        generator = torch.Generator().manual_seed(seed)
        self.names = [n for group in scenario.groups for n in group if n != "unusual"]
        self.initial = {n: torch.randn(_SHAPES[n], generator=generator) for n in self.names}
        low, high = (math.log10(s) for s in scenario.scales)
        self.grad_scale = {n: 10 ** (low + (high - low) * torch.rand(_SHAPES[n], generator=generator))
                           for n in self.names}
        # per step: a random sign and a jitter in [-0.25, 0.25] for every element
        self.noise = [{n: (torch.randint(0, 2, _SHAPES[n], generator=generator) * 2.0 - 1.0,
                           0.5 * torch.rand(_SHAPES[n], generator=generator) - 0.25) for n in self.names}
                      for _ in range(scenario.steps)]
        decaying = scenario.part == DECAY
        self.kwargs = dict(spec.unusual) if scenario.constructor == "unusual" else {}
        if spec.decay is not None:  # weight decay only in the decay scenarios
            self.kwargs.update((spec.decay if scenario.constructor == "defaults" else
                                {"weight_decay": _UNUSUAL_DECAY}) if decaying else {"weight_decay": 0.0})
        self.lr = spec.large_lr if scenario.constructor == "unusual" else spec.lr
        self.overrides: list[dict[str, Any]] = []
        self.group_values: list[tuple[float, dict[str, Any], list[str]]] = []  # (lr, hyperparameters, names)
        for group in scenario.groups:
            override = {"lr": spec.large_lr, **spec.unusual} if group[0] == "unusual" else {}
            if override and spec.decay is not None:
                override["weight_decay"] = _UNUSUAL_DECAY if decaying else 0.0
            members = [n for n in group if n != "unusual"]
            self.overrides.append(override)
            values = {**spec.defaults, **self.kwargs, **{k: v for k, v in override.items() if k != "lr"}}
            self.group_values.append((override.get("lr", self.lr), values, members))

    def fresh_parameters(self) -> dict[str, torch.Tensor]:
        return {n: t.clone().requires_grad_(True) for n, t in self.initial.items()}

    def groups(self, params: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [{"params": [params[n] for n in members], **override}
                for override, (_, _, members) in zip(self.overrides, self.group_values)]

    def set_gradients(self, params: dict[str, torch.Tensor], step: int) -> None:
        """|g| within 0.5-1.5 x its scale; depends on θ, so a wrong step changes later gradients."""
        for n, p in params.items():
            if n in self.scenario.no_grad:
                p.grad = None
            else:
                sign, jitter = self.noise[step][n]
                p.grad = self.grad_scale[n] * sign * (1.0 + jitter + 0.25 * torch.tanh(p.detach()))

    def group_of(self, param: str) -> tuple[int, float, dict[str, Any]]:
        for index, (lr, values, members) in enumerate(self.group_values):
            if param in members:
                return index, lr, values
        raise KeyError(param)

    def constructor_text(self, cls: Any) -> str:
        return f"{describe(cls)}(params, lr={self.lr:g}" + "".join(f", {k}={v}" for k, v in self.kwargs.items()) + ")"


# ----------------------------------------------------------------------------- probe (student's kernel)

def probe_optimizer(cls: Any, name: str, *, seed: int) -> dict[str, Any]:
    """Run the student's optimizer through every scenario; evidence: parameters after each step.

    Evidence: ``{"scenarios": {scenario name: {"values": [{param: tensor}] per step, "grad_changed":
    [max |change of p.grad| per step, inf if removed], "error": message or None}}}``.
    """
    spec = _SPECS[name]
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        fail(f"check_optimizer({name!r}, ...) needs your optimizer class, got {cls!r:.80}.",
             f"Pass the class itself, {spec.title}, defined as `class {spec.title}(torch.optim.Optimizer):` "
             "(or as a subclass of the lab's StudentOptimizer).")
    require_parameters(cls, ["params", "lr", *spec.defaults], spec.signature)
    records = {}
    for index, scenario in enumerate(scenarios_of(name)):
        setup = Setup(name, scenario, seed + 1000 * index)
        params = setup.fresh_parameters()
        record: dict[str, Any] = {"values": [], "grad_changed": [], "error": None}
        try:
            optimizer = call_student(cls, setup.groups(params), lr=setup.lr, **setup.kwargs,
                                     what=setup.constructor_text(cls))
            for step in range(scenario.steps):
                setup.set_gradients(params, step)
                grads = {n: p.grad.clone() for n, p in params.items() if p.grad is not None}
                call_student(optimizer.step, what=f"{describe(cls)}.step()")
                changed = 0.0
                for n, before in grads.items():
                    now = params[n].grad
                    changed = max(changed, math.inf if now is None or now.shape != before.shape
                                  else (now.detach() - before).abs().max().item())
                record["grad_changed"].append(changed)
                record["values"].append({n: p.detach().clone() for n, p in params.items()})
        except AssertionError as exc:
            record["error"] = str(exc)
        records[scenario.name] = record
    return {"scenarios": records}


# ----------------------------------------------------------------------------- judge (grader's process)

def _student_values(record: Any, step: int, setup: Setup) -> dict[str, torch.Tensor] | str:
    """The student's parameters after ``step`` (0-based) from the evidence, or why they are unusable."""
    values = record.get("values") if isinstance(record, dict) else None
    if not isinstance(values, list) or step >= len(values) or not isinstance(values[step], dict):
        return "missing"
    found = values[step]
    out = {}
    for n in setup.names:
        tensor = found.get(n)
        if not isinstance(tensor, torch.Tensor):
            return f"the evidence has no values for parameter {n!r}"
        out[n] = tensor
    return out


def _error_message(error: str, setup: Setup, step: int) -> str:
    head = error.split("\nHint:")[0]
    if setup.scenario.no_grad and any(n in setup.names for n in setup.scenario.no_grad) and "None" in error:
        return (f"In the scenario '{setup.scenario.name}', at step {step}: {head}\n"
                "Hint: skip parameters whose .grad is None: `if p.grad is None: continue` at the top of the loop "
                "over group['params'] (torch leaves them untouched).")
    return f"In the scenario '{setup.scenario.name}', at step {step}: {error}"


def judge_scenario(evidence_record: Any, name: str, setup: Setup) -> tuple[int, str] | None:
    """(first failing step, message) for one scenario, or None when it matches torch.optim."""
    spec, scenario = setup.spec, setup.scenario
    params = setup.fresh_parameters()
    reference = spec.reference(setup.groups(params), lr=setup.lr, **{**spec.defaults, **setup.kwargs})
    error = evidence_record.get("error") if isinstance(evidence_record, dict) else "no evidence for this scenario"
    grad_changed = evidence_record.get("grad_changed") if isinstance(evidence_record, dict) else None
    for step in range(scenario.steps):
        setup.set_gradients(params, step)
        before = {n: t.detach().clone() for n, t in params.items()}
        reference.step()
        student = _student_values(evidence_record, step, setup)
        if isinstance(student, str):
            if isinstance(error, str):
                return step + 1, _error_message(error, setup, step + 1)
            return step + 1, f"In the scenario '{scenario.name}': {student} after step {step + 1}."
        for param in setup.names:
            mine, ref = student[param], params[param].detach()
            if mine.shape != ref.shape or mine.dtype != ref.dtype:
                return step + 1, (
                    f"After step {step + 1} of the scenario '{scenario.name}', parameter {param!r} has shape "
                    f"{tuple(mine.shape)} and dtype {mine.dtype}; it should keep shape {tuple(ref.shape)} and dtype "
                    f"{ref.dtype}.\nHint: update parameters in place (p.add_, p.mul_, p.addcdiv_) and keep state "
                    "with zeros_like(p).")
            excess = (mine - ref).abs() - (ATOL + RTOL * ref.abs())
            if not torch.isfinite(mine).all() or excess.max() > 0:
                index, lr, values = setup.group_of(param)
                worst = (mine - ref).abs().max().item()
                cause = likely_cause(name, spec, setup, step + 1, param, before, student,
                                     {n: t.detach() for n, t in params.items()})
                hyper = ", ".join([f"lr={lr:g}"] + [f"{k}={v}" for k, v in values.items()])
                return step + 1, (
                    f"{spec.title} differs from torch.optim.{type(reference).__name__} in the scenario "
                    f"'{scenario.name}': after step {step + 1}, parameter {param!r} {tuple(ref.shape)} of group "
                    f"{index + 1} ({hyper}) is off by up to {worst:.3g} (tolerance {ATOL:g} + {RTOL:g}·|θ|).\n"
                    f"Hint: Likely cause: {cause}")
        changed = grad_changed[step] if isinstance(grad_changed, list) and step < len(grad_changed) else None
        if not isinstance(changed, (int, float)) or isinstance(changed, bool) or not changed == 0:
            where = weight_decay_hint(name) if scenario.part == DECAY else ""
            return step + 1, (
                f"Your parameters match torch's, but in the scenario '{scenario.name}' your step() changed "
                f"p.grad at step {step + 1} (by up to {changed}). torch.optim leaves .grad untouched: gradient "
                "clipping, logging or a second optimizer reading .grad after step() would see your modified "
                "gradient.\nHint: compute a new tensor, e.g. g = p.grad.add(p, alpha=weight_decay) (no trailing "
                "underscore), instead of changing p.grad in place (p.grad.add_(...), p.grad += ...)." + where)
    return None


def judge_optimizer(evidence: Any, name: str, *, seed: int) -> dict[str, str | None]:
    """Verdict per part: regenerate each scenario from ``seed``, run torch.optim, compare with the evidence."""
    spec = _SPECS[name]
    records = evidence.get("scenarios") if isinstance(evidence, dict) else None
    if not isinstance(records, dict):
        return {part: "the check received no measurements (malformed evidence)." for part in spec.points}
    verdicts: dict[str, str | None] = {part: None for part in spec.points}
    for index, scenario in enumerate(scenarios_of(name)):
        setup = Setup(name, scenario, seed + 1000 * index)
        outcome = judge_scenario(records.get(scenario.name), name, setup)
        if outcome is None:
            continue
        step, message = outcome
        part = scenario.part
        if part == BASIC and step > 1 and STATE in spec.points:
            part = STATE
        elif part == STATE and STATE not in spec.points:
            part = BASIC
        if verdicts[part] is None:
            verdicts[part] = message
        if part == BASIC and STATE in spec.points and verdicts[STATE] is None:
            verdicts[STATE] = (message if "not implemented yet" in message else
                               "cannot be checked while the first step differs from torch's (see 'basic step').")
    return verdicts


GRADING = [
    Exercise(spec.title, needs=(spec.title,), parts=tuple(Part(part, points) for part, points in spec.points.items()),
             probe=probe_optimizer, judge=judge_optimizer, args=(key,), forbidden=("torch.optim",))
    for key, spec in _SPECS.items()
] + [
    Exercise("Convergence rate", needs=("fit_rate",), parts=tuple(Part(curve, 0.5) for curve in CURVES),
             probe=probe_fit_rate, judge=judge_fit_rate),
]


def check_optimizer(name: str, cls: type) -> None:
    """Check an optimizer class against its torch.optim counterpart, step for step, part by part.

    ``name`` is one of "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw".
    """
    if name not in _SPECS:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZER_NAMES)}")
    run_exercise(exercise_named(GRADING, _SPECS[name].title), (cls,))


def check_fit_rate(fit_rate: Callable) -> None:
    """Check ``fit_rate(gaps) -> r`` on loss curves whose error contraction ``r`` is known, part by part."""
    run_exercise(exercise_named(GRADING, "Convergence rate"), (fit_rate,))
