"""Checks of the checkpointing lab (to be written)."""
from __future__ import annotations

from ._common import Exercise

__all__: list = []

GRADING: list = []  # the lab's graded exercises: [Exercise(name, points, needs, check), ...]
_ = Exercise
