"""Shared by the grader's tests: options for the toy labs and grading a folder of crafted notebooks."""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import grading_fixtures as gf
import pytest

import labs_utils
from labs_utils.instructor.grading.batch import collect, grade_batch
from labs_utils.instructor.grading.kernel import Options
from labs_utils.instructor.grading.sandbox import unusable_reason

ROOT = Path(labs_utils.__file__).resolve().parents[1]
TIMEOUT = 15  # per cell; every crafted cell that should finish takes well under a second (torch imports aside)
KERNEL_PATH = os.pathsep.join([str(ROOT), str(gf.FIXTURES_DIR)])  # the kernel imports this checkout and the toy labs
OPTIONS = Options(timeout=TIMEOUT, labs=gf.toy_labs(), memory_limit=2**30, env=(("PYTHONPATH", KERNEL_PATH),))
SANDBOX = unusable_reason() is None
needs_sandbox = pytest.mark.skipif(not SANDBOX, reason=f"bubblewrap unusable here: {unusable_reason()}")


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
