"""Manual points for the written answers, merged into the gradebook; student ids for an LMS.

    points = read_manual(Path("lab1_manual.csv"), students={"alice", "bob"}, questions={"lab1-Q1", ...},
                         max_points=2)                  # ManualPointsError: nothing read, every bad row named
    feedback_lines(points, "alice", 1)                  # ["Written answers: 3.5 points", "- Q1: 2 (...)"]
    student_id(Path("subs/alice_lab1.ipynb"), root=Path("subs"))   # "alice"

The CSV is the template :mod:`.answers` writes (``student,question,points,comment``), filled in with any
spreadsheet: a UTF-8 byte-order mark, ``;`` or tab separators, CRLF line ends, a decimal comma, blank rows and
empty trailing columns (Excel's habits) are accepted; anything else that is wrong is an error naming the row
(as a spreadsheet numbers it, the header being row 1) and the fix. A file with any error yields nothing.
"""
from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .answers import MANUAL_HEADER

MaxPoints = float | Mapping[str, float] | None  # one maximum for every question, or per question key
_FORMULA_GUARD = re.compile(r"^'(?=[=+\-@\t\r])")  # the quote answers.csv_safe adds before a leading "=" etc.
_DECIMAL_COMMA = re.compile(r"^\d+,\d+$")
_QUESTION_KEY = re.compile(r"^lab(\d+)-(review-\w+|\w+)$")
REVIEW = "review-"  # a question key lab<N>-review-<exercise>: releases an exercise the screen withheld


def review_key(lab: int, exercise: str) -> str:
    """The manual-points question that releases exercise ``exercise`` of lab ``lab`` after review: the points
    given there replace the withheld exercise's 0 (e.g. ``lab3-review-Convergence_rate``)."""
    slug = re.sub(r"\W+", "_", exercise).strip("_")
    return f"lab{lab}-{REVIEW}{slug}"


class ManualPointsError(ValueError):
    """A manual-points file that cannot be used; the message lists every problem with its row and fix."""


@dataclass(frozen=True)
class ManualPoint:
    """The points an instructor gave one student for one written question."""

    student: str
    question: str  # key such as "lab1-Q2"
    points: float
    comment: str
    row: int  # as the spreadsheet numbers it (header: row 1)

    @property
    def lab(self) -> int | None:
        match = _QUESTION_KEY.match(self.question)
        return int(match.group(1)) if match else None

    @property
    def label(self) -> str:
        """The question as students know it ("Q2")."""
        match = _QUESTION_KEY.match(self.question)
        return match.group(2) if match else self.question

    @property
    def is_review(self) -> bool:
        """Releases an exercise withheld for review (see :func:`review_key`), rather than a written answer."""
        return self.label.startswith(REVIEW)


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")  # Excel's "Unicode text"
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManualPointsError(
            f"{path}: line {line} is not UTF-8 text. Fix: in Excel, save as 'CSV UTF-8 (Comma delimited)'; "
            "in LibreOffice, choose the character set 'Unicode (UTF-8)'.") from None


def _suggest(value: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known)[:8])}" + (
        ", ..." if len(known) > 8 else "")


def _maximum(max_points: MaxPoints, question: str) -> float | None:
    if max_points is None:
        return None
    if isinstance(max_points, Mapping):
        value = max_points.get(question)
        return None if value is None else float(value)
    return float(max_points)


