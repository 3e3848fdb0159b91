"""The measurement exercise ``fit_rate(gaps)``: the per-step error contraction of a loss curve.

The probe hands the student's function synthetic loss-gap curves (drawn from a seed in the judge's process and sent
to the probe without it) and records the rates it returns; the judge regenerates the curves and compares with the
rate each was built from. A curve is
``A·r^(2t)`` (the loss gap of a linearly converging method whose error shrinks by ``r`` per step) times
multiplicative noise. Each part has curves of different lengths and disjoint rates, so no fixed tail start
(``gaps[150:]``) and no constant passes a part:

- "geometric decay": one mode, a short run and a long one;
- "a long transient": plus a faster mode ``B·(r³)^(2t)`` that dominates the start of the run;
- "early underflow": fast runs whose gaps reach exactly 0 (float underflow) well before the end, so a tail
  sliced before the zeros are dropped is all zeros;
- "noisy gaps": a short run with 15 % noise and six slow runs with 30 % noise, whose gaps fall only ~e^-10 over
  ~10,000 steps: a fit over many steps is within the tolerance on all of them, while an estimate from two gaps
  misses it on at least one on nearly every draw.

(The exact lengths, rates and noise levels are in ``CURVES`` below; the exercise asks for a method that
works on any such curve, not for one tuned to these.)

A rate passes when ``ln r`` is within 3 % of the true ``ln r``; the tests check that a careful fit passes every
curve with room to spare.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..checking import fail, with_hint
from ..exercises import Exercise, Part
from .budget import Clock

TOLERANCE = 0.03  # relative, on ln r
UNDERFLOW = 1e-300  # gaps below this are exactly 0, as after float underflow
PER_CALL = 5.0
PROBE_SECONDS = 30.0
GEOMETRIC, TRANSIENT, EARLY_ZEROS, NOISE = ("geometric decay", "a long transient (a faster mode first)",
                                            "early underflow to exactly 0", "noisy gaps")
POINTS = {GEOMETRIC: 0.375, TRANSIENT: 0.375, EARLY_ZEROS: 0.375, NOISE: 0.375}  # multiples of 1/8: exact sums


@dataclass(frozen=True)
class Curve:
    part: str
    label: str
    rates: tuple[float, float]  # r drawn uniformly in this range
    steps: tuple[float, float]  # the run's length T + 1 points; for early underflow, T / (steps above 0)
    noise: float  # standard deviation of the log-normal noise
    transient: bool = False

    @property
    def name(self) -> str:
        return f"{self.part}, {self.label}"


CURVES = (
    Curve(GEOMETRIC, "short run", (0.55, 0.7), (50, 90), 0.02),
    Curve(GEOMETRIC, "long run", (0.96, 0.985), (800, 1500), 0.02),
    Curve(TRANSIENT, "medium run", (0.85, 0.9), (150, 300), 0.02, transient=True),
    Curve(TRANSIENT, "long run", (0.97, 0.985), (1000, 1600), 0.02, transient=True),
    Curve(EARLY_ZEROS, "very fast run", (0.03, 0.06), (2.5, 4.0), 0.02),
    Curve(EARLY_ZEROS, "fast run", (0.2, 0.3), (2.5, 4.0), 0.02),
    Curve(NOISE, "15 % noise", (0.9, 0.94), (300, 500), 0.15),
    *(Curve(NOISE, f"30 % noise, slow run {i}", (0.99948, 0.99952), (9000, 11000), 0.3) for i in range(1, 7)),
)


def curve(spec: Curve, seed: int) -> tuple[np.ndarray, float, int]:
    """(loss gaps for t = 0..T, the error contraction r they were built from, the transient's length in steps)."""
    rng = np.random.default_rng([seed, CURVES.index(spec)])
    rate = float(rng.uniform(*spec.rates))
    amplitude = float(10 ** rng.uniform(-2, 2))
    if spec.part == EARLY_ZEROS:
        above = math.log(UNDERFLOW / amplitude) / (2 * math.log(rate))  # steps before the gaps underflow
        steps = int(above * rng.uniform(*spec.steps))
    else:
        steps = int(rng.integers(int(spec.steps[0]), int(spec.steps[1]) + 1))
    t = np.arange(steps + 1)
    gaps = amplitude * rate ** (2 * t) * np.exp(spec.noise * rng.standard_normal(t.size))
    transient = 0
    if spec.transient:  # a mode with rate r³, as large as the slow one after 20-30 % of the run
        transient = int(rng.uniform(0.2, 0.3) * steps)
        gaps += amplitude * math.exp(-4 * math.log(rate) * transient) * (rate ** 3) ** (2 * t)
    gaps[gaps < UNDERFLOW] = 0.0
    return gaps, rate, transient


def _as_number(value: Any) -> float | None:
    """A returned scalar (Python, numpy or torch) as a float; None for anything else (str, bool, list, arrays)."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, (numbers.Real, np.generic)):
        return float(value)
    if getattr(value, "shape", None) == () and hasattr(value, "item"):  # 0-d numpy array or torch tensor
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) and not isinstance(item, bool) else None
    return None


def inputs_fit_rate(*, seed: int) -> dict[str, Any]:
    """The probe's inputs (drawn in the judge's process): ``{"gaps": {curve name: float64 array}}``, the curves
    alone (their rates and transients stay with the judge)."""
    return {"gaps": {spec.name: curve(spec, seed)[0] for spec in CURVES}}


def probe_fit_rate(fit_rate: Callable[[np.ndarray], Any], *, inputs: dict[str, Any]) -> dict[str, Any]:
    """Evidence: ``{"curves": {curve name: {"rate": float | None, "error": str | None, "changed_input": bool}}}``.

    fit_rate gets a copy of each curve, compared with the inputs afterwards (an edit in place is reported)."""
    clock = Clock(PROBE_SECONDS)
    found: dict[str, Any] = {}
    for spec in CURVES:
        gaps = inputs["gaps"][spec.name].numpy().copy()  # a float64 tensor after the JSON round trip
        given = gaps.copy()
        entry: dict[str, Any] = {"rate": None, "error": None, "changed_input": False}
        try:
            value = clock.call(PER_CALL, fit_rate, given, what=f"fit_rate(gaps) on the curve '{spec.name}'")
            entry["rate"] = _as_number(value)
            if entry["rate"] is None:
                entry["error"] = with_hint(f"fit_rate returned {type(value).__name__} ({value!r:.40}), not a number.",
                                           "return the rate r as a float.")
        except AssertionError as exc:
            entry["error"] = str(exc)
        entry["changed_input"] = not (isinstance(given, np.ndarray) and given.shape == gaps.shape
                                      and np.array_equal(given, gaps))
        found[spec.name] = entry
    if all(isinstance(e["error"], str) and "not implemented yet" in e["error"] for e in found.values()):
        fail(next(iter(found.values()))["error"])
    return {"curves": found}


_BASES = [(math.log(10), "your rate's logarithm is ln 10 ≈ 2.3 times the true one: you fitted the natural log "
                         "and turned the slope back with 10**"),
          (1 / math.log(10), "your rate's logarithm is 1/ln 10 ≈ 0.43 of the true one: you fitted log10(gap) and "
                             "turned the slope back with exp"),
          (2 * math.log(10), "your rate's logarithm is 2·ln 10 ≈ 4.6 times the true one: you fitted the natural log, "
                             "turned the slope back with 10** and did not halve it"),
          (2 / math.log(10), "your rate's logarithm is 2/ln 10 ≈ 0.87 of the true one: you fitted log10(gap), turned "
                             "the slope back with exp and did not halve it")]


def _hint(spec: Curve, mine: float, true: float, steps: int, transient: int, zeros_from: int,
          part_ratios: tuple[float, ...] = ()) -> str:
    """The likely cause of a miss. ``part_ratios``: ln(rate)/ln(r) on every curve of the part; a squared or
    wrong-base rate is named only when all of them show the same factor (on the noisy curves a two-point estimate
    alone lands within a few % of 2/ln 10 on some seeds)."""
    if spec.part == EARLY_ZEROS and not (math.isfinite(mine) and 0 < mine < 1):
        return (f"On this curve the gaps are exactly 0 (float underflow) from step {zeros_from} of {steps}, so its "
                "second half is all zeros and log(0) = −inf: a tail taken before the zeros are dealt with holds no "
                "usable gap.")
    if not (math.isfinite(mine) and 0 < mine < 1):
        return (f"your value {mine!r:.20} is not a contraction factor: a rate is a positive number below 1 (the "
                "factor by which the error shrinks per step).")
    ratio = math.log(mine) / math.log(true)
    ratios = part_ratios or (ratio,)
    if all(abs(each - 2) <= 0.1 for each in ratios):
        return ("your value is close to r², the rate of the loss gap: the gap is quadratic in the error "
                "(f − f* ∝ e²), and you returned the gap's rate.")
    for factor, text in _BASES:
        if all(abs(each - factor) <= 0.03 * factor for each in ratios):
            return text + ". Use one base throughout: np.log with math.exp, or np.log10 with 10**."
    if spec.part == TRANSIENT and ratio > 1:
        return (f"your rate is too fast: a faster mode dominates the first ~{transient} of {steps} steps and your "
                "estimate includes them; a fixed start such as gaps[100:] is too early on a long run and past the "
                "end of a short one.")
    if spec.part == EARLY_ZEROS:
        return (f"the gaps are exactly 0 from step {zeros_from} of {steps}: fit only the steps before, leaving the "
                "zeros out (replacing them by a small number bends the line).")
    return ("your rate is off by more than the tolerance: the gaps carry noise, and an estimate from the ratio of "
            "two gaps or a short window follows the noise.")


def _ratio(entry: Any, spec: Curve, seed: int) -> float:
    """ln(rate)/ln(r) of a curve's entry, nan where the rate is missing or not a contraction factor."""
    mine = entry.get("rate") if isinstance(entry, dict) and not isinstance(entry.get("error"), str) else None
    if not isinstance(mine, (int, float)) or isinstance(mine, bool) or not (math.isfinite(mine) and 0 < mine < 1):
        return math.nan
    return math.log(mine) / math.log(curve(spec, seed)[1])


