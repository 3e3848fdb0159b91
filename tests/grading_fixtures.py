"""A toy lab for the notebook-generator and grader tests: checks, grading tables, crafted notebooks.

The toy labs use the real check interface (:mod:`labs_utils.exercises`: probe in the kernel, judge in
the grader, named parts). The grading kernel imports this module (tests/ is put on its PYTHONPATH), so
it stays light: no torch at import time (the toy Lab 3 imports it in its probe and judge); notebook
builders import nbformat lazily.
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
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from None


def _plain(value: Any) -> Any:
    """A student's return value as evidence: numbers and strings as they are, anything else as its repr."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return value if not isinstance(value, str) else value[:200]
    return repr(value)[:200]


def _ints(seed: int, sign: int) -> list:
    import random

    rng = random.Random(seed * 2 + (sign > 0))
    return [sign * rng.randint(1, 10**6) for _ in range(5)]


def inputs_double(*, seed: int) -> dict:
    return {"positive": _ints(seed, 1), "negative": _ints(seed, -1)}


def probe_double(fn: Any, *, inputs: dict) -> dict:
    return {kind: [_plain(_call(fn, x, what=f"double({x})")) for x in inputs[kind]]
            for kind in ("positive", "negative")}


def _compare(evidence: Any, key: str, inputs: list, expected: list, what: str, hint: str) -> str | None:
    found = evidence.get(key) if isinstance(evidence, dict) else None
    if not (isinstance(found, list) and len(found) == len(inputs)):
        return f"the check found no results for {what} (malformed evidence)."
    for x, got, want in zip(inputs, found, expected):
        if got != want or type(got) is not type(want):
            return f"{what}: for {x!r} your code returned {got!r}, expected {want!r}.\nHint: {hint}"
    return None


def judge_double(evidence: Any, *, seed: int) -> dict:
    return {sign_name: _compare(evidence, sign_name, xs, [2 * x for x in xs], f"double on {sign_name} numbers",
                                "multiply by 2 (keep the sign).")
            for sign_name, xs in (("positive", _ints(seed, 1)), ("negative", _ints(seed, -1)))}


_NAMES = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John"]


def _names(seed: int) -> list:
    import random

    return random.Random(seed).sample(_NAMES, 3)


def inputs_greet(*, seed: int) -> dict:
    return {"names": _names(seed)}


def probe_greet(fn: Any, *, inputs: dict) -> dict:
    return {"greetings": [_plain(_call(fn, n, what=f"greet({n!r})")) for n in inputs["names"]]}


def judge_greet(evidence: Any, *, seed: int) -> dict:
    names = _names(seed)
    return {"greeting": _compare(evidence, "greetings", names, [f"Hello, {n}!" for n in names], "greet",
                                 "return f'Hello, {name}!'.")}


def inputs_triple(*, seed: int) -> dict:
    return {"values": _ints(seed, 1)}


def probe_triple(fn: Any, *, inputs: dict) -> dict:
    return {"values": [_plain(_call(fn, x, what=f"triple({x})")) for x in inputs["values"]]}


def judge_triple(evidence: Any, *, seed: int) -> dict:
    xs = _ints(seed, 1)
    return {"triple": _compare(evidence, "values", xs, [3 * x for x in xs], "triple", "multiply by 3.")}


def broken_inputs(*, seed: int) -> dict:
    """Inputs the course's code fails to draw (the grader must call that its own problem)."""
    raise ValueError(f"no inputs for {seed}")


def endless_inputs(*, seed: int) -> dict:
    """Inputs that are never drawn (the grader's time limit must stop the worker)."""
    while True:
        pass


def endless_judge(evidence: Any, *, seed: int) -> dict:
    """A judge that never returns (the grader's judge time limit must stop it)."""
    while True:
        pass


LEARNING_RATES = (0.1, 0.37)  # the first is the exercise's example; the second catches a hard-coded one


def _sgd_inputs(seed: int, lr_index: int) -> tuple:
    import torch

    generator = torch.Generator().manual_seed(seed + lr_index)
    return torch.randn(6, generator=generator), torch.randn(6, generator=generator)


def inputs_sgd(*, seed: int) -> dict:
    return {"cases": [list(_sgd_inputs(seed, index)) for index in range(len(LEARNING_RATES))]}


def probe_sgd(fn: Any, *, inputs: dict) -> dict:
    import torch

    found = {}
    for (part, lr), (start, grad) in zip(zip(("one step", "learning rate"), LEARNING_RATES), inputs["cases"]):
        param = start.clone().requires_grad_(True)
        param.grad = grad.clone()
        _call(fn, param, lr, what=f"sgd_step(param, lr={lr})")
        found[part] = param.detach().clone() if isinstance(param, torch.Tensor) else None
    return found


def judge_sgd(evidence: Any, *, seed: int) -> dict:
    import torch

    verdicts = {}
    for index, (part, lr) in enumerate(zip(("one step", "learning rate"), LEARNING_RATES)):
        start, grad = _sgd_inputs(seed, index)
        want = start - lr * grad
        got = evidence.get(part) if isinstance(evidence, dict) else None
        if not (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype):
            verdicts[part] = "the parameter after sgd_step is missing or has the wrong shape (malformed evidence)."
        elif not torch.allclose(got, want, atol=1e-6):
            verdicts[part] = (f"with lr={lr} the parameter is off by {(got - want).abs().max().item():.3g}."
                              "\nHint: param -= lr * param.grad, in place, under torch.no_grad().")
        else:
            verdicts[part] = None
    return verdicts


