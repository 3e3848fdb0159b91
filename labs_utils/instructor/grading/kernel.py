"""Running a kernel for one submission: its spec (sandboxed or not), executing code, noticing its death."""
from __future__ import annotations

import importlib.util
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import zmq
import zmq.asyncio
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .kernel_side import DROPPED
from .results import CellOutcome
from .sandbox import DATA, LIB, WORK, WORK_BYTES, Sandbox, data_folder

TIMEOUT_ENAME = "LabsGraderCellTimeout"
# A message from the kernel larger than this is dropped by ZeroMQ before the grader reads any of it (evidence is
# capped at 64 MiB, see labs_utils.evidence): a 600 MB print costs the grader nothing.
MAX_MESSAGE_BYTES = 80 * 2**20
COURSE_VARIABLES = ("LABS_FAST", "LABS_OFFLINE", "LABS_THREADS", "LABS_DEVICE")  # passed on to kernels when set


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
    budget: int = 3600  # wall-clock seconds per submission (cells, probes, re-runs), 0: none
    judge_timeout: int = 120  # seconds one exercise's judge may take in the grader
    max_processes: int = 1024  # processes and threads of a sandboxed kernel (RLIMIT_NPROC)
    max_file_bytes: int = WORK_BYTES  # the largest file a kernel may write (RLIMIT_FSIZE)
    max_open_files: int = 4096  # RLIMIT_NOFILE
    screen: bool = True  # screen the code before running it (labs_utils.instructor.grading.screen)
    import_errors: tuple | None = None  # (lab number, why its checks cannot be imported) once checked; None: unchecked

    def limits(self, sandboxed: bool) -> tuple:
        """The resource limits a kernel gets (name, value), hard: it cannot raise them."""
        limits = [("RLIMIT_CORE", 0), ("RLIMIT_FSIZE", self.max_file_bytes), ("RLIMIT_NOFILE", self.max_open_files)]
        if self.memory_limit > 0 and sys.platform.startswith("linux"):
            limits.append(("RLIMIT_DATA", self.memory_limit))
        if sandboxed:  # it counts the user's processes: outside the sandbox, the grader's own as well
            limits.append(("RLIMIT_NPROC", self.max_processes))
        return tuple(limits)


def lab_modules(options: Options) -> tuple[str, ...]:
    """The checks modules of the labs graded with ``options`` (the kernel must import them)."""
    return tuple(sorted({lab.module for lab in options.labs if lab.module}))


def kernel_environment(options: Options, home: str, tmp: str, path: list[str], data: str | None) -> dict[str, str]:
    """The kernel's whole environment: nothing of the grader's but the course's own settings (COURSE_VARIABLES)
    and what ``options`` says (``options.env``; its PYTHONPATH goes after ``path``)."""
    env = {"PATH": os.pathsep.join(dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin",
                                                   "/bin"])),
           "HOME": home, "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": tmp,
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
           "IPYTHONDIR": os.path.join(home, ".ipython"), "XDG_CACHE_HOME": os.path.join(home, ".cache"),
           "PYTHONSAFEPATH": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update({name: os.environ[name] for name in COURSE_VARIABLES if os.environ.get(name)})
    if options.fast:
        env["LABS_FAST"] = "1"
    env["LABS_GRADING"] = "1"  # the notebook's summary() leaves its re-run of every check to the grader's probes
    if data is not None:
        env["LABS_DATA_DIR"] = data
    extra = dict(options.env)
    given = extra.pop("PYTHONPATH", "")
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*path, *filter(None, given.split(os.pathsep))]))
    return env


def _host_import_path(modules: tuple[str, ...]) -> list[str]:
    """Unsandboxed: the folders to import labs_utils and the labs' checks modules from, as the grader does."""
    import labs_utils

    folders = [str(Path(labs_utils.__file__).resolve().parents[1])]
    for name in {m.split(".")[0] for m in modules} - {"labs_utils"}:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and os.path.exists(spec.origin):
            origin = Path(spec.origin).resolve()
            folders.append(str(origin.parents[1] if spec.submodule_search_locations else origin.parent))
    return folders


