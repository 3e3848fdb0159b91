"""Checks of the optimizer lab: its ``LAB`` and ``GRADING`` table, and the notebook's check functions.

Each exercise is a probe (runs the student's code in their kernel, records evidence) and a judge (compares
with torch.optim or with the curve's known rate, part by part): see :mod:`.exercise_optimizers` and
:mod:`.exercise_fit_rate` and :mod:`.exercise_stability`.
"""
from __future__ import annotations

from collections.abc import Callable

from ..exercises import LabInfo, exercise_named, run_exercise
from .exercise_fit_rate import FIT_RATE
from .exercise_optimizers import OPTIMIZERS
from .exercise_stability import STABILITY
from .optimizer_cases import OPTIMIZER_NAMES, SPECS

__all__ = ["check_optimizer", "check_fit_rate", "check_stability", "OPTIMIZER_NAMES"]

LAB = LabInfo(3, "optimizers", "lab3_optimizers")

# not graded: the notebook gives RMSProp, works AdamW as a step, and uses torch.optim.Adagrad as AdaGrad
WORKED = ("RMSProp", "AdaGrad", "AdamW")
CHECKS = [*OPTIMIZERS, FIT_RATE, STABILITY]  # every check the lab offers, graded or not
GRADING = [exercise for exercise in CHECKS if exercise.name not in WORKED]


def check_optimizer(name: str, cls: type) -> None:
    """Check an optimizer class against its torch.optim counterpart, step for step, part by part.

    ``name`` is one of "sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad" (RMSProp, AdaGrad and
    AdamW are given or worked in the notebook: checked on request but not graded).
    """
    if name not in SPECS:
        raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZER_NAMES)}")
    run_exercise(exercise_named(CHECKS, SPECS[name].title), (cls,))


def check_fit_rate(fit_rate: Callable) -> None:
    """Check ``fit_rate(gaps) -> r`` on loss curves whose error contraction ``r`` is known, part by part."""
    run_exercise(FIT_RATE, (fit_rate,))


def check_stability(largest_stable_lr: Callable) -> None:
    """Check ``largest_stable_lr(make_optimizer, curvature) -> lr`` against the known limits of GD, heavy ball and
    Nesterov on a quadratic, part by part."""
    run_exercise(STABILITY, (largest_stable_lr,))
