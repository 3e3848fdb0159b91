"""Repository-level promises: light import, version ranges, the Colab set-up cell, README badges."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import labs_utils
from labs_utils.instructor import colab

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def first_code_cell(path: Path) -> str:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    source = next(c["source"] for c in cells if c["cell_type"] == "code")
    return "".join(source) if isinstance(source, list) else source


@pytest.mark.slow  # starts a fresh Python that imports torch
def test_import_labs_utils_is_light():
    heavy = "('torch', 'matplotlib', 'torchvision')"
    code = f"import sys, labs_utils; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


CHECK_OF_WING = {"lab1_autoencoders": "check_noise", "lab2_checkpointing": "check_checkpointing",
                 "lab3_optimizers": "check_optimizer"}
SUMMARY_CELL = "from labs_utils.exercises import summary; summary(1, {})"
# One fresh Python imports torch (what every statement below imports first, and seconds of CPU), then forks a child
# per statement: each child runs its statement and reports the modules it then holds.
_FORKS = """
import contextlib, io, json, os, sys
import torch
assert not any(m == "labs_utils" or m.startswith(("labs_utils.", "matplotlib")) for m in sys.modules)
for statement in json.loads(sys.argv[1]):
    pid = os.fork()
    if pid == 0:
        with contextlib.redirect_stdout(io.StringIO()):
            exec(statement, {})
        print(json.dumps(sorted(sys.modules)), flush=True)
        os._exit(0)
    if os.waitpid(pid, 0)[1] != 0:
        sys.exit(f"{statement!r} failed")