def _judge_curve(entry: Any, spec: Curve, seed: int, curves: dict) -> str | None:
    """None if this curve's rate is within the tolerance, else what went wrong (``curves``: every curve's entry,
    read only on a miss, for the hint's view of the whole part)."""
    gaps, true, transient = curve(spec, seed)
    steps, zeros_from = len(gaps) - 1, int(np.argmax(gaps == 0)) if (gaps == 0).any() else len(gaps)
    where = f"on the curve '{spec.name}' ({steps} steps)"
    if not isinstance(entry, dict):
        return f"no rate recorded {where}."
    if entry.get("changed_input") is True:
        return with_hint(f"fit_rate changed the array it was given {where}: the caller still needs its gaps (the lab "
                         "plots them after fitting).", "work on new arrays (boolean indexing and np.log make "
                         "them); avoid gaps[...] = ..., gaps.sort() or out=gaps.")
    error, mine = entry.get("error"), entry.get("rate")
    if isinstance(error, str):  # on early zeros, a crash is most likely log(0) or an empty tail: say so
        return with_hint(error.split("\nHint:")[0], _hint(spec, math.nan, true, steps, transient, zeros_from)) \
            if spec.part == EARLY_ZEROS and "raised" in error else error
    if not isinstance(mine, (int, float)) or isinstance(mine, bool):
        return f"no rate recorded {where}."
    if math.isfinite(mine) and 0 < mine < 1 and abs(math.log(mine) / math.log(true) - 1) <= TOLERANCE:
        return None
    part_ratios = tuple(_ratio(curves.get(other.name), other, seed) for other in CURVES if other.part == spec.part)
    return with_hint(f"{where[0].upper()}{where[1:]} the error contracts by r = {true:.5f} per step; your fit_rate "
                     f"returned {mine:.5g} (ln r should be within {TOLERANCE:.0%}).",
                     _hint(spec, float(mine), true, steps, transient, zeros_from, part_ratios))


def judge_fit_rate(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part: every curve of the part within the tolerance (the first miss is reported)."""
    curves = evidence.get("curves") if isinstance(evidence, dict) else None
    if not isinstance(curves, dict):
        return {part: "the check received no measurements (malformed evidence)." for part in POINTS}
    verdicts: dict[str, str | None] = {part: None for part in POINTS}
    for spec in CURVES:
        if verdicts[spec.part] is None:
            verdicts[spec.part] = _judge_curve(curves.get(spec.name), spec, seed, curves)
    return verdicts


FIT_RATE = Exercise("Convergence rate", needs=("fit_rate",), parts=tuple(Part(p, v) for p, v in POINTS.items()),
                    probe=probe_fit_rate, judge=judge_fit_rate, inputs=inputs_fit_rate)
