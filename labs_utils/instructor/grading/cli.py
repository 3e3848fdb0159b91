"""Grade submitted lab notebooks: run each in a fresh sandboxed kernel, judge what its code does outside it.

    python -m labs_utils.grade alice.ipynb bob.ipynb --fast
    python -m labs_utils.grade submissions/ --lab 1 --jobs 2 --out gradebook.csv --answers answers/
    python -m labs_utils.grade submissions/ --out gradebook.csv --manual answers/lab1_manual.csv

For every submission: read it (never write it), find its lab (``--lab``, else what it defines, else
its file name), execute its code cells in order in a fresh kernel (per-cell timeout, errors do not
stop the run, a cell that kills or hangs the kernel is skipped on a re-run), then, for each exercise
of the lab's ``GRADING`` table, run the exercise's probe in a fresh sandboxed process on inputs the
grader draws from a fresh seed (the seed stays in the grader) and judge the evidence it returns in the
grader's own process (points per part). Kernels run in bubblewrap (no network, read-only file system,
solutions/ and the submissions hidden) where it is usable; elsewhere the grader warns and runs them
unsandboxed (``--sandbox require`` refuses instead).
One broken submission never stops a batch; the exit code is 0 whenever grading ran, whatever the scores.

Written answers: ``--answers DIR`` writes, per lab, ``labN_answers.html`` (every student's answers grouped by
question) and ``labN_manual.csv`` (the template for manual points); ``--manual FILE.csv`` (filled in; repeat it
for several labs) is checked before anything runs (any problem: exit 2, nothing written) and merged into the
gradebook and the feedback (total = auto + manual). Student ids (gradebook, CSVs) come from the submission's
folder or file name, or from ``--id-pattern``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from .batch import collect, grade_batch
from .kernel import Options
from .labs import load_labs
from .manual import ManualPoint, ManualPointsError, StudentIdError, read_manual, review_key, student_id
from .reports import FEEDBACK_FORMATS, feedback, feedback_folder, summary_table, write_reports
from .results import Status, SubmissionResult, SubmissionStatus
from .sandbox import SandboxUnavailable, hidden_paths, sandbox_for

SOLUTIONS = Path(__file__).resolve().parents[3] / "solutions"  # the course repository's, beside labs_utils/


def default_memory_limit(workers: int) -> int:
    """Three quarters of the machine's memory shared by the kernels running at once (0 if unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0
    return int(total * 0.75 / max(workers, 1))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of *.ipynb")
    parser.add_argument("--lab", type=int, help="grade as this lab number (default: detect)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("--budget", type=int, default=3600, metavar="SECONDS",
                        help="wall-clock seconds per submission, re-runs included; cells left are skipped and "
                             "exercises not checked by then get 0 (default: 3600; 0: none)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default: 1)")
    parser.add_argument("--fast", action="store_true", help="run the notebooks in fast mode (LABS_FAST=1)")
    parser.add_argument("--memory-limit", type=float, default=None,
                        help="GiB of memory per kernel, 0 for no limit (default: 3/4 of RAM / jobs; Linux)")
    parser.add_argument("--out", type=Path, help="report.csv (gradebook + report_feedback/*.txt) or report.json")
    parser.add_argument("--sandbox", choices=("auto", "require", "off"), default="auto",
                        help="bubblewrap around each kernel: auto (default: use it when usable, else warn), "
                             "require (fail without it), off")
    written = parser.add_argument_group("written answers and the gradebook")
    written.add_argument("--answers", type=Path, metavar="DIR",
                         help="write DIR/labN_answers.html (answers by question) and DIR/labN_manual.csv (template)")
    written.add_argument("--manual", type=Path, action="append", default=[], metavar="FILE.csv",
                         help="manual points for written answers (the filled-in template); repeat for several labs")
    written.add_argument("--max-manual", type=float, default=None, metavar="POINTS",
                         help="the most a written question can give (checked in --manual files)")
    written.add_argument("--id-pattern", metavar="REGEX",
                         help="student id: regular expression searched in each submission's path under the folder "
                              "given (its group 'id', else group 1, else the match); default: the folder under it, "
                              "else the file name without _labN")
    written.add_argument("--feedback-format", choices=tuple(FEEDBACK_FORMATS), default="txt",
                         help="feedback files next to a CSV gradebook: txt (default), md or html")
    written.add_argument("--solutions", type=Path, default=SOLUTIONS, metavar="DIR",
                         help="the solution notebooks (written questions) for --answers and --manual "
                              "(default: the course's solutions/)")
    return parser


