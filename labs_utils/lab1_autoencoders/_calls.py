"""Calling the student's code from Lab 1's probes: each call under a time limit, and none after it timed out.

A probe makes many calls into the same student code; once one of them ran out of time, the others would
likely too, so they fail at once with the same message instead of each waiting for its own limit. Calls of
other student code (a model's encoder, after its forward hung) go on.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..checking import TimeLimitExceeded, call_student

CALL_SECONDS = 20.0  # one call of student code on a probe's small batches takes milliseconds (a busy
# grading machine may be many times slower): only a hang runs this long


class StudentCalls:
    """``calls = StudentCalls(); calls(fn, *args, what="fn(x)")``: :func:`call_student` with a time limit."""

    def __init__(self) -> None:
        self.timed_out: dict[int, str] = {}  # id of the student's code -> the message of its time-out

    def __call__(self, fn: Callable, *args: Any, what: str, seconds: float | None = None, student: Any = None,
                 **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` under a limit of ``seconds`` (by default CALL_SECONDS). ``student``: the
        student's code that ``fn`` runs, when ``fn`` is the probe's own (e.g. a training loop over a model)."""
        key = id(fn if student is None else student)
        if key in self.timed_out:
            raise AssertionError(self.timed_out[key])
        try:
            return call_student(fn, *args, what=what, seconds=seconds or CALL_SECONDS, **kwargs)
        except TimeLimitExceeded as exc:
            self.timed_out[key] = str(exc)
            raise
