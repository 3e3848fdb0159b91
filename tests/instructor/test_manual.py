"""Manual points: a filled-in CSV read strictly, merged into gradebook rows and feedback; student ids."""
from __future__ import annotations

from pathlib import Path

import pytest

from labs_utils.instructor.grading.manual import (
    ManualPointsError,
    StudentIdError,
    feedback_lines,
    read_manual,
    student_id,
)

STUDENTS = {"alice", "bob"}
QUESTIONS = {"lab1-Q1", "lab1-Q2", "lab2-Q1"}
GOOD = "student,question,points,comment\nalice,lab1-Q1,2,clear\nalice,lab1-Q2,0.5,\nbob,lab1-Q1,1,\n"


def _read(tmp_path: Path, content: str | bytes, **kwargs):
    path = tmp_path / "manual.csv"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    kwargs.setdefault("students", STUDENTS)
    kwargs.setdefault("questions", QUESTIONS)
    return read_manual(path, **kwargs)


def test_a_filled_in_template_is_read(tmp_path):
    points = _read(tmp_path, GOOD, max_points=2)
    assert [(p.student, p.question, p.points, p.comment, p.row) for p in points] == [
        ("alice", "lab1-Q1", 2.0, "clear", 2), ("alice", "lab1-Q2", 0.5, "", 3), ("bob", "lab1-Q1", 1.0, "", 4)]
    assert (points[0].lab, points[0].label) == (1, "Q1")


def test_excel_habits_are_accepted(tmp_path):
    excel = ("\ufeffStudent;Question;Points;Comment;;\r\n"
             "alice;lab1-Q1;1,5;\"good; but short\";;\r\n;;;;;\r\n\r\n'=bob;lab1-Q2; 2 ;;;\r\n")
    points = _read(tmp_path, excel.encode("utf-8"), students={"alice", "=bob"})
    assert [(p.student, p.points, p.comment) for p in points] == [("alice", 1.5, "good; but short"),
                                                                  ("=bob", 2.0, "")]
    assert [p.points for p in _read(tmp_path, GOOD.encode("utf-16"))] == [2.0, 0.5, 1.0]


@pytest.mark.parametrize(("content", "expected"), [
    ("student,question,points,comment\ncarol,lab1-Q1,1,\n", ["row 2", "unknown student 'carol'"]),
    ("student,question,points,comment\nalcie,lab1-Q1,1,\n", ["row 2", "did you mean 'alice'?"]),
    ("student,question,points,comment\nalice,lab1-Q9,1,\n", ["row 2", "unknown question 'lab1-Q9'"]),
    ("student,question,points,comment\nalice,lab1-Q1,two,\n", ["row 2", "not a number", "Fix: enter a number"]),
    ("student,question,points,comment\nalice,lab1-Q1,-1,\n", ["row 2", "negative", "Fix: enter 0 or more"]),
    ("student,question,points,comment\nalice,lab1-Q1,nan,\n", ["row 2", "not a number"]),
    ("student,question,points,comment\nalice,lab1-Q1,,\n", ["row 2", "no points", "0 for no credit"]),
    ("student,question,points,comment\nalice,lab1-Q1,3,\n", ["row 2", "above this question's maximum of 2"]),
    ("student,question,points,comment\nalice,lab1-Q1,1,\nbob,lab1-Q1,1,\nalice,lab1-Q1,2,\n",
     ["row 4", "duplicate of row 2", "keep one"]),
    ("student,question,points,comment\nalice,lab1-Q1,1,a,b\n", ["row 2", "in quotes"]),
    ("name,question,points,comment\nalice,lab1-Q1,1,\n", ["row 1", "Fix: make row 1 exactly "
                                                          "student,question,points,comment"]),
    ("student,question,comment,points\nalice,lab1-Q1,,1\n", ["row 1", "in that order"]),
    ("", ["row 1", "empty"]),
])
def test_a_malformed_file_is_refused_with_row_and_fix(tmp_path, content, expected):
    with pytest.raises(ManualPointsError) as error:
        _read(tmp_path, content, max_points=2)
    message = str(error.value)
    assert all(part in message for part in expected), message
    assert "Fix" in message


def test_every_problem_is_listed_at_once(tmp_path):
    content = "student,question,points,comment\ncarol,lab1-Q1,1,\nalice,lab1-Q1,x,\nbob,lab1-Q2,-2,\n"
    with pytest.raises(ManualPointsError, match=r"3 problem\(s\); nothing was merged") as error:
        _read(tmp_path, content)
    assert all(f"row {n}" in str(error.value) for n in (2, 3, 4))


def test_per_question_maxima_apply_to_their_questions_only(tmp_path):
    with pytest.raises(ManualPointsError, match="row 4 .*maximum of 0.5"):
        _read(tmp_path, GOOD, max_points={"lab1-Q1": 0.5})
    assert len(_read(tmp_path, GOOD, max_points={"lab1-Q1": 2, "lab2-Q1": 0.1})) == 3


def test_a_file_that_is_not_utf8_or_missing_is_refused(tmp_path):
    with pytest.raises(ManualPointsError, match="line 2 is not UTF-8.*CSV UTF-8"):
        _read(tmp_path, "student,question,points,comment\nalice,lab1-Q1,1,très bien\n".encode("cp1252"))
    with pytest.raises(ManualPointsError, match="cannot be read"):
        read_manual(tmp_path / "nowhere.csv")


def test_feedback_lines_list_points_and_comments(tmp_path):
    points = _read(tmp_path, GOOD)
    assert feedback_lines(points, "alice", 1, max_points=2) == [
        "Written answers (graded by hand): 2.5 / 4 points", "- Q1: 2/2 - clear", "- Q2: 0.5/2"]
    assert feedback_lines(points, "bob", 1) == ["Written answers (graded by hand): 1 points", "- Q1: 1"]
    assert feedback_lines(points, "bob", 2) == []


@pytest.mark.parametrize(("path", "root", "expected"), [
    ("subs/alice/lab1_autoencoders.ipynb", "subs", "alice"),
    ("subs/alice/deep/Copy of lab1.ipynb", "subs", "alice"),
    ("subs/bob_lab2.ipynb", "subs", "bob"),
    ("smith_j_lab1_autoencoders.ipynb", None, "smith_j"),
    ("Copy of carol-Lab3 (2).ipynb", None, "carol"),
    ("dave.ipynb", None, "dave"),
])
def test_default_student_ids(path, root, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert student_id(Path(path), None if root is None else Path(root)) == expected


def test_student_id_patterns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    moodle = Path("subs/Alice Smith_123456_assignsubmission_file_/lab1.ipynb")
    assert student_id(moodle, Path("subs"), r"_(?P<id>\d{6})_assignsubmission") == "123456"
    assert student_id(Path("subs/s42-lab1.ipynb"), Path("subs"), r"s(\d+)") == "42"
    with pytest.raises(StudentIdError, match="does not match the student-id pattern"):
        student_id(Path("subs/alice.ipynb"), Path("subs"), r"s(\d+)")
    with pytest.raises(StudentIdError, match="no student id in the file name"):
        student_id(Path("lab1_autoencoders.ipynb"))
