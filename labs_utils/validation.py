"""One validation vocabulary for every helper: the errors name the argument, what it got and what it needs.

    steps = positive_int("steps", steps)
    lr = finite_float("lr", lr, minimum=0.0)
    device = as_device(device)
"""
from __future__ import annotations

import math
from typing import Any

_DEVICES = ("cpu", "cuda", "mps")


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int at least ``minimum`` (bools refused), else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        need = "a positive int" if minimum == 1 else f"an int of at least {minimum}"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return value


def finite_float(name: str, value: Any, *, minimum: float | None = None, positive: bool = False) -> float:
    """``value`` as a finite float (``> 0`` with ``positive``, ``>= minimum`` with ``minimum``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")
    return number


def as_device(device: Any, *, what: str = "device") -> Any:
    """``device`` as a ``torch.device`` of a known type that this machine has (``cuda`` gets its index)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in _DEVICES:
        raise ValueError(f"{what}: unknown device {device!r}; use 'cpu', 'cuda' (or 'cuda:N') or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{what}: 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu'.")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError(f"{what}: 'mps' was asked for but torch sees no Apple GPU; use 'cpu'.")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev
