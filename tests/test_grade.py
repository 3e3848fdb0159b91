"""The grading command: survives broken submissions, never writes them, grades by what the kernel defines.

Every failure case of issue 7 is a crafted toy-lab notebook (tests/grading_fixtures.py); the whole
batch is graded once (two workers) and each test reads its row. A couple of end-to-end cases use the
real labs in fast mode.
"""
from __future__ import annotations

import copy
import csv
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import grading_fixtures as gf
import nbformat
import pytest
from nbformat.v4 import new_markdown_cell

from labs_utils import grade
from labs_utils.checks._common import Exercise
from labs_utils.grading_kernel import check_namespace, evaluate_check

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 6  # per cell; every crafted cell that should finish takes well under a second

OPTIONS = grade.Options(timeout=TIMEOUT, labs=gf.toy_labs(), memory_limit=2**30,
                        env=(("PYTHONPATH", str(gf.FIXTURES_DIR)),))


def _solution_with(index_text: str, source: str, *, before: bool = False):
    nb = gf.toy_solution(1)
    index = gf.code_index(nb, index_text)
    return gf.with_cell(nb, index if before else index + 1, source)


def _crafted() -> dict:
    """file name -> notebook object, raw bytes or JSON text (one per failure case)."""
    solution = gf.toy_solution(1)
    renamed = copy.deepcopy(solution)
    renamed.cells[gf.code_index(renamed, "def double")].source = gf.DOUBLE.replace("def double", "def double_it")
    duplicated = copy.deepcopy(solution)
    at = gf.code_index(duplicated, "def double")
    duplicated.cells[at:at] = copy.deepcopy(duplicated.cells[at:at + 2])
    deleted = copy.deepcopy(solution)
    del deleted.cells[gf.code_index(deleted, "def greet")]
    reordered = copy.deepcopy(solution)
    exercises = [c for c in reordered.cells if "### BEGIN SOLUTION" in c.source]
    reordered.cells = [c for c in reordered.cells if c not in exercises] + exercises
    markdown = copy.deepcopy(solution)
    at = gf.code_index(markdown, "def double")
    markdown.cells[at] = new_markdown_cell(markdown.cells[at].source)
    check_loop = copy.deepcopy(solution)
    check_loop.cells[gf.code_index(check_loop, "def double")].source = "def double(x):\n    while True:\n        pass"
    check_crash = copy.deepcopy(solution)
    check_crash.cells[gf.code_index(check_crash, "def double")].source = (
        "def double(x):\n    import os\n    os._exit(1)")
    huge = _solution_with("def double", "for _ in range(2000):\n    print('x' * 10_000)")
    huge.cells[1].outputs = [nbformat.v4.new_output("stream", text="y" * 20_000_000)]
    tampered = gf.with_cell(gf.toy_student(1), 3, (
        "import grading_fixtures\n"
        "check_double = check_greet = lambda fn: print('\u2714 passed')\n"
        "grading_fixtures.check_double = grading_fixtures.check_greet = lambda fn: None\n"
        "grading_fixtures._call = lambda fn, *args, what: 42"))
    return {
        "solution_lab1.ipynb": solution,
        "student_lab1.ipynb": gf.toy_student(1),
        "malformed_json_lab1.ipynb": b'{"cells": [{"cell_type": "code", "source": "x = ',
        "binary_lab1.ipynb": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
        "json_list_lab1.ipynb": b"[1, 2, 3]",
        "lab1_but_lab2_code.ipynb": gf.toy_solution(2),
        "mystery.ipynb": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
        "lab0_setup.ipynb": nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
        "renamed_lab1.ipynb": renamed,
        "duplicated_lab1.ipynb": json.dumps(duplicated).encode(),  # duplicated cell ids too
        "deleted_lab1.ipynb": deleted,
        "reordered_lab1.ipynb": reordered,
        "markdown_lab1.ipynb": markdown,
        "raises_lab1.ipynb": _solution_with("def double", "raise ValueError('oops')", before=True),
        "pip_lab1.ipynb": _solution_with("def double", "!pip install not-a-package\n%pip install torch==1.0",
                                         before=True),
        "loop_lab1.ipynb": _solution_with("def double", "while True:\n    pass", before=True),
        "stuck_lab1.ipynb": _solution_with("def double", (
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.05)"),
            before=True),
        "exit_lab1.ipynb": _solution_with("def greet", "import os\nos._exit(1)", before=True),
        "segfault_lab1.ipynb": _solution_with("def greet", "import ctypes\nctypes.string_at(0)", before=True),
        "oom_killed_lab1.ipynb": _solution_with("def greet", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
                                                before=True),
        "memory_lab1.ipynb": _solution_with(
            "def greet", "chunks = []\nwhile True:\n    chunks.append(bytearray(2**26))",
                                            before=True),
        "check_loop_lab1.ipynb": check_loop,
        "check_crash_lab1.ipynb": check_crash,
        "huge_output_lab1.ipynb": huge,
        "colab_vscode_lab1.ipynb": gf.colab_vscode_json(solution).encode(),
        "tampered_lab1.ipynb": tampered,
    }


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Grade every crafted submission once (two workers); remember each file's hash before grading."""
    folder = tmp_path_factory.mktemp("submissions")
    for name, content in _crafted().items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            gf.write(content, path)
    (folder / "notes.py").write_text("print('not a notebook')\n")
    hashes = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    jobs = grade.collect([folder, folder / "notes.py"])
    results = grade.grade_batch(jobs, OPTIONS, workers=2)
    return {"folder": folder, "hashes": hashes, "results": {r.student: r for r in results}, "jobs": jobs}


