"""``python -m labs_utils.grade``: options, gradebook and feedback files, exit codes, the sandbox switch."""
from __future__ import annotations

import csv

import grading_fixtures as gf
import pytest
from conftest import KERNEL_PATH, SANDBOX, TIMEOUT

from labs_utils.instructor.grading import cli
from labs_utils.instructor.grading import sandbox as sandbox_module
from labs_utils.instructor.grading.labs import Lab
from labs_utils.instructor.notebooks import ANSWER_PROMPT


@pytest.fixture
def toy_cli(monkeypatch):
    monkeypatch.setattr(cli, "load_labs", gf.toy_labs)
    monkeypatch.setenv("PYTHONPATH", KERNEL_PATH)
    return cli.main


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
    assert rows["alice_lab1"]["sandboxed"] == ("yes" if SANDBOX else "NO")
    text = (tmp_path / "out" / "grades_feedback" / "alice_lab1.txt").read_text(encoding="utf-8")
    assert "Score: 3 / 3" in text and "\u2714 double: 2/2 passed" in text
    assert "alice_lab1  1    3/3" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_without_the_sandbox_warns_loudly_and_marks_the_rows(toy_cli, tmp_path, capsys):
    path = gf.write(gf.toy_solution(2), tmp_path / "carol.ipynb")
    assert toy_cli([str(path), "--lab", "1", "--timeout", str(TIMEOUT), "--sandbox", "off"]) == 0
    captured = capsys.readouterr()
    assert "Score: 0 / 3" in captured.out and "looks like lab 2's notebook (it defines triple)" in captured.out
    assert "(NOT SANDBOXED)" in captured.out and "kernels run unsandboxed" in captured.err


def test_cli_refuses_to_run_without_a_required_sandbox(toy_cli, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(sandbox_module, "unusable_reason", lambda: "bubblewrap (bwrap) is not installed")
    path = gf.write(gf.toy_solution(1), tmp_path / "dan_lab1.ipynb")
    assert toy_cli([str(path), "--sandbox", "require"]) == 1
    assert "--sandbox require: bubblewrap (bwrap) is not installed" in capsys.readouterr().err


def test_cli_fails_when_a_path_does_not_exist(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / "nope.ipynb")])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_cli_fails_when_the_grader_cannot_run(toy_cli, monkeypatch, tmp_path, capsys):
    broken = (Lab(1, "toy", "no_such_checks_module", tuple(gf.GRADING_1)),)
    monkeypatch.setattr(cli, "load_labs", lambda: broken)
    path = gf.write(gf.toy_solution(1), tmp_path / "dave_lab1.ipynb")
    assert toy_cli([str(path), "--timeout", str(TIMEOUT)]) == 1
    assert "cannot import no_such_checks_module" in capsys.readouterr().out


# ----------------------------------------------------------------------------- written answers, manual points, ids

