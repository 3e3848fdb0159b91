"""2-D test landscapes and optimizer runs on them (their pictures are in ``figures``).

A :class:`Landscape` is a function of two variables written in torch, so autograd gives its
gradient, with a known minimum: the ravine quadratic (:func:`ravine`), the scale problem
(:func:`scale_problem`) and Rosenbrock's banana (:func:`rosenbrock`).
:func:`run_optimizer` runs any ``torch.optim.Optimizer`` on one and returns a :class:`Run`
(trajectory and losses); a run that blows up is reported in the Run, not raised.
The convergence theory that goes with the quadratics lives in ``convergence``.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..validation import finite_float, positive_int

MakeOptimizer = Callable[[Sequence[torch.Tensor]], torch.optim.Optimizer]
MakeScheduler = Callable[[torch.optim.Optimizer], object]
Point = tuple[float, float]


@dataclass(frozen=True)
class Landscape:
    """A function of a point (..., 2) -> (...) with a known minimum, a start and a plotting window.

    ``hessian`` is set for quadratics (then ``f(p) = ½ pᵀ H p`` and the minimum is the origin).
    """

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    minimum: Point
    start: Point
    bounds: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    hessian: np.ndarray | None = field(default=None, repr=False)

    def __call__(self, point: torch.Tensor) -> torch.Tensor:
        return self.fn(point)

    @property
    def min_value(self) -> float:
        """f at the minimum."""
        return float(self.fn(torch.tensor(self.minimum, dtype=torch.float64)))

    @property
    def eigenvalues(self) -> np.ndarray:
        """Hessian eigenvalues, smallest first (quadratics only)."""
        if self.hessian is None:
            raise ValueError(f"{self.name} is not a quadratic: it has no constant Hessian")
        return np.linalg.eigvalsh(self.hessian)

    @property
    def kappa(self) -> float:
        """Condition number λ_max / λ_min of the Hessian (quadratics only)."""
        low, high = self.eigenvalues
        return float(high / low)


def _check_positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)):  # a string or tensor is a mistake here, even if float() takes it
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return finite_float(name, value, positive=True)


def _rotation(angle_deg: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _quadratic_fn(hessian: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    h = torch.from_numpy(hessian)

    def fn(point: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((point @ h.to(point.dtype)) * point).sum(-1)

    return fn


def quadratic(name: str, eigenvalues: tuple[float, float], *, angle: float = 0.0,
              start: Point, half_width: tuple[float, float]) -> Landscape:
    """f(p) = ½ pᵀ R diag(eigenvalues) Rᵀ p, minimum 0 at the origin, R a rotation by ``angle`` degrees."""
    rot = _rotation(angle)
    hessian = rot @ np.diag(eigenvalues) @ rot.T
    sx, sy = half_width
    if angle % 180:  # a rotated ravine needs a square window that holds its long axis
        sx = sy = max(sx, sy)
    start_xy = rot @ np.asarray(start, dtype=float)
    return Landscape(name, _quadratic_fn(hessian), (0.0, 0.0), (float(start_xy[0]), float(start_xy[1])),
                     (-sx, sx, -sy, sy), hessian)


def ravine(kappa: float = 100.0, *, lam_max: float = 1.0, angle: float = 0.0) -> Landscape:
    """The ravine ½(λ_min x² + λ_max y²) with λ_max/λ_min = ``kappa``, rotated by ``angle`` degrees.

    Shallow floor along x, steep walls along y. The start (−√κ, 1) (before rotation) puts
    the same loss, ½·λ_max, in both directions.
    """
    kappa = _check_positive("kappa", kappa)
    lam_max = _check_positive("lam_max", lam_max)
    if kappa < 1:
        raise ValueError(f"the condition number kappa = λ_max/λ_min is at least 1, got {kappa}; "
                         "kappa = 1 is a round bowl, larger values make a narrower ravine")
    if not math.isfinite(angle):
        raise ValueError(f"angle must be a finite number of degrees, got {angle!r}")
    root = math.sqrt(kappa)
    return quadratic(f"ravine (κ = {kappa:g}" + (f", rotated {angle:g}°)" if angle % 180 else ")"),
                     (lam_max / kappa, lam_max), angle=angle, start=(-root, 1.0),
                     half_width=(1.15 * root, 1.6))


def scale_problem(scale: float = 100.0) -> Landscape:
    """½(scale·x² + y²/scale): at the start (1, 1) the x-gradient is scale² times the y-gradient."""
    scale = _check_positive("scale", scale)
    return quadratic(f"scale problem (gradients differ {scale ** 2:.0e}×)", (scale, 1.0 / scale),
                     start=(1.0, 1.0), half_width=(1.5, 1.5))


def rosenbrock(b: float = 100.0) -> Landscape:
    """Rosenbrock's banana (1 − x)² + b(y − x²)², minimum 0 at (1, 1) in a long curved valley."""
    b = _check_positive("b", b)

    def fn(point: torch.Tensor) -> torch.Tensor:
        x, y = point[..., 0], point[..., 1]
        return (1.0 - x) ** 2 + b * (y - x ** 2) ** 2

    return Landscape(f"Rosenbrock (b = {b:g})", fn, (1.0, 1.0), (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0))


