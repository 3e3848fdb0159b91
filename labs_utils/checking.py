"""Shared machinery of the exercise checks: calling student code, comparing, reporting.

A check never embeds the solution: it compares against public references (torch.optim,
plain backprop, torch.utils.checkpoint) or properties. On failure it raises AssertionError
with what was expected, what was found and a hint; an exception raised inside the
student's code becomes an AssertionError that names it.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Callable

import torch

from .exercises import Exercise, LabInfo, Part  # noqa: F401  (the check machinery's vocabulary)


def with_hint(message: str, hint: str | None = None) -> str:
    """The text a student sees: what went wrong, then ``Hint: ...`` on its own line (when there is a hint)."""
    return f"{message}\nHint: {hint}" if hint else message


def fail(message: str, hint: str | None = None) -> None:
    """Raise the AssertionError a student sees: what went wrong, then a hint."""
    raise AssertionError(with_hint(message, hint))


def describe(fn: Any) -> str:
    """The student's function or class as it appears in their notebook, e.g. ``add_gaussian_noise``."""
    return getattr(fn, "__name__", None) or type(fn).__name__


def call_student(fn: Callable, *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call student code; turn any exception it raises into an AssertionError that names it."""
    label = what or f"{describe(fn)}(...)"
    if not callable(fn):
        fail(f"Expected a function or class, got {type(fn).__name__} ({fn!r:.60}).",
             "Pass the function itself (no parentheses), e.g. check(my_function).")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(
            f"{label} is not implemented yet (it raised NotImplementedError).\n"
            "Hint: replace `raise NotImplementedError()` in the exercise cell with your code, run that cell, "
            "then run this check again."
        ) from None
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(
            f"{label} raised {type(exc).__name__}: {exc}\n"
            "Hint: the traceback above points at the line of your code that failed."
        ) from exc


def require_parameters(fn: Callable, names: Sequence[str], example: str) -> None:
    """Fail unless ``fn`` accepts the named parameters (its signature as the exercise asks)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return  # builtins and C functions: nothing to inspect, let the calls decide
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    missing = [n for n in names if n not in params]
    if missing:
        fail(f"{describe(fn)} has no parameter(s) {', '.join(missing)}; its signature is {describe(fn)}"
             f"{inspect.signature(fn)}.", f"The exercise asks for {example}.")


def max_abs_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute element-wise difference, computed in float64 (0.0 for empty tensors)."""
    return (actual.detach().double() - expected.detach().double()).abs().max().item() if actual.numel() else 0.0


def assert_close(
    actual: Any,
    expected: torch.Tensor,
    *,
    what: str,
    atol: float,
    rtol: float = 0.0,
    hint: str | None = None,
) -> float:
    """Compare a student's tensor with a reference; returns the max absolute difference.

    The message gives both numbers and what "good" looks like (CS231n style).
    """
    if not isinstance(actual, torch.Tensor):
        fail(f"{what}: expected a torch.Tensor, got {type(actual).__name__}.", hint)
    if actual.shape != expected.shape:
        fail(f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}.", hint)
    if not torch.isfinite(actual).all():
        fail(f"{what}: contains NaN or inf.", hint)
    diff = max_abs_diff(actual, expected)
    bound = atol + rtol * expected.detach().abs().max().item()
    if diff > bound:
        fail(f"{what}: max |difference| from the reference is {diff:.3g} (should be below {bound:.1g}).", hint)
    return diff


def passed(check_name: str, details: str = "") -> None:
    """Print the one-line success message (stable text, so nbval can compare it)."""
    print(f"\u2714 {check_name} passed" + (f": {details}" if details else ""))
