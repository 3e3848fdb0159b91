"""Shared test set-up: the helper modules in tests/ (reference solutions, grading fixtures) are importable
from every test folder, which mirrors the package (core/, labN_*/ wings, instructor/)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))



@pytest.fixture(autouse=True)
def _gradients_stay_on():
    """A test that leaves torch's grad mode off (a check that lost it on a time-out) fails itself, instead of every
    later test of its worker failing with "element 0 of tensors does not require grad"."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("this test left torch's grad mode off (torch.set_grad_enabled(False) never undone)")


# pytest-xdist hands whole files to its workers in collection order (pyproject: --dist loadfile,
# --no-loadscope-reorder), so the order is set here: first the files that grade batches of notebooks in one
# module-wide fixture (minutes each), so they run side by side from the start, then the others by number of tests
# (xdist's own order, which alone put the longest module late), the short files filling in at the end.
LONGEST_FIRST = ("tests/instructor/test_notebooks.py", "tests/instructor/grading/test_grading_batch.py",
                 "tests/instructor/grading/test_grading_sandbox.py", "tests/instructor/grading/test_grading_attacks.py",
                 "tests/lab1_autoencoders/test_lab1_models.py", "tests/core/test_widgets.py")


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(items):
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def rank(path: str) -> tuple[int, int]:
        first = LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)
        return first, -len(files[path])

    items[:] = [item for path in sorted(files, key=rank) for item in files[path]]  # a file's own order kept
