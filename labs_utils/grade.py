"""Grade submitted lab notebooks: run a copy of each in a fresh kernel, then the lab's checks.

    python -m labs_utils.grade alice.ipynb bob.ipynb --fast
    python -m labs_utils.grade submissions/ --lab 1 --jobs 2 --out gradebook.csv

For every submission: read it (never write it), find its lab (``--lab``, else what it defines, else
its file name), execute its code cells in order in a fresh kernel (per-cell timeout, errors do not
stop the run, a cell that kills or hangs the kernel is skipped on a re-run), then evaluate each
exercise of the lab's ``GRADING`` table in that kernel with the checks imported afresh. Exercises are
found by the names the kernel defines, never by cell ids or metadata. One broken submission never
stops a batch; the exit code is 0 whenever grading ran, whatever the scores.

This guards against accidents and naive tampering, not deliberately malicious code: run batches you
do not trust in a container (see the README).
"""
from __future__ import annotations

import argparse
import ast
import csv
import hashlib
import json
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .grading_kernel import RESULT_MIME

# Lab number -> (title, module holding its checks and GRADING table; None when nothing is graded).
LABS = {
    0: ("set-up check", None),
    1: ("autoencoders", "labs_utils.checks.autoencoders"),
    2: ("gradient checkpointing", "labs_utils.checks.checkpointing"),
    3: ("optimizers", "labs_utils.checks.optimizers"),
}
MAX_SUBMISSION_BYTES = 256 * 2**20
MAX_KERNEL_STARTS = 4  # the first run plus re-runs after a cell killed or hung the kernel
IMPORT_TIMEOUT_S = 300  # importing the checks (torch) before the first check, whatever --timeout says
TIMEOUT_ENAME = "LabsGraderCellTimeout"
MAX_LISTED_ERRORS = 10  # cell errors listed in a student's feedback (all of them are in the JSON report)
STATUS_TEXT = {
    "passed": "passed",
    "failed": "failed",
    "missing": "missing",
    "error": "check crashed",
    "timeout": "timed out",
    "crashed": "kernel died",
    "not-run": "not run",
}


@dataclass(frozen=True)
class Lab:
    """A lab as the grader sees it: its number, title, checks module and graded exercises."""

    number: int
    title: str
    module: str | None
    exercises: tuple = ()

    @property
    def max_points(self) -> float:
        return float(sum(ex.points for ex in self.exercises))


@dataclass
class ExerciseResult:
    name: str
    points: float
    max_points: float
    status: str  # one of STATUS_TEXT
    message: str = ""


@dataclass
class CellError:
    cell: int  # 1-based position among all the submission's cells, as the student sees them
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
    status: str = "graded"  # graded | not-a-notebook | unknown-lab | no-exercises | grader-error
    exercises: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    cell_errors: list = field(default_factory=list)
    seconds: float = 0.0  # grading it, all in
    cells_seconds: float = 0.0  # running its code cells (re-runs included); the rest is the grader's overhead

    @property
    def total(self) -> float:
        return float(sum(ex.points for ex in self.exercises))

    @property
    def max_total(self) -> float:
        return float(sum(ex.max_points for ex in self.exercises))


@dataclass(frozen=True)
class Options:
    timeout: int = 600  # seconds per cell
    fast: bool = False
    memory_limit: int = 0  # bytes of heap per kernel, 0: no limit
    labs: tuple = ()  # Lab tables; empty: the course's labs (see load_labs)
    lab: int | None = None  # force this lab
    env: tuple = ()  # extra (name, value) pairs for the kernel's environment


class NotANotebook(ValueError):
    """The file cannot be read as a notebook (the message says why)."""


