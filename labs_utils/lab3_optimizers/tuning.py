"""How much tuning an optimizer needs, and whether two optimizers really differ: sweeps scored on validation and a
paired comparison over the same test digits.

- :func:`lr_sweep` trains the MNIST classifier for every (optimizer, learning rate, seed) and returns validation
  accuracies; :func:`good_range` and :func:`format_good_ranges` read off how wide the range of learning rates is
  whose accuracy clears an absolute bar, for every seed and per seed (the spread of that width);
- :func:`grid_sweep` does the same over a grid of (learning rate, weight decay);
- :func:`correct_digits` and :func:`paired_difference` compare two optimizers on the *same* test digits: the
  difference in accuracy with a paired bootstrap over digits, and the spread of the difference over seeds.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from ..data import load_mnist
from ..training import progress
from .mnist import MakeOptimizer, TrainingRun, split_training_digits, train_classifier

MakerOfLr = Callable[[float], MakeOptimizer]


def lr_sweep(makers: Mapping[str, MakerOfLr], lrs: Sequence[float], seeds: Sequence[int], *, epochs: int,
             digits: int, device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """name -> validation accuracy in % of shape (len(seeds), len(lrs)); ``makers[name](lr)`` is a make_optimizer."""
    jobs = [(name, s, i) for name in makers for s in range(len(seeds)) for i in range(len(lrs))]
    found = {name: np.zeros((len(seeds), len(lrs))) for name in makers}
    for name, s, i in progress(jobs, f"{len(jobs)} training runs of {epochs} epochs"):
        run = train_classifier(makers[name](float(lrs[i])), epochs=epochs, digits=digits, seed=seeds[s], device=device)
        found[name][s, i] = 100 * run.eval_accuracy
    return found


def good_range(lrs: Sequence[float], accuracies: np.ndarray, bar: float) -> tuple[float, float] | None:
    """(lowest, highest) learning rate of the widest unbroken run of ascending ``lrs`` whose accuracy is ≥ ``bar``
    (1-D accuracies; a good lr cut off from it by a bad one does not count), or None when none is good."""
    lrs, good = np.asarray(lrs, dtype=float), np.asarray(accuracies) >= bar
    best, start = None, None
    for i in range(len(lrs) + 1):
        if i < len(lrs) and good[i]:
            start = i if start is None else start
        elif start is not None:
            if best is None or lrs[i - 1] / lrs[start] > best[1] / best[0]:
                best = (float(lrs[start]), float(lrs[i - 1]))
            start = None
    return best


def width(found: tuple[float, float] | None) -> float:
    """How many times larger the highest good learning rate is than the lowest (0 when none is good)."""
    return 0.0 if found is None else found[1] / found[0]


def format_good_ranges(lrs: Sequence[float], sweep: Mapping[str, np.ndarray], bars: Sequence[float]) -> str:
    """A table: per bar and optimizer, the range good for every seed, its width, and the per-seed widths' spread."""
    lines = [f"{'bar':>5} | {'optimizer':<24} {'good for every seed':<22} {'width':>7} | "
             f"{'width per seed: lowest–highest':<30}"]
    for bar in bars:
        for name, accs in sweep.items():
            every = good_range(lrs, accs.min(axis=0), bar)
            per_seed = [width(good_range(lrs, row, bar)) for row in accs]
            shown = "none" if every is None else f"{every[0]:.2g} to {every[1]:.2g}"
            lines.append(f"{bar:>4g}% | {name:<24} {shown:<22} {_times(width(every)):>7} | "
                         f"{_times(min(per_seed))}–{_times(max(per_seed))}")
    return "\n".join(lines)


def _times(factor: float) -> str:
    return "none" if factor == 0 else f"{factor:.3g}x"


def grid_sweep(make: Callable[[float, float], MakeOptimizer], lrs: Sequence[float], decays: Sequence[float], *,
               epochs: int, digits: int, seed: int = 0, device: torch.device | str = "cpu",
               desc: str = "grid") -> np.ndarray:
    """Validation accuracy in % of shape (len(decays), len(lrs)); ``make(lr, weight_decay)`` is a make_optimizer."""
    found = np.zeros((len(decays), len(lrs)))
    for (d, decay), (i, lr) in progress([(d, i) for d in enumerate(decays) for i in enumerate(lrs)], desc):
        found[d, i] = 100 * train_classifier(make(float(lr), float(decay)), epochs=epochs, digits=digits, seed=seed,
                                             device=device).eval_accuracy
    return found


@torch.no_grad()
def correct_digits(run: TrainingRun, on: str = "test", digits: int | None = None) -> np.ndarray:
    """Whether the run's model classifies each digit right (bool, one per digit of the test or validation set)."""
    if on == "test":
        images, labels = load_mnist("test")
    elif digits is not None:
        images, labels = split_training_digits(digits)[1]
    else:
        raise ValueError("the validation set needs the number of training digits the run used")
    model = run.model.eval()
    device = next(model.parameters()).device
    predicted = torch.cat([model(images[i:i + 512].to(device)).argmax(1).cpu() for i in range(0, len(images), 512)])
    return (predicted == labels).numpy()


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, *, draws: int = 4_000,
                      seed: int = 0) -> dict[str, float]:
    """A minus B in accuracy points on the same digits (arrays (seeds, digits) of bool).

    ``mean``: the difference of the seed-averaged accuracies; ``low``/``high``: its 95 % paired-bootstrap interval
    over digits (the same digits drawn for both); ``seed_low``/``seed_high``: the smallest and largest difference of
    a single seed; ``only_a``/``only_b``: digits (averaged over seeds) that only A / only B gets right (McNemar's
    discordant counts per seed); ``p_low``/``p_high``: the smallest and largest p-value of McNemar's exact test, one
    test per seed (the seeds score the same digits, so their discordant digits are not independent: never pool them).
    """
    a, b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
    only_a, only_b = int((a * (1 - b)).sum()), int((b * (1 - a)).sum())
    p_values = [mcnemar_p(int((ra * (1 - rb)).sum()), int((rb * (1 - ra)).sum())) for ra, rb in zip(a, b)]
    per_digit = a.mean(axis=0) - b.mean(axis=0)
    rng = np.random.default_rng(seed)
    n = per_digit.size
    boot = np.array([per_digit[rng.integers(0, n, n)].mean() for _ in range(draws)])
    per_seed = 100 * (a.mean(axis=1) - b.mean(axis=1))
    return {"mean": 100 * per_digit.mean(), "low": 100 * np.quantile(boot, 0.025),
            "high": 100 * np.quantile(boot, 0.975), "seed_low": float(per_seed.min()),
            "seed_high": float(per_seed.max()), "only_a": only_a / len(a), "only_b": only_b / len(a),
            "p_low": min(p_values), "p_high": max(p_values)}


def mcnemar_p(only_a: int, only_b: int) -> float:
    """McNemar's exact two-sided p-value: under "no difference" each discordant digit is a fair coin flip."""
    n, k = only_a + only_b, min(only_a, only_b)
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