"""


@pytest.fixture(scope="module")
def modules_after() -> dict[str, set[str]]:
    """statement -> the modules a fresh Python holds after it (for the import statements of the tests below)."""
    statements = [f"from labs_utils.checks import {check}" for check in CHECK_OF_WING.values()] + [SUMMARY_CELL]
    out = subprocess.run([sys.executable, "-c", _FORKS, json.dumps(statements)], capture_output=True, text=True,
                         check=True).stdout
    return {statement: set(json.loads(line)) for statement, line in zip(statements, out.splitlines(), strict=True)}


@pytest.mark.slow  # starts a fresh Python that imports torch
@pytest.mark.parametrize("own_wing", CHECK_OF_WING)
def test_importing_one_labs_check_loads_no_other_lab(modules_after, own_wing):
    loaded = modules_after[f"from labs_utils.checks import {CHECK_OF_WING[own_wing]}"]
    wings = {m.split(".")[1] for m in loaded if re.fullmatch(r"labs_utils\.lab\d+_\w+(\..*)?", m)}
    assert wings == {own_wing}
    assert "matplotlib" not in loaded, "a check should not pull in the figures"


@pytest.mark.slow  # starts a fresh Python that imports torch
def test_a_labs_summary_cell_loads_no_other_lab(modules_after):
    loaded = modules_after[SUMMARY_CELL]
    wings = {m.split(".")[1] for m in loaded if re.fullmatch(r"labs_utils\.lab\d+_\w+(\..*)?", m)}
    assert wings == {"lab1_autoencoders"}


def test_summary_scores_what_the_namespace_defines(capsys):
    from labs_utils.exercises import summary
    from labs_utils.lab1_autoencoders.checks import GRADING

    assert summary(1, {}) == 0.0
    out = capsys.readouterr().out
    assert out.count("\u2718") == len(GRADING) and "not defined: DenseAutoencoder" in out
    assert f"Total: 0/{sum(e.points for e in GRADING):g}." in out


def test_in_the_graders_kernel_summary_leaves_the_checks_to_the_grader(monkeypatch, capsys):
    from labs_utils import exercises

    def no_checks(*args):
        raise AssertionError("summary ran the checks in the grader's kernel")

    monkeypatch.setattr(exercises, "discover_labs", no_checks)
    monkeypatch.setenv("LABS_GRADING", "1")
    assert exercises.summary(1, {}) == 0.0
    assert "The grader checks every exercise itself" in capsys.readouterr().out


def test_students_see_no_grading_tools():
    visible = dir(labs_utils)
    assert "lab1_autoencoders" in visible and "checks" in visible
    assert not {"grade", "instructor", "notebooks"} & set(visible)


def test_every_wing_names_its_notebook_and_number():
    from labs_utils.exercises import discover_labs

    labs = discover_labs()
    assert sorted(labs) == [0, 1, 2, 3]
    for number, checks in labs.items():
        assert checks.LAB.number == number
        assert checks.__name__ == f"labs_utils.{checks.LAB.notebook}.checks"
        assert (ROOT / "solutions" / f"{checks.LAB.notebook}.ipynb").exists()


def _leaves(value):
    if isinstance(value, dict):
        return [n for item in value.values() for n in _leaves(item)]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _leaves(item)]
    return [value]


def _carries(inputs, seed: int) -> str | None:
    """Where the inputs hold the seed, or a seed a few steps from it (seed + k, as an int or in a tensor's bytes:
    a torch.Generator's state starts with the seed it was seeded with)."""
    import torch

    near = range(seed - 16, seed + 1024)
    # Every n in ``near`` shares its upper six bytes (little-endian, 8 bytes): find those, then read the whole n.
    assert near[0] >> 16 == near[-1] >> 16, "pick a seed whose neighbours share their upper bytes"
    upper = (seed >> 16).to_bytes(6, "little")
    for leaf in _leaves(inputs):
        if isinstance(leaf, int) and not isinstance(leaf, bool) and leaf in near:
            return f"the int {leaf}"
        if isinstance(leaf, torch.Tensor) and leaf.numel():
            if not leaf.is_floating_point() and leaf.dtype != torch.bool and any(
                    int(n) in near for n in leaf.flatten().tolist()):
                return f"a {leaf.dtype} tensor's values"
            raw = leaf.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            at = raw.find(upper, 2)
            while at != -1:  # a generator's state, at any offset
                if int.from_bytes(raw[at - 2:at + 6], "little") in near:
                    return f"a {leaf.dtype} tensor's bytes"
                at = raw.find(upper, at + 1)
    return None


def test_carries_finds_the_seed_at_any_offset_and_nothing_else():
    import torch

    seed = 1_234_567_891
    state = torch.Generator().manual_seed(seed + 5).get_state()
    assert _carries({"a": [torch.zeros(3), state]}, seed) == "a torch.uint8 tensor's bytes"
    shifted = torch.cat([torch.zeros(3, dtype=torch.uint8), state])
    assert _carries([shifted], seed) == "a torch.uint8 tensor's bytes"
    assert _carries([torch.Generator().manual_seed(seed + 2000).get_state()], seed) is None
    assert _carries([torch.tensor([seed - 3])], seed) == "a torch.int64 tensor's values"
    assert _carries({"n": seed + 1023}, seed) == "the int 1234568914" and _carries({"n": seed - 17}, seed) is None


def test_every_probe_is_sent_inputs_drawn_from_the_seed_and_never_the_seed():
    """The grader draws an exercise's inputs from its seed and sends the probe process only those (issue 20)."""
    import inspect

    from labs_utils import evidence as ev
    from labs_utils.exercises import discover_labs, encoded_inputs

    seed = 1_234_567_891
    for checks in discover_labs().values():
        for exercise in checks.GRADING:
            parameters = inspect.signature(exercise.probe).parameters
            assert "seed" not in parameters and "inputs" in parameters, exercise.name
            if exercise.inputs is None:
                continue
            text = encoded_inputs(exercise, seed)
            where = _carries(ev.decode(text), seed)
            assert where is None, f"{exercise.name}'s inputs carry the seed (or seed + k) in {where}"
            assert encoded_inputs(exercise, seed) == text, f"{exercise.name}: not deterministic"
            assert encoded_inputs(exercise, seed + 1) != text, f"{exercise.name}: not drawn"
            assert len(text) < 8 * 2**20, f"{exercise.name}'s inputs are over 8 MiB"


@pytest.mark.slow  # starts a fresh Python that imports torch
def test_a_new_lab_needs_no_entry_outside_its_wing(tmp_path):
    """A copy of the package with a lab4_demo wing: the façade, lu.<TAB> and the grader's discovery all find it."""
    import shutil

    package = Path(labs_utils.__file__).resolve().parent
    shutil.copytree(package, tmp_path / "labs_utils", ignore=shutil.ignore_patterns("__pycache__", "instructor"))
    wing = tmp_path / "labs_utils" / "lab4_demo"
    wing.mkdir()
    (wing / "__init__.py").write_text("")
    (wing / "checks.py").write_text(
        "from ..exercises import LabInfo\n__all__ = ['check_demo']\n__all__ += ['DEMO']\n"
        "LAB = LabInfo(4, 'demo', 'lab4_demo')\nGRADING = []\nDEMO = 4\n"
        "def check_demo(fn):\n    return fn(2)\n")
    probe = ("import labs_utils as lu\nfrom labs_utils.checks import check_demo, DEMO\n"
             "from labs_utils.exercises import discover_labs\n"
             "print(check_demo(lambda x: x * DEMO), 'lab4_demo' in dir(lu), sorted(discover_labs()))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["8", "True", "[0,", "1,", "2,", "3,", "4]"]


def test_top_level_helpers_resolve_lazily():
    assert labs_utils.load_mnist.__module__ == "labs_utils.data"
    assert labs_utils.fit.__module__ == "labs_utils.training"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        labs_utils.nope  # noqa: B018


def test_requirements_use_ranges_not_exact_pins():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    packages = [ln for ln in lines if ln and not ln.startswith("-")]
    assert any(ln.startswith("torch>=") for ln in packages)
    assert not [ln for ln in packages if "==" in ln], "exact pins would make Colab reinstall its packages"
    assert "-e ." in lines


def test_there_are_solution_notebooks():
    assert SOLUTIONS, "solutions/ holds no notebook"


@pytest.mark.parametrize("path", SOLUTIONS + NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_code_cell_is_the_colab_setup_cell(path):
    assert first_code_cell(path) == colab.setup_cell_source(), (
        f"{path.name}: the first code cell must be labs_utils.instructor.colab.setup_cell_source() exactly"
    )


def test_setup_cell_installs_from_the_one_repository_url():
    assert f"git+{labs_utils.REPO_URL}.git" in colab.setup_cell_source()


def test_colab_url_needs_a_github_address():
    with pytest.raises(ValueError, match="GitHub address"):
        colab.colab_url("notebooks/x.ipynb", repo_url="https://gitlab.com/a/b")


def test_readme_has_a_colab_badge_for_every_student_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert colab.colab_badge(f"notebooks/{path.name}") in readme, f"README lacks the Colab badge of {path.name}"


def test_readme_gives_the_two_commands_and_the_mnist_credit():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -r requirements.txt && jupyter lab" in readme
    assert re.search(r"^pytest(\s+#.*)?$", readme, re.MULTILINE)
    assert "LeCun" in readme and "CC BY-SA 3.0" in readme


def test_license_is_mit_for_the_course_authors():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "Copyright (c) 2026 The course authors" in text
