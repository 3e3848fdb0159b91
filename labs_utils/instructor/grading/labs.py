"""The labs as the grader sees them (found in the wings once, at the command line) and telling which lab a
submission is."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ...exercises import Exercise, discover_labs
from .submissions import Cell, defined_names

__all__ = ["Lab", "detect_lab", "discover_labs", "load_labs"]


@dataclass(frozen=True)
class Lab:
    """A lab: its number, title, and graded exercises, which the kernel imports as ``module.table``."""

    number: int
    title: str
    module: str | None  # the checks module the kernel imports afresh (None: nothing graded)
    exercises: tuple[Exercise, ...] = ()
    table: str = "GRADING"  # the module's attribute holding the exercises

    @property
    def max_points(self) -> float:
        return float(sum(ex.points for ex in self.exercises))


def load_labs() -> tuple[Lab, ...]:
    """The course's labs with their grading tables (imports every wing's checks, hence torch)."""
    labs = []
    for number, checks in discover_labs().items():
        grading = tuple(checks.GRADING)
        wrong = [ex for ex in grading if not isinstance(ex, Exercise)]
        if wrong:
            raise TypeError(f"{checks.__name__}.GRADING holds {type(wrong[0]).__name__}, not exercises.Exercise")
        labs.append(Lab(number, checks.LAB.title, checks.__name__ if grading else None, grading))
    return tuple(labs)


def detect_lab(cells: Sequence[Cell], file_name: str, labs: Sequence[Lab],
               forced: int | None) -> tuple[int | None, list[str]]:
    """(lab number or None, notes): from ``forced``, else the exercise names the code defines, else the file name."""
    defined = set().union(*(defined_names(c.source) for c in cells if c.cell_type == "code"))
    owners: dict[str, set[int]] = {}
    for lab in labs:
        for ex in lab.exercises:
            for name in ex.needs:
                owners.setdefault(name, set()).add(lab.number)
    scores = {lab.number: sorted({n for ex in lab.exercises for n in ex.needs
                                  if n in defined and owners[n] == {lab.number}}) for lab in labs}
    best = max(scores, key=lambda n: len(scores[n]), default=None)
    tied = [n for n in scores if len(scores[n]) == len(scores.get(best, ()))]
    by_content = best if best is not None and scores[best] and len(tied) == 1 else None
    match = re.search(r"lab[\s_-]*(\d+)", file_name, re.IGNORECASE)
    by_name = int(match.group(1)) if match and int(match.group(1)) in {lab.number for lab in labs} else None
    notes = []
    if forced is not None:
        if by_content is not None and by_content != forced:
            notes.append(f"this looks like lab {by_content}'s notebook (it defines {', '.join(scores[by_content])}),"
                         f" not lab {forced}'s: was the right file submitted?")
        return forced, notes
    if by_content is not None:
        if by_name is not None and by_name != by_content:
            notes.append(f"the file name says lab {by_name} but the code is lab {by_content}'s; graded as lab "
                         f"{by_content}")
        return by_content, notes
    return by_name, notes
