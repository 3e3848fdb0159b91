"""Grading many submissions: finding them, naming students, grading them a few at a time."""
from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

from .kernel import Options
from .labs import load_labs
from .results import SubmissionResult, SubmissionStatus
from .run import check_imports, grade_submission


def collect(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, student name) for every file given and every *.ipynb under every folder given."""
    jobs: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.ipynb")
                           if ".ipynb_checkpoints" not in p.parts and p.is_file())
            jobs += [(p, p.relative_to(path).with_suffix("").as_posix()) for p in files]
        else:
            jobs.append((path, path.stem))
    seen: dict[str, int] = {}
    for _file, name in jobs:
        seen[name] = seen.get(name, 0) + 1
    return [(file, str(file) if seen[name] > 1 else name) for file, name in jobs]


def _grade_job(job: tuple[Path, str, Options]) -> SubmissionResult:
    return grade_submission(*job)


def grade_batch(jobs: Sequence[tuple], options: Options, workers: int = 1,
                progress: bool = False) -> list[SubmissionResult]:
    """Grade (file, student) pairs, ``workers`` at a time (worker processes); results in the order given.

    First, once, a clean kernel imports every lab's checks (:func:`.run.check_imports`): a failure there is the
    grader's, and after it an import failure inside one submission's kernel is that submission's."""
    if not options.labs:
        options = replace(options, labs=load_labs())
    options = check_imports(options)
    tasks = [(Path(file), student, options) for file, student in jobs]
    done: list[SubmissionResult] = []

    def finished(result: SubmissionResult) -> SubmissionResult:
        done.append(result)
        if progress:
            score = (f"{result.total:g}/{result.max_total:g}" if result.status is SubmissionStatus.GRADED
                     else result.status.value)
            print(f"[{len(done)}/{len(tasks)}] {result.student}: {score} ({result.seconds:.1f} s)",
                  file=sys.stderr, flush=True)
        return result

    if workers <= 1 or len(tasks) <= 1:
        return [finished(_grade_job(task)) for task in tasks]
    results: dict[int, SubmissionResult] = {}
    # spawn, never fork: a forked copy of a process that already ran torch (pytest, a notebook) can deadlock in
    # torch's thread pools the first time the judge computes a reference, and then nothing ever times it out
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_grade_job, task): index for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                file, student, _ = tasks[index]
                result = SubmissionResult(student, str(file), status=SubmissionStatus.GRADER_ERROR,
                                          problems=[f"the grader's worker process died: {exc}"])
            results[index] = finished(result)
    return [results[index] for index in range(len(tasks))]
