"""Reading the optimizer probes' evidence in the judge: the student's parameters per step, compared with a tolerance.

The evidence comes from the student's kernel, so every reader here treats it as untrusted: anything
missing or of the wrong type reads as "no values", never as an exception.
"""
from __future__ import annotations

import math
import re
from typing import Any

import torch

from ..checking import with_hint
from .optimizer_cases import Setup, has_gradient

ATOL = 1e-5  # float32: equivalent arithmetic differs by < 1e-6, real mistakes by 1e-4 and more
RTOL = 1e-5


def values_at(record: Any, step: int, names: list[str]) -> dict[str, torch.Tensor] | None:
    """The student's parameters after ``step`` (0-based) from untrusted evidence, or None when missing."""
    values = record.get("values") if isinstance(record, dict) else None
    if not isinstance(values, list) or step >= len(values) or not isinstance(values[step], dict):
        return None
    found = {n: values[step].get(n) for n in names}
    return found if all(isinstance(t, torch.Tensor) for t in found.values()) else None


def off_by(mine: torch.Tensor, expected: torch.Tensor) -> float | None:
    """Largest difference when it exceeds the tolerance (inf for a wrong shape, dtype or non-finite values)."""
    if mine.shape != expected.shape or mine.dtype != expected.dtype or not torch.isfinite(mine).all():
        return math.inf
    excess = (mine - expected).abs() - (ATOL + RTOL * expected.abs())
    return (mine - expected).abs().max().item() if excess.numel() and excess.max() > 0 else None


def error_of(record: Any) -> str | None:
    error = record.get("error") if isinstance(record, dict) else None
    return error if isinstance(error, str) else None


def first_difference(record: Any, expected: list[dict[str, torch.Tensor]], names: list[str]
                     ) -> tuple[int, str, float] | tuple[int, None, None] | None:
    """(step, parameter, largest difference) where ``record`` first leaves ``expected`` (a list of per-step
    values), (step, None, None) where its values stop, or None when every step matches."""
    for step, values in enumerate(expected):
        mine = values_at(record, step, names)
        if mine is None:
            return step, None, None
        for name in names:
            worst = off_by(mine[name], values[name])
            if worst is not None:
                return step, name, worst
    return None


def series(record: Any, key: str, step: int) -> Any:
    """``record[key][step]`` from untrusted evidence (None when missing)."""
    found = record.get(key) if isinstance(record, dict) else None
    return found[step] if isinstance(found, list) and step < len(found) else None


def error_message(error: str, setup: Setup, step: int) -> str:
    """A step that raised: say where, and name the usual cause when a parameter had no gradient then."""
    where = f"In the scenario '{setup.scenario.name}', at step {step + 1}"
    none_now = [n for n in setup.names if not has_gradient(n, step)]
    if none_now and step < setup.scenario.steps and re.search(r"\bNone(Type)?\b", error):
        return with_hint(f"{where}: {error.split(chr(10) + 'Hint:')[0]}",
                         f"{', '.join(repr(n) for n in none_now)} had no gradient then (.grad is None): skip such "
                         "parameters, `if p.grad is None: continue` at the top of the loop over group['params'] "
                         "(torch leaves them untouched).")
    return f"{where}: {error}"
