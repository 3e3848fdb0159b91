"""Convergence theory of gradient descent and heavy-ball momentum on quadratics, against measurement.

On f(θ) = ½ θᵀHθ with Hessian eigenvalues in [μ, L] and κ = L/μ:
- gradient descent with α = 2/(μ+L) shrinks the error in every eigen-direction by (κ−1)/(κ+1) per step;
- heavy ball θ_{k+1} = θ_k − α∇f(θ_k) + β(θ_k − θ_{k−1}) with α = 4/(√L+√μ)², β = r² contracts like
  r = (√κ−1)/(√κ+1). At that β its 2×2 iteration matrix has a repeated eigenvalue, so an
  error component does not decay like a plain r^k: :func:`heavy_ball_errors` computes the exact error.
The loss gap is quadratic in the error, so it shrinks like rate² per step.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import finite_float
from .landscapes import Landscape, MakeOptimizer, ravine, run_optimizer


def _check_eigenvalues(lam_min: float, lam_max: float) -> None:
    lam_min = finite_float("lam_min", lam_min, positive=True)
    if finite_float("lam_max", lam_max, positive=True) < lam_min:
        raise ValueError(f"lam_max must be at least lam_min, got lam_min={lam_min!r}, lam_max={lam_max!r}")


def _check_kappa(kappa: float) -> None:
    finite_float("kappa (the condition number)", kappa, minimum=1.0)


def gd_optimal_lr(lam_min: float, lam_max: float) -> float:
    """The learning rate 2/(μ+L) that makes gradient descent contract equally along both ends of the spectrum."""
    _check_eigenvalues(lam_min, lam_max)
    return 2.0 / (lam_min + lam_max)


def gd_rate(kappa: float) -> float:
    """Per-step error contraction (κ−1)/(κ+1) of gradient descent at its optimal learning rate."""
    _check_kappa(kappa)
    return (kappa - 1.0) / (kappa + 1.0)


def heavy_ball_optimal(lam_min: float, lam_max: float) -> tuple[float, float]:
    """Polyak's tuned heavy ball: α = 4/(√L+√μ)², β = ((√κ−1)/(√κ+1))²; returns (lr, momentum)."""
    _check_eigenvalues(lam_min, lam_max)
    lr = 4.0 / (math.sqrt(lam_max) + math.sqrt(lam_min)) ** 2
    return lr, heavy_ball_rate(lam_max / lam_min) ** 2


def heavy_ball_rate(kappa: float) -> float:
    """Per-step error contraction (√κ−1)/(√κ+1) of tuned heavy ball."""
    _check_kappa(kappa)
    root = math.sqrt(kappa)
    return (root - 1.0) / (root + 1.0)


def heavy_ball_radius(lr, beta, lam_min: float, lam_max: float) -> np.ndarray:
    """Asymptotic rate of heavy ball: spectral radius of its iteration matrix, worst over [μ, L].

    ``lr`` and ``beta`` may be arrays (broadcast together). Values ≥ 1 mean no convergence;
    the method converges exactly when 0 ≤ β < 1 and 0 < α·λ < 2 + 2β for every eigenvalue λ.
    """
    _check_eigenvalues(lam_min, lam_max)
    lr, beta = np.broadcast_arrays(np.asarray(lr, dtype=float), np.asarray(beta, dtype=float))
    worst = np.zeros(lr.shape)
    for lam in (lam_min, lam_max):  # the radius is largest at the ends of the spectrum
        trace = 1.0 + beta - lr * lam  # characteristic polynomial z² − trace·z + β
        disc = np.sqrt((trace ** 2 - 4.0 * beta).astype(complex))
        radius = np.maximum(np.abs((trace + disc) / 2), np.abs((trace - disc) / 2))
        worst = np.maximum(worst, radius)
    return worst