@dataclass(frozen=True)
class Cell:
    index: int  # 0-based position in the submission
    cell_type: str
    source: str

    @property
    def first_line(self) -> str:
        """The first line of code (else of text), shortened: how the student recognises the cell."""
        lines = [ln.strip() for ln in self.source.splitlines() if ln.strip()]
        line = next((ln for ln in lines if not ln.startswith("#")), lines[0] if lines else "")
        return line if len(line) <= 60 else line[:57] + "..."

    @property
    def label(self) -> str:
        return f"cell {self.index + 1} (`{self.first_line}`)"


# ----------------------------------------------------------------------------- reading submissions

def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else ""


def read_cells(raw: bytes) -> list:
    """The cells of a notebook file's bytes (nbformat 3 or 4, any editor's metadata); NotANotebook otherwise."""
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise NotANotebook(f"the file is {len(raw) / 2**20:.0f} MiB, over the {MAX_SUBMISSION_BYTES >> 20} MiB limit")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotANotebook("the file is not UTF-8 text (a notebook is a JSON text file)") from None
    except json.JSONDecodeError as exc:
        raise NotANotebook(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise NotANotebook("the JSON is not a notebook (no cells)")
    if isinstance(data.get("cells"), list):
        raw_cells = data["cells"]
    elif isinstance(data.get("worksheets"), list):  # nbformat 3
        raw_cells = [c for ws in data["worksheets"] if isinstance(ws, dict) for c in ws.get("cells", [])]
    else:
        raise NotANotebook("the JSON is not a notebook (no cells)")
    cells = []
    for index, cell in enumerate(raw_cells):
        if isinstance(cell, dict):
            source = cell.get("source", cell.get("input", ""))
            cells.append(Cell(index, str(cell.get("cell_type", "")), _text(source)))
    return cells


_MAGIC = re.compile(r"^\s*[%!]|\?\s*$")
_DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)|^(\w+)\s*(?::[^=]*)?=(?!=)", re.MULTILINE)


