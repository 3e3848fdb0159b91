"""Check of the measurement exercise ``fit_rate(gaps)``: the per-step error contraction of a loss curve.

The probe hands the student's function synthetic loss-gap curves drawn from a seed and records the
rates it returns; the judge regenerates the curves and compares with the rate they were built from.
Each curve is ``A·r^(2t)`` (the loss gap of a linearly converging method whose error shrinks by ``r``
per step) with 2 % multiplicative noise, so an estimate from one pair of steps is off by tens of
percent while a fit over the tail is within 0.1 %:

- "geometric decay": one mode only;
- "tail only": plus a faster mode ``B·r_fast^(2t)`` with ``B = 10⁴·A``, which dominates the first
  fifty-odd steps (what matters is the asymptotic rate);
- "underflow at the end": a fast run whose gaps reach exactly 0 (float underflow) before the end.

A rate passes when ``ln r`` is within 3 % of the true ``ln r``.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ..checking import call_student

TOLERANCE = 0.03  # relative, on ln r
CURVES = ("geometric decay", "tail only (a faster mode at the start)", "underflow to 0 at the end")
STEPS = 300
UNDERFLOW = 1e-300


def curve(kind: str, seed: int) -> tuple[np.ndarray, float]:
    """(loss gaps for t = 0..STEPS, shape (STEPS + 1,), the error contraction r they were built from)."""
    rng = np.random.default_rng([seed, CURVES.index(kind)])
    t = np.arange(STEPS + 1)
    if kind == CURVES[2]:
        rate = float(rng.uniform(0.05, 0.15))  # reaches 0 after 115-185 steps
    else:
        rate = float(rng.uniform(0.85, 0.97))
    amplitude = float(10 ** rng.uniform(-2, 2))
    gaps = amplitude * rate ** (2 * t) * np.exp(0.02 * rng.standard_normal(t.size))
    if kind == CURVES[1]:
        gaps += 1e4 * amplitude * (rate ** 3) ** (2 * t)
    gaps[gaps < UNDERFLOW] = 0.0
    return gaps, rate


def probe_fit_rate(fit_rate: Callable[[np.ndarray], Any], *, seed: int) -> dict[str, Any]:
    """Evidence: curve name -> the float the student's ``fit_rate`` returned (or the error message)."""
    found: dict[str, Any] = {}
    for kind in CURVES:
        gaps, _ = curve(kind, seed)
        try:
            value = call_student(fit_rate, gaps.copy(), what=f"fit_rate(gaps) on the curve '{kind}'")
        except AssertionError as exc:
            found[kind] = str(exc)
            continue
        try:
            found[kind] = float(value)
        except (TypeError, ValueError):
            found[kind] = f"fit_rate returned {type(value).__name__}, not a number.\nHint: return r as a float."
    return {"rates": found}


def _hint(kind: str, mine: float, true: float) -> str:
    if not math.isfinite(mine) or mine <= 0:
        return ("Hint: a rate is a positive number below 1. log(0) is -inf: leave out the gaps that are 0 "
                "(underflow) before taking logarithms." if kind == CURVES[2] else
                "Hint: a rate is a positive number below 1; take the logarithm of the gaps, fit a line, "
                "and exponentiate.")
    ratio = math.log(mine) / math.log(true) if mine != 1 else 0.0
    if abs(ratio - 2) <= 0.1:
        return ("Hint: your value is close to r², the rate of the loss gap: the gap is quadratic in the error "
                "(f − f* ∝ e²), so the error's rate is the square root of the gap's, exp(slope / 2).")
    if kind == CURVES[1] and ratio > 1:
        return ("Hint: your rate is too fast: a faster mode dominates the first steps. Fit only the tail "
                "(e.g. the second half of the curve), where the slowest mode is left.")
    return ("Hint: fit a straight line to log(gap) against t over many steps of the tail (np.polyfit); the gaps "
            "carry a little noise, so the ratio of two neighbouring gaps is not precise enough.")


def judge_fit_rate(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per curve: the returned rate against the rate the curve was built from."""
    rates = evidence.get("rates") if isinstance(evidence, dict) else None
    if not isinstance(rates, dict):
        return {kind: "the check received no measurements (malformed evidence)." for kind in CURVES}
    verdicts: dict[str, str | None] = {}
    for kind in CURVES:
        _, true = curve(kind, seed)
        mine = rates.get(kind)
        if isinstance(mine, str):
            verdicts[kind] = mine
        elif not isinstance(mine, (int, float)) or isinstance(mine, bool):
            verdicts[kind] = "no rate recorded for this curve."
        elif not (math.isfinite(mine) and 0 < mine < 1) or abs(math.log(mine) / math.log(true) - 1) > TOLERANCE:
            verdicts[kind] = (f"on the curve '{kind}' the error contracts by r = {true:.5f} per step; your fit_rate "
                              f"returned {mine:.5g} (ln r should be within {TOLERANCE:.0%}).\n"
                              + _hint(kind, float(mine), true))
        else:
            verdicts[kind] = None
    return verdicts