def heavy_ball_errors(lr: float, beta: float, eigenvalues: Sequence[float], steps: int) -> np.ndarray:
    """Exact error of heavy ball started at rest, per eigen-direction, relative to the start: (steps+1, n).

    e_k = u_k − β·u_{k−1} with u_k = (r₁^{k+1} − r₂^{k+1})/(r₁ − r₂), r₁,₂ the roots of
    z² − (1+β−αλ)z + β, and its limit where the two roots coincide.
    """
    k = np.arange(steps + 1, dtype=float)[:, None]
    lam = np.asarray(eigenvalues, dtype=float)[None, :]
    trace = 1.0 + beta - lr * lam
    disc = np.sqrt((trace ** 2 - 4.0 * beta).astype(complex))
    r1, r2 = (trace + disc) / 2, (trace - disc) / 2
    repeated = np.abs(r1 - r2) < 1e-7 * np.maximum(np.abs(r1), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        distinct = (r1 ** (k + 1) - r2 ** (k + 1) - beta * (r1 ** k - r2 ** k)) / (r1 - r2)
    r = (r1 + r2) / 2
    double = (1.0 + (1.0 - r) * k) * r ** k
    return np.real(np.where(repeated, double, distinct))


def quadratic_gaps(landscape: Landscape, errors: np.ndarray) -> np.ndarray:
    """Loss gaps ½ Σ λ_i (c_i e_i,k)² of a quadratic, given relative errors (steps+1, 2) per eigen-direction."""
    lam, vectors = np.linalg.eigh(landscape.hessian)
    start = vectors.T @ np.asarray(landscape.start, dtype=float)  # start in the eigenbasis
    return 0.5 * ((errors * start) ** 2 * lam).sum(axis=1)


def steps_to_tolerance(gaps: np.ndarray, tol: float) -> int | None:
    """First step whose loss gap is at most ``tol`` times the initial gap (None if never)."""
    hits = np.flatnonzero(np.asarray(gaps) <= tol * gaps[0])
    return int(hits[0]) if hits.size else None


def steps_to_reach(make_optimizer: MakeOptimizer, landscape: Landscape, tol: float, max_steps: int) -> int | None:
    """Steps until the loss gap is ``tol`` times the initial one (None if not within ``max_steps``)."""
    run = run_optimizer(make_optimizer, landscape, steps=max_steps)
    return None if run.diverged else steps_to_tolerance(run.gaps, tol)


def predicted_steps(rate: float, tol: float) -> float:
    """Steps for the loss gap to shrink by ``tol`` if the error shrinks by ``rate`` every step: ln tol / (2 ln rate)."""
    return math.log(tol) / (2.0 * math.log(rate))


def _tail_rate(gaps: np.ndarray, first: int, last: int) -> float:
    """Mean per-step error contraction between two known steps of a noise-free curve, from its two end gaps.

    Used by the convergence table and the heavy-ball figure, whose windows are fixed in advance.
    """
    return float((gaps[last] / gaps[first]) ** (1.0 / (2 * (last - first))))


@dataclass
class ConvergenceRow:
    """One κ of the convergence study; steps count until the loss gap is ``tol`` times the initial one."""

    kappa: float
    gd_measured: int
    gd_predicted: float
    hb_measured: int
    hb_naive: float
    hb_exact: int
    hb_rate_theory: float
    hb_rate_fitted: float
    hb_formula_error: float  # max relative difference between measured and exact loss gaps

    @property
    def gd_ratio(self) -> float:
        return self.gd_measured / self.gd_predicted

    @property
    def hb_ratio(self) -> float:
        return self.hb_measured / self.hb_naive

    @property
    def hb_log_rate_error(self) -> float:
        """Relative error of the fitted decay exponent −ln r against theory."""
        return abs(math.log(self.hb_rate_fitted) / math.log(self.hb_rate_theory) - 1.0)


def convergence_study(sgd_cls: type[torch.optim.Optimizer], momentum_cls: type[torch.optim.Optimizer],
                      kappas: Sequence[float] = (10, 100, 1000), *, tol: float = 1e-6,
                      tail: tuple[float, float] = (3.0, 6.0)) -> list[ConvergenceRow]:
    """Measure gradient descent and tuned heavy ball on ravines against theory.

    ``sgd_cls(params, lr=...)`` and ``momentum_cls(params, lr=..., momentum=...)`` are optimizer
    classes (yours or torch's). The tail rate is taken between ``tail[0]`` and ``tail[1]`` times the
    heavy-ball count, far enough out for the (1 + c·k) factor to matter little.
    """
    rows = []
    for kappa in kappas:
        land = ravine(kappa)
        lam_min, lam_max = land.eigenvalues
        gd_lr = gd_optimal_lr(lam_min, lam_max)
        r_gd = gd_rate(kappa)
        gd_steps = steps_to_reach(lambda p, lr=gd_lr: sgd_cls(p, lr=lr), land, tol,
                                  math.ceil(1.2 * predicted_steps(r_gd, tol)) + 5)
        hb_lr, beta = heavy_ball_optimal(lam_min, lam_max)
        r_hb = heavy_ball_rate(kappa)
        naive = predicted_steps(r_hb, tol)
        exact_steps = steps_to_tolerance(
            quadratic_gaps(land, heavy_ball_errors(hb_lr, beta, (lam_min, lam_max), math.ceil(4 * naive))), tol)
        last = int(tail[1] * exact_steps)
        exact = quadratic_gaps(land, heavy_ball_errors(hb_lr, beta, (lam_min, lam_max), last))
        hb = run_optimizer(lambda p, lr=hb_lr, b=beta: momentum_cls(p, lr=lr, momentum=b), land, steps=last)
        measured = hb.gaps
        hb_steps = steps_to_tolerance(measured, tol)
        if gd_steps is None or hb.diverged or hb_steps is None:
            raise RuntimeError(f"κ = {kappa:g}: a run did not reach the tolerance {tol:g}; check the optimizers")
        formula_error = float(np.max(np.abs(measured - exact) / exact))
        rows.append(ConvergenceRow(kappa, gd_steps, predicted_steps(r_gd, tol), hb_steps,
                                   naive, exact_steps, r_hb,
                                   _tail_rate(measured, int(tail[0] * exact_steps), last), formula_error))
    return rows


def format_convergence_table(rows: Sequence[ConvergenceRow], tol: float = 1e-6) -> str:
    """The convergence study as a fixed-width text table."""
    lines = [
        f"steps until f − f* ≤ {tol:g}·(f₀ − f*)",
        f"{'κ':>6} | {'GD meas.':>8} {'pred.':>7} {'ratio':>6} | {'HB meas.':>8} {'naive':>6} {'ratio':>6}"
        f" {'exact':>6} | {'HB rate: theory':>15} {'tail rate':>9} {'−ln r err':>9} | {'formula err':>11}",
    ]
    for row in rows:
        lines.append(
            f"{row.kappa:>6g} | {row.gd_measured:>8d} {row.gd_predicted:>7.1f} {row.gd_ratio:>6.3f} | "
            f"{row.hb_measured:>8d} {row.hb_naive:>6.1f} {row.hb_ratio:>6.2f} {row.hb_exact:>6d} | "
            f"{row.hb_rate_theory:>15.5f} {row.hb_rate_fitted:>9.5f} {row.hb_log_rate_error:>9.1%} | "
            f"{row.hb_formula_error:>11.1e}")
    return "\n".join(lines)


__all__ = [
    "gd_optimal_lr", "gd_rate", "heavy_ball_optimal", "heavy_ball_rate", "heavy_ball_radius", "heavy_ball_errors",
    "quadratic_gaps", "steps_to_tolerance", "steps_to_reach", "predicted_steps", "ConvergenceRow",
    "convergence_study", "format_convergence_table",
]


def check_study(rows: Sequence[ConvergenceRow]) -> str:
    """Assert that the study ran as theory says it must with correct SGD and Momentum (a failure means one is wrong)."""
    assert all(abs(row.gd_ratio - 1) <= 0.05 for row in rows), (
        "gradient descent's step counts are more than 5 % off the prediction from (κ−1)/(κ+1): check your SGD")
    assert all(1.3 <= row.hb_ratio <= 2.0 for row in rows), (
        "heavy ball's step counts are not 1.3 to 2 times the naive count, as they are with correct momentum: "
        "check your Momentum against PyTorch's convention")
    assert all(row.hb_log_rate_error <= 0.10 for row in rows), (
        "heavy ball's tail rate is more than 10 % off (√κ−1)/(√κ+1): check your Momentum")
    assert all(row.hb_exact == row.hb_measured and row.hb_formula_error < 1e-6 for row in rows), (
        "your Momentum's loss gaps differ from the exact solution of heavy ball's recursion: check your Momentum")
    return ("✔ your SGD and Momentum reproduce the table's known results (gradient descent on its prediction, heavy "
            "ball's ratio and tail rate, the exact formula)")
