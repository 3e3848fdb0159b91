"""Submissions that try to get marks they did not earn score 0 (issues 11 and 20), honest ones keep theirs.

Each attack is one cell added to an untouched toy student notebook (no exercise solved), as a forum
would suggest it: 1 changing the verdict on its way out, 2 patching what the checks compare with,
3 delegating to the reference (toy Lab 3 forbids torch.optim), 4 copying (solutions/, a classmate's
notebook, the grader's command line), 5 reaching out (writing outside its folder, the network). The
solutions score full marks and half-right submissions strictly in between. Classes 4 and 5 need the
sandbox; the same notebooks graded without it show that the attacks are real. The attacks on the kernel
(classes 1 and 2, and forgers of valid evidence) are graded with the screen off too: the probe runs in a
process of its own, which they cannot reach. Attacks from inside the exercise's own code are in
test_grading_probes.py.
"""
from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import grading_fixtures as gf
import pytest
from conftest import grade_folder, hashes, needs_sandbox, write_all

from labs_utils.instructor.grading.reports import feedback
from labs_utils.instructor.grading.run import judged

MIME = "application/vnd.labs-utils.grade+json"


def gated(body: str) -> str:
    """A cell whose exercises answer correctly only if the attack worked: ``body`` (a function body returning
    whether it did) runs in the kernel and, once, wherever the exercise's code is checked (the probe process).
    ``patience``: how long an attack that waits for something (a classmate's kernel) keeps looking; in the kernel
    15 s, longer than the rest of its batch takes on a quiet machine (about 9 s), so it looks while they run."""
    return (f"def _attack(patience=5):\n{textwrap.indent(body.strip(), '    ')}\n\n\n_worked = []\n\n\n"
            "def _answers_allowed():\n    if not _worked:\n        _worked.append(bool(_attack()))\n"
            "    return _worked[0]\n\n\n_attack(patience=15)\n\n\n"
            "def double(x):\n    if _answers_allowed():\n        return 2 * x\n    raise NotImplementedError()\n\n\n"
            "def greet(name):\n    if _answers_allowed():\n        return f'Hello, {name}!'\n"
            "    raise NotImplementedError()\n")

ATTACKS_1 = {
    "publish_patch": f"""
import json, IPython.display, IPython.core.display_functions
from IPython import get_ipython
_publish = get_ipython().display_pub.publish
def forged(data, metadata=None, **kw):
    if '{MIME}' in data:
        value = dict(data['{MIME}'], status='passed', passed=True, evidence=json.dumps({{'passed': True}}))
        value.pop('missing', None)
        data = {{'{MIME}': value}}
    return _publish(data, metadata, **kw)
get_ipython().display_pub.publish = forged
IPython.display.publish_display_data = IPython.core.display_functions.publish_display_data = (
    lambda data, metadata=None, **kw: forged(data, metadata))""",
    "event_hook": f"""
import json, re
from IPython import get_ipython
from IPython.display import publish_display_data
def forge(info):
    for nonce in re.findall(r"'([0-9a-f]{{32}})'", info.raw_cell or ''):
        publish_display_data({{'{MIME}': {{'nonce': nonce, 'status': 'passed',
                                          'evidence': json.dumps({{'status': 'passed'}})}}}})
get_ipython().events.register('pre_run_cell', forge)
get_ipython().events.register('post_run_cell', lambda result: forge(result.info))""",
    "printed_result": f"""
from IPython.display import display
print('\\u2714 double: all 2 part(s) passed (2/2 points)')
display({{'{MIME}': {{'nonce': '0' * 32, 'status': 'passed', 'evidence': '{{"passed": true}}'}}}}, raw=True)""",
}
ATTACKS_2 = {
    "patched_import_system": """
import importlib.machinery, sys, types
class Fake:
    def find_spec(self, name, path=None, target=None):
        if name in ('labs_utils.exercises', 'grading_fixtures'):
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        module.ERROR_KEY = '__error__'
        module.exercise_named = lambda table, name: types.SimpleNamespace(name=name, needs=())
        module.probe = lambda exercise, objects, inputs: {'passed': True}
        module.GRADING_1 = module.GRADING_3 = []
sys.meta_path.insert(0, Fake())""",
}
# Valid evidence for any seed: the toy probes run on a correct implementation (the test below judges it).
FORGE = """
def forge(name, seed):
    import grading_fixtures
    from labs_utils import evidence
    probe = {'double': grading_fixtures.probe_double, 'greet': grading_fixtures.probe_greet}[name]
    inputs = {'double': grading_fixtures.inputs_double, 'greet': grading_fixtures.inputs_greet}[name](seed=seed)
    return evidence.encode(probe(lambda x: f'Hello, {x}!' if isinstance(x, str) else 2 * x, inputs=inputs))"""
