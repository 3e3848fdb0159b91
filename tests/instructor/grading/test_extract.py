"""Taking one exercise's code out of a notebook by reading it (labs_utils.instructor.grading.extract)."""
from __future__ import annotations

from pathlib import Path

import pytest

from labs_utils.instructor.grading.extract import extract, statements
from labs_utils.instructor.grading.labs import load_labs
from labs_utils.instructor.grading.submissions import Cell, read_cells

ROOT = Path(__file__).resolve().parents[3]


def _cells(*sources: str) -> list[Cell]:
    return [Cell(i, "code", s, i + 1) for i, s in enumerate(sources)]


def _run(cells: list[Cell], needs: tuple[str, ...]) -> dict:
    found = extract(cells, needs)
    assert found.problem is None and not found.missing, found.problem
    namespace: dict = {"__name__": "__main__"}
    for name, line, text in found.sources():
        exec(compile("\n" * (line - 1) + text, name, "exec"), namespace)
    return namespace


def test_helpers_and_constants_of_other_cells_come_along_and_nothing_else():
    cells = _cells("import math\nSCALE = 2\nnoise = [1] * 10**9",
                   "def helper(x):\n    return SCALE * x",
                   "def double(x):\n    return helper(x) + math.floor(0.5)",
                   "import threading\nthreading.Thread(target=print).start()\ncheck_double(double)",
                   "for i in range(10**12):\n    pass")
    namespace = _run(cells, ("double",))
    assert namespace["double"](21) == 42
    assert "noise" not in namespace and "threading" not in namespace and "i" not in namespace
    taken = [s.text.strip() for s in extract(cells, ("double",)).statements]
    assert taken == ["import math", "SCALE = 2", "def helper(x):\n    return SCALE * x",
                     "def double(x):\n    return helper(x) + math.floor(0.5)"]


def test_the_last_definition_wins_and_names_used_at_definition_time_are_the_ones_before():
    cells = _cells("def double(x):\n    return x", "factor = 1\nfactor = factor * 2",
                   "def double(x, k=factor):\n    return k * x * WEIGHT", "WEIGHT = 10", "WEIGHT = 1",
                   "factor = 100")
    namespace = _run(cells, ("double",))
    assert namespace["double"](21) == 42  # k is the factor before the def (2), WEIGHT the last one (1)


def test_items_assigned_after_a_constant_and_decorators_and_classes_are_kept():
    cells = _cells("import functools\nCONFIG = {}\nCONFIG['k'] = 2", "class Base:\n    k = 2",
                   "class Doubler(Base):\n    @functools.lru_cache\n    def __call__(self, x):\n"
                   "        return CONFIG['k'] * x")
    assert _run(cells, ("Doubler",))["Doubler"]()(21) == 42


def test_magics_and_shell_commands_are_left_out_and_timed_cells_are_read():
    cells = _cells("!pip install something\n%matplotlib inline\nimport math",
                   "%%time\ndef double(x):\n    return math.trunc(2 * x)", "%%bash\necho hi")
    assert _run(cells, ("double",))["double"](21) == 42


def test_a_name_computed_by_the_notebooks_code_gets_a_clear_message():
    cells = _cells("def train():\n    return 2", "model = train()",
                   "def double(x):\n    return model * x")
    found = extract(cells, ("double",))
    assert found.problem and "`double` uses `model`, which is computed by running your code" in found.problem
    assert "code cell 2, line 1: `model = train()`" in found.problem and "pass it in" in found.problem
    history = _cells("def train():\n    return 2", "model = [train()]", "trained = sum(model)",
                     "def double(x):\n    return trained * x")
    assert "`trained`, which is computed" in extract(history, ("double",)).problem
    factory = _cells("def make(k):\n    return lambda x: k * x", "double = make(2)")
    assert _run(factory, ("double",))["double"](21) == 42  # the needed name itself may be computed


def test_a_definition_inside_a_block_or_missing_is_reported():
    inside = extract(_cells("import os\nif os.sep:\n    def double(x):\n        return 2 * x"), ("double",))
    assert inside.problem and "inside a block" in inside.problem and "top level of a cell" in inside.problem
    assert extract(_cells("def triple(x):\n    return 3 * x"), ("double",)).missing == ["double"]
    assert extract(_cells("def double(x) return"), ("double",)).missing == ["double"]  # does not parse


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_every_exercise_of_every_lab_is_taken_out_of_the_course_notebooks(folder):
    for lab in load_labs():
        path = next(iter((ROOT / folder).glob(f"lab{lab.number}_*.ipynb")), None)
        if path is None or not lab.exercises:
            continue
        found = statements(read_cells(path.read_bytes()))
        for exercise in lab.exercises:
            taken = extract(found, exercise.needs)
            assert taken.problem is None and not taken.missing, (path.name, exercise.name, taken.problem)
            if folder == "solutions":
                namespace = _run([s.cell for s in taken.statements], exercise.needs)  # the cells: rerun through
                assert all(name in namespace for name in exercise.needs)
