"""The contract part of the optimizer exercises: what a torch.optim user relies on besides the numbers.

Judged against the student's *own* plain run of the contract scenario (same inputs, fresh gradient tensors,
no closure, no save/load), so it measures the plumbing whatever the formula: the run with ``step(closure)``,
the run whose gradients are written into the same ``.grad`` tensors (``copy_``; ``zero_grad(set_to_none=False)``
then two accumulated halves) and the run saved with ``state_dict()`` and loaded into a fresh optimizer over
rebuilt parameters must all repeat it. Every run of every scenario must also leave ``p.grad`` and the groups'
hyperparameters as they were and update parameters in their own storage. The part counts only for an update
that moves the parameters along their gradients (for the adaptive methods, with a first step whose size does not
follow |g|): a step that does nothing, or plain SGD handed in for AdaGrad, repeats itself perfectly.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..checking import with_hint
from .hints import weight_decay_hint
from .optimizer_cases import CONTRACT, RELOAD_STEP, SPECS, Setup, run_name, scenarios_of
from .optimizer_evidence import error_message, error_of, first_difference, series, values_at

_ALIGNED = 0.9  # share of the moved elements whose move has one sign relative to the gradient
_ADAPTIVE = ("rmsprop", "adam", "adamw", "adagrad")  # first step lr·g/|g| (times a constant): one size for all


def _follows_gradient_size(first: dict[str, torch.Tensor], setup: Setup) -> bool:
    """Whether the first step's size grows with |g| (gradients span a factor 4 and more here), as in plain SGD."""
    moves = torch.cat([(first[n] - setup.initial[n]).abs().flatten() for n in setup.names]).double()
    grads = torch.cat([setup.gradient(n, setup.initial[n], 0).abs().flatten() for n in setup.names]).double()
    if float(moves.min()) <= 0:
        return False
    return float(moves.max() / moves.min()) > 1.5 and float(torch.corrcoef(torch.stack([moves, grads]))[0, 1]) > 0.9


def _plain_values(plain: Any, setup: Setup) -> list[dict[str, torch.Tensor]] | None:
    found = [values_at(plain, step, setup.names) for step in range(setup.scenario.steps)]
    return [v for v in found if v is not None] if all(v is not None for v in found) else None


def _gate(plain: Any, setup: Setup) -> str | None:
    """Why the plain run cannot be the yardstick: it failed, did not move, or does not follow the gradients."""
    values = _plain_values(plain, setup)
    if values is None:
        error = error_of(plain)
        step = len(plain.get("values", [])) if isinstance(plain, dict) and isinstance(plain.get("values"), list) else 0
        return error_message(error, setup, step) if error else "the check received no measurements for this part."
    moves, signs = [], []
    for n in setup.names:
        move = (values[0][n] - setup.initial[n]).flatten()
        gradient = setup.gradient(n, setup.initial[n], 0).flatten()
        moves.append(move)
        signs.append(torch.sign(move) * torch.sign(gradient))
    moved = torch.cat(moves).abs() > 0
    if not moved.any():
        return with_hint(f"In the scenario '{setup.scenario.name}', your step() did not move any parameter, so "
                         "nothing about it can be checked here.",
                         "update every parameter that has a gradient in place under torch.no_grad(), e.g. "
                         "p.add_(update, alpha=-group['lr']).")
    if setup.name in _ADAPTIVE and _follows_gradient_size(values[0], setup):
        return with_hint(f"In the scenario '{setup.scenario.name}', the size of your first step follows the size of "
                         f"each gradient, as plain gradient descent's does, so the rest of the contract of "
                         f"{setup.spec.title} cannot be checked on it.",
                         f"{setup.spec.title} divides each gradient by its own running scale, so its first step has "
                         f"the same size for every element whatever |g| is (see {setup.spec.update}).")
    sign = torch.cat(signs)[moved]
    if max(float((sign < 0).double().mean()), float((sign > 0).double().mean())) < _ALIGNED:
        return with_hint(f"In the scenario '{setup.scenario.name}', your first step moved the parameters without "
                         "following their gradients (the moves' signs do not match the gradients'), so the rest "
                         "of the contract cannot be checked on it.",
                         f"the first step of {setup.spec.title} moves each element against its gradient (see "
                         f"{setup.spec.update}).")
    return None


def _flags(runs: dict, name: str) -> list[tuple[str, str]]:
    """What a step did besides updating: changed p.grad, moved a parameter's storage, wrote a hyperparameter."""
    found: dict[str, str] = {}
    for scenario in scenarios_of(name):
        for run in scenario.runs:
            record = runs.get(run_name(scenario, run))
            where = f"in the scenario '{run_name(scenario, run)}'"
            for step in range(scenario.steps):
                rebound, changed = series(record, "rebound", step), series(record, "grad_changed", step)
                written, aliases = series(record, "hyper_changed", step), series(record, "aliases", step)
                if isinstance(rebound, list) and rebound and "storage" not in found:
                    found["storage"] = with_hint(
                        f"Your step() {where} moved parameter {str(rebound[0])!r} to new storage at step {step + 1} "
                        "(p.data = ... or p.set_(...)). torch.optim updates parameters in place: a model's layers, "
                        "another optimizer or a compiled graph that hold the tensor keep the old values.",
                        "write into the parameter under torch.no_grad(): p.add_(update, alpha=-lr), p.mul_(...), "
                        "p.addcdiv_(...) or p.copy_(new_value).")
                if isinstance(changed, (int, float)) and not isinstance(changed, bool) and changed != 0 \
                        and "grad" not in found:
                    extra = (" Your state holds p.grad itself (no copy), so updating the state changed the gradient."
                             if isinstance(aliases, list) and aliases else "")
                    found["grad"] = with_hint(
                        f"Your step() changed p.grad {where} at step {step + 1} (by up to {changed:.3g}).{extra} "
                        "torch.optim leaves .grad untouched: gradient clipping, logging or a second optimizer reading "
                        ".grad after step() would see your modified gradient.",
                        "compute a new tensor, e.g. g = p.grad.add(p, alpha=weight_decay) (no trailing "
                        "underscore), instead of changing p.grad in place (p.grad.add_(...), p.grad += ...); copy "
                        "what you keep (p.grad.clone())." + (weight_decay_hint(name) if scenario.decay else ""))
                if isinstance(written, list) and written and "hyper" not in found:
                    found["hyper"] = with_hint(
                        f"Your step() changed {', '.join(str(w) for w in written[:3])} {where} at step {step + 1}: "
                        "step() reads the groups' hyperparameters, it never writes them (a scheduler or the user "
                        "owns group['lr']).", "keep what you compute in local variables or in self.state[p].")
    return [(label, found[label]) for label in ("storage", "grad", "hyper") if label in found]


