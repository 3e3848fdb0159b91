"""Grading one submission: run its cells in a fresh (sandboxed) kernel, probe each exercise apart, judge here.

The kernel runs the notebook as a student would (cell errors, timeouts, shell commands are reported), but no
evidence comes from it: each exercise is probed in a fresh process of a sandboxed fork server that receives only the
definitions that exercise needs, read out of the notebook (:mod:`.extract`, :mod:`.probes`), and the inputs drawn
from a seed this process picks per run (the seed itself never leaves this process). The verdict comes from the
exercise's judge, run in a worker of this process (under a time limit) on evidence decoded strictly. What the rest
of the notebook prints, publishes, patches or starts cannot reach the probe; what the exercise's own code could
still do is the README's threat model. Before anything runs, the code is screened (:mod:`.screen`): what has no
place in an exercise withholds the exercises it touches.
"""
from __future__ import annotations

import hashlib
import math
import secrets
import shutil
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ... import exercises
from . import judging
from .extract import extract, statements
from .kernel import KernelDied, KernelSession, Options, death, lab_modules
from .kernel_side import _shorten
from .labs import Lab, detect_lab, load_labs
from .probes import ProbeServer, Reply
from .results import CellError, CellOutcome, ExerciseResult, PartResult, Status, SubmissionResult, SubmissionStatus
from .sandbox import Sandbox, sandbox_for
from .screen import Finding, screen
from .submissions import Cell, NotANotebook, definitions_outside_code, empty_answers, read_cells, without_shell_commands

MAX_KERNEL_STARTS = 4  # the first run plus re-runs after a cell killed or hung the kernel
IMPORT_TIMEOUT_S = 300  # importing the checks (torch) before the first probe, whatever --timeout says
INTERFERES = "something in the notebook interferes with grading"
MAX_FLAGS = 12  # flagged lines listed per exercise


class BudgetSpent(Exception):
    """The submission used up its wall-clock budget (Options.budget)."""


@dataclass
class RunState:
    """What one submission's run has found so far; it survives the kernel restarts of a re-run."""

    code: list[Cell]
    skipped: set[int] = field(default_factory=set)  # cells that killed or hung the kernel: left out of re-runs
    errors: dict[int, CellError] = field(default_factory=dict)
    graded: dict[str, ExerciseResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    cells_seconds: float = 0.0
    deadline: float | None = None  # time.monotonic() when the budget is spent

    def note(self, problem: str) -> None:
        if problem not in self.problems:  # re-runs meet the same problems again
            self.problems.append(problem)

    def time_left(self, limit: int) -> int:
        """Seconds the next step may take: ``limit``, or less when the budget is nearly spent; BudgetSpent."""
        if self.deadline is None:
            return limit
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BudgetSpent()
        return max(1, min(limit, math.ceil(left)))


def _preload(kernel: KernelSession, lab: Lab) -> None:
    """Import the lab's checks (and torch behind them) before any student cell, under the import budget: a cell's
    timeout then measures the student's code, never torch's import (interrupted half-way, that import would leave
    a broken torch behind). Failing here, in a kernel no student code has touched, is the grader's own fault."""
    outcome, error = kernel.run(_import_cell(lab), IMPORT_TIMEOUT_S)
    if outcome is not CellOutcome.OK:
        reason = f"{error.get('ename')}: {error.get('evalue')}" if error else "it timed out"
        raise RuntimeError(f"a fresh kernel cannot import {lab.module} ({reason})")


def _run_cells(kernel: KernelSession, state: RunState) -> None:
    """Run the code cells in order; cells that killed or hung the kernel before are skipped."""
    for cell in state.code:
        if cell.index in state.skipped:
            continue
        try:
            timeout = state.time_left(kernel.options.timeout)
        except BudgetSpent:
            state.note(f"the notebook used up its {kernel.options.budget} s budget: {cell.label} and the cells "
                       "after it were not run")
            raise
        source, commands = without_shell_commands(cell.source)
        if commands:
            state.note(f"{cell.label}: shell commands are not run by the grader ({'; '.join(commands)[:200]})")
        start = time.perf_counter()
        try:
            outcome, error = kernel.run(source, timeout)
        except KernelDied as died:
            state.skipped.add(cell.index)
            state.note(f"{cell.label} {died.how}; the notebook was run again from the top without that cell")
            raise
        finally:
            state.cells_seconds += time.perf_counter() - start
        for size in kernel.dropped:
            state.note(f"{cell.label} produced an output the grader did not read ({size})")
        if outcome is CellOutcome.TIMEOUT:
            state.skipped.add(cell.index)  # interrupted now; left out of any re-run
            state.note(f"{cell.label} did not finish within {timeout} s and was interrupted")
        elif outcome is CellOutcome.ERROR and error is not None:
            state.errors[cell.index] = CellError(cell.index + 1, cell.label, cell.first_line,
                                                 str(error.get("ename", "")), str(error.get("evalue", ""))[:500])
        else:
            state.errors.pop(cell.index, None)


def _result(exercise: exercises.Exercise, verdicts: dict, status: Status | None = None,
            message: str = "") -> ExerciseResult:
    parts = [PartResult(part.name, float(part.points) if verdicts.get(part.name) is None else 0.0,
                        float(part.points), None if verdicts.get(part.name) is None
                        else _shorten(str(verdicts[part.name]))) for part in exercise.parts]
    earned = sum(p.points for p in parts)
    status = status or (Status.PASSED if all(p.passed for p in parts) else Status.PARTIAL if earned > 0
                        else Status.FAILED)
    return ExerciseResult(exercise.name, float(earned), float(exercise.points), status, message, parts)


def judged(exercise: exercises.Exercise, evidence_text: Any, seed: int, timeout: float | None = None) -> ExerciseResult:
    """The verdict on evidence from the probe: decoded strictly and judged (in the judge worker, at most
    ``timeout`` seconds, when given); never raises: anything wrong fails this exercise's parts only."""
    try:
        verdicts = judging.judge_with_timeout(exercise, evidence_text, seed, timeout)
    except judging.JudgeFailed as exc:
        verdicts = {part.name: str(exc) for part in exercise.parts}
    except Exception as exc:  # the grader's own trouble with this evidence: still this exercise only
        verdicts = {part.name: f"the evidence could not be judged ({type(exc).__name__}: {exc})"
                    for part in exercise.parts}
    return _result(exercise, verdicts)


def _every_part_fails(exercise: exercises.Exercise, message: str, status: Status | None = None) -> ExerciseResult:
    return _result(exercise, {part.name: message for part in exercise.parts}, status,
                   f"{INTERFERES}: {message}" if status is Status.INTERFERES else "")


def _missing(exercise: exercises.Exercise, names: Sequence[str], cells: Sequence[Cell]) -> ExerciseResult:
    message = "not defined when the notebook finished: " + ", ".join(map(str, names))
    outside = [(n, definitions_outside_code(cells, n)) for n in exercise.needs]
    outside = [(n, c) for n, c in outside if c is not None]
    for name, cell in outside:
        message += (f"; `{name}` is written in {cell.label}, which is a {cell.cell_type} cell: "
                    "turn it back into a code cell")
    if not outside:
        message += (" at the top level of a code cell (was its cell deleted, renamed, or did it raise an error? See "
                    "the problems below)")
    return ExerciseResult(exercise.name, 0.0, float(exercise.points), Status.MISSING, message)


def _failed(exercise: exercises.Exercise, status: Status, message: str) -> ExerciseResult:
    return ExerciseResult(exercise.name, 0.0, float(exercise.points), status, message)


def _import_cell(lab: Lab) -> str:
    return f"import labs_utils.evidence, {lab.module}"


def _kernel_imports(kernel: KernelSession, lab: Lab, state: RunState) -> None:
    """After the notebook ran, its kernel must still import the checks (the batch checked that a clean kernel
    does): a notebook that broke them interferes with grading, and gets 0 for every exercise."""
    outcome, error = kernel.run(_import_cell(lab), state.time_left(max(kernel.options.timeout, IMPORT_TIMEOUT_S)))
    if outcome is not CellOutcome.OK:
        reason = f"{error.get('ename')}: {_shorten(str(error.get('evalue')))[:300]}" if error else "it timed out"
        message = f"after the notebook ran, the checks could not be imported ({reason}): {INTERFERES}"
        state.note(message)
        for exercise in lab.exercises:
            state.graded.setdefault(exercise.name, _failed(exercise, Status.INTERFERES, message))


def _probed(reply: Reply, exercise: exercises.Exercise, seed: int, timeout: int, judge_timeout: int) -> ExerciseResult:
    """The result of one probe process's reply (see probe_server)."""
    if reply.foreign:
        return _every_part_fails(exercise, "another process wrote on the check's channel", Status.INTERFERES)
    if reply.spawned:
        return _every_part_fails(exercise, f"your code started {reply.spawned} thread(s) or process(es) while it was "
                                           "checked: the check measures your functions alone, so an exercise's code "
                                           "must not start threads or processes")
    if reply.status == "ok":
        return judged(exercise, reply.evidence, seed, judge_timeout)
    if reply.status == "error":
        return _every_part_fails(exercise, reply.message or "the check failed")
    if reply.status == "timeout":
        return _failed(exercise, Status.TIMEOUT, f"the check did not finish within {timeout} s (an endless loop in "
                                                 "your code?)")
    if reply.status == "died":
        return _failed(exercise, Status.CRASHED, "while this exercise was checked, your code "
                       + death(reply.exit).replace("the kernel", "the process that checked it"))
    if reply.status == "inputs":
        return _failed(exercise, Status.ERROR, f"the process that checks exercises could not read the inputs the "
                                               f"grader drew ({reply.message}); not the submission's fault")
    if reply.status == "unstarted":
        return _failed(exercise, Status.ERROR, f"the grader could not start the process that checks exercises "
                                               f"({reply.message}); not the submission's fault: grade it again")
    return _failed(exercise, Status.CRASHED, f"while this exercise was checked, the process that checked it failed "
                                             f"({reply.message}): code that stops processes could do that")


def _probe_all(server: ProbeServer, lab: Lab, cells: Sequence[Cell], state: RunState, options: Options) -> None:
    """Probe every exercise not graded yet in a fresh process that receives only its definitions; judge here."""
    judging.warm_up()  # the judge worker imports torch while the server imports the checks
    found = statements(cells)
    for exercise in lab.exercises:
        if exercise.name in state.graded:
            continue
        taken = extract(found, exercise.needs)
        if taken.missing:
            state.graded[exercise.name] = _missing(exercise, taken.missing, cells)
            continue
        if taken.problem:
            state.graded[exercise.name] = _every_part_fails(exercise, taken.problem)
            continue
        seed = secrets.randbelow(2**31)  # stays here: the probe process is sent the inputs drawn from it
        timeout = state.time_left(options.timeout)
        try:
            inputs = judging.inputs_with_timeout(exercise, seed, options.judge_timeout)
        except judging.InputsFailed as exc:
            state.graded[exercise.name] = _failed(exercise, Status.ERROR, f"the grader could not draw this "
                                                  f"exercise's inputs ({_shorten(str(exc))[:300]}); not the "
                                                  "submission's fault: grade it again")
            continue
        reply = server.probe(exercise.name, taken.sources(), inputs, timeout)
        state.graded[exercise.name] = _probed(reply, exercise, seed, timeout, options.judge_timeout)


def run_submission(cells: Sequence[Cell], lab: Lab, options: Options, sandbox: Sandbox | None) -> RunState:
    """Execute the code cells in a fresh kernel (problems, cell errors), then probe each exercise in a fresh
    process of its own and judge it here (within the budget)."""
    state = RunState([c for c in cells if c.cell_type == "code" and c.source.strip()])
    if options.budget > 0:
        state.deadline = time.monotonic() + options.budget
    why_not = "not checked"
    workdir = tempfile.mkdtemp(prefix="labs-grade-")
    try:
        with ProbeServer(options, lab, sandbox) as server:
            server.start()  # it imports torch and the checks while the kernel runs the notebook
            try:
                for _ in range(MAX_KERNEL_STARTS):
                    try:
                        state.time_left(1)
                        with KernelSession(options, workdir, sandbox) as kernel:
                            _preload(kernel, lab)
                            _run_cells(kernel, state)
                            _kernel_imports(kernel, lab, state)
                        break
                    except KernelDied:
                        continue
                else:
                    state.note(f"the kernel died {MAX_KERNEL_STARTS} times; the exercises were still checked")
                _probe_all(server, lab, cells, state, options)
            except BudgetSpent:
                why_not = f"not checked: the submission used up its {options.budget} s budget before this exercise"
                state.note(f"the submission used up its {options.budget} s budget; the exercises not checked by "
                           "then get no points")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for exercise in lab.exercises:
        if exercise.name not in state.graded:
            state.graded[exercise.name] = _failed(exercise, Status.NOT_RUN, why_not)
    return state


_CHECKED: dict = {}  # options (without import_errors) -> import_errors, for grade_submission called alone


def check_imports(options: Options) -> Options:
    """``options`` with ``import_errors``: once, in a clean kernel (sandboxed as the submissions will be), import
    each lab's checks; a lab whose checks fail here is the grader's problem, not its submissions'."""
    if options.import_errors is not None:
        return options
    if not options.labs:
        options = replace(options, labs=load_labs())
    key = replace(options, import_errors=None)
    if key not in _CHECKED:
        labs = [lab for lab in options.labs if lab.module and lab.exercises]
        errors: list[tuple[int, str]] = []
        workdir = tempfile.mkdtemp(prefix="labs-grade-check-")
        try:
            sandbox, _ = sandbox_for(options.sandbox, options.hidden, lab_modules(options), options.limits(True))
            with KernelSession(options, workdir, sandbox) as kernel:
                for lab in labs:
                    outcome, error = kernel.run(_import_cell(lab), max(options.timeout, IMPORT_TIMEOUT_S))
                    if outcome is not CellOutcome.OK:
                        reason = f"{error.get('ename')}: {error.get('evalue')}" if error else "it timed out"
                        errors.append((lab.number, f"the kernel cannot import {lab.module} ({reason})"))
        except Exception as exc:  # KernelDied, SandboxUnavailable, a kernel that cannot start
            errors = [(lab.number, f"a clean kernel cannot import {lab.module} ({type(exc).__name__}: {exc})")
                      for lab in labs]
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        _CHECKED[key] = tuple(errors)
    return replace(options, import_errors=_CHECKED[key])


def grade_submission(path: Path, student: str, options: Options) -> SubmissionResult:
    """Grade one file; never raises (a failure of the grader itself gives status "grader-error")."""
    from ..notebooks import ANSWER_PROMPTS

    result = SubmissionResult(student=student, path=str(path))
    try:
        options = check_imports(options)
    except Exception as exc:  # e.g. the labs cannot be loaded
        result.status = SubmissionStatus.GRADER_ERROR
        result.problems.append(f"the grader failed: {type(exc).__name__}: {exc}")
        return result
    start = time.perf_counter()
    try:
        raw = path.read_bytes()
        result.sha256 = hashlib.sha256(raw).hexdigest()
        cells = read_cells(raw)
        labs = options.labs or load_labs()
        number, notes = detect_lab(cells, path.name, labs, options.lab)
        result.problems += notes
        lab = next((lab for lab in labs if lab.number == number), None)
        if number is None:
            result.status = SubmissionStatus.UNKNOWN_LAB
            result.problems.append("cannot tell which lab this is: its file name has no lab number and it "
                                   "defines none of the labs' exercises; pass --lab N")
        elif lab is None:
            result.status = SubmissionStatus.UNKNOWN_LAB
            result.problems.append(f"there is no lab {number} (labs: {', '.join(str(x.number) for x in labs)})")
        elif not lab.exercises:
            result.lab, result.status = number, SubmissionStatus.NO_EXERCISES
            result.problems.append(f"lab {number} ({lab.title}) has no graded exercises")
        elif dict(options.import_errors or ()).get(number):
            result.lab, result.status = number, SubmissionStatus.GRADER_ERROR
            result.problems.append(f"the grader failed: {dict(options.import_errors)[number]}")
        else:
            result.lab = number
            result.empty_answers = empty_answers(cells, ANSWER_PROMPTS)
            sandbox, _ = sandbox_for(options.sandbox, options.hidden, lab_modules(options), options.limits(True))
            result.sandboxed = sandbox is not None
            flags = _screened(cells, lab) if options.screen else {}
            state = run_submission(cells, lab, options, sandbox)
            result.exercises = [_withheld(state.graded[ex.name], flags.get(ex.name)) for ex in lab.exercises]
            if flags:
                result.problems.append(f"withheld for review: {', '.join(flags)} (the flagged lines are listed under "
                                       "each exercise; --manual releases them)")
            result.cell_errors = [state.errors[index] for index in sorted(state.errors)]
            result.problems += state.problems
            result.cells_seconds = round(state.cells_seconds, 2)
    except NotANotebook as exc:
        result.status = SubmissionStatus.NOT_A_NOTEBOOK
        result.problems.append(f"not a notebook: {exc}")
        _zero_for_the_lab_named(result, path, options)
    except Exception as exc:  # the grader's own failure: report it, keep the batch going
        result.status = SubmissionStatus.GRADER_ERROR
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.problems.append(f"the grader failed: {type(exc).__name__}: {exc} "
                               f"({Path(last.filename).name}:{last.lineno})")
    result.seconds = round(time.perf_counter() - start, 2)
    return result


def _screened(cells: Sequence[Cell], lab: Lab) -> dict[str, list]:
    """Exercise name -> what the screen flagged; when the screen itself fails, every exercise, saying so."""
    try:
        return screen(cells, lab)
    except Exception as exc:  # e.g. code nested too deeply to walk: it cannot pass unread
        return {ex.name: [f"the screen could not read this notebook's code ({type(exc).__name__})"]
                for ex in lab.exercises}


def _withheld(result: ExerciseResult, findings: Sequence[Finding | str] | None) -> ExerciseResult:
    """The exercise's result, withheld for review (0 points, the checks' points kept aside) when flagged."""
    if not findings:
        return result
    listed = [str(f) for f in findings[:MAX_FLAGS]]
    if len(findings) > MAX_FLAGS:
        listed.append(f"... and {len(findings) - MAX_FLAGS} more")
    message = (f"withheld until the instructor reviews it: the code has things that have no place in an exercise "
               f"(below); the checks gave {result.points:g}/{result.max_points:g}")
    result.message = message + (f". {result.status.text}: {result.message}" if result.message else "")
    result.withheld, result.points, result.status, result.flags = result.points, 0.0, Status.NEEDS_REVIEW, listed
    return result


def _zero_for_the_lab_named(result: SubmissionResult, path: Path, options: Options) -> None:
    """An unreadable file still gets its gradebook row: zero for each exercise of the lab --lab or its name gives."""
    labs = options.labs or load_labs()
    number, _ = detect_lab([], path.name, labs, options.lab)
    lab = next((lab for lab in labs if lab.number == number), None)
    if lab is not None:
        result.lab = lab.number
        result.exercises = [_failed(ex, Status.NOT_RUN, "the file could not be read") for ex in lab.exercises]
