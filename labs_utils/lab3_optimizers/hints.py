"""Hints of the optimizer checks: recognise the usual mistakes from how a step differs from torch's.

Used by the judge (:mod:`.checks`), in the grader's process: every function here reads the student's
parameters as evidence and torch's as reference, and returns the sentence a student sees.
"""
from __future__ import annotations

import math
from typing import Any

import torch


def ratio_diagnosis(name: str, values: dict[str, Any], ratio: float) -> str | None:
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


def decay_diagnosis(name: str, lr: float, values: dict[str, Any], before: torch.Tensor, difference: torch.Tensor
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


def weight_decay_hint(name: str) -> str:
    """Where the weight decay goes, for Adam (L2 in the gradient) and AdamW (decoupled)."""
    if name == "adamw":
        return (" Weight decay: torch multiplies θ by (1 − lr·weight_decay) BEFORE the Adam update (decaying "
                "after it also shrinks the update), and never adds weight_decay·θ to the gradient.")
    if name == "adam":
        return (" Weight decay in Adam is L2: g = p.grad + weight_decay·θ (a new tensor), computed before m and v "
                "are updated, and used for both moments.")
    return ""


def likely_cause(name: str, spec: Any, setup: Any, step: int, param: str, before: dict[str, torch.Tensor],
                 student: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> str:
    """The most likely mistake behind a mismatch of ``param`` after ``step`` (1-based) of a scenario."""
    scenario = setup.scenario
    _, lr, values = setup.group_of(param)
    moved = (student[param] - before[param]).abs().max().item()
    if param in scenario.no_grad:
        return ("This parameter has no gradient (.grad is None) and must not change, but your step changed it. "
                "Skip it: `if p.grad is None: continue`, before any weight decay.")
    if moved == 0.0:
        return ("Your step() did not change this parameter. Update it in place under torch.no_grad(), e.g. "
                "p.add_(update, alpha=-lr); `p = p - ...` only rebinds a local name.")
    diagnosis = decay_diagnosis(name, lr, values, before[param], student[param] - reference[param])
    if diagnosis is None and step == 1:
        torch_move = reference[param] - before[param]
        mask = torch_move.abs() > 1e-3 * torch_move.abs().max()
        ratios = ((student[param] - before[param])[mask] / torch_move[mask]).double()
        if ratios.numel() and float(ratios.max() - ratios.min()) <= 0.01 * abs(float(ratios.median())):
            diagnosis = ratio_diagnosis(name, values, float(ratios.median()))
    if diagnosis is not None:
        return diagnosis
    if scenario.likely == "basic":
        return f"Compare your step with torch's update: {spec.update}."
    if scenario.likely == "unusual":
        hyper = ", ".join(["lr", *(k for k in spec.defaults if k != "weight_decay")])
        shown = ", ".join([f"lr={lr:g}"] + [f"{k}={v}" for k, v in values.items() if k != "weight_decay"])
        return (f"With non-default values ({shown}) your result differs: read every hyperparameter ({hyper}) "
                "from group[...] instead of a hard-coded number.")
    if scenario.likely == "decay":
        return ("Only the weight decay differs from the scenarios that passed, so look at where it goes."
                + weight_decay_hint(name))
    return scenario.likely
