"""The sandbox each grading kernel runs in: bubblewrap (``bwrap``, Debian package ``bubblewrap``), as an allow-list.

Inside, the kernel sees only what it needs, read-only: the system's programs and libraries (``/usr``), the Python
environment (its prefixes and the folders on a clean interpreter's ``sys.path``, never a course repository), and
the ``labs_utils`` package folder and the labs' checks modules, bound alone under ``/labs-grading/lib`` (no
``.git``, ``tests/``, ``solutions/`` or ``scripts/``). Writable: its own working folder (``/labs-grading/work``,
its ``HOME``), ``/tmp`` and ``/dev/shm``, each an empty size-capped tmpfs, and the folder holding its connection
file and sockets until it has started (then the grader takes that back, where it runs as root). It gets a minimal
``/dev``, its own ``/proc`` (PID namespace), no network, a cleared environment and hard resource limits set
before the kernel starts (:mod:`._sandbox_init`). It runs as uid 65534 with no capabilities: a grader running as
root sets the namespaces up and drops to the real unprivileged uid 65534 (the host's ``nobody``, so
``RLIMIT_NPROC`` binds); any other user runs it in a user namespace (``--unshare-user --uid 65534``). Where
bubblewrap is missing or cannot create namespaces the grader says so loudly and runs unsandboxed, unless the
sandbox is required.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import labs_utils

from . import cgroups

KERNEL_UID = 65534  # "nobody"
BASE = "/labs-grading"
LIB, WORK, DATA = f"{BASE}/lib", f"{BASE}/work", f"{BASE}/data"
WORK_BYTES, TMP_BYTES, SHM_BYTES = 512 * 2**20, 256 * 2**20, 64 * 2**20  # tmpfs caps (RAM outside --memory-limit)
_COMMON = ("--new-session", "--die-with-parent", "--hostname", "grading", "--cap-drop", "ALL")
# root: bubblewrap sets the namespaces up with its privileges, _sandbox_init drops to the real uid 65534
_ROOT = ("--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", *_COMMON,
         "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")
_USER = ("--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(KERNEL_UID), "--gid", str(KERNEL_UID),
         *_COMMON)
_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives")
_INIT = Path(__file__).with_name("_sandbox_init.py")


class SandboxUnavailable(RuntimeError):
    """The sandbox was required but bubblewrap is missing or unusable here (the message says why)."""


def _contains(folder: Path, paths: Iterable[Path]) -> bool:
    return any(p == folder or folder in p.parents for p in paths)


def repository_roots() -> list[Path]:
    """Folders that hold a copy of the course's repository: where this labs_utils was imported from and
    where an editable install points (its finder's mapping), whichever the kernel would import."""
    roots = {Path(labs_utils.__file__).resolve().parent.parent}
    for folder in map(Path, sys.path):
        try:
            finders = list(folder.glob("__editable__*labs_utils*finder.py")) if folder.is_dir() else []
        except OSError:
            continue
        for finder in finders:
            text = finder.read_text(encoding="utf-8", errors="replace")
            roots |= {Path(p).resolve().parent for p in re.findall(r"'labs_utils':\s*'([^']+)'", text)}
    return sorted(roots)


def solutions_folders() -> list[Path]:
    """Every ``solutions/`` folder of the repositories above (the instructor's answers)."""
    return [root / "solutions" for root in repository_roots() if (root / "solutions").is_dir()]


@functools.lru_cache(maxsize=1)
def python_folders() -> tuple[Path, ...]:
    """What the Python environment needs: its prefixes and the existing folders on a clean interpreter's
    ``sys.path`` (no PYTHONPATH, run from ``/``), minus any course repository and anything that holds one."""
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent"}
    try:
        out = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"], cwd="/",
                             env=env, capture_output=True, text=True, timeout=60, check=True).stdout
        entries = [Path(p).resolve() for p in json.loads(out) if p]
    except (OSError, ValueError, subprocess.SubprocessError):
        entries = []
    repos = repository_roots()
    folders = set(prefixes)
    for entry in entries:
        if not entry.is_dir() or _contains(entry, folders) or any(entry == r or entry in r.parents for r in repos):
            continue  # inside what is bound already, or a repository (or above one)
        if _contains(entry, repos) and not _contains(entry, prefixes):
            continue  # e.g. a repository's tests/ on sys.path
        folders.add(entry)
    return tuple(sorted(f for f in folders if not any(o != f and o in f.parents for o in folders)))


