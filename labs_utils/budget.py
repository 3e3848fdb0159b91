"""Student calls with a time budget: a function that never returns fails its part instead of the whole check.

Every lab's probes call student code many times (Lab 3's ``step()`` and ``fit_rate``, Lab 2's Functions, Lab 1's
models). An endless loop in one of
them would otherwise hang the notebook's check (and the grader's probe until the cell's timeout, which
fails every exercise of the probe at once). :func:`call_within` arms a real-time timer (``SIGALRM``) around
one call; when it fires, the call is abandoned with an AssertionError that names it, and the probe goes on
with its next scenario. An error the student's code raises becomes an AssertionError as in
:func:`labs_utils.checking.call_student` (a ``RecursionError`` included).

The timer works in the main thread of a Unix process (Jupyter, Colab, the grader's kernel). Elsewhere
(Windows, a check run from a thread) calls run without a budget.
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class OverBudget(BaseException):
    """Raised inside the student's code when its time is up (a BaseException, so ``except Exception`` lets it by)."""


def _can_time() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise :class:`OverBudget` in this thread once ``seconds`` have passed (then every 0.2 s until it leaves)."""
    if not _can_time():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        if frame is not None and (frame.f_code is getattr(sys.getprofile(), "__code__", None)
                                  or frame.f_globals.get("__name__") == "labs_utils.tripwire"):
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.2)  # inside the trip-wires' hook: raise just after it
            return
        raise OverBudget()

    previous = signal.signal(signal.SIGALRM, expire)
    mode = grad_mode()
    start = time.monotonic()
    outer, outer_interval = signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 1e-3), 0.2)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        set_grad_mode(mode)  # the timer may have fired inside a `with torch.no_grad():` before it restored
        if outer > 0:  # a budget around this one (a check run inside a check): give back what it has left
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3), outer_interval)


def grad_mode() -> bool | None:
    """torch's grad mode in this thread (None before torch is imported: nothing to keep)."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.is_grad_enabled()


def set_grad_mode(enabled: bool | None) -> None:
    """Put the grad mode back: a timer's exception raised inside a ``with torch.no_grad():`` block, or student code
    that calls ``torch.set_grad_enabled(False)``, would otherwise leave gradients off for every later call (every
    later training step then fails with "element 0 of tensors does not require grad")."""
    torch = sys.modules.get("torch")
    if enabled is not None and torch is not None and torch.is_grad_enabled() != enabled:
        torch.set_grad_enabled(enabled)


def _restore(hook: Any) -> None:
    """Put the trip-wires' profile hook back after an exception raised inside it removed it (CPython drops a
    profile function that raises: the timer's exception, or a RecursionError, can land in the hook itself)."""
    if hook is not None and sys.getprofile() is None:
        sys.setprofile(hook)


def call_within(seconds: float, fn: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
    """``call_student(fn, *args, **kwargs)`` that fails (AssertionError) when it runs past ``seconds``.

    A call stopped by the timer, or one that recursed until Python's recursion limit, can take down the profile
    hook of the probe's trip-wires on the way (the exception may be raised inside the hook); the hook is put
    back, so the call is reported as what it was rather than as tampering with the trip-wires. A call that
    returns normally without the hook is left for the trip-wires to report.
    """
    from .checking import call_student

    hook = sys.getprofile()
    try:
        with time_budget(seconds):
            return call_student(fn, *args, what=what, **kwargs)
    except OverBudget:
        _restore(hook)
        raise AssertionError(
            f"{what} did not finish within {seconds:g} s, so the check stopped it.\n"
            "Hint: look for a loop that never ends (a `while` whose condition never changes) or a function that "
            "calls itself; each call of the check takes milliseconds.") from None
    except AssertionError as exc:
        if not isinstance(exc.__cause__, RecursionError):
            raise
        _restore(hook)
        raise AssertionError(
            f"{what} raised RecursionError: it called itself until Python's limit ({exc.__cause__}).\n"
            "Hint: look for a method that calls itself with nothing that stops it, e.g. step() calling self.step(), "
            "or update() calling self.step() (StudentOptimizer's step() calls update()).") from exc.__cause__


class Clock:
    """The time a probe has left in all: once spent, the remaining student calls are not made.

    A call that ran out of time makes the later ones shorter (a step that hangs once usually hangs again),
    so a check of code that always hangs still ends in seconds.
    """

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.timed_out = False  # after one call ran out of time, the next ones get a fifth of the budget

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def call(self, per_call: float, fn: Callable, *args: Any, what: str, **kwargs: Any) -> Any:
        """:func:`call_within` with the smaller of ``per_call`` and the time left (fails when none is left)."""
        left = self.left()
        if left <= 0:
            raise AssertionError(
                f"{what} was not run: earlier calls used up the check's {self.seconds:g} s.\n"
                "Hint: fix the calls that did not finish (see the other messages), then run the check again.")
        budget = min(per_call / 5 if self.timed_out else per_call, left)
        try:
            return call_within(budget, fn, *args, what=what, **kwargs)
        except AssertionError as exc:
            self.timed_out = self.timed_out or "did not finish within" in str(exc)
            raise


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block (a probe's tensors are tiny; on a busy machine torch's threads
    wait on each other, making a backward through a custom Function tens of times slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
