"""One cap on everything a sandboxed kernel or probe server starts, taken together: a cgroup, where the grader may
make one (root with cgroup v1's memory and pids hierarchies, or cgroup v2 with those controllers delegated).

The resource limits (RLIMIT_DATA, RLIMIT_NPROC) count each process apart, so a kernel that forks shares no cap, and
the pages of its tmpfs folders (/tmp, /dev/shm, its working folder) belong to no process at all. A cgroup counts
them all: past its memory cap the kernel's largest process is killed (SIGKILL), past its process cap fork() fails.
Elsewhere (an unprivileged grader, macOS) nothing is created and the resource limits alone apply.

The sandbox's shell joins the cgroup before it starts bubblewrap (``echo $$ > cgroup.procs``), so the kernel is
inside before its first instruction; inside the sandbox /sys/fs/cgroup is not mounted, so it cannot leave.
"""
from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
SETTLE_SECONDS = 60.0  # an empty cgroup younger than this may still be waiting for its sandbox's shell to join it
_names = itertools.count()
_made: dict[Path, float] = {}  # folders created by this process (when, time.monotonic()), removed once empty
_lock = threading.Lock()  # the grading batch starts kernels from more than one thread


def _own(controller: str) -> Path | None:
    """This process's cgroup folder in the v1 hierarchy of ``controller`` ("" : the v2 hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller in names.split(",")) if controller else names == "":
            folder = (ROOT / controller if controller else ROOT) / path.lstrip("/")
            return folder if folder.is_dir() and os.access(folder, os.W_OK) else None
    return None


def _parents() -> dict[str, Path]:
    """Where to create: {"memory": folder, "pids": folder} (v1), {"v2": folder} (v2), or {} (no cgroups here)."""
    if os.geteuid() != 0:
        return {}
    if (ROOT / "memory").is_dir():
        return {name: folder for name in ("memory", "pids") if (folder := _own(name)) is not None}
    folder = _own("")
    if folder is None or not (ROOT / "cgroup.controllers").is_file():
        return {}
    try:
        delegated = (folder / "cgroup.subtree_control").read_text().split()
    except OSError:
        return {}
    return {"v2": folder} if {"memory", "pids"} <= set(delegated) else {}


def _write(folder: Path, name: str, value: int | str) -> None:
    if (folder / name).exists():
        (folder / name).write_text(str(value))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _orphans(parent: Path) -> list[Path]:
    """Cgroups left by graders that died before removing them (their name holds the grader's pid)."""
    found = []
    for folder in parent.glob("labs-grade-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            found.append(folder)
    return found


def _remove(folder: Path) -> None:
    """Remove one of ``_made`` and forget it, unless processes still run in it (the caller holds ``_lock``)."""
    try:
        folder.rmdir()
    except FileNotFoundError:
        pass
    except OSError:  # still has processes
        return
    _made.pop(folder, None)


def release(min_age: float = 0.0) -> None:
    """Remove the cgroups this process made whose processes have all ended, of those made ``min_age`` seconds ago or
    earlier (the others stay for a later call). :func:`create` passes ``SETTLE_SECONDS``: a cgroup another thread
    has just made is empty until its kernel's shell joins it."""
    now = time.monotonic()
    with _lock:
        for folder, made in list(_made.items()):
            if now - made >= min_age:
                _remove(folder)


atexit.register(release)


def create(memory_bytes: int, max_processes: int) -> list[str]:
    """New cgroups capping memory (``memory_bytes``, swap included; 0: no memory cap) and processes; the
    ``cgroup.procs`` files a process writes its pid to, to join them ([] where cgroups cannot be made here)."""
    release(SETTLE_SECONDS)
    name = f"labs-grade-{os.getpid()}-{next(_names)}"
    joins: list[str] = []
    mine: list[Path] = []
    try:
        for kind, parent in _parents().items():
            for orphan in _orphans(parent):
                try:
                    orphan.rmdir()
                except OSError:  # its processes still run: the next grader tries again
                    pass
            folder = parent / name
            folder.mkdir()
            with _lock:
                _made[folder] = time.monotonic()
            mine.append(folder)
            if kind in ("memory", "v2") and memory_bytes > 0:
                _write(folder, "memory.limit_in_bytes" if kind == "memory" else "memory.max", memory_bytes)
                _write(folder, "memory.memsw.limit_in_bytes" if kind == "memory" else "memory.swap.max",
                       memory_bytes if kind == "memory" else 0)
            if kind in ("pids", "v2"):
                _write(folder, "pids.max", max_processes)
            joins.append(str(folder / "cgroup.procs"))
    except OSError:  # a hierarchy that refuses us: no cgroup rather than half of one
        with _lock:
            for folder in mine:
                _remove(folder)
        return []
    return joins
