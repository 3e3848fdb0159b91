"""A small MNIST classifier trained with the student's optimizers: model, training runs, data splits.

Choices (learning rates) are made on a validation split carved from the training digits; the test
set is used once, for the final comparison (``evaluate_on="test"``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import load_mnist, tensor_loader
from ..runtime import set_seed
from ..training import History, accuracy, evaluate, fit
from ..validation import as_device, positive_int

MakeOptimizer = Callable[[Iterable[torch.Tensor]], torch.optim.Optimizer]
VALIDATION_FRACTION = 0.2  # of the training digits, held out for choices


def make_classifier() -> nn.Module:
    """784 → 256 → 10 multilayer perceptron with ReLU; input (N, 1, 28, 28), output logits (N, 10)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))


def split_training_digits(digits: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """((train images, labels), (validation images, labels)) from the first ``digits`` training digits.

    The last ``VALIDATION_FRACTION`` of them are the validation split (the bundled splits are shuffled).
    """
    images, labels = load_mnist("train", limit=positive_int("digits", digits))
    cut = len(images) - int(VALIDATION_FRACTION * len(images))
    return (images[:cut], labels[:cut]), (images[cut:], labels[cut:])


@dataclass
class TrainingRun:
    """One training run: the model, its per-epoch history and its final accuracies (fractions in [0, 1])."""

    model: nn.Module
    history: History  # val_* entries are on the evaluation set (validation or test)
    train_accuracy: float
    eval_accuracy: float


def train_classifier(make_optimizer: MakeOptimizer, *, epochs: int, digits: int, seed: int = 0,
                     device: torch.device | str = "cpu", evaluate_on: str = "validation", batch_size: int = 128,
                     progress: bool = False, desc: str = "training") -> TrainingRun:
    """Train :func:`make_classifier` with ``make_optimizer(model.parameters())`` on the training split.

    ``seed`` fixes the initial weights and the order of the batches. ``evaluate_on``: "validation"
    (the held-out part of the training digits, for choices) or "test" (the test set, for final numbers).
    """
    if evaluate_on not in ("validation", "test"):
        raise ValueError(f"evaluate_on must be 'validation' or 'test', got {evaluate_on!r}")
    device = as_device(device)
    (x_train, y_train), validation = split_training_digits(digits)
    x_eval, y_eval = validation if evaluate_on == "validation" else load_mnist("test")
    set_seed(seed)
    model = make_classifier().to(device)
    train_loader = tensor_loader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed)
    eval_loader = tensor_loader(x_eval, y_eval, batch_size=512)
    loss_fn = nn.CrossEntropyLoss()
    history = fit(model, train_loader, loss_fn, make_optimizer(model.parameters()), epochs=epochs, device=device,
                  val_loader=eval_loader, metrics={"accuracy": accuracy}, progress=progress, desc=desc)
    train_acc = evaluate(model, tensor_loader(x_train, y_train, batch_size=512), loss_fn,
                         metrics={"accuracy": accuracy})["accuracy"]
    return TrainingRun(model, history, train_acc, history.val_metrics["accuracy"][-1])


def with_step_factor(make_optimizer: MakeOptimizer, factor: Callable[[int], float]) -> MakeOptimizer:
    """``make_optimizer`` whose learning rates are multiplied by ``factor(t)`` at step t = 1, 2, ...

    E.g. a linear warm-up over 100 steps: ``factor = lambda t: min(1.0, t / 100)``.
    """
    def make(params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        optimizer = make_optimizer(params)
        base = [group["lr"] for group in optimizer.param_groups]
        original, steps = optimizer.step, [0]

        def step(closure: Callable | None = None) -> Any:
            steps[0] += 1
            for group, lr in zip(optimizer.param_groups, base):
                group["lr"] = lr * factor(steps[0])
            return original(closure) if closure is not None else original()

        optimizer.step = step
        return optimizer
    return make


def compare_with_torch(pairs: Mapping[str, tuple[MakeOptimizer, MakeOptimizer]], *, digits: int = 4_000,
                       device: torch.device | str = "cpu") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (your per-batch losses, torch's) over one epoch from the same start and the same batches."""
    return {name: tuple(np.array(train_classifier(make, epochs=1, digits=digits, device=device).history.step_loss)
                        for make in (mine, theirs))
            for name, (mine, theirs) in pairs.items()}


def fast_note() -> str:
    """A line to print next to measured claims: empty in full mode, a warning in fast mode (LABS_FAST / CI)."""
    from .. import runtime

    return runtime.fast_note("shrunk runs")


def accuracy_summary(accuracies: Iterable[float], n_digits: int) -> str:
    """"mean % [lowest–highest over seeds] ±s" for accuracies (fractions); ±s: 2 standard errors of one run's
    accuracy from the finite test set alone (binomial, ``n_digits`` digits)."""
    values = 100 * np.asarray(list(accuracies), dtype=float)
    p = values.mean() / 100
    sampling = 200 * np.sqrt(p * (1 - p) / positive_int("n_digits", n_digits))
    return f"{values.mean():6.2f} % [{values.min():.2f}–{values.max():.2f}] ±{sampling:.2f}"