def result(batch, name: str) -> grade.SubmissionResult:
    return batch["results"][name]


def statuses(r: grade.SubmissionResult) -> dict:
    return {ex.name: ex.status for ex in r.exercises}


def problems(r: grade.SubmissionResult) -> str:
    return "\n".join(r.problems)


# ----------------------------------------------------------------------------- the batch as a whole

@pytest.mark.slow
def test_submissions_are_never_modified(batch):
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in batch["folder"].iterdir()}
    assert after == batch["hashes"]
    for r in batch["results"].values():
        assert r.sha256 in ("", batch["hashes"][Path(r.path)])


@pytest.mark.slow
def test_every_submission_gets_a_row_whatever_went_wrong(batch, tmp_path):
    results = list(batch["results"].values())
    assert len(results) == len(batch["jobs"])
    written = grade.write_reports(results, tmp_path / "gradebook.csv")
    rows = list(csv.DictReader((tmp_path / "gradebook.csv").open(encoding="utf-8")))
    assert [row["student"] for row in rows] == [r.student for r in results]
    assert {"double", "greet", "triple", "total", "problems", "sha256"} <= set(rows[0])
    assert len(list((tmp_path / "gradebook_feedback").glob("*.txt"))) == len(results) == len(written) - 1


@pytest.mark.slow
def test_json_report_holds_scores_and_feedback(batch, tmp_path):
    grade.write_reports([result(batch, "solution_lab1")], tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data[0]["total"] == 3 and data[0]["max_total"] == 3
    assert "Score: 3 / 3" in data[0]["feedback"]


# ----------------------------------------------------------------------------- scores

@pytest.mark.slow
def test_solution_gets_full_marks(batch):
    r = result(batch, "solution_lab1")
    assert (r.status, r.lab, r.total, r.max_total) == ("graded", 1, 3, 3)
    assert r.problems == [] and r.cell_errors == []


@pytest.mark.slow
def test_untouched_student_notebook_gets_zero_with_the_hint(batch):
    r = result(batch, "student_lab1")
    assert (r.status, r.total, r.max_total) == ("graded", 0, 3)
    for ex in r.exercises:
        assert ex.status == "failed" and "not implemented yet" in ex.message and "NotImplementedError" in ex.message


@pytest.mark.slow
def test_redefined_or_patched_checks_do_not_grade_the_student(batch):
    r = result(batch, "tampered_lab1")
    assert r.total == 0
    assert all("not implemented yet" in ex.message for ex in r.exercises)


# ----------------------------------------------------------------------------- unreadable files, labs

@pytest.mark.slow
@pytest.mark.parametrize("name, reason", [
    ("malformed_json_lab1", "malformed JSON at line 1"),
    ("binary_lab1", "not UTF-8"),
    ("json_list_lab1", "no cells"),
])
def test_files_that_are_not_notebooks_get_zero_for_the_lab_their_name_gives(batch, name, reason):
    r = result(batch, name)
    assert (r.status, r.lab, r.total, r.max_total) == ("not-a-notebook", 1, 0, 3)
    assert reason in problems(r) and "Score: 0 / 3 (not graded: not-a-notebook)" in grade.feedback(r)


@pytest.mark.slow
def test_file_that_is_not_a_notebook_nor_names_a_lab_is_reported(batch):
    r = result(batch, "notes")
    assert (r.status, r.lab, r.exercises) == ("not-a-notebook", None, [])
    assert "malformed JSON" in problems(r)


@pytest.mark.slow
def test_notebook_of_another_lab_is_graded_as_the_lab_its_code_belongs_to(batch):
    r = result(batch, "lab1_but_lab2_code")
    assert (r.lab, r.total, r.max_total) == (2, 1, 1)
    assert "file name says lab 1 but the code is lab 2's" in problems(r)


@pytest.mark.slow
def test_lab_that_cannot_be_told_is_reported(batch):
    r = result(batch, "mystery")
    assert r.status == "unknown-lab" and "pass --lab N" in problems(r)


@pytest.mark.slow
def test_lab_without_exercises_is_not_executed(batch):
    r = result(batch, "lab0_setup")
    assert (r.status, r.lab, r.cells_seconds, r.cell_errors) == ("no-exercises", 0, 0.0, [])


# ----------------------------------------------------------------------------- edited notebooks

@pytest.mark.slow
def test_renamed_exercise_is_missing_and_named(batch):
    r = result(batch, "renamed_lab1")
    assert statuses(r) == {"double": "missing", "greet": "passed"}
    assert "not defined when the notebook finished: double" in r.exercises[0].message


@pytest.mark.slow
def test_duplicated_cells_still_grade(batch):
    assert result(batch, "duplicated_lab1").total == 3


@pytest.mark.slow
def test_deleted_exercise_cell_costs_only_that_exercise(batch):
    assert statuses(result(batch, "deleted_lab1")) == {"double": "passed", "greet": "missing"}


@pytest.mark.slow
def test_reordered_cells_are_graded_by_what_the_kernel_defines(batch):
    r = result(batch, "reordered_lab1")
    assert r.total == 3
    assert {e.ename for e in r.cell_errors} == {"NameError"}  # the checks ran before the exercises


@pytest.mark.slow
def test_exercise_turned_into_markdown_is_pointed_out(batch):
    r = result(batch, "markdown_lab1")
    assert statuses(r) == {"double": "missing", "greet": "passed"}
    assert "markdown cell: turn it back into a code cell" in r.exercises[0].message


@pytest.mark.slow
def test_colab_and_vscode_metadata_and_widget_state_do_not_matter(batch):
    assert result(batch, "colab_vscode_lab1").total == 3


# ----------------------------------------------------------------------------- cells that misbehave

@pytest.mark.slow
def test_cell_that_raises_does_not_stop_the_notebook(batch):
    r = result(batch, "raises_lab1")
    assert r.total == 3
    assert [(e.ename, e.evalue, e.first_line) for e in r.cell_errors] == [
        ("ValueError", "oops", "raise ValueError('oops')")]


@pytest.mark.slow
def test_shell_commands_are_left_out_and_reported(batch):
    r = result(batch, "pip_lab1")
    assert r.total == 3 and r.cell_errors == []
    assert "shell commands are not run by the grader (!pip install not-a-package; %pip install torch==1.0)" in (
        problems(r))


@pytest.mark.slow
def test_infinite_loop_is_interrupted_and_grading_goes_on(batch):
    r = result(batch, "loop_lab1")
    assert r.total == 3
    assert f"(`while True:`) did not finish within {TIMEOUT} s and was interrupted" in problems(r)


@pytest.mark.slow
def test_loop_that_ignores_the_interrupt_gets_its_kernel_replaced(batch):
    r = result(batch, "stuck_lab1")
    assert r.total == 3
    assert "ignored the interrupt, so the kernel was stopped" in problems(r)


@pytest.mark.slow
@pytest.mark.parametrize("name, how", [
    ("exit_lab1", "exit code 1"),
    ("segfault_lab1", "SIGSEGV"),
    ("oom_killed_lab1", "SIGKILL: usually the machine running out of memory"),
])
def test_cell_that_kills_the_kernel_is_skipped_on_a_rerun(batch, name, how):
    r = result(batch, name)
    assert r.total == 3
    assert how in problems(r) and "run again from the top without that cell" in problems(r)


@pytest.mark.slow
def test_memory_blow_up_hits_the_kernel_memory_limit(batch):
    r = result(batch, "memory_lab1")
    assert r.total == 3
    assert [e.ename for e in r.cell_errors] == ["MemoryError"]


@pytest.mark.slow
def test_check_that_loops_forever_times_out_alone(batch):
    r = result(batch, "check_loop_lab1")
    assert statuses(r) == {"double": "timeout", "greet": "passed"}
    assert "did not finish within" in r.exercises[0].message


@pytest.mark.slow
def test_check_that_kills_the_kernel_costs_only_that_exercise(batch):
    r = result(batch, "check_crash_lab1")
    assert statuses(r) == {"double": "crashed", "greet": "passed"}
    assert "exit code 1" in r.exercises[0].message


@pytest.mark.slow
def test_enormous_outputs_are_dropped_not_stored(batch):
    r = result(batch, "huge_output_lab1")
    assert r.total == 3 and r.problems == []


# ----------------------------------------------------------------------------- the command line

@pytest.fixture
def toy_cli(monkeypatch):
    monkeypatch.setattr(grade, "load_labs", gf.toy_labs)
    monkeypatch.setenv("PYTHONPATH", str(gf.FIXTURES_DIR))
    return grade.main


@pytest.mark.slow
def test_cli_writes_gradebook_and_feedback_and_exits_zero_despite_broken_files(toy_cli, tmp_path, capsys):
    folder = tmp_path / "subs"
    folder.mkdir()
    gf.write(gf.toy_solution(1), folder / "alice_lab1.ipynb")
    (folder / "bob_lab1.ipynb").write_text("{oops")
    code = toy_cli([str(folder), "--timeout", str(TIMEOUT), "--out", str(tmp_path / "out" / "grades.csv")])
    assert code == 0
    rows = {row["student"]: row for row in csv.DictReader((tmp_path / "out" / "grades.csv").open())}
    assert (rows["alice_lab1"]["total"], rows["bob_lab1"]["status"]) == ("3", "not-a-notebook")
    text = (tmp_path / "out" / "grades_feedback" / "alice_lab1.txt").read_text(encoding="utf-8")
    assert "Score: 3 / 3" in text and "\u2714 double: 2/2 passed" in text
    assert "alice_lab1  1    3/3" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_forced_lab_reports_a_notebook_of_another_lab(toy_cli, tmp_path, capsys):
    path = gf.write(gf.toy_solution(2), tmp_path / "carol.ipynb")
    assert toy_cli([str(path), "--lab", "1", "--timeout", str(TIMEOUT)]) == 0
    out = capsys.readouterr().out
    assert "Score: 0 / 3" in out and "looks like lab 2's notebook (it defines triple)" in out


def test_cli_fails_when_a_path_does_not_exist(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        grade.main([str(tmp_path / "nope.ipynb")])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_cli_fails_when_the_grader_cannot_run(toy_cli, monkeypatch, tmp_path, capsys):
    broken = (grade.Lab(1, "toy", "no_such_checks_module", (Exercise("double", 1, ("double",), "1"),)),)
    monkeypatch.setattr(grade, "load_labs", lambda: broken)
    path = gf.write(gf.toy_solution(1), tmp_path / "dave_lab1.ipynb")
    assert toy_cli([str(path), "--timeout", str(TIMEOUT)]) == 1
    assert "cannot import no_such_checks_module" in capsys.readouterr().out


# ----------------------------------------------------------------------------- pieces, without a kernel

def test_reading_accepts_nbformat3_and_line_lists():
    v3 = {"nbformat": 3, "worksheets": [{"cells": [{"cell_type": "code", "input": ["x = 1\n", "y = 2"]}]}]}
    assert [c.source for c in grade.read_cells(json.dumps(v3).encode())] == ["x = 1\ny = 2"]


def test_defined_names_sees_definitions_despite_magics_and_syntax_errors():
    assert grade.defined_names("%matplotlib inline\ndef f():\n    pass\nclass K: ...\nz: int = 3") == {"f", "K", "z"}
    assert grade.defined_names("def broken(:\n    pass\nname = 1") == {"broken", "name"}


def test_detect_lab_prefers_the_code_then_the_file_name():
    labs = gf.toy_labs()
    cells = grade.read_cells(gf.colab_vscode_json(gf.toy_solution(2)).encode())
    assert grade.detect_lab(cells, "lab1.ipynb", labs, None)[0] == 2
    assert grade.detect_lab([], "Lab 1 - alice.ipynb", labs, None) == (1, [])
    assert grade.detect_lab([], "alice.ipynb", labs, None) == (None, [])
    assert grade.detect_lab(cells, "x.ipynb", labs, 1)[0] == 1


def test_collect_names_students_by_relative_path(tmp_path):
    for name in ("alice/lab1.ipynb", "bob/lab1.ipynb", "bob/.ipynb_checkpoints/lab1-checkpoint.ipynb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [s for _, s in grade.collect([tmp_path])] == ["alice/lab1", "bob/lab1"]


def test_shell_commands_become_pass_at_their_indentation():
    assert grade.without_shell_commands("if True:\n    !pip install x\ny = 1") == (
        "if True:\n    pass  # shell command left out by the grader\ny = 1", ["!pip install x"])
    assert grade.without_shell_commands("%%bash\nrm -rf data") == ("pass", ["%%bash"])
    assert grade.without_shell_commands("x = 1  # !not a command") == ("x = 1  # !not a command", [])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_kernel_exits_when_the_grader_dies():
    kernel = ("import sys, time\nfrom labs_utils.grading_kernel import exit_with_parent\n"
              "exit_with_parent(int(sys.argv[1]), poll_seconds=0.1)\ntime.sleep(60)")
    grader = ("import os, subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', {kernel!r}, str(os.getpid())])\n"
              "print(child.pid, flush=True)\ntime.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", grader], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    status = Path(f"/proc/{child}/status")
    deadline = time.monotonic() + 20
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not status.exists() or "zombie" in status.read_text(), "the orphaned kernel kept running"


def test_check_namespace_takes_needs_from_the_student_and_the_rest_from_the_fresh_checks():
    student = {"double": "student double", "check_double": "student check", "device": "cpu"}
    env = check_namespace("check_double(double, device)", student, ("double",), gf)
    assert (env["double"], env["check_double"], env["device"]) == ("student double", gf.check_double, "cpu")


@pytest.fixture
def isolated_check_modules():
    """evaluate_check re-imports the checks; give the other tests back the module objects they hold."""
    import labs_utils

    def ours(name: str) -> bool:
        return name in (gf.TOY_MODULE, "labs_utils.checks") or name.startswith("labs_utils.checks.")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    yield
    for name in [name for name in sys.modules if ours(name)]:
        del sys.modules[name]
    sys.modules.update(saved)
    if "labs_utils.checks" in saved:
        labs_utils.checks = saved["labs_utils.checks"]


def test_evaluate_check_reports_missing_names_and_restores_patched_checks(monkeypatch, isolated_check_modules):
    assert evaluate_check({}, gf.TOY_MODULE, ("double",), "check_double(double)")["status"] == "missing"
    monkeypatch.setattr(gf, "check_double", lambda fn: None)  # patched in the cached module
    outcome = evaluate_check({"double": lambda x: x}, gf.TOY_MODULE, ("double",), "check_double(double)")
    assert outcome["status"] == "failed" and "expected 42" in outcome["message"]


# ----------------------------------------------------------------------------- the real labs

def test_every_graded_lab_has_a_table_with_points_and_known_checks():
    for lab in grade.load_labs():
        module = __import__(lab.module, fromlist=["GRADING"]) if lab.module else None
        for ex in lab.exercises:
            assert ex.points > 0 and ex.needs, ex
            called = ex.check.split("(")[0]
            assert hasattr(module, called), f"lab {lab.number}: {ex.check!r} calls no function of {lab.module}"
