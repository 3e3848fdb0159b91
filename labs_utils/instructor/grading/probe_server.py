"""Where the evidence is collected: a fork server in the sandbox, one fresh child process per exercise.

``python -m labs_utils.instructor.grading.probe_server MODULE TABLE [--limit=NAME=VALUE ...] [--parent-pid PID]``

The server runs no student code. It imports torch, the course's checks and trip-wires, makes itself
non-dumpable (no process of the sandbox's uid can read its memory, its ``/proc`` files or attach to it) and a
child subreaper, and answers the grader on stdin/stdout, one request at a time (8-byte length + JSON:
``{"exercise", "sources": [[file, line, text], ...], "inputs", "timeout"}``: the probe's inputs as evidence text,
drawn by the grader; the seed they come from never reaches this process). For each it forks a child that
closes everything it inherited, sets the trip-wires and a fresh ``__main__`` module, and only then runs the
student's definitions for that exercise (taken from the notebook by :mod:`.extract`; no IPython, no kernel, no
other cell), then the exercise's probe; the evidence goes back on a socket whose every chunk carries the
sender's pid (``SO_PASSCRED``): anything another process wrote there voids the result. Afterwards the server
kills whatever the child left behind and counts the threads and processes it started (the PID namespace's last
pid), which fail the exercise: the probe measures the student's functions alone (torch runs on one thread there,
as on a 2-core machine, so that its own thread pools start no thread). The reply is a header
(status, message, exit status, what was started) and the evidence text, for the grader to decode strictly and
judge in its own process.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from typing import Any

MAX_EVIDENCE = 64 * 2**20 + 2**16  # labs_utils.evidence.MAX_BYTES and a little framing
_CREDENTIALS = struct.calcsize("3i")
LAST_PID = "/proc/sys/kernel/ns_last_pid"


def _prctl(option: int, value: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the README says what is not defended there
        pass


def last_pid() -> int | None:
    try:
        with open(LAST_PID) as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return None


def send(stream: Any, header: dict, payload: bytes = b"") -> None:
    data = json.dumps(header).encode()
    stream.write(struct.pack(">Q", len(data)) + data + struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def receive(stream: Any) -> dict | None:
    size = stream.read(8)
    if len(size) < 8:
        return None
    (length,) = struct.unpack(">Q", size)
    return json.loads(stream.read(length))


# ----------------------------------------------------------------------------- the child (student code)

def _threads_message(when: str) -> str | None:
    others = len(sys._current_frames()) - 1
    if others <= 0:
        return None
    return (f"your code left {others} thread(s) running {when}: the check measures your functions alone, so an "
            "exercise's code must not start threads (or processes).")


def _child(channel: socket.socket, module: str, table: str, request: dict) -> None:
    """Load the student's definitions in a fresh ``__main__``, probe, send b"E" + evidence text (or b"X" + why)."""
    import types

    exercises = importlib.import_module("labs_utils.exercises")
    evidence = importlib.import_module("labs_utils.evidence")
    tripwire = importlib.import_module("labs_utils.tripwire")
    exercise = exercises.exercise_named(getattr(importlib.import_module(module), table), request["exercise"])
    sources, inputs = request["sources"], request["inputs"]  # inputs: decoded by the server (run_one)
    del request
    student = types.ModuleType("__main__")
    student.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = student
    result = None
    with tripwire.trip_wires(exercise.forbidden) as calls:  # armed before any of the student's code runs
        try:
            import linecache

            for name, line, text in sources:
                linecache.cache[name] = (len(text), None, text.splitlines(keepends=True), name)
                exec(compile("\n" * (int(line) - 1) + text, name, "exec"), student.__dict__)
        except BaseException as exc:  # noqa: BLE001 - whatever the student's code raises at definition time
            result = b"X" + _short(f"your code for this exercise raised {type(exc).__name__} when it was defined "
                                   f"(taken alone, with only the imports, functions, classes and constants it "
                                   f"uses): {exc}").encode()
    if result is None and calls:
        result = b"X" + _short(tripwire.delegation_message(exercise.forbidden, calls)).encode()
    if result is None:
        result = _threads_message("after it was defined")
        result = b"X" + result.encode() if result else None
    if result is None:
        objects = [student.__dict__.get(need) for need in exercise.needs]
        try:
            found = exercises.probe(exercise, objects, inputs)
        except BaseException as exc:  # noqa: BLE001 - the probe crashed on the student's objects
            found = {exercises.ERROR_KEY: _short(f"the check crashed on your code: {type(exc).__name__}: {exc}")}
        try:
            result = b"E" + evidence.encode(found).encode()
        except Exception as exc:  # noqa: BLE001
            message = _short(f"the check could not record what your code returned: {exc}")
            result = b"E" + evidence.encode({exercises.ERROR_KEY: message}).encode()
        threads = _threads_message("after the check")
        result = b"X" + threads.encode() if threads else result
    channel.sendall(result)


def _short(text: str) -> str:
    return text if len(text) <= 2000 else text[:2000] + " [...]"


def _start_child(module: str, table: str, request: dict) -> tuple[int, socket.socket]:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    pid = os.fork()
    if pid == 0:  # the child: nothing of the server's but the socket to answer on
        code = 0
        try:
            mine.close()
            os.setpgid(0, 0)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.closerange(3, theirs.fileno())
            os.closerange(theirs.fileno() + 1, 2**16)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child(theirs, module, table, request)
        except BaseException:  # noqa: BLE001
            code = 70
        finally:
            os._exit(code)
    theirs.close()
    return pid, mine


