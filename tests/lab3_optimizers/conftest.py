"""Lab 3's tests grade hundreds of answers with a handful of seeds: the probe's inputs for an (exercise, seed) are
drawn and encoded once per test run and decoded afresh for every answer, as the grader's judge worker would send
them (drawing them is deterministic: tests/core/test_repository.py checks that on the real functions)."""
from __future__ import annotations

import lab3_reference
import pytest

from labs_utils import exercises

_DRAWN: dict = {}
_ENCODED_INPUTS = exercises.encoded_inputs


def _encoded_once(exercise: exercises.Exercise, seed: int) -> str | None:
    key = (exercise.name, exercise.args, exercise.inputs, seed)
    if key not in _DRAWN:
        _DRAWN[key] = _ENCODED_INPUTS(exercise, seed)
    return _DRAWN[key]


@pytest.fixture(autouse=True)
def _inputs_drawn_once_per_seed(monkeypatch):
    monkeypatch.setattr(exercises, "encoded_inputs", _encoded_once)


@pytest.fixture(autouse=True)
def _each_answer_graded_once_per_test():
    lab3_reference.GRADED.clear()
    yield
    lab3_reference.GRADED.clear()