def module_binds(modules: Sequence[str]) -> list[tuple[Path, str]]:
    """(source, destination) for labs_utils and each other top-level module the labs' checks live in, each bound
    alone under LIB (a module file, or its package folder), unless the Python environment shows it already."""
    binds = [(Path(labs_utils.__file__).resolve().parent, f"{LIB}/labs_utils")]
    for name in dict.fromkeys(m.split(".")[0] for m in modules if m):
        if name == "labs_utils":
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not os.path.exists(spec.origin):
            continue  # the batch's import check in a clean kernel says so
        source = Path(spec.origin).resolve()
        source = source.parent if spec.submodule_search_locations else source
        if not _contains(source, python_folders()):
            binds.append((source, f"{LIB}/{name}" + ("" if source.is_dir() else source.suffix)))
    return binds


def data_folder() -> Path | None:
    """The grader's MNIST download folder (``$LABS_DATA_DIR`` or ``~/.cache/labs_utils``) when it exists."""
    folder = Path(os.environ.get("LABS_DATA_DIR") or Path.home() / ".cache" / "labs_utils")
    return folder.resolve() if folder.is_dir() else None


def _system() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def _folders_above(destination: str, made: set[str]) -> list[str]:
    """``--dir`` for every folder above ``destination`` not made yet, world-readable (bubblewrap would copy the
    host's modes, and uid 65534 cannot enter a 0700 ``/root``)."""
    args = []
    for parent in reversed(Path(destination).parents):
        if str(parent) != "/" and str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


