"""Shared inputs of the optimizer checks: what each exercise must match, its scenarios, and the one driver.

The judge (grader's process) draws a scenario's random inputs from the seed (:func:`draw_setup`); the probe
(student's kernel) is sent those draws, never the seed, and both build the same :class:`Setup` from them.
:func:`drive` takes *any* optimizer factory through one scenario and records what happened after every
step: the probe drives the student's class, the judge drives torch.optim's on the same inputs, and the
two records are compared. A scenario adds the difficulties a torch.optim user relies on:

- parameters whose first gradient arrives late, ones that stop getting gradients or skip steps
  (``.grad is None``), two parameter groups with their own hyperparameters;
- a learning-rate scheduler (``LambdaLR``) and hyperparameters edited in ``param_groups`` between steps;
- for the contract part, the same run three more ways: gradients written in place
  (``copy_``, ``zero_grad(set_to_none=False)`` then accumulated), ``step(closure)``, and ``state_dict()``
  loaded mid-run into a fresh optimizer over rebuilt parameters.

Every record also says whether ``step()`` changed ``p.grad``, moved a parameter to new storage, or changed
a hyperparameter in its group.
"""
from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ..checking import describe

BASIC, EPS, STATE, GROUPS, CHANGES, DECAY, CONTRACT = (
    "basic step", "eps outside the square root", "state across steps",
    "parameter groups, late and missing gradients", "hyperparameters changed between steps", "weight decay",
    "torch.optim contract (state_dict, in-place gradients, closure)")


@dataclass(frozen=True)
class Spec:
    """One exercise: the student's signature, the torch reference and the update it must reproduce."""

    title: str
    reference: Callable[..., torch.optim.Optimizer]
    defaults: dict[str, Any]  # hyperparameters besides lr, with the exercise's default values
    unusual: dict[str, Any]  # non-default values (eps aside) that catch hard-coded or ignored hyperparameters
    lr: float
    large_lr: float
    update: str  # where hints send the student to read the update torch performs (or, for SGD, the update)
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


# Hints point at torch's documented algorithm, which the notebook asks the student to read, never spell it out
_ADAM_UPDATE = ("the algorithm box of torch.optim.{name}'s documentation: which moments are bias-corrected, whose "
                "step count t is, where eps goes and where weight_decay enters")
