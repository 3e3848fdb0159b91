"""What runs inside the kernel that grades a submission (started by python -m labs_utils.grade).

- ``python -m labs_utils.instructor.grading.kernel_side [--limit=RLIMIT_NAME=VALUE ...] [--parent-pid PID] -f FILE``
  starts an IPython kernel under hard resource limits (no core dumps; on Linux a cap on the memory it may
  allocate, so a runaway allocation raises MemoryError in the student's cell instead of taking the machine
  down; file size, open files); the kernel exits when the grader that started it dies.
- No evidence comes from this kernel: each exercise is probed in a process of its own (:mod:`.probe_server`).
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence

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
