"""The sandbox each grading kernel runs in: bubblewrap (``bwrap``, Debian package ``bubblewrap``).

Inside, the kernel sees the whole file system read-only (the Python environment and the course's
package included) with these exceptions: its own temporary folder is the only writable place (``/tmp``
is an empty private tmpfs around it, so other submissions' folders are not there); the repository's
``solutions/``, the submission folders and the grader's output paths are hidden (empty tmpfs, or
``/dev/null`` over a file); it has its own PID namespace (``/proc`` shows no grader command line) and
no network. Where bubblewrap is missing or cannot create namespaces (macOS, Windows, some containers)
the grader says so loudly and runs the kernel unsandboxed, unless the sandbox is required.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import labs_utils

_BASE = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--unshare-pid",
         "--unshare-ipc", "--unshare-uts", "--die-with-parent")


class SandboxUnavailable(RuntimeError):
    """The sandbox was required but bubblewrap is missing or unusable here (the message says why)."""


@functools.lru_cache(maxsize=1)
def unusable_reason() -> str | None:
    """None when bubblewrap works here; otherwise why not (cached for the process)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap only exists on Linux (this is {sys.platform}); grade in a Linux container"
    binary = shutil.which("bwrap")
    if binary is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    try:
        probe = subprocess.run([binary, *_BASE, "--tmpfs", "/tmp", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap cannot run: {exc}"
    if probe.returncode != 0:
        message = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bubblewrap cannot create its namespaces here ({message[-1] if message else probe.returncode})"
    return None


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


def _contains(folder: Path, paths: Iterable[Path]) -> bool:
    return any(p == folder or folder in p.parents for p in paths)


@dataclass(frozen=True)
class Sandbox:
    """How to wrap one kernel's command: ``hidden`` paths (folders and files) the kernel must not see,
    besides every ``solutions/`` folder (:func:`solutions_folders`), which is always hidden."""

    hidden: tuple[str, ...] = ()

    def arguments(self, workdir: str, argv: Sequence[str]) -> list[str]:
        """bubblewrap's arguments to run ``argv`` with only ``workdir`` writable (and its cwd)."""
        workdir_path = Path(workdir).resolve()
        needed = [Path(sys.prefix).resolve(), Path(sys.executable).resolve(), workdir_path,
                  Path(labs_utils.__file__).resolve().parent]
        args = list(_BASE)
        for hidden in [*solutions_folders(), *map(Path, self.hidden)]:
            hidden = hidden.resolve()
            if not hidden.exists() or hidden.is_symlink():
                continue
            if hidden.is_dir() and not _contains(hidden, needed):
                args += ["--tmpfs", str(hidden)]
            elif hidden.is_dir():  # a folder the kernel needs (e.g. grading from the repository root)
                for notebook in hidden.rglob("*.ipynb"):
                    args += ["--ro-bind", "/dev/null", str(notebook)]
            else:
                args += ["--ro-bind", "/dev/null", str(hidden)]
        temp_roots = {Path("/tmp"), Path(tempfile.gettempdir()).resolve()}
        for root in sorted(temp_roots):
            if not _contains(root, needed[:2] + needed[3:]):
                args += ["--tmpfs", str(root)]
        args += ["--bind", str(workdir_path), str(workdir_path), "--chdir", str(workdir_path), "--"]
        return args + list(argv)

    def command(self, workdir: str, argv: Sequence[str]) -> list[str]:
        """The command that runs ``argv`` in the sandbox.

        bubblewrap's arguments name the hidden paths, and its first process stays visible inside the
        sandbox as PID 1; so they travel in a file (``--args FD``) that is deleted once opened, and
        ``/proc/1/cmdline`` shows only ``bwrap --args 3 -- ARGV``.
        """
        binary = shutil.which("bwrap") or "bwrap"
        options = self.arguments(workdir, argv)[:-len(argv) - 1]
        handle, path = tempfile.mkstemp(prefix=".sandbox-args-", dir=workdir)
        with os.fdopen(handle, "wb") as file:
            file.write(b"".join(arg.encode() + b"\0" for arg in options))
        return ["/bin/sh", "-c", 'f=$1; shift; exec 3<"$f" && rm -f "$f" && exec "$@"', "sh", path,
                binary, "--args", "3", "--", *argv]


def sandbox_for(mode: str, hidden: Sequence[str]) -> tuple[Sandbox | None, str | None]:
    """(the sandbox, None) or (None, warning) for ``mode`` "auto" | "require" | "off"; SandboxUnavailable
    when "require" cannot be met."""
    if mode == "off":
        return None, "the sandbox is switched off (--sandbox off): kernels run unsandboxed"
    reason = unusable_reason()
    if reason is None:
        return Sandbox(tuple(map(str, hidden))), None
    if mode == "require":
        raise SandboxUnavailable(reason)
    return None, f"WARNING: grading WITHOUT a sandbox: {reason}. Submissions can read and write what you can."


def hidden_paths(submissions: Sequence[Path], outputs: Sequence[Path]) -> tuple[str, ...]:
    """What the command line hides from kernels: the submission folders (a file's folder) and the outputs."""
    folders = {(p if p.is_dir() else p.parent).resolve() for p in submissions}
    return tuple(sorted({*map(str, folders), *(str(p.resolve()) for p in outputs)}))


def environment(workdir: str) -> dict[str, str]:
    """Environment variables that point a sandboxed kernel's caches at its writable folder."""
    return {"IPYTHONDIR": os.path.join(workdir, "home", ".ipython"),
            "MPLCONFIGDIR": os.path.join(workdir, "home", ".matplotlib"), "TMPDIR": workdir,
            "XDG_CACHE_HOME": os.path.join(workdir, "home", ".cache")}
