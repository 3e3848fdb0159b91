"""Checks of the gradient-checkpointing lab: its ``LAB`` and ``GRADING`` table, and the notebook's check functions.

``GRADING`` holds the two graded exercises (13 points). The dropout exercise (``checkpointed_forward_rng``) is
optional and ungraded: :func:`check_dropout_checkpointing` still checks it in the notebook, but neither the grader
nor ``summary()`` runs it.

Each exercise is a probe (runs the student's code in their kernel, records evidence) and a judge
(recomputes plain backprop from the same seed and compares, part by part): see
:mod:`.exercise_checkpointing`, :mod:`.exercise_dropout` and :mod:`.exercise_inplace`.
"""
from __future__ import annotations

from collections.abc import Callable

from ..checking import describe
from ..exercises import LabInfo, run_exercise
from .exercise_checkpointing import CHECKPOINTING
from .exercise_dropout import DROPOUT
from .exercise_inplace import IN_PLACE

__all__ = ["check_checkpointing", "check_dropout_checkpointing", "check_inplace_checkpointing"]

LAB = LabInfo(2, "gradient checkpointing", "lab2_checkpointing")

GRADING = [CHECKPOINTING, IN_PLACE]  # DROPOUT: optional, ungraded (checked by check_dropout_checkpointing only)


def check_checkpointing(fn: Callable) -> None:
    """Check ``checkpointed_forward(blocks, x, segment_size)`` against plain backprop, part by part."""
    run_exercise(CHECKPOINTING, (fn,))


def check_dropout_checkpointing(fn: Callable) -> bool:
    """Check ``checkpointed_forward_rng(blocks, x, segment_size)``: dropout's gradients equal plain backprop's.

    The exercise is optional and ungraded (it is not in ``GRADING``): not implemented yet, it prints that it was
    skipped and returns False, so Run All goes on; an attempt that fails raises as every check does."""
    try:
        run_exercise(DROPOUT, (fn,), graded=False)
    except AssertionError as error:
        if "not implemented yet" not in str(error):
            raise
        print(f"Exercise 2 (optional, ungraded) skipped: {describe(fn)} is not implemented.")
        return False
    return True


def check_inplace_checkpointing(fn: Callable) -> None:
    """Check ``checkpointed_forward_inplace(blocks, x, segment_size)`` on segments that overwrite their input."""
    run_exercise(IN_PLACE, (fn,))