def _quiet_logger() -> logging.Logger:
    logger = logging.getLogger("labs_utils.grade.kernel")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


class _LeanClient(NotebookClient):
    """A NotebookClient that keeps no output (huge outputs cost nothing; no evidence comes from the kernel) and
    remembers the error of the last cell (the synthetic one of a timeout included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.comm_open_handlers = {}  # no widget state, no Output-widget capture
        self.last_error: dict | None = None
        self.dropped: list[str] = []  # the kernel's notices of outputs it did not send (kernel_side.cap_outputs)
        self.on_cell_error = self._remember_error

    def _remember_error(self, cell: Any, cell_index: int, execute_reply: dict) -> None:
        self.last_error = execute_reply.get("content", {})

    def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
        text = msg.get("content", {}).get("text") if msg.get("msg_type") == "stream" else None
        if isinstance(text, str) and text.startswith(DROPPED) and len(self.dropped) < 3:
            self.dropped.append(text[len(DROPPED):len(DROPPED) + 80].strip())
        return None


class _CappedKernelManager(AsyncKernelManager):
    """A kernel manager whose clients drop (unread) any message over MAX_MESSAGE_BYTES."""

    def client(self, **kwargs: Any) -> Any:
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # the default of every socket it creates
        client = super().client(context=context, **kwargs)
        client._created_context = True  # destroyed with the client
        return client


class _DisconnectWatch:
    """Notices when ZeroMQ cut the client's IOPub or shell connection (it does so, for good, when the kernel
    sends a message over MAX_MESSAGE_BYTES): from then on the kernel's results would be lost silently."""

    def __init__(self, client: Any) -> None:
        self.context = zmq.Context.shadow(client.context.underlying)  # inproc monitors need the same context
        self.monitors = []
        for channel in (client.iopub_channel, client.shell_channel):
            address = f"inproc://labs-monitor-{id(channel)}"
            channel.socket.monitor(address, zmq.EVENT_DISCONNECTED)
            monitor = self.context.socket(zmq.PAIR)
            monitor.connect(address)
            self.monitors.append(monitor)

    def cut(self) -> bool:
        return any(monitor.poll(0) for monitor in self.monitors)

    def close(self) -> None:
        for monitor in self.monitors:
            monitor.close(linger=0)