@functools.lru_cache(maxsize=1)
def mode() -> str:
    """How kernels are sandboxed here: "root" (bubblewrap's privileges, then the real uid 65534), "user" (a user
    namespace), or "" when bubblewrap is unusable (:func:`unusable_reason` says why)."""
    return _probe()[0]


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[str, str | None]:
    if not sys.platform.startswith("linux"):
        return "", f"bubblewrap only exists on Linux (this is {sys.platform}); grade in a Linux container"
    if shutil.which("bwrap") is None:
        return "", "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    failure = ""
    for candidate in (["root", "user"] if os.geteuid() == 0 else ["user"]):
        with tempfile.TemporaryDirectory(prefix="labs-sandbox-probe-") as workdir:
            command = Sandbox(kind=candidate).command(workdir, [sys.executable, "-I", "-S", "-c", "pass"], {})
            try:
                probe = subprocess.run(command, capture_output=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                failure = f"bubblewrap cannot run: {exc}"
                continue
        if probe.returncode == 0:
            return candidate, None
        message = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        failure = f"bubblewrap cannot create its namespaces here ({message[-1] if message else probe.returncode})"
    return "", failure


def unusable_reason() -> str | None:
    """None when bubblewrap works here; otherwise why not (cached for the process)."""
    return _probe()[1]


@dataclass(frozen=True)
class Sandbox:
    """How to wrap one kernel's command. ``hidden``: paths the kernel must not see even where they lie inside a
    bound folder (submission folders, outputs; every ``solutions/`` too); ``modules``: the labs' checks modules
    (bound under LIB next to labs_utils); ``kind``: "root" or "user" (default: :func:`mode`)."""

    hidden: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    kind: str = ""
    limits: tuple = ()  # (name, value) resource limits set, hard, before the kernel starts (see _sandbox_init)

    @property
    def as_root(self) -> bool:
        return (self.kind or mode()) == "root"

    def binds(self) -> list[tuple[Path, str]]:
        """(host path, path in the sandbox) of everything bound read-only."""
        binds = [(folder, str(folder)) for folder in python_folders() if not _contains(folder, [Path("/usr")])]
        binds += module_binds(self.modules)
        data = data_folder()
        return binds + ([(data, DATA)] if data is not None else [])

    def arguments(self, workdir: str, env: dict[str, str]) -> list[str]:
        """bubblewrap's options: namespaces, the allow-listed file system, ``workdir`` (the kernel's connection
        file and sockets) at its own path, the kernel's environment (``--clearenv`` first)."""
        args = list(_ROOT if self.as_root else _USER) + _system()
        # the private /tmp first: a Python environment that lives under /tmp (a venv, a CI cache) is bound on top of
        # it below, where a later tmpfs would hide it
        args += ["--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
        made: set[str] = {"/tmp"}
        binds = self.binds()
        for source, destination in binds:
            args += _folders_above(destination, made) + ["--ro-bind", str(source), destination]
        hidden = [*solutions_folders(), *(Path(h).resolve() for h in self.hidden)]
        for path in hidden:
            for source, destination in binds:
                if _contains(source, [path]) and path.exists():
                    inside = str(Path(destination) / path.relative_to(source))
                    args += ["--tmpfs", inside] if path.is_dir() else ["--ro-bind", "/dev/null", inside]
        args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
                 "--remount-ro", "/dev", "--perms", "1777", "--size", str(WORK_BYTES), "--tmpfs", WORK]
        runtime = str(Path(workdir).resolve())
        args += _folders_above(runtime, made) + ["--bind", runtime, runtime, "--remount-ro", "/",
                                                            "--chdir", WORK, "--clearenv"]
        for name, value in sorted(env.items()):
            args += ["--setenv", name, value]
        return args

    def command(self, workdir: str, argv: Sequence[str], env: dict[str, str]) -> list[str]:
        """The command that runs ``argv`` in the sandbox with environment ``env``.

        bubblewrap's arguments name host paths, and its first process stays visible inside the sandbox as
        PID 1; so they travel in a file (``--args FD``) that is deleted once opened, and ``/proc/1/cmdline``
        shows only ``bwrap --args 3 -- ...``. As root, the folder with the connection file is handed to
        uid 65534 first (and taken back by :meth:`seal` once the kernel has started).
        """
        binary = shutil.which("bwrap") or "bwrap"
        handle, path = tempfile.mkstemp(prefix=".sandbox-args-", dir=workdir)
        with os.fdopen(handle, "wb") as file:
            file.write(b"".join(arg.encode() + b"\0" for arg in self.arguments(workdir, env)))
        init = [sys.executable, "-I", "-S", f"{LIB}/labs_utils/instructor/grading/{_INIT.name}"]
        init += [f"--limit={name}={value}" for name, value in self.limits]
        init += [f"--uid={KERNEL_UID}"] if self.as_root else []
        handover = f"chown -R {KERNEL_UID}:{KERNEL_UID} \"$1\" || exit 1; " if self.as_root else ""
        # a cgroup that refuses the kernel leaves it with the resource limits alone (as where none can be made)
        handover += "".join(f"{{ echo $$ > {shlex.quote(procs)}; }} 2>/dev/null; " for procs in self._cgroup())
        return ["/bin/sh", "-c", f'{handover}exec 3<"$2" && rm -f "$2" && shift 2 && exec "$@"', "sh",
                str(Path(workdir).resolve()), path, binary, "--args", "3", "--", *init, "--", *argv]

    def _cgroup(self) -> list[str]:
        """A new cgroup for one sandboxed process tree (see :mod:`.cgroups`): its heap limit, its tmpfs caps and
        1 GiB for code and libraries in all, and its process limit; [] where none can be made."""
        limits = dict(self.limits)
        data = limits.get("RLIMIT_DATA", 0)
        memory = data + WORK_BYTES + TMP_BYTES + SHM_BYTES + 2**30 if data > 0 else 0
        return cgroups.create(memory, limits.get("RLIMIT_NPROC", 1024))

    def seal(self, workdir: str) -> None:
        """After the kernel has started: as root, take its connection folder back (it can no longer write there
        or read the connection file); otherwise nothing (it runs as the grader's own uid outside)."""
        if self.as_root and os.geteuid() == 0:
            for path in [workdir, *(os.path.join(workdir, n) for n in os.listdir(workdir))]:
                os.lchown(path, 0, 0)
            os.chmod(workdir, 0o711)


def sandbox_for(mode_name: str, hidden: Sequence[str], modules: Sequence[str] = (),
                limits: Sequence[tuple] = ()) -> tuple[Sandbox | None, str | None]:
    """(the sandbox, None) or (None, warning) for ``mode_name`` "auto" | "require" | "off"; SandboxUnavailable
    when "require" cannot be met."""
    if mode_name == "off":
        return None, "the sandbox is switched off (--sandbox off): kernels run unsandboxed"
    reason = unusable_reason()
    if reason is None:
        return Sandbox(tuple(map(str, hidden)), tuple(modules), mode(), tuple(limits)), None
    if mode_name == "require":
        raise SandboxUnavailable(reason)
    return None, f"WARNING: grading WITHOUT a sandbox: {reason}. Submissions can read and write what you can."


def hidden_paths(submissions: Sequence[Path], outputs: Sequence[Path]) -> tuple[str, ...]:
    """What the command line hides from kernels: the submission folders (a file's folder) and the outputs."""
    folders = {(p if p.is_dir() else p.parent).resolve() for p in submissions}
    return tuple(sorted({*map(str, folders), *(str(p.resolve()) for p in outputs)}))
