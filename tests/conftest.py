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