class _GradingKernelSpecs(KernelSpecManager):
    """The one kernel the grader starts: ``python -m labs_utils.instructor.grading.kernel_side``, in bubblewrap
    when ``sandbox`` is given (then with the whole environment ``env``)."""

    def __init__(self, options: Options, sandbox: Sandbox | None, workdir: str, env: dict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options, self.sandbox, self.workdir, self.env = options, sandbox, workdir, env

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        argv = [sys.executable, "-m", "labs_utils.instructor.grading.kernel_side",
                *(f"--limit={name}={value}" for name, value in self.options.limits(self.sandbox is not None))]
        if self.sandbox is None:  # in its own PID namespace the kernel cannot see the grader's pid
            argv += ["--parent-pid", str(os.getpid())]
        argv += ["-f", "{connection_file}"]
        if self.sandbox is not None:  # its arguments travel in a file, where jupyter_client cannot fill them in
            argv = self.sandbox.command(self.workdir, [a.replace("{connection_file}", connection_file(self.workdir))
                                                       for a in argv], self.env)
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
    """One fresh kernel, talking over Unix sockets in ``workdir`` (no network needed, none reachable when
    sandboxed). Sandboxed, its working folder (cwd, HOME) is the sandbox's own; unsandboxed, ``workdir/work``.

    Used as a context manager: the kernel is killed on exit (its state is of no further use).
    """

    def __init__(self, options: Options, workdir: str, sandbox: Sandbox | None) -> None:
        self.options, self.sandbox, self.sandboxed, self.workdir = options, sandbox, sandbox is not None, workdir
        modules = lab_modules(options)
        if sandbox is not None:
            env = kernel_environment(options, WORK, "/tmp", [LIB], DATA if data_folder() else None)
            cwd, launcher_env = workdir, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        else:
            cwd = os.path.join(workdir, "work")
            os.makedirs(os.path.join(workdir, "tmp"), exist_ok=True)
            data = data_folder()
            env = kernel_environment(options, os.path.join(workdir, "home"), os.path.join(workdir, "tmp"),
                                     _host_import_path(modules), str(data) if data else None)
            launcher_env = env
        os.makedirs(cwd, exist_ok=True)
        self.nb = nbformat.v4.new_notebook()
        transport = {"transport": "ipc", "ip": os.path.join(workdir, "kernel")} if os.name == "posix" else {}
        specs = _GradingKernelSpecs(options, sandbox, workdir, env)
        manager = _CappedKernelManager(kernel_name="labs-grading",  # nbclient needs the asynchronous manager
                                       kernel_spec_manager=specs, connection_file=connection_file(workdir),
                                       **transport)
        self.client = _LeanClient(
            self.nb, km=manager, timeout=options.timeout, allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
            store_widget_state=False, record_timing=False, shutdown_kernel="immediate", log=_quiet_logger(),
        )
        self._context = self.client.setup_kernel(cleanup_kc=True, env=launcher_env, cwd=cwd,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> KernelSession:
        self._context.__enter__()
        if self.sandbox is not None:
            self.sandbox.seal(self.workdir)
        self._watch = _DisconnectWatch(self.client.kc)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._watch.close()
            self._context.__exit__(*exc)
        except Exception:  # a kernel that died took its channels with it: nothing left to clean
            pass

    def _exit_code(self) -> int | None:
        process = getattr(getattr(self.client.km, "provisioner", None), "process", None)
        try:
            return process.wait(timeout=5) if process is not None else None
        except subprocess.TimeoutExpired:
            return None

    def run(self, source: str, timeout: int) -> tuple[CellOutcome, dict | None]:
        """Execute code: (outcome, error content or None); KernelDied."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        self.client.timeout = timeout
        self.client.last_error = None
        self.client.dropped = []
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except DeadKernelError:
            raise KernelDied(death(self._exit_code(), self.sandboxed)) from None
        except (AttributeError, NameError, TypeError, ImportError, AssertionError):
            raise  # the grader's own mistake
        except Exception as exc:  # a message the client could not read: the kernel sent something else
            raise KernelDied(f"sent the grader a message it could not read ({type(exc).__name__}), so the kernel "
                             "was stopped") from None
        if self._watch.cut():  # ZeroMQ dropped a connection over a message above MAX_MESSAGE_BYTES: no more results
            raise KernelDied(f"sent a message over {MAX_MESSAGE_BYTES >> 20} MiB (output the grader does not read), "
                             "so the kernel was stopped")
        cell.outputs = []
        error = self.client.last_error
        if error is None:
            return CellOutcome.OK, None
        if error.get("ename") != TIMEOUT_ENAME:
            return CellOutcome.ERROR, error
        if not self._responds(timeout):  # leaving the session kills it
            raise KernelDied(f"ran past the {timeout} s timeout and ignored the interrupt, so the kernel was stopped")
        return CellOutcome.TIMEOUT, None

    @property
    def dropped(self) -> list[str]:
        """The kernel's notices of outputs it did not send during the last :meth:`run` (sizes)."""
        return self.client.dropped

    def _responds(self, timeout: int) -> bool:
        """After an interrupt: does the kernel answer again within the cell timeout?"""
        self.client.timeout = timeout
        try:
            return self.client.wait_for_reply(self.client.kc.kernel_info()) is not None
        except DeadKernelError:
            return False
