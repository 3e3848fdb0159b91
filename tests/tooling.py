"""What a test does when a tool it needs is missing here (importable from every test folder: see conftest.py)."""
from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(what: str, fix: str) -> NoReturn:
    """A test's tool is missing here: skip on a contributor's machine, but fail under CI (``CI`` set), where
    ``.ci/run`` installs everything and a skipped grader or browser test would hide a regression."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this test, but {what}: {fix}", pytrace=False)
    pytest.skip(f"{what}: {fix}")
