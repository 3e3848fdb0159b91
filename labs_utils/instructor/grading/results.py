"""What grading finds out: statuses (one Enum each, in one place), per-part results, per-submission results."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Status(str, Enum):
    """How an exercise came out."""

    PASSED = "passed"  # every part passed
    PARTIAL = "partial"  # some parts passed
    FAILED = "failed"  # no part passed (the parts' messages say why)
    MISSING = "missing"  # a name it needs is not defined when the notebook finished
    ERROR = "error"  # the probe could not run or its evidence could not be read
    TIMEOUT = "timeout"
    CRASHED = "crashed"  # the kernel died while it was probed
    NOT_RUN = "not-run"
    INTERFERES = "interferes"  # the submission broke what grading needs (e.g. importing the checks): 0 points
    NEEDS_REVIEW = "needs-review"  # the screen flagged its code: withheld until an instructor releases it

    @property
    def text(self) -> str:
        return _EXERCISE_TEXT[self]


_EXERCISE_TEXT = {
    Status.PASSED: "passed", Status.PARTIAL: "partly passed", Status.FAILED: "failed", Status.MISSING: "missing",
    Status.ERROR: "check crashed", Status.TIMEOUT: "timed out", Status.CRASHED: "kernel died",
    Status.NOT_RUN: "not run", Status.INTERFERES: "interferes with grading", Status.NEEDS_REVIEW: "needs review",
}


class SubmissionStatus(str, Enum):
    """How a submission came out as a whole."""

    GRADED = "graded"
    NOT_A_NOTEBOOK = "not-a-notebook"
    UNKNOWN_LAB = "unknown-lab"
    NO_EXERCISES = "no-exercises"
    GRADER_ERROR = "grader-error"


class CellOutcome(str, Enum):
    """What running one cell in the kernel gave."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass
class PartResult:
    name: str
    points: float
    max_points: float
    message: str | None = None  # None: passed

    @property
    def passed(self) -> bool:
        return self.message is None


@dataclass
class ExerciseResult:
    name: str
    points: float
    max_points: float
    status: Status
    message: str = ""  # why the exercise as a whole was not judged part by part (missing, crashed, ...)
    parts: list[PartResult] = field(default_factory=list)
    withheld: float = 0.0  # NEEDS_REVIEW: the points the checks gave, which count only once released
    flags: list[str] = field(default_factory=list)  # NEEDS_REVIEW: what the screen found, with its lines


@dataclass
class CellError:
    cell: int  # 1-based position among all the submission's cells
    label: str  # how the student finds it: "code cell 7 (under “...”, starting `...`)"
    first_line: str
    ename: str
    evalue: str


@dataclass
class SubmissionResult:
    """Everything the gradebook and the feedback say about one submission."""

    student: str
    path: str
    sha256: str = ""
    lab: int | None = None
    status: SubmissionStatus = SubmissionStatus.GRADED
    exercises: list[ExerciseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cell_errors: list[CellError] = field(default_factory=list)
    empty_answers: list[str] = field(default_factory=list)  # labels of written answers left empty
    sandboxed: bool = False  # its kernel ran inside bubblewrap
    seconds: float = 0.0  # grading it, all in
    cells_seconds: float = 0.0  # running its code cells (re-runs included); the rest is the grader's overhead
    student_id: str = ""  # the id an LMS knows (from the path, see manual.student_id); "" -> ``student``

    @property
    def id(self) -> str:
        return self.student_id or self.student

    @property
    def total(self) -> float:
        return float(sum(ex.points for ex in self.exercises))

    @property
    def max_total(self) -> float:
        return float(sum(ex.max_points for ex in self.exercises))
