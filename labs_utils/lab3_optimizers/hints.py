"""Hints of the optimizer checks: recognise the usual mistakes from how a step differs from torch's.

Used by the judges (:mod:`.exercise_optimizers`), in the grader's process: every function here reads the
student's parameters as evidence and torch's as reference, and returns the sentence a student sees. A hint
names a mistake only when the evidence singles it out (a constant factor on the first step, a difference
proportional to θ, the first difference right after a hyperparameter changed, a parameter whose gradient is
None at that step); otherwise it states torch's update.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .optimizer_cases import GAPS, Setup, has_gradient, pattern

_RATIO_TOLERANCE = 0.003  # relative: the factors below are measured to ~1e-4 and some lie 0.5 % apart


def ratio_diagnosis(name: str, values: dict[str, Any], ratio: float) -> str | None:
    """Recognise a constant factor between the student's first step and torch's (the closest known one)."""
    known = [(-1.0, "Your step goes the wrong way (uphill): subtract lr·(update) from the parameter.")]
    if name in ("momentum", "nesterov"):
        beta = values["momentum"]
        known.append((1 - beta, "Your step is (1 − momentum) times torch's: that is the slides' EMA form "
                                "v ← βv + (1−β)g. torch.optim.SGD accumulates v ← momentum·v + g (the two are "
                                "equivalent after rescaling lr by 1/(1−β), but the exercise matches torch)."))
    if name == "momentum" and values["momentum"] > 0:
        known.append((1 + values["momentum"],
                      "Your first step is (1 + momentum) times torch's: your velocity starts at g and then also takes "
                      "the update v ← momentum·v + g on that step. In torch's algorithm box the velocity after the "
                      "first step is g: start it at 0 and update it, or start it at g without the update."))
    if name == "nesterov":
        known.append((1 / (1 + values["momentum"]),
                      "Your first step is lr·g, plain momentum's: Nesterov's first step is longer, because "
                      "its step also includes the look-ahead (nesterov=True in torch's algorithm box)."))
    if name == "rmsprop":
        alpha = values["alpha"]
        known += [(math.sqrt((1 - alpha) / alpha),
                   "alpha and 1 − alpha look swapped: in the running average alpha is the weight of the old "
                   "value, as ρ is in the slides' formula."),
                  (math.sqrt(1 - alpha),
                   "Your first step is √(1 − alpha) times torch's: after one step your s is g², torch's is "
                   "(1 − alpha)·g². torch starts s at 0 and weighs the new g² by "
                   "(1 − alpha): do not divide s by (1 − alphaᵗ), do not start s at g², and do not add g² "
                   "without that weight (a plain sum of g² is AdaGrad's, not a running average).")]
    if name in ("adam", "adamw"):
        beta1, beta2 = values["betas"]
        known += [((1 - beta1) / math.sqrt(1 - beta2),
                   "No bias correction: divide m by (1 − β₁ᵗ) and v by (1 − β₂ᵗ) (t = 1 on the first step)."),
                  (1 - beta1, "m is not bias-corrected: use m̂ = m / (1 − β₁ᵗ)."),
                  (1 / math.sqrt(1 - beta2), "v is not bias-corrected: use v̂ = v / (1 − β₂ᵗ).")]
    if name == "adagrad":
        known.append((1 / math.sqrt(2), "Your first step is 1/√2 of torch's: your sum of squares holds 2g² after "
                                        "one step. Start it at 0 and add g² once per step."))
    value, message = min(known, key=lambda item: abs(ratio - item[0]) / abs(item[0]))
    return message if abs(ratio - value) <= _RATIO_TOLERANCE * abs(value) else None


def decay_diagnosis(name: str, lr: float, values: dict[str, Any], before: torch.Tensor, difference: torch.Tensor
                    ) -> str | None:
    """Recognise a difference proportional to the parameter itself: a weight-decay term that is off."""
    if name not in ("rmsprop", "adam", "adamw", "adagrad") or before.numel() < 3 or difference.abs().max() == 0:
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
    if name == "rmsprop":
        return detail + (" RMSProp's weight_decay is an L2 term added to the gradient, g ← g + weight_decay·θ, "
                         "before g² joins the running average (torch.optim.RMSprop does that).")
    if name == "adagrad":
        return detail + (" AdaGrad's weight_decay is an L2 term added to the gradient, g ← g + weight_decay·θ, "
                         "before g² joins the sum (torch.optim.Adagrad does that).")
    return detail + (" Adam's weight_decay is an L2 term added to the gradient, g ← g + weight_decay·θ, before "
                     "the moments (that is what torch.optim.Adam does; AdamW is the decoupled one).")


def weight_decay_hint(name: str) -> str:
    """Where the weight decay goes, for Adam (L2 in the gradient) and AdamW (decoupled)."""
    if name == "adamw":
        return (" Weight decay: torch multiplies θ by (1 − lr·weight_decay) BEFORE the Adam update (decaying "
                "after it also shrinks the update), and never adds weight_decay·θ to the gradient.")
    if name == "rmsprop":
        return (" Weight decay in RMSProp is L2: g = p.grad + weight_decay·θ (a new tensor), computed before g² "
                "joins the running average, and used for both the average and the step.")
    if name == "adagrad":
        return (" Weight decay in AdaGrad is L2: g = p.grad + weight_decay·θ (a new tensor), computed before g² is "
                "added to the sum, and used for both the sum and the step.")
    if name == "adam":
        return (" Weight decay in Adam is L2: g = p.grad + weight_decay·θ (a new tensor), computed before m and v "
                "are updated, and used for both moments.")
    return ""


def _first_step_ratio(before: torch.Tensor, mine: torch.Tensor, torch_value: torch.Tensor) -> float | None:
    """The constant factor between the student's move and torch's, if there is one."""
    torch_move = torch_value - before
    mask = torch_move.abs() > 1e-3 * torch_move.abs().max()
    ratios = ((mine - before)[mask] / torch_move[mask]).double()
    if ratios.numel() and float(ratios.max() - ratios.min()) <= 0.01 * abs(float(ratios.median())):
        return float(ratios.median())
    return None


def _change_hint(setup: Setup, index: int, group: int, hyper: list, before: torch.Tensor, mine: torch.Tensor,
                 torch_value: torch.Tensor) -> str | None:
    """The first difference comes after a hyperparameter of the group changed (steps before matched)."""
    changes = [k for k in range(1, index + 1) if hyper[k][group] != hyper[k - 1][group]]
    if not changes:
        return None
    last = changes[-1]
    old, new = hyper[last - 1][group], hyper[last][group]
    what = ", ".join(f"{k} {old[k]:g} → {new[k]:g}" if isinstance(new[k], float) else f"{k} {old[k]} → {new[k]}"
                     for k in new if new[k] != old.get(k))
    first = hyper[0][group]["lr"] / hyper[index][group]["lr"]
    ratio = _first_step_ratio(before, mine, torch_value)
    if ratio is not None and abs(ratio - first) <= 0.01 * abs(first) and first != 1:
        return (f"Your step uses the learning rate the optimizer was created with ({hyper[0][group]['lr']:g}); the "
                f"group's lr is now {hyper[index][group]['lr']:g}. Read group['lr'] inside step() at every step, not "
                "self.lr or the constructor's argument: schedulers change param_groups between steps.")
    text = (f"Before step {last + 1}, group {group + 1}'s hyperparameters changed ({what}), and your steps matched "
            "torch's until then. Read every hyperparameter from the group inside step(), at every step (group['lr'], "
            "...), not from self.defaults, the constructor's arguments or values saved on the first step: "
            "schedulers and users change param_groups between steps.")
    if setup.name in ("momentum", "nesterov") and "lr" in what:
        text += (" If your velocity holds the learning rate (v ← momentum·v − lr·g), it is torch's velocity times "
                 "−lr: the two agree while lr is constant and part when it changes. torch keeps lr outside the "
                 "velocity and applies the group's current lr only in the step"
                 + (": v ← momentum·v + g, θ ← θ − lr·v." if setup.name == "momentum" else "."))
    return text


def _pattern_hint(param: str, index: int) -> str | None:
    """A parameter whose gradients come and go, on the first step where it differs (steps before matched)."""
    if param == "late" and index == 3:
        return ("Parameter 'late' got its first gradient at this step (its .grad was None before), and only it "
                "differs. Its state starts now, as a new parameter's would: created on its own first step with a "
                "gradient, with its own step count (Adam's bias correction uses t = 1 here, whatever the optimizer's "
                "step number: count steps in self.state[p], not per optimizer or per group).")
    if param == "gappy" and index - 1 in GAPS:
        return ("Parameter 'gappy' had no gradient (.grad None) at the step before and has one again, and only it "
                "differs. torch skipped it entirely while .grad was None: its state did not decay and its step count "
                "did not advance. Skip such a parameter (`if p.grad is None: continue`); do not update its state "
                "with a zero gradient.")
    return None


def likely_cause(setup: Setup, index: int, param: str, before: dict[str, torch.Tensor],
                 student: dict[str, torch.Tensor], reference: dict[str, Any], basic_failed: bool = False) -> str:
    """The most likely mistake behind a mismatch of ``param`` after step ``index`` (0-based) of a scenario.

    ``before``: torch's parameters before the step (the student's matched them); ``reference``: torch's record;
    ``basic_failed``: the first step already differs with ordinary gradients (so tiny ones prove nothing about eps).
    """
    name, spec, kind = setup.name, setup.spec, setup.scenario.kind
    group = setup.group_of(param)
    hyper = reference["hyper"]
    values = hyper[index][group]
    torch_now = reference["values"][index]
    if not has_gradient(param, index):
        return (f"Parameter {param!r} {pattern(param)}: at this step its .grad is None, and it must not change, "
                "but your step changed it. Skip it first (`if p.grad is None: continue`), before any weight decay. "
                "A missing gradient is not a zero gradient: with zeros, momentum or Adam's moments keep moving it.")
    if (student[param] - before[param]).abs().max().item() == 0.0:
        return ("Your step() did not change this parameter. Update it in place under torch.no_grad(), e.g. "
                "p.add_(update, alpha=-lr); `p = p - ...` only rebinds a local name.")
    others_match = all(torch.allclose(student[n], torch_now[n], rtol=1e-5, atol=1e-5)
                       for n in setup.names if n != param)
    found = _pattern_hint(param, index) if others_match else None
    if found is None and kind in ("scheduler", "edits"):
        found = _change_hint(setup, index, group, hyper, before[param], student[param], torch_now[param])
    if found is None:
        found = decay_diagnosis(name, values["lr"], values, before[param], student[param] - torch_now[param])
    if found is None and index == 0:
        ratio = _first_step_ratio(before[param], student[param], torch_now[param])
        found = None if ratio is None else ratio_diagnosis(name, values, ratio)
    if found is not None:
        return found
    read_group = ("Read every hyperparameter from the group inside `for group in self.param_groups:` (group['lr'], "
                  "...), not from self.defaults or the constructor's arguments: each group may override them.")
    if kind == "unusual":
        hyper_names = ", ".join(["lr", *(k for k in spec.defaults if k not in ("weight_decay", "eps"))])
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
                          if k not in ("weight_decay", "eps"))
        return (f"With non-default values ({shown}) your result differs: read every hyperparameter ({hyper_names}) "
                "from group[...] instead of a hard-coded number.")
    if kind == "twins" and param != "weight" and others_match:
        return ("Each parameter needs its own state: keep buffers in self.state[p] (created on the parameter's first "
                "step as torch.zeros_like(p)), never in one attribute or a dict keyed by shape or index.")
    if kind in ("tiny", "eps_group") and basic_failed:
        return ("Your first step differs from torch's already with ordinary gradients (see 'basic step'), so this "
                "difference need not come from eps: fix the basic step first.")
    if kind == "tiny" or (kind == "eps_group" and not (group == 1 and others_match)):
        return ("Tiny gradients expose where eps goes: torch adds it AFTER the square root of the running average "
                "of g², …/(√s + eps) (the slides write √(s + eps), which acts like a much larger eps, √eps).")
    if kind == "eps_group":
        return "Only the group with eps=1e-4 differs: " + read_group
    if kind in ("groups", "edits") and group == 1 and others_match:
        return "Only the second group differs: " + read_group
    if kind == "decay":
        return ("Only the weight decay differs from the scenarios that passed, so look at where it goes."
                + weight_decay_hint(name))
    if kind == "together":
        return ("The simpler scenarios passed, so look at what only this one combines: state kept per parameter "
                "across many steps, gradients that come and go, and hyperparameters read per group.")
    return f"Compare your step, line by line, with {spec.update}."
