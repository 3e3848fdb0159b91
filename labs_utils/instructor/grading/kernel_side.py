"""What runs inside the kernel that grades a submission (started by python -m labs_utils.grade).

- ``python -m labs_utils.instructor.grading.kernel_side [--limit=RLIMIT_NAME=VALUE ...] [--parent-pid PID] -f FILE``
  starts an IPython kernel under hard resource limits (no core dumps; on Linux a cap on the memory it may
  allocate, so a runaway allocation raises MemoryError in the student's cell instead of taking the machine
  down; file size, open files); the kernel exits when the grader that started it dies.
- Outputs over MAX_OUTPUT_BYTES are replaced by a one-line notice before they are sent (:func:`cap_outputs`).
- No evidence comes from this kernel: each exercise is probed in a process of its own (:mod:`.probe_server`).
"""
from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

MAX_MESSAGE_CHARS = 2000
# Outputs over this size are replaced, in the kernel, by a one-line notice (below the grader's own cut at 80 MiB,
# which still holds for a kernel whose student code undid this: ZeroMQ then drops the message and the connection).
MAX_OUTPUT_BYTES = 64 * 2**20
DROPPED = "[labs_utils grader] this output was not sent: "  # the notice's start, which the grader looks for
_OUTPUT_TYPES = {"stream", "display_data", "update_display_data", "execute_result", "error", "execute_input",
                 "comm_open", "comm_msg", "clear_output"}


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


def _notice(size: int) -> dict:
    return {"name": "stderr", "text": f"{DROPPED}{size / 2**20:.0f} MiB, over {MAX_OUTPUT_BYTES >> 20} MiB\n"}


def cap_outputs(limit: int = MAX_OUTPUT_BYTES) -> None:
    """Replace every output message over ``limit`` bytes (its frames and buffers) by a short stderr notice, before
    ZeroMQ sends it: the kernel goes on, instead of meeting the grader's cut (a lost connection, then a kernel
    that may crash and a notebook run again without the cell)."""
    from jupyter_client.session import Session

    serialize, send = Session.serialize, Session.send

    def capped_serialize(self: Session, msg: dict, ident: Any = None) -> list:
        frames = serialize(self, msg, ident)
        size = sum(len(frame) for frame in frames)
        if size <= limit or msg.get("header", {}).get("msg_type") not in _OUTPUT_TYPES:
            return frames
        return serialize(self, self.msg("stream", _notice(size), parent=msg.get("parent_header") or {}), ident)

    def capped_send(self: Session, stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None,
                    ident: Any = None, buffers: Any = None, *args: Any, **kwargs: Any) -> Any:
        if isinstance(msg_or_type, dict):
            buffers = buffers or msg_or_type.get("buffers")
        size = sum(memoryview(b).nbytes for b in buffers or ())
        if size > limit:  # buffers travel after the serialized frames (a widget's binary data)
            return send(self, stream, "stream", _notice(size), parent=parent or (
                msg_or_type.get("parent_header") if isinstance(msg_or_type, dict) else None), ident=ident)
        return send(self, stream, msg_or_type, content, parent, ident, buffers, *args, **kwargs)

    Session.serialize, Session.send = capped_serialize, capped_send


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
    cap_outputs()
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=kernel_args)


if __name__ == "__main__":
    main()