@pytest.fixture
def toy_course(tmp_path):
    """A folder of submissions (one per student folder) and the toy lab 1's solution with its written question."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    gf.write(gf.toy_solution(1), solutions / "lab1_toy.ipynb")
    subs = tmp_path / "subs"
    alice = gf.toy_student(1)  # the exercises done (the solution's code), then the written answer
    for cell, solved in zip(alice.cells, gf.toy_solution(1).cells):
        if cell.cell_type == "code":
            cell.source = solved.source
    question = next(c for c in alice.cells if c.cell_type == "markdown" and ANSWER_PROMPT in c.source)
    question.source = question.source.replace(ANSWER_PROMPT, "Because $2x$ is **double** the input.")
    for student, notebook in (("s001_alice", alice), ("s002_bob", gf.toy_student(1))):
        (subs / student).mkdir(parents=True)
        gf.write(notebook, subs / student / "lab1.ipynb")
    return tmp_path, solutions, subs


def _rows(path):
    return {row["student_id"]: row for row in csv.DictReader(path.open(encoding="utf-8"))}


@pytest.mark.slow
def test_answers_then_manual_points_end_in_the_gradebook_and_feedback(toy_cli, toy_course, capsys):
    tmp_path, solutions, subs = toy_course
    common = [str(subs), "--timeout", str(TIMEOUT), "--solutions", str(solutions), "--id-pattern", r"^s(\d+)_"]
    assert toy_cli([*common, "--answers", str(tmp_path / "answers"), "--out", str(tmp_path / "first.csv")]) == 0
    page = (tmp_path / "answers" / "lab1_answers.html").read_text(encoding="utf-8")
    assert gf.QUESTION in page and "Because \\(2x\\) is <strong>double</strong>" in page and "No answer." in page
    template = list(csv.reader((tmp_path / "answers" / "lab1_manual.csv").open(encoding="utf-8")))
    assert template == [["student", "question", "points", "comment"], ["001", "lab1-P1", "", ""],
                        ["002", "lab1-P1", "0", "no answer found"]]
    first = _rows(tmp_path / "first.csv")
    assert (first["001"]["student"], first["001"]["total"], first["001"]["manual"]) == ("s001_alice/lab1", "3", "")

    template[1][2:] = ["1.5", "clear, but say why the experiment doubled"]
    with (tmp_path / "filled.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(template)
    args = [*common, "--manual", str(tmp_path / "filled.csv"), "--max-manual", "2", "--feedback-format", "md",
            "--out", str(tmp_path / "final.csv")]
    assert toy_cli(args) == 0
    final = _rows(tmp_path / "final.csv")
    assert [(final[s]["auto"], final[s]["manual"], final[s]["total"]) for s in ("001", "002")] == [
        ("3", "1.5", "4.5"), ("0", "0", "0")]
    text = (tmp_path / "final_feedback" / "s001_alice_lab1.md").read_text(encoding="utf-8")
    assert "**Total: 4.5**" in text and "- P1: 1.5/2 - clear, but say why" in text
    assert "merged 2 manual points" in capsys.readouterr().out


@pytest.mark.parametrize("content, expected", [
    (None, "cannot be read"),
    ("student,question,points,comment\n001,lab1-P1,1,\n999,lab1-P1,1,\n", "unknown student '999'"),
    ("student,question,points,comment\n001,lab1-Q7,1,\n", "unknown question 'lab1-Q7'"),
    ("student,question,points,comment\n001,lab1-P1,lots,\n", "'lots' is not a number"),
    ("student,question,points,comment\n001,lab1-P1,3,\n", "above this question's maximum of 2"),
    ("name;points\n001;1\n", "row 1: the header"),
])
def test_a_bad_manual_file_stops_everything_before_grading(toy_cli, toy_course, content, expected, capsys):
    tmp_path, solutions, subs = toy_course
    manual = tmp_path / "manual.csv"
    if content is not None:
        manual.write_text(content, encoding="utf-8")
    before = sorted(p for p in tmp_path.rglob("*"))
    code = toy_cli([str(subs), "--solutions", str(solutions), "--id-pattern", r"^s(\d+)_", "--manual", str(manual),
                    "--max-manual", "2", "--out", str(tmp_path / "grades.csv")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Nothing was graded or written." in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_an_id_pattern_that_misses_a_submission_names_it(toy_cli, toy_course, capsys):
    tmp_path, solutions, subs = toy_course
    assert toy_cli([str(subs), "--id-pattern", r"^s00(1)_", "--out", str(tmp_path / "g.csv")]) == 2
    err = capsys.readouterr().err
    assert "s002_bob/lab1.ipynb: does not match the student-id pattern" in err and "s001" not in err
    assert toy_cli([str(subs), "--id-pattern", "(", "--out", str(tmp_path / "g.csv")]) == 2
    assert "is not a regular expression" in capsys.readouterr().err and not (tmp_path / "g.csv").exists()


def test_manual_points_without_solution_notebooks_are_refused(toy_cli, toy_course, capsys):
    tmp_path, _, subs = toy_course
    (tmp_path / "m.csv").write_text("student,question,points,comment\n", encoding="utf-8")
    assert toy_cli([str(subs), "--solutions", str(tmp_path / "nowhere"), "--manual", str(tmp_path / "m.csv")]) == 2
    assert "no solution notebook with written questions" in capsys.readouterr().err
