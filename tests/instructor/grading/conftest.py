"""Shared by the grader's tests: options for the toy labs and grading a folder of crafted notebooks."""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import grading_fixtures as gf
import pytest
from tooling import unavailable

import labs_utils
from labs_utils.instructor.grading.batch import collect, grade_batch
from labs_utils.instructor.grading.kernel import Options
from labs_utils.instructor.grading.sandbox import unusable_reason

ROOT = Path(labs_utils.__file__).resolve().parents[1]
# Per cell, a budget and never the thing under test: a crafted cell that should finish takes well under a second
# on a quiet machine, and a toy Lab 3 probe about 5 s (torch.optim is imported under the trip-wire's profile hook);
# a busy 2-core CI machine is several times slower, so the budget leaves room for that.
TIMEOUT = 90
# The thing under test in the notebooks that hang on purpose (an endless cell, a loop that ignores SIGINT, a check
# that never returns). The grader's timeouts are wall-clock, so their loops sleep: waiting costs no CPU, and a busy
# loop is interrupted and stopped the same way. Their other cells and probes are one-line toy-lab-1 functions that
# import no torch (0.1 s on a quiet machine: the timeout leaves room for a machine 20 times slower).
HANG_TIMEOUT = 6
KERNEL_PATH = os.pathsep.join([str(ROOT), str(gf.FIXTURES_DIR)])  # the kernel imports this checkout and the toy labs
OPTIONS = Options(timeout=TIMEOUT, labs=gf.toy_labs(), memory_limit=2**30, env=(("PYTHONPATH", KERNEL_PATH),))
SANDBOX = unusable_reason() is None
SANDBOX_FIX = ("install bubblewrap (apt-get install bubblewrap; bash .ci/run does it) on a host that lets it create "
               "namespaces (in Docker: --privileged or a seccomp profile that allows unshare)")


@pytest.fixture(scope="session")
def sandbox_usable() -> None:
    """Tests that grade in the sandbox: skipped without bubblewrap, failed under CI."""
    if not SANDBOX:
        unavailable(f"bubblewrap is unusable here ({unusable_reason()})", SANDBOX_FIX)


needs_sandbox = pytest.mark.usefixtures("sandbox_usable")


def write_all(folder: Path, notebooks: dict) -> dict:
    """Write file name -> notebook | bytes | str into ``folder``; returns path -> sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in notebooks.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            gf.write(content, path)
    return hashes(folder)


def hashes(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def grade_folder(folder: Path, workers: int = 2, extra: list | None = None, **changes) -> dict:
    """Grade every notebook in ``folder`` (hidden from the kernels, sandboxed where possible): student -> result."""
    options = replace(OPTIONS, hidden=(str(folder), *changes.pop("hidden", ())), **changes)
    jobs = collect([folder, *(extra or [])])
    return {r.student: r for r in grade_batch(jobs, options, workers=workers)}