def _read_chunk(channel: socket.socket, pid: int, into: bytearray) -> tuple[bool, bool]:
    """(more may come, a chunk came from another process)."""
    data, ancillary, _, _ = channel.recvmsg(2**20, socket.CMSG_SPACE(_CREDENTIALS))
    if not data:
        return False, False
    senders = [struct.unpack("3i", d[:_CREDENTIALS])[0] for level, kind, d in ancillary
               if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS]
    if senders != [pid]:
        return True, True
    into += data
    return len(into) <= MAX_EVIDENCE, False


def _reap_all(group: int, sandboxed: bool) -> None:
    """Kill and reap every process left behind (the child's group; as a subreaper, every orphan)."""
    for _ in range(50):
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
        if sandboxed:  # alone in the PID namespace: every other process is the child's doing
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) not in (1, os.getpid()):
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                    except OSError:
                        pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        time.sleep(0.02)


def run_one(module: str, table: str, request: dict, sandboxed: bool) -> tuple[dict, bytes]:
    timeout = float(request.get("timeout", 60))
    try:  # the inputs the grader drew (evidence text), decoded strictly here, before any child exists
        evidence = importlib.import_module("labs_utils.evidence")
        text = request.get("inputs")
        request = {**request, "inputs": None if text is None else evidence.decode(text)}
    except Exception as exc:  # noqa: BLE001 - the grader's own doing: said so, and no child starts
        return {"status": "inputs", "message": f"{type(exc).__name__}: {exc}"[:4000]}, b""
    before = last_pid() if sandboxed else None
    start = time.monotonic()
    pid, channel = _start_child(module, table, request)
    data, foreign, status, open_ = bytearray(), False, None, True
    while status is None:
        if time.monotonic() - start > timeout:
            break
        if open_ and select.select([channel], [], [], 0.05)[0]:
            open_, other = _read_chunk(channel, pid, data)
            foreign |= other
        else:
            time.sleep(0.0 if open_ else 0.02)
        done, status_word = os.waitpid(pid, os.WNOHANG)
        status = status_word if done else None
    timed_out = status is None
    if timed_out:
        os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    _reap_all(pid, sandboxed)
    while open_ and len(data) <= MAX_EVIDENCE and select.select([channel], [], [], 0)[0]:
        open_, other = _read_chunk(channel, pid, data)
        foreign |= other
    channel.close()
    spawned = (last_pid() - pid) if sandboxed and before is not None and last_pid() is not None else 0
    header = {"seconds": round(time.monotonic() - start, 3), "spawned": max(0, spawned), "foreign": foreign,
              "exit": os.waitstatus_to_exitcode(status)}
    if timed_out:
        return {**header, "status": "timeout"}, b""
    if len(data) > MAX_EVIDENCE:
        return {**header, "status": "error", "message": "the check's evidence was over the size limit"}, b""
    kind, payload = bytes(data[:1]), bytes(data[1:])
    if header["exit"] != 0 or kind not in (b"E", b"X"):
        return {**header, "status": "died"}, b""
    if kind == b"X":
        return {**header, "status": "error", "message": payload.decode("utf-8", "replace")[:4000]}, b""
    return {**header, "status": "ok"}, payload


# torch, and what it imports lazily on a first optimizer step or backward (seconds, and under the children's
# trip-wires slower still): imported once, before any child exists. A checks module whose probes need less says so
# with ``PROBE_PRELOAD``: a tuple, or a dict from table name to tuple (the tests' toy labs: torch for the one probe
# that makes tensors, nothing for the others, whose probe servers then start in a fraction of a second).
PRELOAD = ("torch", "torch._dynamo", "torch.optim", "torch.utils.checkpoint")


def preloaded(checks: Any, table: str) -> tuple[str, ...]:
    """The modules the probe server of ``checks``'s ``table`` imports before any child exists."""
    preload = getattr(checks, "PROBE_PRELOAD", PRELOAD)
    return tuple(preload.get(table, PRELOAD) if isinstance(preload, dict) else preload)


def serve(module: str, table: str, sandboxed: bool) -> None:
    for pool in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # also for a torch first imported
        os.environ[pool] = "1"  # by a child (a table that preloads none): one thread, which is the child's own
    checks = importlib.import_module(module)  # everything the children need is imported once, before any exists
    for name in ("labs_utils.evidence", "labs_utils.exercises", "labs_utils.tripwire", *preloaded(checks, table)):
        importlib.import_module(name)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)  # no thread pool of torch's own in the children: every thread there is counted
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set
            pass
    _prctl(4, 0)  # PR_SET_DUMPABLE 0: the children's uid cannot read our memory, /proc files or ptrace us
    _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER: what a child leaves behind comes back to us (and is killed)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write on the grader's channel
    send(stdout, {"status": "ready"})
    while True:
        request = receive(stdin)
        if request is None:  # the grader is done: no interpreter teardown (seconds with torch loaded), no output
            os._exit(0)
        header, payload = run_one(module, table, request, sandboxed)
        send(stdout, header, payload)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.instructor.grading.probe_server")
    parser.add_argument("module")
    parser.add_argument("table")
    parser.add_argument("--limit", action="append", default=[])
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--sandboxed", action="store_true", help="alone in a PID namespace")
    args = parser.parse_args(argv)
    from .kernel_side import exit_with_parent, limit_resources

    limit_resources([(name, int(value)) for name, _, value in (item.partition("=") for item in args.limit)])
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    serve(args.module, args.table, args.sandboxed)


if __name__ == "__main__":
    main()
