"""Student notebooks generated from the solutions: markers, metadata, byte-identical rebuilds, and the
real student notebooks run until the first exercise, whose check then fails with the student-facing hint."""
from __future__ import annotations

import contextlib
import copy
import io
import re
from pathlib import Path

import grading_fixtures as gf
import nbformat
import pytest

from labs_utils.instructor import notebooks
from labs_utils.instructor.colab import setup_cell_source
from labs_utils.instructor.grading.batch import grade_batch
from labs_utils.instructor.grading.kernel import Options
from labs_utils.instructor.grading.reports import feedback

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUB = re.compile(r"# YOUR CODE HERE\n\s*raise NotImplementedError\(\)")


def markers_and_test_comments_removed(source: str) -> str:
    """A solution cell's source without its marker lines and # NBVAL_ comments (what a round trip restores)."""
    drop = {notebooks.CODE_BEGIN, notebooks.CODE_END, notebooks.MARKDOWN_BEGIN, notebooks.MARKDOWN_END}
    return "\n".join(line for line in source.split("\n")
                     if line.strip() not in drop and not re.match(r"^\s*# NBVAL_[A-Z_]+\s*$", line))


def solution_blocks(source: str, begin: str, end: str) -> list:
    """The lines between each begin/end marker pair, in order."""
    blocks, current = [], None
    for line in source.split("\n"):
        if line.strip() == begin:
            current = []
        elif line.strip() == end:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def fill_in(student: str, solution: str, stubs: tuple, begin: str, end: str) -> str:
    """Put the solution's blocks back in place of the student's stubs (``stubs``: the longest first)."""
    blocks = iter(solution_blocks(solution, begin, end))
    lines, out, i = student.split("\n"), [], 0
    while i < len(lines):
        stub = next((s for s in stubs if [ln.strip() for ln in lines[i:i + len(s)]] == list(s)), None)
        if stub is not None:
            out += next(blocks)
            i += len(stub)
        else:
            out.append(lines[i])
            i += 1
    assert next(blocks, None) is None, "a solution block has no stub in the student cell"
    return "\n".join(out)


