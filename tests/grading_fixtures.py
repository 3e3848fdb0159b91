"""A toy lab for the notebook-generator and grader tests: checks, grading tables, crafted notebooks.

The grading kernel imports this module (tests/ is put on its PYTHONPATH), so it stays light: no
torch, nothing but the standard library at import time; notebook builders import nbformat lazily.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _call(fn: Any, *args: Any, what: str) -> Any:
    try:
        return fn(*args)
    except NotImplementedError:
        raise AssertionError(f"{what} is not implemented yet (it raised NotImplementedError).\n"
                             "Hint: replace `raise NotImplementedError()` with your code.") from None


def check_double(fn: Any) -> None:
    out = _call(fn, 21, what="double(21)")
    assert out == 42, f"double(21) returned {out!r}, expected 42.\nHint: multiply by 2."
    print("\u2714 check_double passed")


def check_greet(fn: Any) -> None:
    out = _call(fn, "Ada", what="greet('Ada')")
    assert out == "Hello, Ada!", f"greet('Ada') returned {out!r}, expected 'Hello, Ada!'."
    print("\u2714 check_greet passed")


def check_triple(fn: Any) -> None:
    out = _call(fn, 5, what="triple(5)")
    assert out == 15, f"triple(5) returned {out!r}, expected 15."


TOY_MODULE = "grading_fixtures"
FIXTURES_DIR = Path(__file__).resolve().parent


def toy_labs() -> tuple:
    """Two toy labs (1: double + greet, 2: triple) in the grader's Lab form."""
    from labs_utils.checks._common import Exercise
    from labs_utils.grade import Lab

    lab1 = (Exercise("double", 2, ("double",), "check_double(double)"),
            Exercise("greet", 1, ("greet",), "check_greet(greet)"))
    lab2 = (Exercise("triple", 1, ("triple",), "check_triple(triple)"),)
    return (Lab(0, "set-up", None), Lab(1, "toy one", TOY_MODULE, lab1), Lab(2, "toy two", TOY_MODULE, lab2))


# ----------------------------------------------------------------------------- crafted notebooks

DOUBLE = 'def double(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION'
GREET = ('def greet(name):\n    """A greeting."""\n    ### BEGIN SOLUTION\n    greeting = "Hello"\n'
         '    return f"{greeting}, {name}!"\n    ### END SOLUTION')
ANSWER = "Why twice?\n\n<!-- BEGIN SOLUTION -->\nBecause the experiment doubled.\n<!-- END SOLUTION -->"
TRIPLE = "def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION"


def toy_solution(lab: int = 1) -> Any:
    """The toy lab's solution notebook (markers, one written answer, a check after each exercise)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell

    from labs_utils.colab import setup_cell_source

    cells = [new_markdown_cell(f"# Toy lab {lab}"), new_code_cell(setup_cell_source()),
             new_code_cell(f"from {TOY_MODULE} import check_double, check_greet, check_triple")]
    if lab == 1:
        cells += [new_code_cell(DOUBLE), new_code_cell("# NBVAL_CHECK_OUTPUT\ncheck_double(double)"),
                  new_markdown_cell(ANSWER), new_code_cell(GREET), new_code_cell("check_greet(greet)")]
    else:
        cells += [new_code_cell(TRIPLE), new_code_cell("check_triple(triple)")]
    for index, cell in enumerate(cells):
        cell.id = f"toy-{index}"
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", text="old output\n")]
            cell.execution_count = index
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"title": "toy"})
    notebook.metadata["kernelspec"] = {"name": "conda-env-old", "display_name": "Old", "language": "python"}
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return notebook


def toy_student(lab: int = 1) -> Any:
    """The toy lab's student notebook, as labs_utils.notebooks generates it."""
    from labs_utils.notebooks import student_notebook

    return student_notebook(toy_solution(lab))


def write(notebook: Any, path: Path) -> Path:
    import nbformat

    nbformat.write(notebook, path)
    return path


def code_index(notebook: Any, text: str) -> int:
    """Index of the first code cell whose source contains ``text``."""
    return next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and text in c.source)


def with_cell(notebook: Any, index: int, source: str) -> Any:
    """A copy of ``notebook`` with a code cell inserted at ``index``."""
    import copy

    import nbformat

    new = copy.deepcopy(notebook)
    cell = nbformat.v4.new_code_cell(source)
    new.cells.insert(index, cell)
    return new


def colab_vscode_json(notebook: Any) -> str:
    """The notebook as Colab / VS Code save it: nbformat 4.0 with cell ids, editor metadata, widget state."""
    data = json.loads(json.dumps(notebook))
    data["nbformat_minor"] = 0
    data["metadata"] = {
        "colab": {"provenance": [], "collapsed_sections": [], "gpuType": "T4"},
        "accelerator": "GPU",
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "vscode": {"interpreter": {"hash": "0" * 64}},
        "widgets": {"application/vnd.jupyter.widget-state+json": {
            "abc": {"model_name": "HBoxModel", "model_module": "@jupyter-widgets/controls", "state": {}}}},
    }
    for n, cell in enumerate(data["cells"]):
        cell["metadata"] = {"id": f"colab{n}", "colab": {"base_uri": "https://localhost:8080/"},
                            "outputId": "x", "vscode": {"languageId": "python"}}
        if cell["cell_type"] == "code":
            cell["source"] = cell["source"].splitlines(keepends=True)  # lists of lines, as editors write
            cell["outputs"] = [{"output_type": "display_data", "metadata": {},
                                "data": {"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}}]
    return json.dumps(data)
