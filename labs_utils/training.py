"""One training loop for every lab: ``fit`` (with a tqdm progress bar) and ``evaluate``."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

BatchFn = Callable[[Any], tuple[torch.Tensor, torch.Tensor]]
MetricFn = Callable[[torch.Tensor, torch.Tensor], float]


@dataclass
class History:
    """Per-epoch results of :func:`fit` (losses are means per sample); drawn by ``plot_history``."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_metrics: dict[str, list] = field(default_factory=dict)
    step_loss: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """Number of epochs trained."""
        return len(self.train_loss)


def supervised_batch(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) -> (input, target): the default for classifiers."""
    return batch[0], batch[1]


def reconstruction_batch(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader batch ``(images,)`` (or ``(images, labels)``) -> ``(images, images)``: the target of an
    autoencoder is its input (Lab 1; its loaders yield images only, and anything after them is ignored)."""
    return batch[0], batch[0]


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return (outputs.argmax(dim=1) == targets).float().mean().item()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (cpu for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _check_fit_args(model: Any, loader: Any, epochs: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit needs an nn.Module as model, got {type(model).__name__}")
    if not isinstance(loader, Iterable):
        raise TypeError(f"train_loader must be iterable (a DataLoader), got {type(loader).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    device: torch.device | str | None = None,
    batch_fn: BatchFn = supervised_batch,
    metrics: dict[str, MetricFn] | None = None,
) -> dict[str, float]:
    """Mean loss (and metrics) per sample over ``loader`` in eval mode; returns {"loss": ..., name: ...}."""
    device = torch.device(device) if device is not None else model_device(model)
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {"loss": 0.0, **{name: 0.0 for name in (metrics or {})}}
    count = 0
    try:
        for batch in loader:
            inputs, targets = batch_fn(batch)
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            n = len(inputs)
            totals["loss"] += loss_fn(outputs, targets).item() * n
            for name, metric in (metrics or {}).items():
                totals[name] += float(metric(outputs, targets)) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got an empty loader: check the dataset size and batch_size")
    return {name: total / count for name, total in totals.items()}


def fit(
    model: nn.Module,
    train_loader: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device | str | None = None,
    val_loader: Iterable | None = None,
    batch_fn: BatchFn = supervised_batch,
    metrics: dict[str, MetricFn] | None = None,
    progress: bool = True,
    desc: str = "training",
) -> History:
    """Train ``model`` for ``epochs`` epochs and return a :class:`History`.

    ``batch_fn`` turns a loader batch into ``(inputs, targets)``: use ``reconstruction_batch``
    for autoencoders, or a function that corrupts the inputs for denoisers (Lab 1).
    With ``val_loader`` the loss (and ``metrics``) on it is recorded after every epoch.
    A non-finite loss stops training with an error that suggests a smaller learning rate.
    """
    _check_fit_args(model, train_loader, epochs)
    device = torch.device(device) if device is not None else model_device(model)
    model.to(device)
    history = History(val_metrics={name: [] for name in (metrics or {})})
    try:
        steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
    except TypeError:
        steps_per_epoch = None
    total = steps_per_epoch * epochs if steps_per_epoch is not None else None
    start = time.perf_counter()
    bar = tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=True)
    try:
        for epoch in range(1, epochs + 1):
            model.train()
            running, count = 0.0, 0
            for batch in train_loader:
                inputs, targets = batch_fn(batch)
                inputs, targets = inputs.to(device), targets.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(inputs), targets)
                loss.backward()
                optimizer.step()
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"The training loss became {value} in epoch {epoch}: the learning rate is probably "
                        "too large for this model; try a value 3-10x smaller."
                    )
                history.step_loss.append(value)
                running += value * len(inputs)
                count += len(inputs)
                bar.update(1)
                bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{running / count:.4f}", refresh=False)
            if count == 0:
                raise ValueError("fit got an empty train_loader: check the dataset size and batch_size")
            history.train_loss.append(running / count)
            if val_loader is not None:
                result = evaluate(model, val_loader, loss_fn, device=device, batch_fn=batch_fn, metrics=metrics)
                history.val_loss.append(result["loss"])
                for name in history.val_metrics:
                    history.val_metrics[name].append(result[name])
                bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{running / count:.4f}",
                                val_loss=f"{result['loss']:.4f}", refresh=False)
    finally:
        bar.close()
        history.seconds = time.perf_counter() - start
        if progress:
            leave_text(bar)  # how many steps, the last losses
    return history


def progress(items: Iterable, desc: str) -> Iterator:
    """``for item in progress(items, "what"):`` -- a progress bar over ``items`` that, in a notebook, leaves its
    last state as text when the loop ends (:func:`leave_text`)."""
    bar = tqdm(items, desc=desc)
    try:
        yield from bar
    finally:
        bar.close()
        leave_text(bar)


def leave_text(bar: Any) -> None:
    """After a progress bar closed: print a notebook widget's last state as text. A notebook saves the widget with
    the text it had when it appeared ("0%"), so a saved notebook would show every run stalled; a console bar has
    written its last state to stderr itself, and prints nothing more."""
    if _is_widget(bar):
        print(bar)


def _is_widget(bar: Any) -> bool:
    """Whether ``bar`` is tqdm's notebook widget (what ``tqdm.auto`` gives in a Jupyter kernel)."""
    try:
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:  # pragma: no cover - a tqdm without its notebook module
        return False
    return isinstance(bar, notebook_tqdm)


def count_parameters(model: nn.Module) -> int:
    """Lab 1: number of trainable parameters (scalars)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)



@torch.no_grad()
def apply_in_batches(module: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                     batch_size: int = 500) -> torch.Tensor:
    """Lab 1: ``module(inputs)`` in eval mode, batch by batch, on the module's device; result on the CPU.

    Works for a whole autoencoder (images -> images), an encoder (images -> codes) or a decoder.
    """
    device = model_device(module) if isinstance(module, nn.Module) else torch.device("cpu")
    was_training = getattr(module, "training", False)
    if isinstance(module, nn.Module):
        module.eval()
    try:
        outputs = [module(chunk.to(device)).cpu() for chunk in inputs.split(batch_size)]
    finally:
        if isinstance(module, nn.Module):
            module.train(was_training)
    return torch.cat(outputs)