def restored(student: nbformat.NotebookNode, solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook with every solution block and written answer put back."""
    nb = copy.deepcopy(student)
    for cell, original in zip(nb.cells, solution.cells):
        if cell.cell_type == "code":
            cell.source = fill_in(cell.source, original.source, (notebooks.CODE_STUB, notebooks.TOP_LEVEL_CODE_STUB),
                                  notebooks.CODE_BEGIN, notebooks.CODE_END)
        elif cell.cell_type == "markdown":
            cell.source = fill_in(cell.source, original.source, tuple((p,) for p in notebooks.ANSWER_PROMPTS),
                                  notebooks.MARKDOWN_BEGIN, notebooks.MARKDOWN_END)
    return nb


# ----------------------------------------------------------------------------- the generator, on the toy lab

def test_code_between_markers_becomes_the_stub_at_the_markers_indentation():
    source = ("class Model:\n    def forward(self, x):\n        \"\"\"Doc.\"\"\"\n        ### BEGIN SOLUTION\n"
              "        y = x + 1\n        return y\n        ### END SOLUTION\n\n    def other(self):\n        return 0")
    assert notebooks.student_code(source) == (
        "class Model:\n    def forward(self, x):\n        \"\"\"Doc.\"\"\"\n        # YOUR CODE HERE\n"
        "        raise NotImplementedError()\n\n    def other(self):\n        return 0")


def test_a_top_level_block_becomes_a_stub_that_does_not_stop_run_all():
    source = "# Your search\n### BEGIN SOLUTION\nbest = min(range(3))\nprint(best)\n### END SOLUTION"
    student = notebooks.student_code(source)
    assert student == "# Your search\n# YOUR CODE HERE" and "best" not in student
    exec(compile(student, "<cell>", "exec"), {})  # runs: nothing raised


def test_every_block_of_a_cell_is_replaced_and_code_outside_stays():
    source = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n\nx = 2\n" \
             "def g():\n    ### BEGIN SOLUTION\n    return 3\n    ### END SOLUTION"
    student = notebooks.student_code(source)
    assert student.count("raise NotImplementedError()") == 2 and "x = 2" in student
    assert "return 1" not in student and "return 3" not in student


def test_written_answers_become_a_prompt_and_the_question_stays():
    student = notebooks.student_markdown(gf.ANSWER)
    assert student == f"Why does double(x) give twice x?\n\n{notebooks.ANSWER_PROMPT}"


def test_predictions_get_their_own_prompt():
    """Review 23: a prediction, written before the cell that measures it, cannot back its claims with results."""
    solution = "\n<!-- BEGIN SOLUTION -->\nSix.\n<!-- END SOLUTION -->"
    for above in ("**Your prediction** (one line): how many?", "*Optional.* **Your prediction:** how many?",
                  "<details><summary>Predict</summary>\n\n**Your prediction**, one line:\nhow many?\n</details>"):
        assert notebooks.student_markdown(above + "\n" + solution).endswith("\n" + notebooks.PREDICTION_PROMPT)
    for above in ("**What you observed** (compare with your prediction):",
                  "**Your prediction**: how many?\n\n**Q1.** Why?"):
        assert notebooks.student_markdown(above + "\n" + solution).endswith("\n" + notebooks.ANSWER_PROMPT)
    student = notebooks.student_markdown("**Your prediction**: how many?" + solution + "\n\nWhy?" + solution)
    assert student.count(notebooks.PREDICTION_PROMPT) == 1 and student.endswith(notebooks.ANSWER_PROMPT)


def test_test_markers_are_dropped_from_student_code():
    assert notebooks.student_code("# NBVAL_CHECK_OUTPUT\ncheck_double(double)") == "check_double(double)"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1", "without a matching"),
    ("x = 1\n### END SOLUTION", "without a '### BEGIN SOLUTION' above it"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another solution block"),
])
def test_unpaired_markers_are_an_error(source, message):
    with pytest.raises(notebooks.SolutionMarkerError, match=message):
        notebooks.student_code(source)


def test_unpaired_marker_error_names_the_cell():
    solution = gf.toy_solution(1)
    solution.cells[3].source += "\n### BEGIN SOLUTION"
    with pytest.raises(notebooks.SolutionMarkerError, match="cell 3: "):
        notebooks.student_notebook(solution)


def test_first_code_cell_must_be_the_setup_cell():
    solution = gf.toy_solution(1)
    solution.cells[1].source = "import os"
    with pytest.raises(notebooks.SolutionMarkerError, match="setup_cell_source"):
        notebooks.student_notebook(solution)


def test_outputs_counts_and_editor_metadata_are_cleared():
    solution = gf.toy_solution(1)
    solution.cells[3].metadata.update(tags=["keep-me"], collapsed=True, colab={"id": "x"})
    student = notebooks.student_notebook(solution)
    assert student.metadata == {"kernelspec": notebooks.KERNELSPEC, "language_info": notebooks.LANGUAGE_INFO}
    assert (student.nbformat, student.nbformat_minor) == (4, 5)
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert student.cells[3].metadata == {"tags": ["keep-me"]}
    assert [c.id for c in student.cells] == [c.id for c in solution.cells]


def test_rebuild_is_byte_identical_and_check_finds_every_kind_of_stale_file(tmp_path):
    solutions, student_dir = tmp_path / "solutions", tmp_path / "notebooks"
    solutions.mkdir()
    gf.write(gf.toy_solution(1), solutions / "lab1_toy.ipynb")
    gf.write(gf.toy_solution(2), solutions / "lab2_toy.ipynb")
    assert [p.name for p in notebooks.build(solutions, student_dir)[0]] == ["lab1_toy.ipynb", "lab2_toy.ipynb"]
    first = {p.name: p.read_bytes() for p in student_dir.iterdir()}
    assert notebooks.build(solutions, student_dir) == ([], [])
    assert {p.name: p.read_bytes() for p in student_dir.iterdir()} == first
    assert notebooks.stale(solutions, student_dir) == []

    (student_dir / "lab1_toy.ipynb").write_bytes(first["lab1_toy.ipynb"].replace(b"Toy lab", b"Edited"))
    (student_dir / "lab2_toy.ipynb").unlink()
    (student_dir / "old_lab.ipynb").write_text("{}")
    assert [p.split(": ")[1] for p in notebooks.stale(solutions, student_dir)] == [
        f"differs from what {solutions / 'lab1_toy.ipynb'} generates", "missing",
        f"no solution {solutions / 'old_lab.ipynb'} generates it"]
    written, removed = notebooks.build(solutions, student_dir)
    assert len(written) == 2 and [p.name for p in removed] == ["old_lab.ipynb"]
    assert {p.name: p.read_bytes() for p in student_dir.iterdir()} == first


def test_command_line_check_exits_nonzero_and_says_how_to_fix(tmp_path, capsys):
    (tmp_path / "solutions").mkdir()
    gf.write(gf.toy_solution(1), tmp_path / "solutions" / "lab1_toy.ipynb")
    args = ["--solutions", str(tmp_path / "solutions"), "--notebooks", str(tmp_path / "notebooks")]
    assert notebooks.main(["check", *args]) == 1
    assert "python -m labs_utils.notebooks build" in capsys.readouterr().out
    assert notebooks.main(["build", *args]) == 0
    assert notebooks.main(["check", *args]) == 0


def test_toy_round_trip_gives_back_the_solution_code():
    solution = gf.toy_solution(1)
    back = restored(notebooks.student_notebook(solution), solution)
    assert [c.source for c in back.cells] == [markers_and_test_comments_removed(c.source) for c in solution.cells]


# ----------------------------------------------------------------------------- the committed student notebooks

def test_committed_student_notebooks_are_up_to_date():
    problems = notebooks.stale(ROOT / "solutions", ROOT / "notebooks")
    assert problems == [], "run `python -m labs_utils.notebooks build`:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_putting_the_solution_back_gives_the_solution_code(path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    back = restored(student, solution)
    assert [c.cell_type for c in back.cells] == [c.cell_type for c in solution.cells]
    assert [c.source for c in back.cells] == [markers_and_test_comments_removed(c.source) for c in solution.cells]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_student_notebook_suits_colab_and_jupyterlab_and_hides_the_solutions(path):
    raw = (ROOT / "notebooks" / path.name).read_text(encoding="utf-8")
    student = nbformat.reads(raw, as_version=4)
    nbformat.validate(student)
    assert student.metadata.kernelspec.name == "python3" and student.metadata.language_info.name == "python"
    assert "widgets" not in student.metadata
    assert next(c for c in student.cells if c.cell_type == "code").source == setup_cell_source()
    assert all(c.outputs == [] for c in student.cells if c.cell_type == "code")
    for marker in ("SOLUTION", "NBVAL_"):
        assert marker not in raw


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_cell_holds_a_control_character(path):
    # "\frac" written through a Python string that was not raw becomes a form feed and "rac": LaTeX that renders as
    # "rac{B}{F+B}" in the one cell that explains a measurement.
    for notebook in (path, ROOT / "notebooks" / path.name):
        cells = nbformat.read(notebook, as_version=4).cells
        bad = [(i, hex(ord(ch))) for i, c in enumerate(cells) for ch in c.source if ord(ch) < 32 and ch not in "\n\t"]
        assert bad == [], f"{notebook.name}: (cell, character) {bad[:5]}"


# ----------------------------------------------------------------------------- running the real student notebooks

LABS_WITH_EXERCISES = [p for p in SOLUTIONS if "### BEGIN SOLUTION" in p.read_text(encoding="utf-8")]


# Graded untouched through the real grader: Lab 2 (about 9 s), the whole non-attempt path of a real lab (its kernel,
# probes and judges: 0 points, "not implemented yet" on every part). Labs 1 and 3 would cost 22 s and 9 s more, their
# fast trainings running whether or not the exercises are done; every lab's stubs meet their checks in-process below,
# and the cells before the first exercise are the restored run's.
UNTOUCHED = [p for p in LABS_WITH_EXERCISES if p.stem.startswith("lab2_")]


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Grade once (fast mode, two workers) every student notebook with its solutions put back, and the untouched
    student notebooks of UNTOUCHED: the real grader, kernel and probes of every lab, on both ends of the scale."""
    folder = tmp_path_factory.mktemp("restored")
    jobs = []
    for path in LABS_WITH_EXERCISES:
        student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        gf.write(restored(student, nbformat.read(path, as_version=4)), folder / path.name)
        jobs.append((folder / path.name, f"restored {path.stem}"))
    jobs += [(ROOT / "notebooks" / path.name, path.stem) for path in UNTOUCHED]
    # A budget, not the thing under test: the slowest fast-mode cell takes about 10 s on a quiet 2-core machine.
    results = grade_batch(jobs, Options(timeout=300, fast=True), workers=2)
    return {r.student: r for r in results}


def check_cells(notebook: nbformat.NotebookNode) -> list:
    """Indices of the cells that call an exercise check (a line starting with check_...( or lab3.check_...( )."""
    return [i for i, c in enumerate(notebook.cells)
            if c.cell_type == "code" and re.search(r"^(\w+\.)?check_\w+\(", c.source, re.MULTILINE)]


@pytest.mark.slow
@pytest.mark.parametrize("path", LABS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_notebook_runs_until_the_first_exercise(real_runs, path):
    """The restored notebook is the student notebook with the solutions put back: its cells before the first
    exercise are the student's, unchanged."""
    student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    first_exercise = next(i for i, c in enumerate(student.cells) if STUB.search(c.source))
    early = [e for e in real_runs[f"restored {path.stem}"].cell_errors if e.cell - 1 < first_exercise]
    assert early == [], f"cells before the first exercise (cell {first_exercise + 1}) failed: {early}"


@pytest.mark.slow  # imports the lab (seconds)
@pytest.mark.parametrize("path", LABS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_each_check_on_its_untouched_stub_fails_with_the_not_implemented_hint(path):
    """In this process: the lab's import cell, then each exercise's stub cell as the student gets it, then the check
    cell after it: an AssertionError that tells the student the exercise is not implemented yet."""
    student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    code = [i for i, c in enumerate(student.cells) if c.cell_type == "code"]
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(student.cells[code[1]].source, namespace)  # the imports and settings (code[0] is Colab's set-up)
    checks, ran = check_cells(student), []
    assert checks, "no check cell found"
    for index in code[2:]:
        source = student.cells[index].source
        if STUB.search(source):
            with contextlib.suppress(NotImplementedError):  # a stub cell that also runs it (an experiment's)
                exec(source, namespace)
        elif index in checks:
            with pytest.raises(AssertionError) as failure, contextlib.redirect_stdout(io.StringIO()):
                exec(source, namespace)
            assert "not implemented yet" in str(failure.value), f"cell {index + 1}: {failure.value}"
            ran.append(index)
    assert ran == checks


@pytest.mark.slow
@pytest.mark.parametrize("path", UNTOUCHED, ids=lambda p: p.stem)
def test_each_check_fails_with_the_not_implemented_hint(real_runs, path):
    student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    errors = {e.cell - 1: e for e in real_runs[path.stem].cell_errors}
    for index in check_cells(student):
        error = errors.get(index)
        assert error is not None, f"cell {index + 1} passed its check without the exercise"
        assert (error.ename, "NotImplementedError" in error.evalue) == ("AssertionError", True), (
            f"cell {index + 1} should fail with the student-facing hint, got {error.ename}: {error.evalue}")


@pytest.mark.slow
@pytest.mark.parametrize("path", UNTOUCHED, ids=lambda p: p.stem)
def test_untouched_student_notebook_grades_zero(real_runs, path):
    r = real_runs[path.stem]
    assert r.status == "graded" and r.total == 0 and r.max_total > 0
    assert all(ex.status == "failed" and all("not implemented yet" in (p.message or "") for p in ex.parts)
               for ex in r.exercises)


@pytest.mark.slow
@pytest.mark.parametrize("path", LABS_WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_notebook_with_the_solutions_put_back_gets_full_marks(real_runs, path):
    r = real_runs[f"restored {path.stem}"]
    assert r.status == "graded" and r.max_total > 0, feedback(r)
    assert [(e.name, e.points) for e in r.exercises if e.points < e.max_points] == [], feedback(r)
    assert r.total == r.max_total
    # every cell of the solution ran in the grader's kernel without an error (the notebook's own checks included)
    assert r.cell_errors == [] and r.problems == [], feedback(r)