# points are multiples of 1/8, so every sum of them is exact in floating point
_HEAVY = {BASIC: 0.25, STATE: 0.25, GROUPS: 0.25, CHANGES: 0.125, CONTRACT: 0.125}
SPECS = {
    "sgd": Spec("SGD", _torch("SGD"), {}, {}, 0.05, 0.3, "θ ← θ − lr·g",
                {BASIC: 0.5, GROUPS: 0.25, CHANGES: 0.125, CONTRACT: 0.125}),
    "momentum": Spec("Momentum", _torch("SGD"), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                     "the algorithm box of torch.optim.SGD's documentation (with momentum, dampening 0): what "
                     "multiplies g in the velocity, what the velocity is after the first step, and where lr goes",
                     dict(_HEAVY)),
    "nesterov": Spec("Nesterov", _torch("SGD", nesterov=True), {"momentum": 0.9}, {"momentum": 0.7}, 0.02, 0.2,
                     "the algorithm box of torch.optim.SGD's documentation with nesterov=True (lr outside the "
                     "velocity, the velocity starting at 0; the first step is (1 + momentum)·lr·g)", dict(_HEAVY)),
    "rmsprop": Spec("RMSProp", _torch("RMSprop"), {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0}, {"alpha": 0.9},
                    1e-3, 0.05, "the algorithm box of torch.optim.RMSprop's documentation (centered=False, "
                    "momentum=0): where the running average of g² starts, which weight alpha is, where eps goes "
                    "and where weight_decay enters",
                    {BASIC: 0.25, EPS: 0.25, STATE: 0.25, GROUPS: 0.25, CHANGES: 0.125, DECAY: 0.25, CONTRACT: 0.125},
                    decay={"weight_decay": 0.05}),
    "adam": Spec("Adam", _torch("Adam"), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
                 {"betas": (0.8, 0.95)}, 1e-2, 0.1, _ADAM_UPDATE.format(name="Adam"),
                 {BASIC: 0.25, EPS: 0.25, STATE: 0.25, GROUPS: 0.25, CHANGES: 0.25, DECAY: 0.5, CONTRACT: 0.25},
                 decay={"weight_decay": 0.05}),
    "adamw": Spec("AdamW", _torch("AdamW"), {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
                  {"betas": (0.8, 0.95)}, 1e-2, 0.1, _ADAM_UPDATE.format(name="AdamW"),
                  {BASIC: 0.25, EPS: 0.25, STATE: 0.25, GROUPS: 0.25, CHANGES: 0.125, DECAY: 0.25, CONTRACT: 0.125},
                  decay={}),
    "adagrad": Spec("AdaGrad", _torch("Adagrad"), {"eps": 1e-10, "weight_decay": 0.0}, {}, 0.05, 0.5,
                    "s ← s + g² (s starts at 0 and is never forgotten), then θ ← θ − lr·g / (√s + eps); with "
                    "weight_decay, g ← g + weight_decay·θ first",
                    {BASIC: 0.25, EPS: 0.25, STATE: 0.25, GROUPS: 0.25, CHANGES: 0.125, DECAY: 0.25, CONTRACT: 0.125},
                    decay={"weight_decay": 0.05}),
}
OPTIMIZER_NAMES = tuple(SPECS)
UNUSUAL_DECAY = 0.1  # weight_decay of "unusual" groups in the decay scenarios
UNUSUAL_EPS = 1e-4  # eps of the "eps" group: large next to tiny gradients, so a hard-coded eps shows
FACTORS = (1.0, 1.0, 1.0, 0.3, 0.3, 2.0, 0.5, 0.1)  # the scheduler's lr factor at each step
EDIT_STEP = 3  # the 'edits' scenario changes param_groups before this step (0-based)
RELOAD_STEP = 4  # the contract's save/load run rebuilds the optimizer before this step (0-based)

# name -> shape of every parameter the scenarios use
SHAPES = {"weight": (5, 4), "bias": (4,), "twin_a": (3, 3), "twin_b": (3, 3), "embedding": (6, 2), "gain": (1,),
          "frozen": (4,), "late": (3, 2), "stops": (2, 3), "gappy": (4, 2)}
GAPS = (2, 3, 6)  # the steps (0-based) where 'gappy' has no gradient


def has_gradient(name: str, step: int) -> bool:
    """Whether parameter ``name`` gets a gradient at ``step`` (0-based); otherwise its .grad is None."""
    return {"frozen": False, "late": step >= 3, "stops": step < 4, "gappy": step not in GAPS}.get(name, True)


def pattern(name: str) -> str:
    """How the gradients of ``name`` come, in words (for messages)."""
    return {"frozen": "never gets a gradient", "late": "gets its first gradient at step 4",
            "stops": "gets gradients at steps 1-4 only", "gappy": "has no gradient at steps 3, 4 and 7",
            }.get(name, "gets a gradient at every step")


@dataclass(frozen=True)
class Scenario:
    """Parameters in groups (a group whose first entry is 'unusual' or 'eps' overrides hyperparameters)."""

    name: str
    part: str
    kind: str  # what the scenario adds, for hints: basic, unusual, twins, tiny, eps_group, groups, patterns, ...
    groups: tuple[tuple[str, ...], ...]
    steps: int = 6
    scales: tuple[float, float] = (0.5, 2.0)  # gradient magnitudes drawn log-uniformly in this range
    constructor: str = "defaults"  # "defaults": cls(params, lr) | "unusual": every hyperparameter non-default
    decay: bool = False
    runs: tuple[str, ...] = field(default=("",))  # "" plain; contract: "closure", "in place", "reload"


def scenarios_of(name: str) -> tuple[Scenario, ...]:
    """The scenarios an optimizer is run through, in the order the judge reports them."""
    spec = SPECS[name]
    one = (("weight",),)
    if STATE in spec.points:
        found = [Scenario("one parameter, default hyperparameters: the first step", BASIC, "basic", one, steps=1),
                 Scenario("non-default hyperparameters and a large learning rate: the first step", BASIC, "unusual",
                          one, steps=1, constructor="unusual"),
                 Scenario("one parameter, default hyperparameters, six steps", STATE, "basic", one),
                 Scenario("non-default hyperparameters and a large learning rate, six steps", STATE, "unusual", one,
                          constructor="unusual"),
                 Scenario("two parameters of the same shape", STATE, "twins", (("weight", "twin_a", "twin_b"),),
                          steps=8)]
    else:
        found = [Scenario("one parameter, default learning rate", BASIC, "basic", one, steps=5),
                 Scenario("a large learning rate", BASIC, "unusual", one, steps=5, constructor="unusual")]
    if EPS in spec.points:
        found += [Scenario("tiny gradients (1e-7 to 1e-3)", EPS, "tiny", one, steps=5, scales=(1e-7, 1e-3)),
                  Scenario(f"tiny gradients and eps={UNUSUAL_EPS:g} in a second group", EPS, "eps_group",
                           (("weight",), ("eps", "embedding")), steps=5, scales=(1e-7, 1e-3))]
    found += [
        Scenario("two parameter groups with different hyperparameters", GROUPS, "groups",
                 (("weight",), ("unusual", "embedding"))),
        Scenario("parameters whose gradient arrives late, stops, or skips steps", GROUPS, "patterns",
                 (("weight", "late", "stops", "gappy", "frozen"),), steps=10),
        Scenario("everything together: two groups, ten parameters, 30 steps", GROUPS, "together",
                 (("weight", "bias", "twin_a", "twin_b", "late"), ("unusual", "embedding", "gain", "frozen", "stops",
                                                                   "gappy")), steps=30, scales=(0.3, 5.0)),
        Scenario("a learning-rate scheduler (LambdaLR) changes lr after steps 3, 5, 6 and 7", CHANGES, "scheduler",
                 (("weight", "bias"),), steps=8),
        Scenario("hyperparameters edited in param_groups before step 4", CHANGES, "edits",
                 (("weight", "bias"), ("unusual", "embedding")), steps=7),
    ]
    if spec.decay is not None:
        found += [
            Scenario("weight decay, default hyperparameters", DECAY, "decay", one, decay=True),
            Scenario("weight decay with a large learning rate, non-default hyperparameters and a parameter whose "
                     ".grad is None", DECAY, "decay", (("weight", "frozen"),), constructor="unusual", decay=True),
            Scenario("weight decay in two parameter groups", DECAY, "decay", (("weight",), ("unusual", "embedding")),
                     decay=True)]
    found.append(Scenario("one group of three parameters, eight steps", CONTRACT, "contract",
                          (("weight", "bias", "twin_a"),), steps=8, runs=("", "closure", "in place", "reload")))
    return tuple(found)


def run_name(scenario: Scenario, run: str) -> str:
    return scenario.name if not run else f"{scenario.name} [{run}]"


def draw_setup(scenario: Scenario, seed: int) -> dict[str, Any]:
    """What a scenario draws from the seed (the probe's inputs for it): the parameters' initial values, the scale
    of their gradients and, per step, a random sign and a jitter in [-0.25, 0.25] for every element."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(scenario.name.encode())) % 2**62)
    names = [n for group in scenario.groups for n in group if n not in ("unusual", "eps")]
    initial = {n: torch.randn(SHAPES[n], generator=generator) for n in names}
    low, high = (math.log10(s) for s in scenario.scales)
    grad_scale = {n: 10 ** (low + (high - low) * torch.rand(SHAPES[n], generator=generator)) for n in names}
    noise = [{n: [torch.randint(0, 2, SHAPES[n], generator=generator) * 2.0 - 1.0,
                  0.5 * torch.rand(SHAPES[n], generator=generator) - 0.25] for n in names}
             for _ in range(scenario.steps)]
    return {"initial": initial, "grad_scale": grad_scale, "noise": noise}


class Setup:
    """A scenario's draws (the probe's inputs; :meth:`from_seed` in the judge), constructor, groups and edits."""

    def __init__(self, name: str, scenario: Scenario, draws: dict[str, Any]):
        self.name, self.spec, self.scenario = name, SPECS[name], scenario
        spec = self.spec
        self.names = [n for group in scenario.groups for n in group if n not in ("unusual", "eps")]
        self.initial, self.grad_scale = draws["initial"], draws["grad_scale"]
        self.noise = [{n: tuple(pair) for n, pair in step.items()} for step in draws["noise"]]
        self.kwargs = dict(spec.unusual) if scenario.constructor == "unusual" else {}
        if spec.decay is not None:  # weight decay only in the decay scenarios
            self.kwargs.update((spec.decay if scenario.constructor == "defaults" else
                                {"weight_decay": UNUSUAL_DECAY}) if scenario.decay else {"weight_decay": 0.0})
        self.lr = spec.large_lr if scenario.constructor == "unusual" else spec.lr
        self.overrides: list[dict[str, Any]] = []
        self.members: list[list[str]] = []
        for group in scenario.groups:
            override: dict[str, Any] = {}
            if group[0] == "unusual":
                override = {"lr": spec.large_lr, **spec.unusual}
                if spec.decay is not None:
                    override["weight_decay"] = UNUSUAL_DECAY if scenario.decay else 0.0
            elif group[0] == "eps":
                override = {"eps": UNUSUAL_EPS}
            self.overrides.append(override)
            self.members.append([n for n in group if n not in ("unusual", "eps")])

    @classmethod
    def from_seed(cls, name: str, scenario: Scenario, seed: int) -> Setup:
        return cls(name, scenario, draw_setup(scenario, seed))

    def constructor_kwargs(self) -> dict[str, Any]:
        """What the reference is built with: every hyperparameter (the student's class gets ``self.kwargs``)."""
        return {**self.spec.defaults, **self.kwargs}

    def fresh_parameters(self) -> dict[str, torch.Tensor]:
        return {n: t.clone().requires_grad_(True) for n, t in self.initial.items()}

    def groups(self, params: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        return [{"params": [params[n] for n in members], **override}
                for override, members in zip(self.overrides, self.members)]

    def gradient(self, name: str, theta: torch.Tensor, step: int) -> torch.Tensor | None:
        """|g| within 0.5-1.5 x its scale; depends on θ, so a wrong step changes later gradients."""
        if not has_gradient(name, step):
            return None
        sign, jitter = self.noise[step][name]
        return self.grad_scale[name] * sign * (1.0 + jitter + 0.25 * torch.tanh(theta.detach()))

    def edit(self, groups: list[dict[str, Any]]) -> None:
        """The 'edits' scenario: group 1 gets 0.4 x its lr and the unusual values, group 2 twice its lr."""
        groups[0].update({"lr": groups[0]["lr"] * 0.4, **self.spec.unusual})
        groups[1]["lr"] = groups[1]["lr"] * 2.0

    def group_of(self, param: str) -> int:
        return next(index for index, members in enumerate(self.members) if param in members)

    def constructor_text(self, cls: Any) -> str:
        return f"{describe(cls)}(params, lr={self.lr:g}" + "".join(f", {k}={v}" for k, v in self.kwargs.items()) + ")"


# ----------------------------------------------------------------------------- the driver

Call = Callable[..., Any]  # call(fn, *args, what=..., **kwargs): how the driver calls the optimizer's methods


def _direct(fn: Callable, *args: Any, what: str = "", **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _hyper(setup: Setup, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's hyperparameters of the exercise (lr and the constructor's), as plain values."""
    keys = ("lr", *setup.spec.defaults)
    return [{k: group[k] for k in keys if k in group} for group in groups]


def _changed(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    return [f"group {i + 1} {key}" for i, (old, new) in enumerate(zip(before, after))
            for key in old if repr(new.get(key)) != repr(old[key])]


def _deliver(setup: Setup, optimizer: Any, params: dict[str, torch.Tensor], step: int, mode: str,
             call: Call) -> dict[str, torch.Tensor]:
    """Write this step's gradients into ``params`` (mode: fresh tensors, copy_ into .grad, or zero + accumulate)."""
    grads = {n: setup.gradient(n, p, step) for n, p in params.items()}
    if mode == "accumulate":
        call(optimizer.zero_grad, set_to_none=False, what="zero_grad(set_to_none=False)")
    for n, p in params.items():
        g = grads[n]
        if g is None or mode == "fresh" or p.grad is None:
            p.grad = None if g is None else g.clone()
        elif mode == "copy":
            p.grad.copy_(g)
        else:  # two micro-batches, each half the gradient (exact in floating point)
            p.grad.add_(g * 0.5)
            p.grad.add_(g * 0.5)
    return {n: g for n, g in grads.items() if g is not None}


def _closure(setup: Setup, params: dict[str, torch.Tensor], step: int, given: dict[str, torch.Tensor],
             calls: list[int]) -> tuple[Callable[[], torch.Tensor], torch.Tensor]:
    """A closure that writes this step's gradients (into ``given`` too) and returns a loss; calls are counted."""
    loss = torch.tensor(step + 0.25)

    def closure() -> torch.Tensor:
        calls.append(step)
        given.clear()
        given.update(_deliver(setup, None, params, step, "fresh", _direct))
        return loss

    return closure, loss


def _mode(run: str, step: int) -> str:
    if run != "in place" or step == 0:
        return "fresh"
    return "copy" if step % 2 else "accumulate"


def drive(make: Callable[[list], Any], setup: Setup, run: str = "", call: Call = _direct) -> dict[str, Any]:
    """Take the optimizer ``make(groups)`` builds through the scenario; record what happened after every step.

    Record: ``values`` ({param: tensor} per step), ``hyper`` (each group's hyperparameters before each step),
    ``grad_changed`` (max |change| of p.grad by step(), inf if removed), ``rebound`` (parameters step() moved to
    new storage), ``hyper_changed`` (hyperparameters step() changed), ``aliases`` (parameters whose state
    holds p.grad itself), ``closure`` (calls and what step(closure) returned), ``error`` (message or None).
    """
    record: dict[str, Any] = {"values": [], "hyper": [], "grad_changed": [], "rebound": [], "hyper_changed": [],
                              "aliases": [], "closure": [], "error": None}
    params = setup.fresh_parameters()
    try:
        optimizer = make(setup.groups(params))
        scheduler = None
        if setup.scenario.kind == "scheduler":
            from torch.optim.lr_scheduler import LambdaLR

            scheduler = call(LambdaLR, optimizer, lambda t: FACTORS[min(t, len(FACTORS) - 1)],
                             what="torch.optim.lr_scheduler.LambdaLR(your optimizer, ...)")
        for step in range(setup.scenario.steps):
            if setup.scenario.kind == "edits" and step == EDIT_STEP:
                setup.edit(optimizer.param_groups)
            if run == "reload" and step == RELOAD_STEP:
                saved = copy.deepcopy(call(optimizer.state_dict, what="state_dict()"))
                params = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
                optimizer = make(setup.groups(params))
                call(optimizer.load_state_dict, saved, what="load_state_dict(saved) of a fresh optimizer")
            hyper_before = _hyper(setup, optimizer.param_groups)
            record["hyper"].append(hyper_before)
            storage = {n: p.data_ptr() for n, p in params.items()}
            if run == "closure":
                given: dict[str, torch.Tensor] = {}
                calls: list[int] = []
                closure, loss = _closure(setup, params, step, given, calls)
                for p in params.values():
                    p.grad = None
                returned = call(optimizer.step, closure, what="step(closure)")
                record["closure"].append({"calls": len(calls), "returned": "same" if returned is loss else (
                    f"{type(returned).__name__} {returned!r:.40}")})
            else:
                given = _deliver(setup, optimizer, params, step, _mode(run, step), call)
                given = {n: g.clone() for n, g in given.items()}
                call(optimizer.step, what="step()")
            record["grad_changed"].append(max(
                [math.inf if params[n].grad is None or params[n].grad.shape != g.shape else
                 (params[n].grad.detach() - g).abs().max().item() for n, g in given.items()], default=0.0))
            record["rebound"].append([n for n, p in params.items() if p.data_ptr() != storage[n]])
            record["hyper_changed"].append(_changed(hyper_before, _hyper(setup, optimizer.param_groups)))
            record["aliases"].append(_aliases(optimizer, params))
            record["values"].append({n: p.detach().clone() for n, p in params.items()})
            if scheduler is not None:
                scheduler.step()
    except AssertionError as exc:
        record["error"] = str(exc)
    except Exception as exc:  # the check's own bookkeeping tripped over something the optimizer did
        record["error"] = (f"the check could not run your optimizer ({type(exc).__name__}: {exc}).\n"
                           "Hint: keep torch.optim.Optimizer's attributes as the base class makes them "
                           "(param_groups: a list of dicts, state: a dict per parameter).")
    return record


def _aliases(optimizer: Any, params: dict[str, torch.Tensor]) -> list[str]:
    """Parameters whose state (``optimizer.state[p]``) holds a tensor that *is* their ``p.grad``."""
    found = []
    state = getattr(optimizer, "state", {})
    by_id = {id(k): v for k, v in state.items() if isinstance(k, torch.Tensor)} if isinstance(state, dict) else {}
    for n, p in params.items():
        entry = by_id.get(id(p))  # not state.get(p): an int key equal to id(p) would compare with the tensor
        if p.grad is None or not isinstance(entry, dict):
            continue
        if any(isinstance(v, torch.Tensor) and v.numel() and v.data_ptr() == p.grad.data_ptr()
               for v in entry.values()):
            found.append(n)
    return found


def reference_record(setup: Setup, run: str = "") -> dict[str, Any]:
    """torch.optim's record of the scenario (what the student's record is compared with)."""
    spec = setup.spec
    return drive(lambda groups: spec.reference(groups, lr=setup.lr, **setup.constructor_kwargs()), setup, run)
