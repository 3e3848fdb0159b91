"""``StudentOptimizer``: the scaffold the optimizer exercises share, so each exercise is its update rule.

Exercise 1 (SGD) shows the whole ``torch.optim.Optimizer`` scaffold; the other optimizers subclass this one,
which does what is the same in all of them and nothing else:

- ``__init__(params, **hyperparameters)`` checks every hyperparameter (with torch.optim's rules, in
  the words of :mod:`labs_utils.validation`) and stores them as the groups' defaults;
- ``step(closure=None)`` runs the closure (if any) with gradients on, then calls ``self.update()``
  under ``torch.no_grad()`` and returns the closure's loss.

What the checks grade stays in the subclass's ``update()``: the loop over ``self.param_groups``,
hyperparameters read from each group, skipping parameters whose ``.grad`` is None, and the state
kept per parameter in ``self.state[p]``. The notebook's stubs give that loop and the state's set-up
(and Exercise 1's loop in ``step()``), so the student writes the update lines and the reads of the group's
hyperparameters.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..validation import finite_float

# hyperparameter -> (lowest allowed, highest allowed, highest included?)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "lr": (0.0, float("inf"), True),
    "momentum": (0.0, 1.0, False),
    "alpha": (0.0, 1.0, True),
    "beta": (0.0, 1.0, False),
    "eps": (0.0, float("inf"), True),
    "weight_decay": (0.0, float("inf"), True),
}


def check_hyperparameter(name: str, value: Any) -> Any:
    """``value`` if it is a valid ``name`` (``betas`` is a pair of betas), else ValueError naming it."""
    if name == "betas":
        if not (isinstance(value, (tuple, list)) and len(value) == 2):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {value!r}")
        return tuple(check_hyperparameter("beta", beta) for beta in value)
    low, high, closed = _RANGES.get(name, (-float("inf"), float("inf"), True))
    number = finite_float(name, value, minimum=low if low > -float("inf") else None)
    if number > high or (number == high and not closed):
        raise ValueError(f"{name} must be {'at most' if closed else 'below'} {high:g}, got {value!r}")
    return value


class StudentOptimizer(torch.optim.Optimizer):
    """Base class of the exercises after SGD: validation and closure done, ``update()`` left to write.

    ``Momentum(StudentOptimizer)`` passes its hyperparameters by name,
    ``super().__init__(params, lr=lr, momentum=momentum)``, and implements ``update(self)``.
    """

    def __init__(self, params: Iterable[Any], **hyperparameters: Any):
        for name, value in hyperparameters.items():
            check_hyperparameter(name, value)
        super().__init__(params, hyperparameters)

    def update(self) -> None:
        """Update every parameter that has a gradient, in place (runs under torch.no_grad())."""
        raise NotImplementedError()

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One optimisation step; ``closure`` (optional) recomputes the loss and its gradients first."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self.update()
        return loss
