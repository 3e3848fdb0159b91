"""What runs inside the kernel that grades a submission (started by python -m labs_utils.grade).

- ``python -m labs_utils.instructor.grading.kernel_side [--limit=RLIMIT_NAME=VALUE ...] [--parent-pid PID] -f FILE``
  starts an IPython kernel under hard resource limits (no core dumps; on Linux a cap on the memory it may
  allocate, so a runaway allocation raises MemoryError in the student's cell instead of taking the machine
  down; file size, open files); the kernel exits when the grader that started it dies.
- :func:`probe_in_kernel` runs one exercise's *probe* on the student's objects, with the checks imported
  afresh, and publishes the evidence (JSON text) as display data. It decides nothing: the grader
  decodes the evidence strictly and runs the exercise's *judge* in its own process.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
import time
from collections.abc import Sequence

RESULT_MIME = "application/vnd.labs-utils.grade+json"
MAX_MESSAGE_CHARS = 2000


def limit_resources(limits: Sequence[tuple[str, int]]) -> None:
    """Set each resource limit (name as in :mod:`resource`, e.g. ``RLIMIT_DATA``) soft and hard, never above the
    hard limit already there: the kernel cannot raise them again. Where :mod:`resource` is missing, nothing."""
    try:
        import resource
    except ImportError:  # Windows: no limits
        return
    for name, value in limits:
        which = getattr(resource, name, None)
        if which is None:
            continue
        _, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Exit once process ``parent`` (the grader) is no longer our parent, so no orphan keeps running a loop."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="grader-watchdog", daemon=True).start()


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " [...]"


FRESH = ("labs_utils",)  # packages whose cached modules are dropped before each probe (plus the checks module)


def drop_cached(module_name: str) -> None:
    """Forget the cached course modules and ``module_name``'s package, so the next import reads them afresh.

    Names a student reassigned or monkey-patched in those modules (and a replaced ``__path__``) are
    thereby gone. torch, numpy and IPython cannot be re-imported: what a submission patched there can
    change what its own code computes, never the verdict (the judge runs in the grader's process).
    """
    top = module_name.split(".")[0]
    for name in list(sys.modules):
        if name.split(".")[0] in (*FRESH, top):
            del sys.modules[name]


def _measure(student: dict, module_name: str, table: str, name: str, seed: int) -> dict:
    """{"missing": [names]} or {"evidence": JSON text}; the probe's own failures become error evidence."""
    drop_cached(module_name)
    evidence = importlib.import_module("labs_utils.evidence")
    exercises = importlib.import_module("labs_utils.exercises")
    exercise = exercises.exercise_named(getattr(importlib.import_module(module_name), table), name)
    missing = [need for need in exercise.needs if need not in student]
    if missing:
        return {"missing": missing}
    try:
        found = exercises.probe(exercise, [student[need] for need in exercise.needs], seed)
    except Exception as exc:  # the probe crashed on the student's objects (not an AssertionError)
        found = {exercises.ERROR_KEY: _shorten(f"the check crashed on your code: {type(exc).__name__}: {exc}")}
    try:
        return {"evidence": evidence.encode(found)}
    except (evidence.EvidenceError, TypeError, ValueError) as exc:
        message = f"the check could not record what your code returned: {exc}"
        return {"evidence": evidence.encode({exercises.ERROR_KEY: _shorten(message)})}


def probe_in_kernel(student: dict, module_name: str, table: str, name: str, seed: int, nonce: str) -> None:
    """Probe one exercise on the student's objects (checks imported afresh) and publish the evidence.

    The grader decodes the evidence strictly and judges it in its own process; nothing published here
    says whether the exercise passed.
    """
    from IPython.display import publish_display_data

    publish_display_data({RESULT_MIME: {**_measure(student, module_name, table, name, seed), "nonce": nonce}})


def probe_cell(module_name: str, table: str, name: str, seed: int, nonce: str) -> str:
    """The code the grader runs in the kernel to probe one exercise (kernel_side imported afresh too)."""
    return (
        "import sys as _labs_sys, importlib as _labs_importlib\n"
        "for _labs_name in [n for n in _labs_sys.modules if n.split('.')[0] == 'labs_utils']:\n"
        "    del _labs_sys.modules[_labs_name]\n"
        "_labs_importlib.import_module('labs_utils.instructor.grading.kernel_side').probe_in_kernel(\n"
        f"    globals(), {module_name!r}, {table!r}, {name!r}, {seed!r}, {nonce!r})\n"
        "del _labs_sys, _labs_importlib, _labs_name"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.instructor.grading.kernel_side", add_help=False)
    parser.add_argument("--limit", action="append", default=[], help="RLIMIT_NAME=VALUE, set soft and hard")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the grader) dies")
    args, kernel_args = parser.parse_known_args(argv)
    limit_resources([(name, int(value)) for name, _, value in (item.partition("=") for item in args.limit)])
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    else:  # in a sandbox's PID namespace the launcher's pid means nothing (bubblewrap ends us with the grader)
        os.environ.pop("JPY_PARENT_PID", None)
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=kernel_args)


if __name__ == "__main__":
    main()