def defined_names(source: str) -> set:
    """Names a cell defines at top level (functions, classes, assignments, imports); magics ignored."""
    code = "\n".join("" if _MAGIC.search(line) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {a or b for a, b in _DEFINITION.findall(code)}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


_SHELL_LINE = re.compile(r"^(\s*)(?:!|%(?:pip|conda|mamba|system|sx|sc)\b)")
_SHELL_CELL = re.compile(r"^\s*%%(?:bash|sh|system|script|sx)\b")


def without_shell_commands(source: str) -> tuple:
    """(source with shell commands replaced by ``pass``, the commands): ``!pip install ...``, ``%pip``,
    ``%%bash`` cells. A Colab habit that would otherwise change the grader's own environment."""
    if _SHELL_CELL.match(source):
        return "pass", [source.strip().splitlines()[0]]
    lines, commands = [], []
    for line in source.split("\n"):
        match = _SHELL_LINE.match(line)
        if match:
            commands.append(line.strip())
            line = f"{match.group(1)}pass  # shell command left out by the grader"
        lines.append(line)
    return "\n".join(lines), commands


# ----------------------------------------------------------------------------- labs

def load_labs() -> tuple:
    """The course's labs with their GRADING tables (imports the checks, hence torch)."""
    import importlib

    labs = []
    for number, (title, module) in LABS.items():
        exercises = tuple(importlib.import_module(module).GRADING) if module else ()
        labs.append(Lab(number, title, module, exercises))
    return tuple(labs)


def detect_lab(cells: Sequence[Cell], file_name: str, labs: Sequence[Lab], forced: int | None) -> tuple:
    """(lab number or None, notes): from ``forced``, else the exercise names the code defines, else the file name."""
    defined = set().union(*(defined_names(c.source) for c in cells if c.cell_type == "code"))
    owners: dict = {}
    for lab in labs:
        for ex in lab.exercises:
            for name in ex.needs:
                owners.setdefault(name, set()).add(lab.number)
    scores = {lab.number: sorted(n for ex in lab.exercises for n in ex.needs
                                 if n in defined and owners[n] == {lab.number}) for lab in labs}
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


# ----------------------------------------------------------------------------- running a kernel

def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("labs_utils.grade.kernel")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


class _LeanClient(NotebookClient):
    """A NotebookClient that keeps no output but the grader's results (huge outputs cost nothing) and
    remembers the error of the last cell (the synthetic one of a timeout included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.comm_open_handlers = {}  # no widget state, no Output-widget capture
        self.last_error: dict | None = None
        self.on_cell_error = self._remember_error

    def _remember_error(self, cell: Any, cell_index: int, execute_reply: dict) -> None:
        self.last_error = execute_reply.get("content", {})

    def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
        if msg["msg_type"] == "display_data" and RESULT_MIME in msg["content"].get("data", {}):
            return super().output(outs, msg, display_id, cell_index)
        return None


class _GradingKernelSpecs(KernelSpecManager):
    """The one kernel the grader starts: ``python -m labs_utils.grading_kernel`` with this Python."""

    def __init__(self, memory_limit: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory_limit = memory_limit

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "labs_utils.grading_kernel", "--memory-limit", str(self.memory_limit),
                  "--parent-pid", str(os.getpid()), "-f", "{connection_file}"],
            display_name="labs_utils grading", language="python", interrupt_mode="signal",
        )


def _death(code: int | None) -> str:
    """How the kernel died, as a verb phrase: 'killed the kernel (SIGSEGV: a crash in compiled code)'."""
    if code is None:
        return "killed the kernel"
    if code >= 0:
        return f"killed the kernel (exit code {code}: os._exit, exit() or a crash)"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    reason = {"SIGSEGV": "a crash in compiled code", "SIGBUS": "a crash in compiled code",
              "SIGABRT": "an abort in compiled code",
              "SIGKILL": "usually the machine running out of memory"}.get(name)
    return f"killed the kernel ({name}: {reason})" if reason else f"killed the kernel ({name})"


class KernelDied(Exception):
    """The kernel process died, or hung past an interrupt and was stopped; ``how`` is a verb phrase."""

    def __init__(self, how: str) -> None:
        super().__init__(how)
        self.how = how


class KernelSession:
    """One fresh kernel (in ``cwd``) that runs a submission's code, then its checks; see :func:`run_submission`.

    Used as a context manager: the kernel is killed on exit (its state is of no further use).
    """

    def __init__(self, options: Options, cwd: str) -> None:
        self.options = options
        env = dict(os.environ, MPLBACKEND="Agg", **dict(options.env))
        if options.fast:
            env["LABS_FAST"] = "1"
        self.nb = nbformat.v4.new_notebook()
        manager = AsyncKernelManager(kernel_name="labs-grading",  # nbclient needs the asynchronous manager
                                     kernel_spec_manager=_GradingKernelSpecs(options.memory_limit))
        self.client = _LeanClient(
            self.nb, km=manager, timeout=options.timeout, allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
            store_widget_state=False, record_timing=False, shutdown_kernel="immediate", log=_quiet_logger(),
        )
        self._context = self.client.setup_kernel(cleanup_kc=True, env=env, cwd=cwd,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> KernelSession:
        self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._context.__exit__(*exc)
        except Exception:  # a kernel that died took its channels with it: nothing left to clean
            pass

    def _exit_code(self) -> int | None:
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        try:
            return process.wait(timeout=5) if process is not None else None
        except subprocess.TimeoutExpired:
            return None

    def run(self, source: str, timeout: int) -> tuple:
        """Execute code: ("ok" | "error" | "timeout", error content or None, grader results); KernelDied."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = timeout
        self.client.last_error = None
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except DeadKernelError:
            raise KernelDied(_death(self._exit_code())) from None
        results = [out["data"][RESULT_MIME] for out in cell.outputs if out.get("output_type") == "display_data"]
        error = self.client.last_error
        if error is None:
            return "ok", None, results
        if error.get("ename") != TIMEOUT_ENAME:
            return "error", error, results
        if not self._responds(timeout):  # leaving the session kills it
            raise KernelDied(f"ran past the {timeout} s timeout and ignored the interrupt, so the kernel was stopped")
        return "timeout", None, results

    def _responds(self, timeout: int) -> bool:
        """After an interrupt: does the kernel answer again within the cell timeout?"""
        self.client.timeout = timeout
        try:
            return self.client.wait_for_reply(self.client.kc.kernel_info()) is not None
        except DeadKernelError:
            return False


def _grade_cell(module: str, exercise: Any, nonce: str) -> str:
    """The code that grades one exercise in the kernel (see labs_utils.grading_kernel.grade_in_kernel)."""
    return (
        "import importlib as _labs_importlib, sys as _labs_sys\n"
        "_labs_sys.modules.pop('labs_utils.grading_kernel', None)\n"
        "_labs_importlib.import_module('labs_utils.grading_kernel').grade_in_kernel(\n"
        f"    globals(), {module!r}, {tuple(exercise.needs)!r}, {exercise.check!r}, {nonce!r})\n"
        "del _labs_importlib, _labs_sys"
    )


def _definitions_outside_code(cells: Sequence[Cell], name: str) -> Cell | None:
    pattern = re.compile(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*=", re.MULTILINE)
    return next((c for c in cells if c.cell_type != "code" and pattern.search(c.source)), None)


def _result_for(exercise: Any, outcome: dict, cells: Sequence[Cell]) -> ExerciseResult:
    status, message = outcome["status"], outcome["message"]
    if status == "missing":
        names = [n for n in exercise.needs if _definitions_outside_code(cells, n)]
        for name in names:
            cell = _definitions_outside_code(cells, name)
            message += (f"; `{name}` is written in {cell.label}, which is a {cell.cell_type} cell: "
                        "turn it back into a code cell")
        if not names:
            message += " (was its cell deleted, renamed, or did it raise an error? See the problems below)"
    points = float(exercise.points) if status == "passed" else 0.0
    return ExerciseResult(exercise.name, points, float(exercise.points), status, message)


def run_submission(cells: Sequence[Cell], lab: Lab, options: Options, result: SubmissionResult) -> None:
    """Execute the code cells in a fresh kernel, then grade every exercise; fills ``result`` in."""
    code = [c for c in cells if c.cell_type == "code" and c.source.strip()]
    skipped: set = set()
    graded: dict = {}
    errors: dict = {}
    nonce = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="labs-grade-") as cwd:
        for _ in range(MAX_KERNEL_STARTS):
            try:
                with KernelSession(options, cwd) as kernel:
                    _run_cells(kernel, code, skipped, errors, result)
                    _run_checks(kernel, lab, cells, graded, nonce, options)
                break
            except KernelDied:
                continue
    for exercise in lab.exercises:
        if exercise.name not in graded:
            graded[exercise.name] = ExerciseResult(
                exercise.name, 0.0, float(exercise.points), "not-run",
                f"not graded: the kernel died {MAX_KERNEL_STARTS} times")
    result.exercises = [graded[ex.name] for ex in lab.exercises]
    result.cell_errors = [errors[index] for index in sorted(errors)]


def _note(result: SubmissionResult, problem: str) -> None:
    if problem not in result.problems:  # re-runs meet the same problems again
        result.problems.append(problem)


def _run_cells(kernel: KernelSession, code: Sequence[Cell], skipped: set, errors: dict,
               result: SubmissionResult) -> None:
    """Run the code cells in order; cells that killed or hung the kernel before are skipped."""
    timeout = kernel.options.timeout
    for cell in code:
        if cell.index in skipped:
            continue
        source, commands = without_shell_commands(cell.source)
        if commands:
            _note(result, f"{cell.label}: shell commands are not run by the grader ({'; '.join(commands)[:200]})")
        start = time.perf_counter()
        try:
            status, error, _ = kernel.run(source, timeout)
        except KernelDied as died:
            skipped.add(cell.index)
            _note(result, f"{cell.label} {died.how}; the notebook was run again from the top without that cell")
            raise
        finally:
            result.cells_seconds += time.perf_counter() - start
        if status == "timeout":
            skipped.add(cell.index)  # interrupted now; left out of any re-run
            _note(result, f"{cell.label} did not finish within {timeout} s and was interrupted")
        elif status == "error":
            errors[cell.index] = CellError(cell.index + 1, cell.first_line, str(error.get("ename", "")),
                                           str(error.get("evalue", ""))[:500])
        else:
            errors.pop(cell.index, None)


def _run_checks(kernel: KernelSession, lab: Lab, cells: Sequence[Cell], graded: dict, nonce: str,
                options: Options) -> None:
    status, error, _ = kernel.run(f"import {lab.module}", max(options.timeout, IMPORT_TIMEOUT_S))
    if status != "ok":
        reason = f"{error.get('ename')}: {error.get('evalue')}" if error else "it timed out"
        raise RuntimeError(f"the kernel cannot import {lab.module} ({reason})")
    for exercise in lab.exercises:
        if exercise.name in graded:
            continue
        try:
            status, error, results = kernel.run(_grade_cell(lab.module, exercise, nonce), options.timeout)
        except KernelDied as died:
            graded[exercise.name] = ExerciseResult(
                exercise.name, 0.0, float(exercise.points), "crashed",
                f"while this exercise was checked, your code {died.how}")
            raise
        mine = [r for r in results if isinstance(r, dict) and r.get("nonce") == nonce]
        if status == "timeout":
            outcome = {"status": "timeout", "message": f"the check did not finish within {options.timeout} s "
                                                       "(an endless loop in your code?)"}
        elif mine:
            outcome = mine[-1]
        else:
            detail = f"{error.get('ename')}: {error.get('evalue')}" if error else "no result"
            outcome = {"status": "error", "message": f"the check could not run ({detail})"}
        graded[exercise.name] = _result_for(exercise, outcome, cells)


# ----------------------------------------------------------------------------- one submission, a batch

def grade_submission(path: Path, student: str, options: Options) -> SubmissionResult:
    """Grade one file; never raises (a failure of the grader itself gives status "grader-error")."""
    start = time.perf_counter()
    result = SubmissionResult(student=student, path=str(path))
    try:
        raw = path.read_bytes()
        result.sha256 = hashlib.sha256(raw).hexdigest()
        cells = read_cells(raw)
        labs = options.labs or load_labs()
        number, notes = detect_lab(cells, path.name, labs, options.lab)
        result.problems += notes
        lab = next((lab for lab in labs if lab.number == number), None)
        if number is None:
            result.status = "unknown-lab"
            result.problems.append("cannot tell which lab this is: its file name has no lab number and it "
                                   "defines none of the labs' exercises; pass --lab N")
        elif lab is None:
            result.status = "unknown-lab"
            result.problems.append(f"there is no lab {number} (labs: {', '.join(str(x.number) for x in labs)})")
        elif not lab.exercises:
            result.lab, result.status = number, "no-exercises"
            result.problems.append(f"lab {number} ({lab.title}) has no graded exercises")
        else:
            result.lab = number
            run_submission(cells, lab, options, result)
    except NotANotebook as exc:
        result.status = "not-a-notebook"
        result.problems.append(f"not a notebook: {exc}")
        _zero_for_the_lab_named(result, path, options)
    except Exception as exc:  # the grader's own failure: report it, keep the batch going
        result.status = "grader-error"
        last = traceback.extract_tb(exc.__traceback__)[-1]
        result.problems.append(f"the grader failed: {type(exc).__name__}: {exc} "
                               f"({Path(last.filename).name}:{last.lineno})")
    result.seconds = round(time.perf_counter() - start, 2)
    result.cells_seconds = round(result.cells_seconds, 2)
    return result


def _zero_for_the_lab_named(result: SubmissionResult, path: Path, options: Options) -> None:
    """An unreadable file still gets its gradebook row: zero for each exercise of the lab --lab or its name gives."""
    labs = options.labs or load_labs()
    number, _ = detect_lab([], path.name, labs, options.lab)
    lab = next((lab for lab in labs if lab.number == number), None)
    if lab is not None:
        result.lab = lab.number
        result.exercises = [ExerciseResult(ex.name, 0.0, float(ex.points), "not-run", "the file could not be read")
                            for ex in lab.exercises]


def _grade_job(job: tuple) -> SubmissionResult:
    return grade_submission(*job)


def collect(paths: Sequence[Path]) -> list:
    """(file, student name) for every file given and every *.ipynb under every folder given."""
    jobs = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts and p.is_file())
            jobs += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        else:
            jobs.append((path, path.stem))
    seen: dict = {}
    for _file, name in jobs:
        seen[name] = seen.get(name, 0) + 1
    return [(file, str(file) if seen[name] > 1 else name) for file, name in jobs]


