"""Lab 0 has no graded exercise: it checks the student's packages, device and data."""
from __future__ import annotations

from ..checking import Exercise, LabInfo

__all__: list[str] = []

LAB = LabInfo(0, "set-up check", "lab0_setup_check")
GRADING: list[Exercise] = []
