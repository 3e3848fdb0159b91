"""The grader's side of the probe processes: start the fork server (sandboxed as the kernel is), send it one
exercise's definitions and inputs at a time (never the seed they are drawn from), read its reply under a time limit
and a size cap.

    with ProbeServer(options, lab, sandbox) as server:
        reply = server.probe(exercise.name, extracted.sources(), inputs, timeout)   # Reply(status, ...)

See :mod:`.probe_server` for what runs in the sandbox. A server that dies (a student's child can kill it: same
uid) or stops answering costs the exercise being probed; the next call starts a fresh one.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from .kernel import Options, _host_import_path, kernel_environment, lab_modules
from .labs import Lab
from .sandbox import DATA, LIB, WORK, Sandbox, data_folder

STARTUP_TIMEOUT_S = 300  # importing torch and the checks on a busy machine
MAX_HEADER = 2**16
MAX_PAYLOAD = 64 * 2**20 + 2**16
GRACE_S = 30  # beyond the child's own time limit, for the server to kill it and answer


class ServerFailed(Exception):
    """The probe server died, answered something unreadable, or did not answer in time."""


@dataclass
class Reply:
    status: str  # "ok" (evidence), "error" (message), "timeout", "died" (exit), "lost" (the server failed while
    # probing), "unstarted" (it never got ready: the grader's trouble, before any student code ran there)
    evidence: str | None = None
    message: str = ""
    exit: int | None = None
    spawned: int = 0  # threads and processes the student's code started (sandboxed: counted by the kernel)
    foreign: bool = False  # another process wrote on the child's channel
    seconds: float = 0.0


class ProbeServer:
    """The fork server of one submission; started on first use, restarted after it failed."""

    def __init__(self, options: Options, lab: Lab, sandbox: Sandbox | None) -> None:
        self.options, self.lab, self.sandbox = options, lab, sandbox
        self.process: subprocess.Popen | None = None
        self.workdir: str | None = None
        self.starts = 0

    def __enter__(self) -> ProbeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Launch the server (it imports torch and the checks; :meth:`probe` waits for it to be ready)."""
        self.close()
        self.starts += 1
        self.workdir = tempfile.mkdtemp(prefix="labs-probe-")
        argv = [sys.executable, "-m", "labs_utils.instructor.grading.probe_server", str(self.lab.module),
                self.lab.table]
        if self.sandbox is not None:
            env = kernel_environment(self.options, WORK, "/tmp", [LIB], DATA if data_folder() else None)
            command = self.sandbox.command(self.workdir, [*argv, "--sandboxed"], env)
            cwd, launcher_env = self.workdir, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            cwd = os.path.join(self.workdir, "work")
            for folder in ("work", "home", "tmp"):
                os.makedirs(os.path.join(self.workdir, folder), exist_ok=True)
            data = data_folder()
            launcher_env = kernel_environment(self.options, os.path.join(self.workdir, "home"),
                                              os.path.join(self.workdir, "tmp"),
                                              _host_import_path(lab_modules(self.options)),
                                              str(data) if data else None)
            command = [*argv, *(f"--limit={n}={v}" for n, v in self.options.limits(False)),
                       "--parent-pid", str(os.getpid())]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, cwd=cwd, env=launcher_env)
        self.ready = False

    def _wait_ready(self) -> None:
        header, _ = self._read(time.monotonic() + STARTUP_TIMEOUT_S)
        if header.get("status") != "ready":
            raise ServerFailed("the probe process did not start")
        if self.sandbox is not None and self.workdir is not None:
            self.sandbox.seal(self.workdir)
        self.ready = True

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _read_exact(self, size: int, deadline: float) -> bytes:
        fd, chunks, got = self.process.stdout.fileno(), [], 0
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ServerFailed("the probe process did not answer in time")
            chunk = os.read(fd, min(size - got, 2**20))
            if not chunk:
                raise ServerFailed("the probe process died")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read(self, deadline: float) -> tuple[dict, bytes]:
        (size,) = struct.unpack(">Q", self._read_exact(8, deadline))
        if size > MAX_HEADER:
            raise ServerFailed("the probe process sent an oversized answer")
        try:
            header = json.loads(self._read_exact(size, deadline))
        except ValueError:
            raise ServerFailed("the probe process sent an unreadable answer") from None
        (size,) = struct.unpack(">Q", self._read_exact(8, deadline))
        if size > MAX_PAYLOAD or not isinstance(header, dict):
            raise ServerFailed("the probe process sent an oversized answer")
        return header, self._read_exact(size, deadline)

    def probe(self, exercise: str, sources: list, inputs: str | None, timeout: float) -> Reply:
        """Probe one exercise in a fresh child, on its ``inputs`` (evidence text,
        :func:`labs_utils.exercises.encoded_inputs`: never the seed they come from); a failed server gives
        ``Reply("lost", message=...)``."""
        try:
            if self.process is None or self.process.poll() is not None:
                self.start()
            if not self.ready:
                try:
                    self._wait_ready()
                except ServerFailed as exc:
                    self.close()
                    return Reply("unstarted", message=str(exc))
            request = json.dumps({"exercise": exercise, "sources": sources, "inputs": inputs, "timeout": timeout})
            data = request.encode()
            self.process.stdin.write(struct.pack(">Q", len(data)) + data)
            self.process.stdin.flush()
            header, payload = self._read(time.monotonic() + timeout + GRACE_S)
        except (ServerFailed, OSError, ValueError) as exc:
            self.close()
            return Reply("lost", message=str(exc))
        return Reply(str(header.get("status")), payload.decode("utf-8", "replace") if payload else None,
                     str(header.get("message", ""))[:4000], header.get("exit"), int(header.get("spawned") or 0),
                     bool(header.get("foreign")), float(header.get("seconds") or 0.0))