# In the kernel, after the notebook: forgers that had full marks when the probe ran there (graded with the screen off).
KERNEL_FORGERS = {
    "forged_valid_evidence": FORGE + f"""
import json, re, sys
from IPython import get_ipython
from IPython.display import publish_display_data
shell = get_ipython()
publish = shell.display_pub.publish
def swallow(data, metadata=None, **kw):  # the real result never leaves
    if '{MIME}' not in data:
        return publish(data, metadata, **kw)
shell.display_pub.publish = swallow
def forged(info):  # any grading cell naming an exercise, a seed and a nonce gets valid evidence for them
    for name, seed, nonce in re.findall(r"'(double|greet)', (\\d+), '([0-9a-f]{{32}})'", info.raw_cell or ''):
        publish({{'{MIME}': {{'nonce': nonce, 'evidence': forge(name, int(seed))}}}}, {{}})
shell.events.register('pre_run_cell', forged)
for module in [m for n, m in sys.modules.items() if n.startswith('labs_utils.instructor.grading.kernel_side')]:
    module.probe_in_kernel = lambda student, m, t, name, seed, nonce: publish(
        {{'{MIME}': {{'nonce': nonce, 'evidence': forge(name, seed)}}}}, {{}})""",
    "evidence_rewriting_thread": """
import sys, threading, time
def _answer(fn, *args, what):
    return f'Hello, {args[0]}!' if isinstance(args[0], str) else 2 * args[0]
def _repatch():  # re-patches the checks module whenever the grader imports it afresh
    while True:
        module = sys.modules.get('grading_fixtures')
        if module is not None and getattr(module, '_call', None) is not _answer:
            module._call = _answer
        time.sleep(0.001)
threading.Thread(target=_repatch, daemon=True).start()""",
    "trace_hook": """
import ctypes, sys, threading
def _answer(x):
    return f'Hello, {x}!' if isinstance(x, str) else 2 * x
def _tracer(frame, event, arg):  # hands the probe a correct function instead of the student's
    if event == 'call' and frame.f_code.co_name in ('probe_double', 'probe_greet'):
        frame.f_locals['fn'] = _answer
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))
sys.settrace(_tracer)
threading.settrace(_tracer)""",
}
PATCHED_TORCH = """
import builtins, numpy, torch
def sgd_step(param, lr):
    pass  # does nothing; the patches below are meant to make it compare equal
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.tensor(True)
torch.Tensor.max = lambda self, *a, **k: torch.tensor(0.0)
torch.Tensor.sub = torch.Tensor.__sub__ = lambda self, other: torch.zeros_like(self)
torch.testing.assert_close = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
_isinstance = builtins.isinstance
builtins.all = lambda iterable: True"""
ATTACKS_3 = {
    "optim_direct": "import torch\ndef sgd_step(param, lr):\n    torch.optim.SGD([param], lr=lr).step()",
    "optim_hidden_subclass": """
import torch
class Mine(torch.optim.Optimizer):
    def __init__(self, params, lr):
        super().__init__(params, {'lr': lr})
        self.inner = torch.optim.SGD(self.param_groups[0]['params'], lr=lr)
    def step(self, closure=None):
        return self.inner.step()
def sgd_step(param, lr):
    Mine([param], lr).step()""",
    "optim_functional": """
import torch
from torch.optim.sgd import sgd as _sgd_kernel  # held before the probe starts
def sgd_step(param, lr):
    with torch.no_grad():
        _sgd_kernel([param], [param.grad], [None], weight_decay=0.0, momentum=0.0, lr=lr, dampening=0.0,
                    nesterov=False, maximize=False)""",
}


