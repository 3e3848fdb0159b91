"""The screen (issue 20): code that has no place in an exercise is flagged before it runs; honest code never is."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import grading_fixtures as gf
import pytest
from test_grading_attacks import ATTACKS_1, ATTACKS_2, ATTACKS_3, PATCHED_TORCH, _copying, _reaching_out
from torch.optim.sgd import _single_tensor_sgd

from labs_utils.instructor.grading.labs import load_labs
from labs_utils.instructor.grading.screen import screen
from labs_utils.instructor.grading.submissions import read_cells

ROOT = Path(__file__).resolve().parents[3]
LAB1, LAB3 = gf.toy_labs()[1], gf.toy_labs()[3]


def _cells(notebook) -> list:
    return read_cells(json.dumps(notebook).encode())


def _flags(lab: int, source: str) -> dict:
    """Exercise -> reasons, for the toy student notebook of ``lab`` with one cell added at the end."""
    student = gf.toy_student(lab)
    notebook = gf.with_cell(student, len(student.cells), source.strip("\n"))
    return {name: [f.reason for f in found] for name, found in screen(_cells(notebook), gf.toy_labs()[lab]).items()}


@pytest.mark.parametrize("path", sorted(ROOT.glob("solutions/*.ipynb")) + sorted(ROOT.glob("notebooks/*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_solution_or_student_notebook_of_the_course_is_flagged(path):
    labs = {lab.number: lab for lab in load_labs()}
    found = screen(read_cells(path.read_bytes()), labs[int(path.name[3])])
    assert found == {}, "\n".join(str(f) for findings in found.values() for f in findings)


@pytest.mark.parametrize("lab", [1, 2, 3])
def test_toy_solutions_and_student_notebooks_are_not_flagged(lab):
    for notebook in (gf.toy_solution(lab), gf.toy_student(lab)):
        assert screen(_cells(notebook), gf.toy_labs()[lab]) == {}


ISSUE_20 = {  # one cell each, as the issue describes them
    "thread before the probe": (3, "import threading\nthreading.Thread(target=print).start()", "thread control"),
    "profile hook off and on": (3, "import sys\ndef sgd_step(param, lr):\n    hook = sys.getprofile()\n"
                                   "    sys.setprofile(None)\n    sys.setprofile(hook)", "interpreter's internals"),
    "copied code object": (3, "import torch, types\nf = types.FunctionType(torch.optim.sgd.sgd.__code__, {})",
                           "introspection (__code__)"),
    "importlib.reload": (3, "import importlib, torch\nimportlib.reload(torch.optim)", "import system"),
    "checkpoint inside the Function": (
        3, "from torch.utils.checkpoint import checkpoint\ndef sgd_step(param, lr):\n    return checkpoint(abs, param)",
        "torch.utils.checkpoint"),
    "kill a classmate": (1, "import os\nfor pid in range(2, 99):\n    os.kill(pid, 9)", "process control"),
    "read the probe's frame": (1, "import sys\ndef double(x):\n    return sys._getframe(1).f_locals['seed']",
                               "introspection (f_locals)"),
    "live objects": (1, "import gc\nprobes = [o for o in gc.get_objects() if callable(o)]", "live objects"),
    "the probe's memory tracker": (1, "from torch.utils._python_dispatch import _get_current_dispatch_mode\n"
                                      "def double(x):\n    _get_current_dispatch_mode().events = 0\n    return 2 * x",
                                   "dispatch internals"),
    "torch._C's mode stack": (1, "import torch\nmode = torch._C._get_dispatch_mode(None)", "dispatch internals"),
    "event hooks": (1, "get_ipython().events.register('post_run_cell', print)", "IPython's internals"),
    "clear the result": (1, "from IPython.display import clear_output\nclear_output()", "display publishing"),
    "input history": (1, "seeds = [cell for cell in In if 'probe' in cell]", "input history"),
    "labs_utils internals": (1, "from labs_utils.exercises import probe", "labs_utils internals"),
    "a probe called directly": (3, "from labs_utils.lab3_optimizers.checks import probe_optimizer",
                                "labs_utils internals"),
    "private helper": (1, "import labs_utils\nlabs_utils._lazy.lazy_module", "labs_utils internals"),
    "absolute path": (1, "text = open('/etc/hostname').read()", "outside the notebook's folder"),
    "walking up": (1, "from pathlib import Path\nroot = Path.cwd().parent.parent", "outside the notebook's folder"),
    "dotdot": (1, "text = open('../../x.ipynb').read()", "outside the notebook's folder"),
    "dynamic attribute": (1, "import os\nk = getattr(os, 'ki' + 'll')", "named at run time"),
    "exec of text": (1, "exec('import o' + 's')", "code run from text"),
    "writefile magic": (1, "%%writefile labs_utils.py\nprint('fake')", "the magic %%writefile"),
    "code under %time": (1, "%time import subprocess", "process or thread control"),
    "shell assignment": (1, "files = !ls /", "IPython's internals"),
    "module patch via alias": (1, "import numpy as np\nnp.allclose = lambda *a, **k: True", "patches a module"),
}


@pytest.mark.parametrize("name", list(ISSUE_20))
def test_each_way_round_the_checks_is_flagged(name):
    lab, source, reason = ISSUE_20[name]
    found = _flags(lab, source)
    assert found and all(any(reason in r for r in reasons) for reasons in found.values()), found


def test_every_attack_of_the_crafted_batches_is_flagged(tmp_path):
    attacks = {**ATTACKS_1, **ATTACKS_2, **_copying(tmp_path), **_reaching_out(tmp_path, tmp_path, 1)}
    for name, source in attacks.items():
        assert set(_flags(1, source)) == {"double", "greet"}, name
    for name, source in {"patched_torch": PATCHED_TORCH, **ATTACKS_3}.items():
        assert set(_flags(3, source)) == {"sgd"}, name


def test_exercise_only_rules_withhold_the_exercise_that_uses_them_and_its_helpers():
    helper = ("import torch\ndef _update(param, lr):\n    torch.optim.SGD([param], lr=lr).step()\n"
              "def sgd_step(param, lr):\n    _update(param, lr)")
    assert set(_flags(3, helper)) == {"sgd"}
    comparison = "import torch\nreference = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)"
    assert _flags(3, comparison) == {}  # comparing with torch.optim outside the exercise is fine


def test_a_near_copy_of_torch_source_is_flagged_renamed_or_not():
    source = inspect.getsource(_single_tensor_sgd)
    renamed = source.replace("momentum_buffer_list", "buffers").replace("param", "weight")
    for body in (source, renamed):
        cell = f"import torch\nfrom torch import Tensor\nfrom typing import Optional\n{body}\n" \
               "def sgd_step(param, lr):\n    with torch.no_grad():\n" \
               "        _mine([param], [param.grad], [None], grad_scale=None, found_inf=None, " \
               "weight_decay=0.0, momentum=0.0, lr=lr, dampening=0.0, nesterov=False, maximize=False, " \
               "has_sparse_grad=False)"
        reasons = _flags(3, cell.replace("def _single_tensor_sgd(", "def _mine("))
        assert any("torch's own source" in r for r in reasons.get("sgd", [])), reasons


def test_honest_names_that_look_like_modules_are_not_flagged():
    honest = ("import torch\nsignal = torch.randn(8)\nnoise = 0.1 * torch.randn(8)\nthreading = signal + noise\n"
              "def double(x):\n    return 2 * x\nprint(f'{signal.mean():.2f} samples/s', 'loss / step')")
    assert _flags(1, honest) == {}
