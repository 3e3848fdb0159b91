"""The optimizer exercises (SGD, Momentum, Nesterov, RMSProp, Adam, AdamW, AdaGrad): the student's class against
torch.optim.

The *probe* takes the student's class through every scenario of :mod:`.optimizer_cases` and records the
parameters after each step (plus what ``step()`` did to ``p.grad``, the parameters' storage and the groups);
the *judge* drives torch.optim through the same scenarios and compares, part by part. Each part is judged
on its own scenarios, so one mistake costs the parts it shows in, not the rest:

- "basic step": the first update of one parameter (for SGD, every update), default and non-default values;
- "eps outside the square root" (RMSProp, Adam, AdamW, AdaGrad): tiny gradients, eps read from the group;
- "state across steps": later updates, state per parameter (two parameters of the same shape);
- "parameter groups, late and missing gradients": per-group hyperparameters, ``.grad`` None before the first
  gradient, after the last one and in between (Adam's step count is per parameter);
- "hyperparameters changed between steps": a ``LambdaLR`` scheduler and ``param_groups`` edited mid-run;
- "weight decay" (RMSProp, Adam, AdamW, AdaGrad): where the decay goes;
- the torch.optim contract, judged against the student's own plain run (so a wrong formula does not hide it):
  ``step(closure)`` calls the closure and returns its loss, gradients written in place give the same steps as
  fresh ones, ``state_dict()`` loaded into a fresh optimizer continues the run, and no step changes ``p.grad``,
  moves a parameter to new storage or writes a hyperparameter. It counts only for an update that moves the
  parameters along their gradients.

Comparison in float32 within 1e-5 (+ 1e-5 relative): equivalent arithmetic differs by < 1e-6, real mistakes
by 1e-4 and more. Calling torch.optim's optimizers (subclassing, wrapping, functional kernels) is trip-wired.
"""
from __future__ import annotations

from typing import Any

import torch

from ..checking import describe, fail, require_parameters, with_hint
from ..exercises import Exercise, Part
from .budget import Clock, warm_up_optimizers
from .contract import judge_contract
from .hints import likely_cause
from .optimizer_cases import (
    BASIC,
    CONTRACT,
    SPECS,
    Setup,
    draw_setup,
    drive,
    reference_record,
    run_name,
    scenarios_of,
)
from .optimizer_evidence import ATOL, RTOL, error_message, error_of, off_by, values_at

PER_CALL = 5.0  # seconds one call of the student's code may take (a step takes milliseconds)
PROBE_SECONDS = 30.0  # seconds for all of them


# ----------------------------------------------------------------------------- probe (student's kernel)

def inputs_optimizer(name: str, *, seed: int) -> dict[str, Any]:
    """The probe's inputs (drawn in the judge's process): ``{"scenarios": {scenario name: its draws}}``, the
    parameters' initial values and the gradients' scales, signs and jitters (:func:`.optimizer_cases.draw_setup`)."""
    return {"scenarios": {scenario.name: draw_setup(scenario, seed) for scenario in scenarios_of(name)}}


