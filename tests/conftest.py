"""Shared test set-up: the helper modules in tests/ (reference solutions, grading fixtures) are importable
from every test folder, which mirrors the package (core/, labN_*/ wings, instructor/)."""
from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