def student_ids(submissions: Sequence[Path], jobs: Sequence[tuple[Path, str]], pattern: str | None) -> dict[str, str]:
    """File -> student id. Without a pattern a file whose name gives no id keeps its grading name;
    with one, every file must match (StudentIdError naming each that does not)."""
    roots = [p for p in submissions if p.is_dir()]
    ids, problems = {}, []
    for file, name in jobs:
        root = next((r for r in roots if r.resolve() in file.resolve().parents), None)
        try:
            ids[str(file)] = student_id(file, root, pattern)
        except StudentIdError as exc:
            if pattern is None:
                ids[str(file)] = name
            else:
                problems.append(str(exc))
    if problems:
        raise StudentIdError("\n  ".join(problems))
    return ids


def lab_questions(labs, solutions: Path) -> dict[int, tuple[Path, set[str]]]:
    """Lab number -> (its solution notebook, its written questions' keys), for the labs that have questions."""
    from .answers import lab_questions as questions_of
    from .answers import solution_notebook

    found = {}
    for lab in labs:
        try:
            notebook = solution_notebook(lab.number, solutions)
        except FileNotFoundError:
            continue
        keys = {q.key for q in questions_of(notebook)}
        if keys:
            found[lab.number] = (notebook, keys)
    return found


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _mark_duplicates(results: Sequence[SubmissionResult]) -> None:
    """Two graded files of one student for one lab: both rows say so (the instructor keeps one)."""
    seen: dict[tuple[str, int | None], list[SubmissionResult]] = {}
    for r in results:
        seen.setdefault((r.id, r.lab), []).append(r)
    for (sid, lab), group in seen.items():
        if len(group) > 1 and lab is not None:
            for r in group:
                others = ", ".join(Path(o.path).name for o in group if o is not r)
                r.problems.append(f"student id {sid!r} has {len(group)} submissions for lab {lab} (also {others}): "
                                  "keep one, or give --id-pattern")


def _merge_note(points: Sequence[ManualPoint], results: Sequence[SubmissionResult]) -> str:
    """How many manual points found their graded submission, and whose did not."""
    graded = {(r.id, r.lab) for r in results}
    unused = sorted({f"{p.student} (lab {p.lab})" for p in points if (p.student, p.lab) not in graded})
    merged = sum(1 for p in points if (p.student, p.lab) in graded)
    return f"merged {merged} manual points" + (
        f"; none of these was graded, their points are left out: {', '.join(unused)}" if unused else "")


class Maxima(dict):
    """Question key -> the most it can give: an exercise's points for the row that releases it after review
    (:func:`.manual.review_key`), ``written`` (or no maximum) for any other key, i.e. a written answer."""

    def __init__(self, labs, written: float | None) -> None:
        super().__init__({review_key(lab.number, ex.name): ex.points for lab in labs for ex in lab.exercises})
        self.written = written

    def get(self, key, default=None):
        return super().get(key, self.written if self.written is not None else default)


def review_rows(results: Sequence[SubmissionResult], lab: int) -> list[list[str]]:
    """Manual-points template rows for the exercises withheld for review (points left for the instructor)."""
    return [[r.id, review_key(lab, ex.name), "", f"needs review; the checks gave {ex.withheld:g}/{ex.max_points:g}"]
            for r in results if r.lab == lab for ex in r.exercises if ex.status is Status.NEEDS_REVIEW]