def probe_optimizer(cls: Any, name: str, *, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run the student's optimizer through every scenario; evidence: ``{"runs": {run name: record}}``.

    A record is :func:`.optimizer_cases.drive`'s, without the groups' hyperparameters (the judge has torch's).
    The student's code sees only clones of the inputs (fresh parameters, new gradient tensors).
    """
    spec = SPECS[name]
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        fail(f"check_optimizer({name!r}, ...) needs your optimizer class, got {cls!r:.80}.",
             f"Pass the class itself, {spec.title}, defined as `class {spec.title}(torch.optim.Optimizer):` "
             "(or as a subclass of the lab's StudentOptimizer).")
    require_parameters(cls, ["params", "lr", *spec.defaults], spec.signature)
    warm_up_optimizers()
    clock = Clock(PROBE_SECONDS)

    def call(fn: Any, *args: Any, what: str, **kwargs: Any) -> Any:
        label = what if what.startswith("torch.") else f"{describe(cls)}.{what}"
        return clock.call(PER_CALL, fn, *args, what=label, **kwargs)

    runs = {}
    for scenario in scenarios_of(name):
        setup = Setup(name, scenario, inputs["scenarios"][scenario.name])

        def make(groups: list, setup: Setup = setup) -> Any:
            return clock.call(PER_CALL, cls, groups, lr=setup.lr, **setup.kwargs, what=setup.constructor_text(cls))

        for run in scenario.runs:
            record = drive(make, setup, run, call)
            record.pop("hyper")
            runs[run_name(scenario, run)] = record
    if all(isinstance(r.get("error"), str) and "not implemented yet" in r["error"] for r in runs.values()):
        fail(next(iter(runs.values()))["error"])
    return {"runs": runs}


# ----------------------------------------------------------------------------- judge (grader's process)

def judge_scenario(record: Any, setup: Setup, basic_failed: bool = False) -> str | None:
    """Why the student's run of a scenario differs from torch.optim's on the same inputs, or None when it matches."""
    spec, scenario = setup.spec, setup.scenario
    reference = reference_record(setup)
    if reference["error"] is not None:
        raise RuntimeError(f"torch.optim failed on the scenario '{scenario.name}': {reference['error']}")
    before = {n: t.clone() for n, t in setup.initial.items()}
    for step in range(scenario.steps):
        ref = reference["values"][step]
        mine = values_at(record, step, setup.names)
        if mine is None:
            error = error_of(record)
            return error_message(error, setup, step) if error else (
                f"In the scenario '{scenario.name}': the evidence has no parameters after step {step + 1}.")
        for param in setup.names:
            worst = off_by(mine[param], ref[param])
            if worst is None:
                continue
            if mine[param].shape != ref[param].shape or mine[param].dtype != ref[param].dtype:
                return with_hint(
                    f"After step {step + 1} of the scenario '{scenario.name}', parameter {param!r} has shape "
                    f"{tuple(mine[param].shape)} and dtype {mine[param].dtype}; it should keep shape "
                    f"{tuple(ref[param].shape)} and dtype {ref[param].dtype}.",
                    "update parameters in place (p.add_, p.mul_, p.addcdiv_) and keep state with zeros_like(p).")
            group = setup.group_of(param)
            hyper = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in reference["hyper"][step][group].items())
            cause = likely_cause(setup, step, param, before, mine, reference, basic_failed)
            return with_hint(
                f"{spec.title} differs from torch.optim.{type_name(setup)} in the scenario '{scenario.name}': after "
                f"step {step + 1}, parameter {param!r} {tuple(ref[param].shape)} of group {group + 1} ({hyper}) is "
                f"off by up to {worst:.3g} (tolerance {ATOL:g} + {RTOL:g}·|θ|).", f"Likely cause: {cause}")
        before = ref
    return None


def type_name(setup: Setup) -> str:
    return {"SGD": "SGD", "Momentum": "SGD", "Nesterov": "SGD", "RMSProp": "RMSprop",
            "AdaGrad": "Adagrad"}.get(setup.spec.title, setup.spec.title)


def judge_optimizer(evidence: Any, name: str, *, seed: int) -> dict[str, str | None]:
    """Verdict per part: each part's scenarios against torch.optim's runs, the contract against the student's own."""
    spec = SPECS[name]
    runs = evidence.get("runs") if isinstance(evidence, dict) else None
    if not isinstance(runs, dict):
        return {part: "the check received no measurements (malformed evidence)." for part in spec.points}
    verdicts: dict[str, str | None] = {part: None for part in spec.points}
    for scenario in scenarios_of(name):
        if scenario.part == CONTRACT or verdicts[scenario.part] is not None:
            continue
        setup = Setup.from_seed(name, scenario, seed)
        verdicts[scenario.part] = judge_scenario(runs.get(run_name(scenario, "")), setup,
                                                 basic_failed=verdicts[BASIC] is not None)
    verdicts[CONTRACT] = judge_contract(runs, name, seed)
    return verdicts


OPTIMIZERS = [
    Exercise(spec.title, needs=(spec.title,), parts=tuple(Part(part, points) for part, points in spec.points.items()),
             probe=probe_optimizer, judge=judge_optimizer, args=(key,), forbidden=("torch.optim",),
             inputs=inputs_optimizer)
    for key, spec in SPECS.items()
]
