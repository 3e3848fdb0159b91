"""Judging evidence under a time limit: decoding and the exercise's judge run in a worker process of the grader,
and so does drawing a probe's inputs from the seed (the seed stays in the grader; the probe process gets the inputs).

Evidence comes from the student's kernel: a judge fed with forged evidence (150,000 log entries, a huge list)
may take very long, or crash in compiled code. The grader sends the evidence text to one long-lived worker per
grading process and waits at most ``timeout`` seconds; a worker that overruns or dies is killed and replaced,
and only that exercise fails. Without a timeout (tests, the notebook's own checks) it all runs in-process.
"""
from __future__ import annotations

import atexit
import multiprocessing
import pickle
from typing import Any

from ... import evidence as ev
from ... import exercises

STARTUP_TIMEOUT_S = 300  # the worker's first import of torch on a busy machine


class JudgeFailed(Exception):
    """The judge overran its time or its worker died; the message is for the student's feedback."""


def verdicts(exercise: exercises.Exercise, evidence_text: Any, seed: int) -> dict[str, str | None]:
    """Decode the evidence strictly and judge it: {part: None | message}; never raises."""
    try:
        if not isinstance(evidence_text, str):
            raise ev.EvidenceError("the kernel sent no evidence text")
        found = ev.decode(evidence_text)
    except ev.EvidenceError as exc:
        found = {exercises.ERROR_KEY: f"the grader could not read what the check measured in your kernel ({exc}); "
                                      "something in the notebook interferes with grading"}
    try:
        return exercises.judge(exercise, found, seed)
    except Exception as exc:  # exercises.judge catches the judge's own errors; this is a last resort
        message = f"the evidence could not be judged ({type(exc).__name__}: {exc})."
        return {part.name: message for part in exercise.parts}


class InputsFailed(Exception):
    """The exercise's inputs could not be drawn (the course's code, not the submission's)."""


class _WorkerLost(Exception):
    """The worker did not start, overran its time or died (``reason``); it has been stopped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _inputs_job(exercise: exercises.Exercise, seed: int) -> tuple[str, Any]:
    try:
        return "ok", exercises.encoded_inputs(exercise, seed)
    except Exception as exc:  # noqa: BLE001 - reported as the grader's own problem
        return "error", f"{type(exc).__name__}: {exc}"


_JOBS = {"verdicts": verdicts, "inputs": _inputs_job}


def _serve(connection: Any) -> None:
    """The worker: import the evidence machinery (torch) once, then judge what arrives until the pipe closes."""
    import labs_utils.evidence  # noqa: F401

    connection.send("ready")
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        kind, arguments = pickle.loads(job)
        connection.send(_JOBS[kind](*arguments))


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that has run torch (see batch.py)
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name="labs-judge", daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def ask(self, job: bytes, timeout: float) -> Any:
        if not self.ready:
            if not self.connection.poll(STARTUP_TIMEOUT_S):
                raise _WorkerLost("unstarted")
            self.connection.recv()
            self.ready = True
        self.connection.send(job)
        if not self.connection.poll(timeout):
            raise _WorkerLost("overran")
        return self.connection.recv()

    def stop(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.connection.close()


_WORKER: _Worker | None = None


def warm_up() -> None:
    """Start the worker now (it imports torch while the submission's cells run)."""
    global _WORKER
    if _WORKER is None or not _WORKER.process.is_alive():
        _WORKER = _Worker()


def _in_worker(kind: str, arguments: tuple, timeout: float | None) -> Any:
    """``_JOBS[kind](*arguments)`` in the worker, at most ``timeout`` seconds; in this process without a timeout
    or for a job that cannot be pickled (e.g. a judge defined inside a function). _WorkerLost when the worker did
    not start, overran or died; it is stopped, and the next job starts a fresh one."""
    global _WORKER
    try:
        job = None if timeout is None else pickle.dumps((kind, arguments))
    except (pickle.PicklingError, AttributeError, TypeError):
        job = None
    if job is None:
        return _JOBS[kind](*arguments)
    warm_up()
    assert _WORKER is not None
    try:
        return _WORKER.ask(job, timeout)
    except (_WorkerLost, EOFError, OSError, BrokenPipeError) as exc:
        _WORKER.stop()
        _WORKER = None
        raise _WorkerLost(exc.reason if isinstance(exc, _WorkerLost) else "died") from None


def judge_with_timeout(exercise: exercises.Exercise, evidence_text: Any, seed: int,
                       timeout: float | None) -> dict[str, str | None]:
    """:func:`verdicts` in the worker, at most ``timeout`` seconds (None: in this process); JudgeFailed."""
    try:
        return _in_worker("verdicts", (exercise, evidence_text, seed), timeout)
    except _WorkerLost as lost:
        raise JudgeFailed({
            "unstarted": "the grader's judge process did not start",
            "overran": f"judging what your code returned took more than {timeout:g} s (evidence this large or this "
                       "shaped does not come from the check): something in the notebook interferes with grading",
            "died": "the grader's judge process died on what your code returned (e.g. a crash in compiled code on "
                    "malformed evidence): something in the notebook interferes with grading",
        }[lost.reason]) from None


def inputs_with_timeout(exercise: exercises.Exercise, seed: int, timeout: float | None) -> str | None:
    """:func:`exercises.encoded_inputs` in the worker, at most ``timeout`` seconds (None: in this process);
    InputsFailed."""
    try:
        status, value = _in_worker("inputs", (exercise, seed), timeout)
    except _WorkerLost as lost:
        what = {"unstarted": "did not start", "overran": f"took more than {timeout:g} s", "died": "died"}[lost.reason]
        raise InputsFailed(f"the grader's judge process {what} drawing them") from None
    if status != "ok":
        raise InputsFailed(value)
    return value


@atexit.register
def _stop_worker() -> None:
    if _WORKER is not None:
        _WORKER.stop()