def _exercises() -> dict:
    from labs_utils.exercises import Exercise, Part

    return {
        1: [Exercise("double", ("double",), (Part("positive", 1), Part("negative", 1)), probe_double, judge_double,
                     inputs=inputs_double),
            Exercise("greet", ("greet",), (Part("greeting", 1),), probe_greet, judge_greet, inputs=inputs_greet)],
        2: [Exercise("triple", ("triple",), (Part("triple", 1),), probe_triple, judge_triple, inputs=inputs_triple)],
        3: [Exercise("sgd", ("sgd_step",), (Part("one step", 1), Part("learning rate", 1)), probe_sgd, judge_sgd,
                     forbidden=("torch.optim",), inputs=inputs_sgd)],
    }


_TABLES = _exercises()
GRADING_1, GRADING_2, GRADING_3 = _TABLES[1], _TABLES[2], _TABLES[3]


def check_double(fn: Any) -> None:
    from labs_utils.exercises import run_exercise

    run_exercise(GRADING_1[0], (fn,))


def check_greet(fn: Any) -> None:
    from labs_utils.exercises import run_exercise

    run_exercise(GRADING_1[1], (fn,))


def check_triple(fn: Any) -> None:
    from labs_utils.exercises import run_exercise

    run_exercise(GRADING_2[0], (fn,))


def check_sgd(fn: Any) -> None:
    from labs_utils.exercises import run_exercise

    run_exercise(GRADING_3[0], (fn,))


TOY_MODULE = "grading_fixtures"
# No probe here steps torch.optim or calls backward, and only sgd's makes tensors: the probe servers of toy labs 1
# and 2 import no torch at all (they start in a fraction of a second; the grader's tests start a hundred of them).
# Toy lab 3's probe runs under the torch.optim trip-wire, which imports torch.optim and torch.utils.checkpoint:
# preloaded in its server, as the course's labs do, instead of once per probe (about 1 CPU-s per notebook).
# GRADING_1_TORCH: toy lab 1's table, served by a probe server that preloads torch, as the course's labs do.
PROBE_PRELOAD = {"GRADING_1": (), "GRADING_2": (), "GRADING_3": ("torch", "torch.optim", "torch.utils.checkpoint"),
                 "GRADING_1_TORCH": ("torch",)}
GRADING_1_TORCH = GRADING_1
FIXTURES_DIR = Path(__file__).resolve().parent


def toy_labs() -> tuple:
    """Three toy labs (1: double + greet, 2: triple, 3: sgd_step, torch.optim forbidden) and an ungraded lab 0."""
    from labs_utils.instructor.grading.labs import Lab

    return (Lab(0, "set-up", None), Lab(1, "toy one", TOY_MODULE, tuple(GRADING_1), "GRADING_1"),
            Lab(2, "toy two", TOY_MODULE, tuple(GRADING_2), "GRADING_2"),
            Lab(3, "toy three", TOY_MODULE, tuple(GRADING_3), "GRADING_3"))


# ----------------------------------------------------------------------------- crafted notebooks

DOUBLE = 'def double(x):\n    """Twice x."""\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION'
GREET = ('def greet(name):\n    """A greeting."""\n    ### BEGIN SOLUTION\n    greeting = "Hello"\n'
         '    return f"{greeting}, {name}!"\n    ### END SOLUTION')
QUESTION = "Why does double(x) give twice x?"
ANSWER = f"{QUESTION}\n\n<!-- BEGIN SOLUTION -->\nBecause the experiment doubled.\n<!-- END SOLUTION -->"
TRIPLE = "def triple(x):\n    ### BEGIN SOLUTION\n    return 3 * x\n    ### END SOLUTION"
SGD = ("import torch\n\n\ndef sgd_step(param, lr):\n    ### BEGIN SOLUTION\n    with torch.no_grad():\n"
       "        param -= lr * param.grad\n    ### END SOLUTION")


def toy_solution(lab: int = 1) -> Any:
    """The toy lab's solution notebook (markers, one written answer, a check after each exercise)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell

    from labs_utils.instructor.colab import setup_cell_source

    cells = [new_markdown_cell(f"# Toy lab {lab}"), new_code_cell(setup_cell_source()),
             new_code_cell(f"from {TOY_MODULE} import check_double, check_greet, check_sgd, check_triple")]
    if lab == 1:
        cells += [new_code_cell(DOUBLE), new_code_cell("# NBVAL_CHECK_OUTPUT\ncheck_double(double)"),
                  new_markdown_cell(ANSWER), new_markdown_cell("## Greeting"), new_code_cell(GREET),
                  new_code_cell("check_greet(greet)")]
    elif lab == 3:
        cells += [new_code_cell(SGD), new_code_cell("check_sgd(sgd_step)")]
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
    from labs_utils.instructor.notebooks import student_notebook

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