def write_answer_pages(results: Sequence[SubmissionResult], questions: dict, out_dir: Path) -> list[Path]:
    """``out_dir/labN_answers.html`` and ``labN_manual.csv`` for every lab that was graded and has questions
    (the CSV also has a row for each exercise withheld for review)."""
    from .answers import collect_answers, write_answers

    written = []
    for number, (notebook, _keys) in sorted(questions.items()):
        mine = [(Path(r.path), r.id) for r in results if r.lab == number and r.status is not
                SubmissionStatus.NOT_A_NOTEBOOK]
        if mine:
            written += write_answers(collect_answers(mine, notebook), out_dir, review_rows(results, number))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    if args.timeout < 1 or args.jobs < 1 or args.budget < 0:
        parser.error("--timeout and --jobs must be at least 1, --budget at least 0")
    jobs = collect(args.submissions)
    if not jobs:
        parser.error("no *.ipynb files found")
    try:
        ids = student_ids(args.submissions, jobs, args.id_pattern)
    except StudentIdError as exc:
        return _fail(f"--id-pattern: no student id for\n  {exc}")
    except re.error as exc:
        return _fail(f"--id-pattern {args.id_pattern!r} is not a regular expression: {exc}")
    out = args.out
    if out is None and any(p.is_dir() for p in args.submissions):
        out = Path("gradebook.csv")
    outputs = ([out, feedback_folder(out)] if out is not None else []) + (
        [args.answers] if args.answers is not None else [])
    hidden = hidden_paths(args.submissions, [*outputs, *args.manual, args.solutions])
    try:
        _, warning = sandbox_for(args.sandbox, hidden)
    except SandboxUnavailable as exc:
        print(f"error: --sandbox require: {exc}", file=sys.stderr)
        return 1
    if warning:
        print("!" * 78 + f"\n{warning}\n" + "!" * 78, file=sys.stderr, flush=True)
    memory = default_memory_limit(args.jobs) if args.memory_limit is None else int(args.memory_limit * 2**30)
    try:
        labs = load_labs()
    except Exception as exc:
        print(f"error: cannot load the grading tables: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    numbers = sorted(lab.number for lab in labs)
    if args.lab is not None and args.lab not in numbers:
        parser.error(f"--lab {args.lab}: the course has labs {', '.join(map(str, numbers))}")
    questions: dict = {}
    points: list[ManualPoint] | None = None
    if args.answers is not None or args.manual:
        try:
            questions = lab_questions(labs, args.solutions)
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read the written questions in {args.solutions}: {exc}")
        if not questions:
            return _fail(f"no solution notebook with written questions in {args.solutions}: run from the course "
                         "repository or give --solutions DIR")
    if args.manual:
        points = []
        limits = Maxima(labs, args.max_manual)
        keys = set().union(*(k for _, k in questions.values()), limits)
        for path in args.manual:
            try:
                points += read_manual(path, students=set(ids.values()), questions=keys, max_points=limits)
            except ManualPointsError as exc:
                return _fail(f"{exc}\nNothing was graded or written.")
        twice = {(p.student, p.question) for p in points if sum(
            (q.student, q.question) == (p.student, p.question) for q in points) > 1}
        if twice:
            return _fail("the --manual files give points twice for " + ", ".join(sorted(map(" ".join, twice)))
                         + ". Fix: keep each (student, question) in one file. Nothing was graded or written.")
    options = Options(timeout=args.timeout, fast=args.fast, memory_limit=memory, labs=labs, lab=args.lab,
                      sandbox=args.sandbox, hidden=hidden, budget=args.budget)
    results = grade_batch(jobs, options, workers=args.jobs, progress=True)
    for r in results:
        r.student_id = ids.get(r.path, r.student)
    _mark_duplicates(results)
    print(summary_table(results))
    if points is not None:
        print(_merge_note(points, results))
    review = sum(ex.status is Status.NEEDS_REVIEW for r in results for ex in r.exercises)
    if review:
        print(f"{review} exercises need review (their flagged lines are in the feedback): release one with a --manual "
              "row `student,labN-review-<exercise>,points,comment` (--answers writes these rows into the template)")
    if args.answers is not None:
        pages = write_answer_pages(results, questions, args.answers)
        print(f"wrote {len(pages)} files in {args.answers}: " + ", ".join(p.name for p in pages) if pages
              else f"no graded submission of a lab with written questions: nothing written in {args.answers}")
    if out is not None:
        written = write_reports(results, out, points, Maxima(labs, args.max_manual), args.feedback_format)
        feedback_files = written[1:]
        print(f"wrote {out}" + (f" and {len(feedback_files)} feedback files in {feedback_files[0].parent}"
                                if feedback_files else ""))
    else:
        for r in results:
            print("\n" + feedback(r, points or (), args.max_manual), end="")
    if warning and args.sandbox != "off":
        print(warning, file=sys.stderr)
    return 1 if all(r.status is SubmissionStatus.GRADER_ERROR for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
