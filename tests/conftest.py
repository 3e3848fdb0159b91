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
# --no-loadscope-reorder): the files that grade batches of notebooks in one module-wide fixture (minutes each) go
# first, so they run side by side from the start and the many short files fill in around them, instead of one of
# them starting last and running alone at the end (xdist's own order is by number of tests).
LONGEST_FIRST = ("tests/instructor/test_notebooks.py", "tests/instructor/grading/test_grading_batch.py",
                 "tests/instructor/grading/test_grading_sandbox.py", "tests/instructor/grading/test_grading_attacks.py",
                 "tests/lab1_autoencoders/test_lab1_models.py", "tests/core/test_widgets.py")


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file, and of the other files, stays

