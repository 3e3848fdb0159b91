"""What runs inside the kernel that grades a submission (started by labs_utils.grade).

- ``python -m labs_utils.grading_kernel [--memory-limit BYTES] [--parent-pid PID] -f CONNECTION_FILE`` starts an IPython
  kernel with no core dumps and, on Linux, a cap on the memory it may allocate, so a runaway
  allocation raises MemoryError in the student's cell instead of taking the machine down; the
  kernel exits when the grader that started it dies.
- :func:`grade_in_kernel` runs one exercise's check in the student's namespace, with the checks
  imported afresh, and publishes the outcome as display data for the grader.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import importlib
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

RESULT_MIME = "application/vnd.labs-utils.grade+json"
MAX_MESSAGE_CHARS = 2000


def limit_resources(memory_bytes: int) -> None:
    """No core files; at most ``memory_bytes`` of heap (RLIMIT_DATA, Linux) when it is positive."""
    try:
        import resource
    except ImportError:  # Windows: no limits
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0 and sys.platform.startswith("linux"):
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        soft = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """Exit once process ``parent`` (the grader) is no longer our parent, so no orphan keeps running a loop."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="grader-watchdog", daemon=True).start()


def fresh_import(module_name: str) -> Any:
    """Import ``module_name`` and every ``labs_utils.checks`` module again, ignoring the cached copies.

    Names a student reassigned or monkey-patched in those modules are thereby restored.
    """
    stale = [name for name in sys.modules
             if name == module_name or name == "labs_utils.checks" or name.startswith("labs_utils.checks.")]
    for name in stale:
        del sys.modules[name]
    return importlib.import_module(module_name)


def check_namespace(check: str, student: dict, needs: Sequence[str], checks: Any) -> dict:
    """The globals a check expression is evaluated in.

    Each name it uses comes from: the student's definitions for names in ``needs``, else the freshly
    imported checks module, else the student's namespace (e.g. ``device``), else builtins.
    """
    public = vars(checks)
    env: dict = {"__builtins__": builtins}
    for node in ast.walk(ast.parse(check, mode="eval")):
        if not isinstance(node, ast.Name):
            continue
        if node.id in needs and node.id in student:
            env[node.id] = student[node.id]
        elif node.id in public:
            env[node.id] = public[node.id]
        elif node.id in student:
            env[node.id] = student[node.id]
    return env


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " [...]"


def evaluate_check(student: dict, module_name: str, needs: Sequence[str], check: str) -> dict:
    """Run one check: {"status": "passed" | "failed" | "missing" | "error", "message": str}."""
    missing = [name for name in needs if name not in student]
    if missing:
        return {"status": "missing", "message": "not defined when the notebook finished: " + ", ".join(missing)}
    try:
        checks = fresh_import(module_name)
        eval(compile(check, "<grading check>", "eval"), check_namespace(check, student, needs, checks))
    except AssertionError as exc:
        return {"status": "failed", "message": _shorten(str(exc) or "the check failed (no message).")}
    except Exception as exc:
        return {"status": "error", "message": _shorten(f"the check itself raised {type(exc).__name__}: {exc}")}
    return {"status": "passed", "message": ""}


def grade_in_kernel(student: dict, module_name: str, needs: Sequence[str], check: str, nonce: str) -> None:
    """Evaluate a check in the kernel and publish the outcome (tagged with the grader's nonce)."""
    from IPython.display import publish_display_data

    outcome = evaluate_check(student, module_name, needs, check)
    publish_display_data({RESULT_MIME: {**outcome, "nonce": nonce}})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.grading_kernel", add_help=False)
    parser.add_argument("--memory-limit", type=int, default=0, help="bytes of heap the kernel may use (0: none)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the grader) dies")
    args, kernel_args = parser.parse_known_args(argv)
    limit_resources(args.memory_limit)
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=kernel_args)


if __name__ == "__main__":
    main()
