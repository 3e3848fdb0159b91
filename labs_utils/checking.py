"""Shared machinery of the exercise checks: calling student code, comparing, reporting.

A check never embeds the solution: it compares against public references (torch.optim,
plain backprop, torch.utils.checkpoint) or properties. On failure it raises AssertionError
with what was expected, what was found and a hint; an exception raised inside the
student's code becomes an AssertionError that names it.
"""
from __future__ import annotations

import inspect
import linecache
import os
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .budget import OverBudget, grad_mode, set_grad_mode, time_budget
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


class TimeLimitExceeded(AssertionError):
    """Student code that ran past its time limit (see :func:`time_limit`)."""


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` in the code inside the block once it has run ``seconds`` (wall clock).

    The core timer (:func:`labs_utils.budget.time_budget`, SIGALRM): it works in the main thread on POSIX systems
    (a notebook's kernel, the grader's kernel, pytest); elsewhere the block runs without a limit. A loop of Python
    code stops at once; a single long torch operation stops when it returns.
    """
    if seconds is None:
        yield
        return
    try:
        with time_budget(seconds):
            yield
    except OverBudget:
        raise TimeLimitExceeded(with_hint(
            f"{what} did not finish within {seconds:g} s.",
            "Look for a loop that never ends (a while loop whose condition never changes), or far more work "
            "than the exercise needs: the check calls it on a few small batches, which takes well under a second."
        )) from None


def _library_folders() -> tuple[str, ...]:
    """Folders whose code is not the student's: this package, torch, Python's library and installed packages."""
    paths = sysconfig.get_paths()
    folders = {os.path.dirname(os.path.abspath(__file__)), os.path.dirname(os.path.abspath(torch.__file__)),
               *(os.path.abspath(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths)}
    return tuple(folder + os.sep for folder in folders)


def student_line(exc: BaseException) -> str | None:
    """The innermost line of the student's own code in ``exc``'s traceback, e.g. ``line 7, `return x + y```.

    None when the traceback holds no such line (the error came from the check's own arguments, or from torch
    called directly).
    """
    folders = _library_folders()
    found = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if not os.path.abspath(filename).startswith(folders) and not filename.startswith("<frozen"):
            found = (filename, lineno)
    if found is None:
        return None
    code = linecache.getline(*found).strip()
    return f"line {found[1]}" + (f", `{code}`" if code else "")


def _crash_hint(exc: BaseException) -> str:
    """What a student can do about an exception their code raised (the check's traceback does not show their code)."""
    if isinstance(exc, RecursionError):
        return ("Your code calls itself without end: e.g. a forward that calls self(x) or self.forward(x), or a "
                "function that calls itself instead of the layer or function of the same name.")
    line = student_line(exc)
    if line is None:
        return "Read the error message above: it says which operation failed and why, often with the shapes involved."
    return f"It was raised at {line} of your code (the traceback shows only the check: this is the line to fix)."


def call_student(fn: Callable, *args: Any, what: str | None = None, seconds: float | None = None,
                 **kwargs: Any) -> Any:
    """Call student code; turn any exception it raises into an AssertionError that names it and the line of the
    student's code that raised it. With ``seconds``, a call still running after that long is stopped with
    :class:`TimeLimitExceeded` (see :func:`time_limit`)."""
    label = what or f"{describe(fn)}(...)"
    if not callable(fn):
        fail(f"Expected a function or class, got {type(fn).__name__} ({fn!r:.60}).",
             "Pass the function itself (no parentheses), e.g. check(my_function).")
    mode = grad_mode()
    try:
        with time_limit(seconds, label):
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
        raise AssertionError(with_hint(f"{label} raised {type(exc).__name__}: {exc}", _crash_hint(exc))) from exc
    finally:
        set_grad_mode(mode)  # student code that switched gradients off: not for the check's later calls


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


def tensor_difference(actual: Any, expected: torch.Tensor) -> float | None:
    """Max |difference| from ``expected``, or None when ``actual`` is no finite tensor of the expected shape."""
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape or not torch.isfinite(actual).all():
        return None
    return max_abs_diff(actual, expected)