@dataclass
class Run:
    """One optimizer run on a landscape: points (steps+1, 2) and losses (steps+1,) from the start on.

    A run that blew up stops early: ``diverged_at`` is the step whose loss was not finite or had
    grown more than ``blowup``-fold, and the arrays end just before it.
    """

    label: str
    trajectory: np.ndarray
    losses: np.ndarray
    min_value: float
    diverged_at: int | None = None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def gaps(self) -> np.ndarray:
        """Loss minus the landscape's minimum (≥ 0), one per step."""
        return np.maximum(self.losses - self.min_value, 0.0)

    @property
    def status(self) -> str:
        """A short phrase for legends: 'diverged at step 12' or 'gap 3.1e-07 after 200 steps'."""
        if self.diverged:
            return f"diverged at step {self.diverged_at}"
        return f"gap {self.gaps[-1]:.1e} after {len(self.losses) - 1} steps"


def _as_start(start: Sequence[float] | np.ndarray | torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    point = torch.as_tensor(np.asarray(start, dtype=np.float64)).to(dtype)
    if point.shape != (2,):
        raise ValueError(f"start must be a point (x, y), got shape {tuple(point.shape)}")
    if not torch.isfinite(point).all():
        raise ValueError(f"start must be finite, got {tuple(point.tolist())}: pick a point inside the landscape")
    return point


def run_optimizer(
    make_optimizer: MakeOptimizer,
    f: Landscape | Callable[[torch.Tensor], torch.Tensor],
    start: Sequence[float] | None = None,
    steps: int = 100,
    *,
    label: str | None = None,
    make_scheduler: MakeScheduler | None = None,
    dtype: torch.dtype = torch.float64,
    blowup: float = 1e6,
) -> Run:
    """Minimise ``f`` from ``start`` for ``steps`` steps with ``make_optimizer([point])``.

    ``make_optimizer`` gets the list of parameters, e.g. ``lambda p: torch.optim.SGD(p, lr=0.1)``;
    ``make_scheduler`` (optional) gets the optimizer and is stepped after every step.
    float64 by default, so runs can be compared to theory down to tiny losses.
    """
    positive_int("steps", steps, minimum=0)
    if start is None:
        if not isinstance(f, Landscape):
            raise ValueError("start is needed when f is a plain function (a Landscape brings its own)")
        start = f.start
    point = _as_start(start, dtype).requires_grad_(True)
    optimizer = make_optimizer([point])
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"make_optimizer must return a torch.optim.Optimizer, got {type(optimizer).__name__}; "
                        "write it as lambda params: MyOptimizer(params, lr=0.1)")
    scheduler = make_scheduler(optimizer) if make_scheduler is not None else None
    min_value = f.min_value if isinstance(f, Landscape) else 0.0
    trajectory = np.empty((steps + 1, 2))
    losses = np.empty(steps + 1)
    diverged_at = None
    for k in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = f(point)
        value = loss.item()
        if k == 0:
            if not math.isfinite(value):
                raise ValueError(f"the loss at the start {tuple(point.tolist())} is {value}: pick another start")
            limit = blowup * max(abs(value - min_value), 1.0)
        elif not math.isfinite(value) or abs(value - min_value) > limit:
            diverged_at = k
            break
        trajectory[k] = point.detach().numpy()
        losses[k] = value
        if k < steps:
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    end = steps + 1 if diverged_at is None else diverged_at
    return Run(label or type(optimizer).__name__, trajectory[:end], losses[:end], min_value, diverged_at)


def run_all(landscape: Landscape, makers: Mapping[str, MakeOptimizer], steps: int, **kwargs) -> dict[str, Run]:
    """:func:`run_optimizer` for each named optimizer, from the landscape's start."""
    return {label: run_optimizer(make, landscape, steps=steps, label=label, **kwargs)
            for label, make in makers.items()}


def is_diverging(run: Run) -> bool:
    """True when the run blew up or its loss gap was still growing over the second half of the run.

    A rule of thumb for section 1's sweep on the ravine, which brackets the edge between two of its learning rates;
    Exercise 5 asks you to choose your own test.
    """
    return run.diverged or bool(run.gaps[-1] > run.gaps[len(run.gaps) // 2])


def sweep_learning_rates(make_optimizer: Callable[[Sequence[torch.Tensor], float], torch.optim.Optimizer],
                         landscape: Landscape, lrs: Sequence[float], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Final loss gap (inf if blown up) and whether the run diverges (:func:`is_diverging`), per learning rate.

    ``make_optimizer(params, lr)`` builds the optimizer, e.g. ``lambda p, lr: SGD(p, lr=lr)``.
    """
    gaps, diverging = [], []
    for lr in lrs:
        run = run_optimizer(lambda params, lr=lr: make_optimizer(params, lr), landscape, steps=steps)
        gaps.append(math.inf if run.diverged else float(run.gaps[-1]))
        diverging.append(is_diverging(run))
    return np.array(gaps), np.array(diverging)


def weight_shrinkage_under_noise(make_optimizer: MakeOptimizer, sigmas: Sequence[float], *, steps: int = 1000,
                                 per_sigma: int = 256, seed: int = 0) -> np.ndarray:
    """Mean weight per gradient-noise level, all weights starting at 1; shape (steps+1, len(sigmas)).

    The loss carries no signal: every gradient is ``sigma · N(0, 1)``, so only weight decay pulls the
    weights toward 0 and the mean over ``per_sigma`` weights shows how fast it does.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = torch.ones(len(sigmas), per_sigma, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(list(sigmas), dtype=torch.float64)[:, None]
    optimizer = make_optimizer([weights])
    means = np.empty((steps + 1, len(sigmas)))
    means[0] = 1.0
    for k in range(1, steps + 1):
        weights.grad = scale * torch.randn(weights.shape, generator=generator, dtype=torch.float64)
        optimizer.step()
        means[k] = weights.detach().mean(dim=1).numpy()
    return means