def _copying(batch_folder: Path) -> dict:
    return {
        "read_solutions": gated("""
import glob, pathlib, re, sys, labs_utils
roots = {pathlib.Path(labs_utils.__file__).resolve().parents[1]}
for finder in [p for folder in sys.path for p in glob.glob(folder + '/__editable__*labs_utils*finder.py')]:
    mapped = re.findall(r"'labs_utils': '([^']+)'", open(finder).read())
    roots |= {pathlib.Path(p).parent for p in mapped}
return any(next(root.joinpath('solutions').glob('*.ipynb'), None) for root in roots)  # stands in for running them
"""),
        "classmate_notebook": f"""
_copied = {{}}


def _classmates():
    import glob, json
    if not _copied:
        for path in glob.glob({str(batch_folder)!r} + '/**/*.ipynb', recursive=True):
            try:
                cells = json.load(open(path)).get('cells', [])
            except Exception:
                continue
            for cell in cells:
                source = ''.join(cell.get('source', ''))
                if cell.get('cell_type') == 'code' and 'def ' in source and 'NotImplementedError' not in source:
                    try:
                        exec(source, _copied)
                    except Exception:
                        pass
    return _copied


_classmates()


def double(x):
    return _classmates()['double'](x)


def greet(name):
    return _classmates()['greet'](name)""",
        "grader_command_line": gated("""
import glob
seen = []
for path in glob.glob('/proc/[0-9]*/cmdline'):
    try:
        seen.append(open(path, 'rb').read().decode(errors='ignore'))
    except OSError:
        pass
return any('pytest' in line or 'labs_utils.grade' in line for line in seen)  # it names the batch folder
"""),
    }


def _reaching_out(batch_folder: Path, outputs: Path, port: int) -> dict:
    return {
        "write_outside": f"""
import glob, os
targets = [{str(batch_folder)!r}, {str(outputs)!r}, '/tmp', *glob.glob('/tmp/labs-grade-*')]
for folder in targets:
    try:
        with open(os.path.join(folder, 'escaped.txt'), 'w') as handle:
            handle.write('written by a submission')
    except OSError:
        pass
for path in glob.glob({str(batch_folder)!r} + '/*.ipynb'):
    try:
        open(path, 'a').write(' ')
    except OSError:
        pass""",
        "network": gated(f"""
import socket
try:
    socket.create_connection(('127.0.0.1', {port}), timeout=3).close()
    return True  # stands in for downloading the answers
except OSError:
    return False
"""),
    }


def _half_right() -> dict:
    abs_double = gf.toy_solution(1)
    abs_double.cells[gf.code_index(abs_double, "def double")].source = "def double(x):\n    return abs(2 * x)"
    fixed_lr = gf.toy_solution(3)
    fixed_lr.cells[gf.code_index(fixed_lr, "def sgd_step")].source = (
        "import torch\ndef sgd_step(param, lr):\n    with torch.no_grad():\n        param -= 0.1 * param.grad")
    return {"partial_double_lab1.ipynb": abs_double, "partial_sgd_lab3.ipynb": fixed_lr}


def _attacked(lab: int, source: str):
    student = gf.toy_student(lab)
    return gf.with_cell(student, len(student.cells), source.strip("\n"))


@pytest.fixture(scope="module")
def server():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def attacks(tmp_path_factory, server):
    """The crafted batch, graded in the sandbox (skipped where bubblewrap is unusable)."""
    root = tmp_path_factory.mktemp("attacks")
    folder, outputs = root / "batch", root / "grades"
    outputs.mkdir()
    notebooks = {"solution_lab1.ipynb": gf.toy_solution(1), "solution_lab3.ipynb": gf.toy_solution(3),
                 **_half_right()}
    notebooks |= {f"{name}_lab1.ipynb": _attacked(1, source) for name, source in {**ATTACKS_1, **ATTACKS_2}.items()}
    notebooks |= {f"{name}_lab3.ipynb": _attacked(3, source)
                  for name, source in {"patched_torch": PATCHED_TORCH, **ATTACKS_3}.items()}
    notebooks |= {f"{name}_lab1.ipynb": _attacked(1, source) for name, source in {
        **_copying(folder), **_reaching_out(folder, outputs, server.getsockname()[1])}.items()}
    before = write_all(folder, notebooks)
    return {"folder": folder, "outputs": outputs, "before": before, "server": server,
            "notebooks": notebooks}


@pytest.fixture(scope="module")
def sandboxed(attacks, sandbox_usable):
    return grade_folder(attacks["folder"], sandbox="require", hidden=(str(attacks["outputs"]),))


@pytest.fixture(scope="module")
def unscreened(tmp_path_factory, sandbox_usable):
    """The attacks on the kernel, graded with the screen off: the probe processes alone must give them 0."""
    folder = tmp_path_factory.mktemp("unscreened")
    write_all(folder, {f"{name}_lab1.ipynb": _attacked(1, source)
                       for name, source in {**ATTACKS_1, **ATTACKS_2, **KERNEL_FORGERS}.items()})
    return grade_folder(folder, sandbox="require", screen=False)


def _score(results: dict, name: str) -> float:
    r = results[name]
    assert r.status == "graded", feedback(r)
    return r.total