def _compare(record: Any, plain: list[dict[str, torch.Tensor]], setup: Setup, what: str, hint: str,
             label: str) -> tuple[str, str] | None:
    error = error_of(record)
    difference = first_difference(record, plain, setup.names)
    if difference is None:
        return None
    step, param, worst = difference
    if param is None:
        return label, (error_message(error, setup, step) if error else
                       f"the check received no values for {what}, step {step + 1}.")
    size = "a wrong shape" if math.isinf(worst) else f"up to {worst:.3g}"
    return label, with_hint(f"{what}, your parameter {param!r} after step {step + 1} differs from your own plain run "
                            f"(fresh gradient tensors, no closure, no save/load) by {size}.", hint)


def _closure(record: Any, plain: list, setup: Setup) -> list[tuple[str, str]]:
    error = error_of(record) or ""
    if "step(closure) raised TypeError" in error and "argument" in error:
        return [("closure", with_hint(f"{error.split(chr(10))[0]}",
                                      "accept a closure as torch.optim's optimizers do, `def step(self, "
                                      "closure=None):`, call it first (`loss = closure()` under "
                                      "torch.enable_grad()) and return its loss."))]
    found = []
    for step in range(setup.scenario.steps):
        entry = series(record, "closure", step)
        if not isinstance(entry, dict):
            break
        if entry.get("calls") == 0:
            found.append(("closure", with_hint(
                f"step(closure) never called the closure (step {step + 1}), so it updated with no gradients.",
                "call it first, under torch.enable_grad(), as torch.optim does: `loss = closure()` computes the "
                "loss and this step's gradients; then update and `return loss`.")))
            return found
        if entry.get("returned") != "same":
            found.append(("closure", with_hint(
                f"step(closure) returned {str(entry.get('returned'))[:60]} at step {step + 1}, not the closure's loss.",
                "return the value the closure returned, `loss = closure()` ... `return loss` (None without a "
                "closure), as torch.optim does.")))
            return found
    compared = _compare(record, plain, setup, "With step(closure) (the closure sets the gradients)",
                        "call the closure before the update: its gradients are the ones this step must use.",
                        "closure")
    return [compared] if compared else []


def judge_contract(runs: dict, name: str, seed: int) -> str | None:
    """The contract part's verdict: the first problem found, and the names of the others."""
    scenario = next(s for s in scenarios_of(name) if s.part == CONTRACT)
    setup = Setup.from_seed(name, scenario, seed)
    plain_record = runs.get(run_name(scenario, ""))
    gate = _gate(plain_record, setup)
    if gate is not None:
        return gate
    plain = _plain_values(plain_record, setup) or []
    problems = _flags(runs, name)
    problems += _closure(runs.get(run_name(scenario, "closure")), plain, setup)
    in_place = runs.get(run_name(scenario, "in place"))
    aliased = any(isinstance(series(in_place, "aliases", k), list) and series(in_place, "aliases", k)
                  for k in range(scenario.steps))
    problems += [p for p in [_compare(
        in_place, plain, setup, "With gradients written into the same .grad tensors (copy_ at steps 2, 4, 6, 8; "
        "zero_grad(set_to_none=False) then two accumulated halves at steps 3, 5, 7)",
        ("Your state IS p.grad (the same tensor, not a copy): when the next gradient is written into p.grad, your "
         "state changes with it. Store a copy: p.grad.clone(), or torch.zeros_like(p) then add_." if aliased else
         "something you keep between steps depends on the gradient tensor being new: store copies "
         "(p.grad.clone()), never p.grad itself."), "in place")] if p]
    problems += [p for p in [_compare(
        runs.get(run_name(scenario, "reload")), plain, setup,
        f"After state_dict() was loaded into a fresh {SPECS[name].title} over rebuilt parameters before step "
        f"{RELOAD_STEP + 1}",
        "keep everything your update needs between steps in self.state[p] (a dict per parameter, created on its "
        "first step): state_dict() saves only self.state and self.param_groups. Attributes (self.velocities, "
        "self.t) and dicts keyed by id(p) or by position are lost, or point at the old parameters.", "reload")] if p]
    if not problems:
        return None
    message = problems[0][1]
    others = {label for label, _ in problems[1:]} - {problems[0][0]}
    names = {"storage": "parameters updated in place", "grad": "p.grad left untouched",
             "hyper": "hyperparameters left alone", "closure": "step(closure)", "in place": "in-place gradients",
             "reload": "state_dict save/load"}
    return message + (f"\n(Also failing: {', '.join(names[o] for o in sorted(others))}.)" if others else "")