def grade_batch(jobs: Sequence[tuple], options: Options, workers: int = 1, progress: bool = False) -> list:
    """Grade (file, student) pairs, ``workers`` at a time (worker processes); results in the order given."""
    if not options.labs:
        options = replace(options, labs=load_labs())
    tasks = [(Path(file), student, options) for file, student in jobs]
    done: list = []

    def finished(result: SubmissionResult) -> SubmissionResult:
        done.append(result)
        if progress:
            score = f"{result.total:g}/{result.max_total:g}" if result.status == "graded" else result.status
            print(f"[{len(done)}/{len(tasks)}] {result.student}: {score} ({result.seconds:.1f} s)",
                  file=sys.stderr, flush=True)
        return result

    if workers <= 1 or len(tasks) <= 1:
        return [finished(_grade_job(task)) for task in tasks]
    results: dict = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_grade_job, task): index for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                file, student, _ = tasks[index]
                result = SubmissionResult(student, str(file), status="grader-error",
                                          problems=[f"the grader's worker process died: {exc}"])
            results[index] = finished(result)
    return [results[index] for index in range(len(tasks))]


# ----------------------------------------------------------------------------- reports

def feedback(result: SubmissionResult) -> str:
    """The short text a student receives."""
    lab = f"Lab {result.lab}" if result.lab is not None else "Unknown lab"
    lines = [f"{lab} - {result.student} ({Path(result.path).name})"]
    if result.status == "graded":
        lines.append(f"Score: {result.total:g} / {result.max_total:g}")
        lines.append("")
        for ex in result.exercises:
            mark = "✔" if ex.status == "passed" else "✘"
            lines.append(f"{mark} {ex.name}: {ex.points:g}/{ex.max_points:g} {STATUS_TEXT[ex.status]}")
            lines += [f"    {line}" for line in ex.message.splitlines()]
    elif result.exercises:
        lines.append(f"Score: 0 / {result.max_total:g} (not graded: {result.status})")
    else:
        lines.append(f"Not graded ({result.status}).")
    if result.problems:
        lines += ["", "Problems:"] + [f"- {p}" for p in result.problems]
    if result.cell_errors:
        lines += ["", "Cells that raised an error when the notebook was run from the top:"]
        lines += [f"- cell {e.cell} (`{e.first_line}`): {e.ename}: {e.evalue.splitlines()[0] if e.evalue else ''}"
                  for e in result.cell_errors[:MAX_LISTED_ERRORS]]
        if len(result.cell_errors) > MAX_LISTED_ERRORS:
            lines.append(f"- ... and {len(result.cell_errors) - MAX_LISTED_ERRORS} more")
    return "\n".join(lines) + "\n"


