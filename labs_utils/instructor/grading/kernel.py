"""Running a kernel for one submission: its spec (sandboxed or not), executing code, noticing its death."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .kernel_side import RESULT_MIME
from .results import CellOutcome
from .sandbox import Sandbox, environment

TIMEOUT_ENAME = "LabsGraderCellTimeout"
MAX_RESULTS_PER_CELL = 8  # grader results kept from one cell (more means something forges them)


@dataclass(frozen=True)
class Options:
    """How to grade (picklable: worker processes receive it)."""

    timeout: int = 600  # seconds per cell
    fast: bool = False
    memory_limit: int = 0  # bytes of heap per kernel, 0: no limit
    labs: tuple = ()  # Lab tables; empty: the course's labs (labs.load_labs)
    lab: int | None = None  # force this lab
    env: tuple = ()  # extra (name, value) pairs for the kernel's environment
    sandbox: str = "auto"  # "auto": bubblewrap when usable, else unsandboxed with a warning; "require"; "off"
    hidden: tuple = ()  # paths sandboxed kernels must not see (submission folders, outputs), besides solutions/


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
        data = msg["content"].get("data")
        if (msg["msg_type"] == "display_data" and isinstance(data, dict) and RESULT_MIME in data
                and len(outs) < MAX_RESULTS_PER_CELL):
            return super().output(outs, msg, display_id, cell_index)
        return None


class _GradingKernelSpecs(KernelSpecManager):
    """The one kernel the grader starts: ``python -m labs_utils.instructor.grading.kernel_side``, in bubblewrap
    when ``sandbox`` is given."""

    def __init__(self, memory_limit: int, sandbox: Sandbox | None, workdir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory_limit, self.sandbox, self.workdir = memory_limit, sandbox, workdir

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "labs_utils.instructor.grading.kernel_side",
                "--memory-limit", str(self.memory_limit)]
        if self.sandbox is None:  # in its own PID namespace the kernel cannot see the grader's pid
            argv += ["--parent-pid", str(os.getpid())]
        argv += ["-f", "{connection_file}"]
        if self.sandbox is not None:  # its arguments travel in a file, where jupyter_client cannot fill them in
            argv = self.sandbox.command(self.workdir, [a.replace("{connection_file}", connection_file(self.workdir))
                                                       for a in argv])
        return KernelSpec(argv=argv, display_name="labs_utils grading", language="python",
                          interrupt_mode="message" if self.sandbox is not None else "signal")


def connection_file(workdir: str) -> str:
    """Where the kernel's connection file (ports of its Unix sockets, the message key) is written."""
    return os.path.join(workdir, "kernel.json")


def death(code: int | None, sandboxed: bool = False) -> str:
    """How the kernel died, as a verb phrase: 'killed the kernel (SIGSEGV: a crash in compiled code)'."""
    if code is None:
        return "killed the kernel"
    if sandboxed and code > 128:  # bubblewrap exits with 128 + the signal that killed the kernel
        code = 128 - code
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
    """One fresh kernel whose only writable folder is ``workdir`` (its cwd is ``workdir/work``).

    Used as a context manager: the kernel is killed on exit (its state is of no further use). The
    kernel talks over Unix sockets in ``workdir`` (no network needed, none reachable when sandboxed).
    """

    def __init__(self, options: Options, workdir: str, sandbox: Sandbox | None) -> None:
        self.options, self.sandboxed = options, sandbox is not None
        cwd = os.path.join(workdir, "work")
        os.makedirs(cwd, exist_ok=True)
        env = dict(os.environ, MPLBACKEND="Agg", **environment(workdir), **dict(options.env))
        if options.fast:
            env["LABS_FAST"] = "1"
        self.nb = nbformat.v4.new_notebook()
        transport = {"transport": "ipc", "ip": os.path.join(workdir, "kernel")} if os.name == "posix" else {}
        manager = AsyncKernelManager(kernel_name="labs-grading",  # nbclient needs the asynchronous manager
                                     kernel_spec_manager=_GradingKernelSpecs(options.memory_limit, sandbox, workdir),
                                     connection_file=connection_file(workdir), **transport)
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

    def run(self, source: str, timeout: int) -> tuple[CellOutcome, dict | None, list]:
        """Execute code: (outcome, error content or None, grader results published by the cell); KernelDied."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = timeout
        self.client.last_error = None
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except DeadKernelError:
            raise KernelDied(death(self._exit_code(), self.sandboxed)) from None
        results = [out["data"][RESULT_MIME] for out in cell.outputs if out.get("output_type") == "display_data"]
        cell.outputs = []
        error = self.client.last_error
        if error is None:
            return CellOutcome.OK, None, results
        if error.get("ename") != TIMEOUT_ENAME:
            return CellOutcome.ERROR, error, results
        if not self._responds(timeout):  # leaving the session kills it
            raise KernelDied(f"ran past the {timeout} s timeout and ignored the interrupt, so the kernel was stopped")
        return CellOutcome.TIMEOUT, None, results

    def _responds(self, timeout: int) -> bool:
        """After an interrupt: does the kernel answer again within the cell timeout?"""
        self.client.timeout = timeout
        try:
            return self.client.wait_for_reply(self.client.kc.kernel_info()) is not None
        except DeadKernelError:
            return False