def _points(text: str) -> float | None:
    text = text.strip().replace(" ", "")
    if _DECIMAL_COMMA.match(text):
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_manual(path: Path, students: Collection[str] | None = None, questions: Collection[str] | None = None,
                max_points: MaxPoints = None) -> list[ManualPoint]:
    """The rows of a filled-in manual-points CSV, validated; :class:`ManualPointsError` if anything is wrong.

    ``students``/``questions``: the ids and question keys (``lab1-Q2``) that exist (None: anything goes);
    ``max_points``: the most a question can give, one number or question key -> number. Points are
    non-negative numbers; each (student, question) appears at most once; pairs left out get nothing.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ManualPointsError(f"{path}: cannot be read ({exc.strerror or exc}). Fix: give the CSV that the "
                                "grader's --answers wrote (labN_manual.csv), filled in.") from None
    text = _decode(raw, path)
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    expected = ",".join(MANUAL_HEADER)
    if not records or not any(cell.strip() for cell in records[0]):
        raise ManualPointsError(f"{path}: row 1: the file is empty. Fix: start from the template; its first row "
                                f"is {expected}")
    header = [cell.strip().lower() for cell in records[0]]
    while header and not header[-1]:
        header.pop()
    if header != list(MANUAL_HEADER):
        raise ManualPointsError(f"{path}: row 1: the header is {','.join(records[0])!r}. Fix: make row 1 exactly "
                                f"{expected} (the template's header), in that order.")
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    points: list[ManualPoint] = []
    for number, record in enumerate(records[1:], start=2):
        cells = [cell.strip() for cell in record]
        if not any(cells):
            continue  # a blank row
        if any(cells[len(MANUAL_HEADER):]):
            problems.append(f"row {number}: {len(cells)} cells, but only {len(MANUAL_HEADER)} columns. Fix: put "
                            "commas or semicolons inside the comment in quotes (or remove the extra cells).")
            continue
        student, question, given, comment = (cells + [""] * len(MANUAL_HEADER))[: len(MANUAL_HEADER)]
        student = _FORMULA_GUARD.sub("", student)
        where = f"row {number} ({student or '?'}, {question or '?'})"
        if not student:
            problems.append(f"{where}: no student. Fix: copy the id from the template.")
        elif students is not None and student not in students:
            problems.append(f"{where}: unknown student {student!r}. Fix: use a graded student's id; "
                            f"{_suggest(student, students)}")
        if not question:
            problems.append(f"{where}: no question. Fix: copy the question id (such as lab1-Q2) from the template.")
        elif questions is not None and question not in questions:
            problems.append(f"{where}: unknown question {question!r}. Fix: use a question id of the answers "
                            f"page; {_suggest(question, questions)}")
        value = _points(given)
        maximum = _maximum(max_points, question)
        if not given:
            problems.append(f"{where}: no points. Fix: enter a number (0 for no credit).")
        elif value is None:
            problems.append(f"{where}: points {given!r} is not a number. Fix: enter a number such as 1.5.")
        elif value < 0:
            problems.append(f"{where}: points {given} is negative. Fix: enter 0 or more.")
        elif maximum is not None and value > maximum:
            problems.append(f"{where}: points {given} is above this question's maximum of {maximum:g}. "
                            f"Fix: enter at most {maximum:g}.")
        if (student, question) in seen:
            problems.append(f"{where}: duplicate of row {seen[student, question]}. Fix: keep one of the two rows.")
        else:
            seen[student, question] = number
        if value is not None:
            points.append(ManualPoint(student, question, value, comment, number))
    if problems:
        shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
        raise ManualPointsError(f"{path}: {len(problems)} problem(s); nothing was merged:\n  " + "\n  ".join(shown))
    return points


def _lab_number(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def manual_total(points: Sequence[ManualPoint]) -> float:
    """The sum of some manual points (0.0 for none)."""
    return float(sum(p.points for p in points))


def feedback_lines(points: Sequence[ManualPoint], student: str, lab: int | None = None,
                   max_points: MaxPoints = None) -> list[str]:
    """The lines a student's feedback gets about their written answers (empty when nothing was graded)."""
    mine = sorted((p for p in points if p.student == student and (lab is None or p.lab == lab) and not p.is_review),
                  key=lambda p: (p.lab or 0, p.question))
    if not mine:
        return []
    maxima = [_maximum(max_points, p.question) for p in mine]
    out_of = f" / {sum(maxima):g}" if all(m is not None for m in maxima) else ""
    lines = [f"Written answers (graded by hand): {sum(p.points for p in mine):g}{out_of} points"]
    for point, maximum in zip(mine, maxima):
        score = f"{point.points:g}" + ("" if maximum is None else f"/{maximum:g}")
        lines.append(f"- {point.label}: {score}" + (f" - {point.comment}" if point.comment else ""))
    return lines


# ----------------------------------------------------------------------------- student ids

class StudentIdError(ValueError):
    """No student id can be derived from a submission's path (the message says how to fix it)."""


_LAB_SUFFIX = re.compile(r"(?:^|[\s_.-]+)lab[\s_-]?\d+(?:[\s_.-].*)?$", re.IGNORECASE)
_COPY_NOISE = re.compile(r"^copy of\s+|\s*\(\d+\)$", re.IGNORECASE)  # Colab's "Copy of", a browser's " (1)"


def student_id(path: Path, root: Path | None = None, pattern: str | None = None) -> str:
    """The student id of a submission, for the gradebook's ``student`` column (an LMS imports it).

    Without ``pattern``: the first folder under ``root`` when the file lies in one (``subs/alice/lab1.ipynb``
    -> ``alice``), else the file name's stem without its ``_labN...`` part (``alice_lab1_autoencoders``,
    ``Copy of alice-lab1 (2)`` -> ``alice``). With ``pattern``, a regular expression searched in the path
    relative to ``root`` (``/`` separators): its group ``id``, else its first group, else the whole match;
    e.g. ``r"_(?P<id>\\d{6})_assignsubmission"`` for Moodle downloads. StudentIdError when nothing fits.
    """
    path = Path(path)
    relative = path
    if root is not None:
        try:
            relative = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            relative = path
    if pattern is not None:
        match = re.search(pattern, relative.as_posix())
        if not match:
            raise StudentIdError(f"{relative.as_posix()}: does not match the student-id pattern {pattern!r}. "
                                 "Fix: rename the file or folder, or change the pattern.")
        found = match.groupdict().get("id") or (match.group(1) if match.re.groups else match.group(0))
        if not found:
            raise StudentIdError(f"{relative.as_posix()}: the pattern {pattern!r} matched an empty id.")
        return found
    if root is not None and len(relative.parts) > 1 and not relative.is_absolute():
        return relative.parts[0]
    stem = path.name[: -len(".ipynb")] if path.name.endswith(".ipynb") else path.stem
    name = _LAB_SUFFIX.sub("", _COPY_NOISE.sub("", stem.strip())).strip(" _.-")
    if not name:
        raise StudentIdError(f"{path.name}: no student id in the file name. Fix: name it ID_lab1.ipynb, put it "
                             "in a folder named after the student, or give a pattern.")
    return name