def to_dict(result: SubmissionResult) -> dict:
    data = asdict(result)
    data.update(total=result.total, max_total=result.max_total, feedback=feedback(result))
    return data


def write_csv(results: Sequence[SubmissionResult], path: Path) -> None:
    """One row per submission: identity, lab, status, points per exercise, total, problems."""
    exercise_names = list(dict.fromkeys(ex.name for r in results for ex in r.exercises))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "file", "lab", "status", "total", "max_total", *exercise_names,
                         "problems", "sha256", "seconds"])
        for r in results:
            points = {ex.name: f"{ex.points:g}" for ex in r.exercises}
            writer.writerow([r.student, r.path, "" if r.lab is None else r.lab, r.status, f"{r.total:g}",
                             f"{r.max_total:g}", *(points.get(n, "") for n in exercise_names),
                             " | ".join(r.problems), r.sha256, f"{r.seconds:.1f}"])


def write_reports(results: Sequence[SubmissionResult], out: Path) -> list:
    """Write ``out`` (.json: everything; .csv: the gradebook plus OUT_feedback/<student>.txt); returns paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps([to_dict(r) for r in results], indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        return [out]
    write_csv(results, out)
    folder = out.with_name(out.stem + "_feedback")
    folder.mkdir(exist_ok=True)
    written = [out]
    for r in results:
        target = folder / (re.sub(r"[^\w.-]+", "_", r.student) + ".txt")
        target.write_text(feedback(r), encoding="utf-8")
        written.append(target)
    return written


def summary_table(results: Sequence[SubmissionResult]) -> str:
    width = max([len("student")] + [len(r.student) for r in results])
    lines = [f"{'student':<{width}}  lab  score      status"]
    for r in results:
        score = f"{r.total:g}/{r.max_total:g}" if r.exercises else "-"
        lab = "?" if r.lab is None else str(r.lab)
        lines.append(f"{r.student:<{width}}  {lab:<3}  {score:<9}  {r.status}")
    return "\n".join(lines)


def default_memory_limit(workers: int) -> int:
    """Three quarters of the machine's memory shared by the kernels running at once (0 if unknown)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0
    return int(total * 0.75 / max(workers, 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.grade", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of *.ipynb")
    parser.add_argument("--lab", type=int, choices=sorted(LABS), help="grade as this lab (default: detect)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: 600)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default: 1)")
    parser.add_argument("--fast", action="store_true", help="run the notebooks in fast mode (LABS_FAST=1)")
    parser.add_argument("--memory-limit", type=float, default=None,
                        help="GiB of memory per kernel, 0 for no limit (default: 3/4 of RAM / jobs; Linux)")
    parser.add_argument("--out", type=Path, help="report.csv (gradebook + report_feedback/*.txt) or report.json")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    if args.timeout < 1 or args.jobs < 1:
        parser.error("--timeout and --jobs must be at least 1")
    jobs = collect(args.submissions)
    if not jobs:
        parser.error("no *.ipynb files found")
    memory = default_memory_limit(args.jobs) if args.memory_limit is None else int(args.memory_limit * 2**30)
    try:
        options = Options(timeout=args.timeout, fast=args.fast, memory_limit=memory, labs=load_labs(),
                          lab=args.lab)
    except Exception as exc:
        print(f"error: cannot load the grading tables: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    results = grade_batch(jobs, options, workers=args.jobs, progress=True)
    out = args.out
    if out is None and any(p.is_dir() for p in args.submissions):
        out = Path("gradebook.csv")
    print(summary_table(results))
    if out is not None:
        written = write_reports(results, out)
        feedback_files = written[1:]
        print(f"wrote {out}" + (f" and {len(feedback_files)} feedback files in {feedback_files[0].parent}"
                                if feedback_files else ""))
    else:
        for r in results:
            print("\n" + feedback(r), end="")
    return 1 if all(r.status == "grader-error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