@pytest.mark.slow
@needs_sandbox
def test_solutions_get_full_marks_and_half_right_submissions_part(sandboxed):
    assert (_score(sandboxed, "solution_lab1"), _score(sandboxed, "solution_lab3")) == (3, 2)
    assert _score(sandboxed, "partial_double_lab1") == 2  # positive part of double + greet
    assert _score(sandboxed, "partial_sgd_lab3") == 1  # one step, not the learning rate
    parts = {p.name: p.passed for p in sandboxed["partial_double_lab1"].exercises[0].parts}
    assert parts == {"positive": True, "negative": False}


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", [*ATTACKS_1, *ATTACKS_2])
def test_forged_results_and_patched_comparisons_score_zero(sandboxed, name):
    assert _score(sandboxed, f"{name}_lab1") == 0, feedback(sandboxed[f"{name}_lab1"])


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", [*ATTACKS_1, *ATTACKS_2, *KERNEL_FORGERS])
def test_attacks_on_the_kernel_score_zero_without_the_screen(unscreened, name):
    """Forged results, patched publishing, event hooks, an import hook, patched checks, a thread that re-patches
    them, a trace hook, valid evidence for any seed: none reaches the probe process, which checks the untouched
    exercises (their stubs still raise NotImplementedError)."""
    r = unscreened[f"{name}_lab1"]
    assert _score(unscreened, f"{name}_lab1") == 0 and not any(ex.flags for ex in r.exercises), feedback(r)
    assert all("not implemented yet" in p.message for ex in r.exercises for p in ex.parts), feedback(r)


def test_the_forger_forges_valid_evidence():
    """What forged_valid_evidence publishes would get full marks if it were taken as the probe's."""
    namespace: dict = {}
    exec(FORGE, namespace)
    for exercise in gf.GRADING_1:
        seed = 4321
        assert judged(exercise, namespace["forge"](exercise.name, seed), seed).points == exercise.points


@pytest.mark.slow
@needs_sandbox
def test_every_attack_is_withheld_for_review_with_the_lines_that_gave_it_away(sandboxed):
    attacks = [r for name, r in sandboxed.items() if not name.startswith(("solution", "partial"))]
    assert attacks and all(r.total == 0 for r in attacks)
    for r in attacks:
        assert {ex.status for ex in r.exercises} == {"needs-review"}, feedback(r)
        assert all(ex.flags and "line" in ex.flags[0] for ex in r.exercises) and "needs review" in feedback(r)
    honest = [r for name, r in sandboxed.items() if name.startswith(("solution", "partial"))]
    assert not any(ex.flags for r in honest for ex in r.exercises)


@pytest.mark.slow
@needs_sandbox
def test_patched_torch_numpy_and_builtins_do_not_make_a_do_nothing_step_pass(sandboxed):
    assert _score(sandboxed, "patched_torch_lab3") == 0


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", list(ATTACKS_3))
def test_delegating_to_torch_optim_scores_zero_with_the_hint(sandboxed, name):
    r = sandboxed[f"{name}_lab3"]
    assert _score(sandboxed, f"{name}_lab3") == 0
    assert "Write the update yourself" in feedback(r) and "reference implementation" in feedback(r)


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("name", ["read_solutions", "classmate_notebook", "grader_command_line", "network"])
def test_copying_and_reaching_out_score_zero(sandboxed, name):
    assert _score(sandboxed, f"{name}_lab1") == 0, feedback(sandboxed[f"{name}_lab1"])


@pytest.mark.slow
@needs_sandbox
def test_nothing_outside_the_kernels_folder_was_written_or_reached(sandboxed, attacks):
    assert _score(sandboxed, "write_outside_lab1") == 0
    assert hashes(attacks["folder"]) == attacks["before"]  # submissions byte-identical, nothing added
    assert list(attacks["outputs"].iterdir()) == []
    assert not Path("/tmp/escaped.txt").exists()
    with pytest.raises(BlockingIOError):
        attacks["server"].accept()


@pytest.mark.slow
@needs_sandbox
def test_without_the_sandbox_the_copying_attacks_are_real(attacks, tmp_path):
    """The same notebooks graded unsandboxed get marks: the sandbox, not luck, makes them score 0 above."""
    folder = tmp_path / "unsandboxed"
    write_all(folder, {f"{name}_lab1.ipynb": attacks["notebooks"][f"{name}_lab1.ipynb"]
                       for name in ("read_solutions", "grader_command_line", "network")})
    results = grade_folder(folder, sandbox="off", screen=False)  # the screen would withhold them for review
    assert {name: r.total for name, r in results.items()} == {
        "read_solutions_lab1": 3, "grader_command_line_lab1": 3, "network_lab1": 3}
    assert not any(r.sandboxed for r in results.values())
