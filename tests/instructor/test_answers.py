"""Written answers: found in each student's notebook however it was edited, shown safely, templated for points."""
from __future__ import annotations

import copy
import csv
import html
import html.parser
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell
from tooling import unavailable

from labs_utils.instructor.grading import answers
from labs_utils.instructor.grading.manual import read_manual
from labs_utils.instructor.notebooks import ANSWER_PROMPT, student_notebook

ROOT = Path(__file__).resolve().parents[2]
SOLUTION = answers.solution_notebook(2, ROOT / "solutions")  # four questions, with maths
PAYLOADS = ('<script>alert("xss")</script>', '<img src=x onerror=alert(1)>', "[click](javascript:alert(1))",
            '</article><script src="https://evil.example/x.js"></script>', '<a href="javascript:alert(2)">x</a>',
            "$\\href{javascript:alert(3)}{x}$", "<!-- hidden --><style>body{display:none}</style>")


def _template() -> nbformat.NotebookNode:
    return student_notebook(nbformat.read(SOLUTION, as_version=4))


def _prompts(nb: nbformat.NotebookNode) -> list[int]:
    """The prompts of Q1..Q4: the first after each question (the predictions in the sections have their own)."""
    prompts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source == ANSWER_PROMPT]
    return [next(i for i in prompts if i > _question_cell(nb, f"Q{n}")) for n in (1, 2, 3, 4)]


def _question_cell(nb: nbformat.NotebookNode, label: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and f"**{label}." in c.source)


def _students() -> dict[str, nbformat.NotebookNode]:
    """Student id -> a submission, each edited the way students do."""
    template = _template()
    made = {"untouched": copy.deepcopy(template)}

    alice = copy.deepcopy(template)  # answers typed in place of the prompt; Q3 left as it was
    p1, p2, p3, p4 = _prompts(alice)
    alice.cells[p1].source = "The best is $k = 4$, holding **11** activations."
    alice.cells[p2].source = "**Your answer:** From $n = 6$ on.\n\n- n = 4: ties\n- n = 6: saves one"
    alice.cells[p4].source = "A stride-2 first convolution: the peak drops by 40 %."
    made["alice"] = alice

    bob = copy.deepcopy(template)  # the prompt kept, the answer below it; Colab metadata and new ids everywhere
    for n, cell in enumerate(bob.cells):
        cell.id, cell.metadata = f"colab{n:04d}", {"id": f"x{n}", "colab": {"base_uri": "https://localhost"}}
    p1, p2, p3, p4 = _prompts(bob)
    bob.cells[p1].source = ANSWER_PROMPT + "\n\nSegments of 4 blocks."
    bob.cells[p3].source = ANSWER_PROMPT + "\n\nMore segments replay more blocks."
    made["bob"] = bob

    carol = copy.deepcopy(template)  # prompt deleted, answer in a new cell after the experiment; one cell twice
    p1, p2, p3, p4 = _prompts(carol)
    carol.cells[p2] = new_markdown_cell("Depth 6 is the first that saves memory.")
    carol.cells.insert(p2 + 1, new_markdown_cell(carol.cells[p2].source))
    del carol.cells[p1]
    carol.cells.insert(p1 - 1, new_markdown_cell("My prediction for Q1: k = 4."))  # above the experiment cell
    made["carol"] = carol

    dave = copy.deepcopy(template)  # answer written inside the question cell, whose text got a typo fixed
    q2 = _question_cell(dave, "Q2")
    assert "is checkpointing" in dave.cells[q2].source  # the typo below is really made
    dave.cells[q2].source = dave.cells[q2].source.replace("is checkpointing", "is check-pointing") + (
        "\n\nNot below 6 blocks: the extra forward buys nothing.")
    made["dave"] = dave

    erin = copy.deepcopy(template)  # all answers at the end, labelled; a note in section 2 is not an answer
    erin.cells.insert(5, new_markdown_cell("Note to self: rerun this on the GPU."))
    erin.cells += [new_markdown_cell("**Q3:** about 1.2 and 1.3 times."), new_code_cell("print(1)"),
                   new_markdown_cell("Answer to Q1: k = 4")]
    made["erin"] = erin

    mallory = copy.deepcopy(template)
    mallory.cells[_prompts(mallory)[0]].source = "\n\n".join(PAYLOADS)
    made["mallory"] = mallory
    return made


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> answers.AnswerSheet:
    folder = tmp_path_factory.mktemp("submissions")
    pairs = []
    for student, nb in _students().items():
        nbformat.write(nb, folder / f"{student}.ipynb")
        pairs.append((folder / f"{student}.ipynb", student))
    (folder / "broken.ipynb").write_text("{not json", encoding="utf-8")
    pairs.append((folder / "broken.ipynb", "broken"))
    (folder / "odd.ipynb").write_text('{"worksheets": [{"cells": 5}]}', encoding="utf-8")  # no cells to read
    pairs.append((folder / "odd.ipynb", "odd"))
    return answers.collect_answers(pairs, SOLUTION)


def test_every_lab_has_its_questions_labelled_in_order():
    """Predictions P1, P2, ... and questions Q1, Q2, ... each count up from 1 in notebook order, with no gap (a prompt
    removed or moved without renumbering the rest would show here); every lab with exercises has questions."""
    found = {lab: answers.lab_questions(answers.solution_notebook(lab, ROOT / "solutions")) for lab in (0, 1, 2, 3)}
    for lab, questions in found.items():
        labels = [q.label for q in questions]
        for kind in "PQ":
            numbers = [int(label[1:]) for label in labels if label[0] == kind]
            assert numbers == list(range(1, len(numbers) + 1)), f"lab {lab}: {kind} labels out of order: {labels}"
        assert lab == 0 or any(label[0] == "Q" for label in labels), f"lab {lab} has no question Q1"
    for questions in found.values():
        for q in questions:
            if q.label.startswith("Q"):  # P1, P2, ...: unlabelled predictions inside an experiment's section
                assert q.text.startswith(f"**{q.label}.") and "Questions" not in q.text  # the section intro is dropped
            assert "BEGIN SOLUTION" not in q.text


def test_the_untouched_notebook_has_only_empty_answers(sheet):
    assert sheet.answers["untouched"] == {q.key: "" for q in sheet.questions}
    assert [q.label for q in answers.empty_answers(sheet)["untouched"]] == [q.label for q in sheet.questions]
    assert [q.label for q in sheet.questions][-4:] == ["Q1", "Q2", "Q3", "Q4"]


def test_answers_typed_in_place_of_the_prompt(sheet):
    got = sheet.answers["alice"]
    assert got["lab2-Q1"] == "The best is $k = 4$, holding **11** activations."
    assert got["lab2-Q2"] == "From $n = 6$ on.\n\n- n = 4: ties\n- n = 6: saves one"  # "Your answer:" dropped
    assert got["lab2-Q3"] == ""
    assert got["lab2-Q4"].startswith("A stride-2")
    # alice answered Q1, Q2 and Q4: every prediction prompt (P...) and Q3 are empty
    predictions = [q.label for q in sheet.questions if q.label.startswith("P")]
    assert predictions and [q.label for q in answers.empty_answers(sheet)["alice"]] == [*predictions, "Q3"]


def test_answers_below_a_kept_prompt_with_colab_metadata(sheet):
    got = sheet.answers["bob"]
    assert (got["lab2-Q1"], got["lab2-Q2"], got["lab2-Q3"]) == ("Segments of 4 blocks.", "",
                                                                  "More segments replay more blocks.")


def test_answers_in_new_cells_anywhere_in_the_region_once_each(sheet):
    got = sheet.answers["carol"]
    assert got["lab2-Q1"] == "My prediction for Q1: k = 4."  # above the experiment, the prompt deleted
    assert got["lab2-Q2"] == "Depth 6 is the first that saves memory."  # the duplicated cell counted once


def test_an_answer_written_inside_an_edited_question_cell(sheet):
    assert sheet.answers["dave"]["lab2-Q2"] == "Not below 6 blocks: the extra forward buys nothing."
    assert sheet.answers["dave"]["lab2-Q1"] == ""


def test_labelled_answers_elsewhere_and_notes_outside_the_questions(sheet):
    got = sheet.answers["erin"]
    assert got["lab2-Q3"] == "**Q3:** about 1.2 and 1.3 times."
    assert got["lab2-Q1"] == "Answer to Q1: k = 4"
    assert "Note to self" not in "".join(got.values())


def test_an_unreadable_submission_is_listed_not_fatal(sheet):
    assert list(sheet.unreadable) == [next(p for p in sheet.unreadable if p.endswith("broken.ipynb"))]
    assert "not a notebook" in next(iter(sheet.unreadable.values()))
    assert set(sheet.answers["broken"].values()) == {""}
    assert set(sheet.answers["odd"].values()) == {""}  # read like a submission: no cells, not a crash


class _Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))


def test_the_page_runs_no_script_a_student_wrote(sheet):
    page = answers.answers_html(sheet)
    parser = _Tags()
    parser.feed(page)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts == [{}, {"defer": None, "src": answers.MATHJAX_URL}]  # the MathJax config and MathJax
    assert page.count("<script") == 2 and "<style>body" not in page and "<img" not in page
    for _tag, attrs in parser.tags:
        assert not any(name.startswith("on") for name in attrs)
        assert attrs.get("href", "#").startswith(("#", "https://", "http://"))
    assert "&lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;" in page  # shown as text
    assert "script-src 'sha256-" in page and "'unsafe-inline'" not in page.split("script-src")[1].split(";")[0]


def test_the_page_groups_answers_by_question_with_maths_for_mathjax(sheet):
    page = answers.answers_html(sheet)
    sections = page.split('<section id="lab2-Q')[1:]
    assert [s[0] for s in sections] == ["1", "2", "3", "4"]
    first = sections[0]
    assert first.index("<h3>alice") < first.index("<h3>bob") < first.index("<h3>carol")
    assert "The best is \\(k = 4\\), holding <strong>11</strong> activations." in first
    with_maths = next(q for q in sheet.questions if q.label.startswith("Q") and re.search(r"\$[^$]+\$", q.text))
    maths = re.search(r"\$([^$]+)\$", with_maths.text).group(1)
    section = next(s for s in sections if s.startswith(with_maths.label[1:] + '"'))
    assert f"\\({html.escape(maths, quote=False)}\\)" in section  # the question's maths too, for MathJax
    assert '<article class="empty"><h3>untouched' in first


@pytest.mark.parametrize(("markdown", "expected"), [
    ("a *b* and __c__ with `x < y`", "<p>a <em>b</em> and <strong>c</strong> with <code>x &lt; y</code></p>"),
    ("$$\\frac{a}{b_1}$$", "<p>\\[\\frac{a}{b_1}\\]</p>"),
    ("cost $x_1 * y_2$ and $5", "<p>cost \\(x_1 * y_2\\) and $5</p>"),
    ("1. one\n2. two", "<ol><li>one</li><li>two</li></ol>"),
    ("| k | peak |\n|---|---|\n| 4 | 11 |", "<table><thead><tr><th>k</th><th>peak</th></tr></thead>"
     "<tbody><tr><td>4</td><td>11</td></tr></tbody></table>"),
    ("```\n<b>\n```", "<pre><code>&lt;b&gt;\n</code></pre>"),
    ("[doc](https://pytorch.org/a_b_c)",
     '<p><a href="https://pytorch.org/a_b_c" rel="noopener noreferrer">doc</a></p>'),
    ("# Title\ntext", "<h4>Title</h4>\n<p>text</p>"),
    ("**Q1. A question wrapped\nover two lines?** Use it.",
     "<p><strong>Q1. A question wrapped\nover two lines?</strong> Use it.</p>"),
    ("**one**\n\nnot bold**", "<p><strong>one</strong></p>\n<p>not bold**</p>"),
])
def test_markdown_rendering(markdown, expected):
    assert answers.markdown_html(markdown) == expected


def test_the_manual_template_lists_every_student_and_question(sheet, tmp_path):
    page, template = answers.write_answers(sheet, tmp_path)
    assert page.name == "lab2_answers.html" and template.name == "lab2_manual.csv"
    rows = list(csv.reader(template.open(encoding="utf-8", newline="")))
    assert rows[0] == ["student", "question", "points", "comment"]
    assert len(rows) == 1 + len(sheet.questions) * len(sheet.answers)
    assert ["untouched", "lab2-Q3", "0", answers.NO_ANSWER_COMMENT] in rows
    assert ["alice", "lab2-Q1", "", ""] in rows
    filled = [row[:2] + [row[2] or "1", row[3]] for row in rows]  # the instructor fills in the blanks
    with template.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(filled)
    points = read_manual(template, students=set(sheet.answers), questions={q.key for q in sheet.questions},
                         max_points=2)
    assert len(points) == len(rows) - 1


def test_an_existing_manual_csv_is_never_overwritten(sheet, tmp_path):
    (tmp_path / "lab2_manual.csv").write_text("student,question,points,comment\nalice,lab2-Q1,2,\n", encoding="utf-8")
    _page, template = answers.write_answers(sheet, tmp_path)
    assert template.name == "lab2_manual.new.csv"
    assert (tmp_path / "lab2_manual.csv").read_text(encoding="utf-8").endswith("alice,lab2-Q1,2,\n")


def test_a_formula_like_student_id_is_quoted_in_the_template():
    sheet = answers.AnswerSheet(2, answers.lab_questions(SOLUTION), {"=HYPERLINK(1)": {}})
    assert answers.manual_template_rows(sheet)[1][0] == "'=HYPERLINK(1)"


@pytest.mark.slow
def test_chromium_shows_the_page_without_running_student_script(sheet, tmp_path):
    try:
        from playwright import sync_api
    except ImportError:
        unavailable("the playwright package is not installed", "pip install playwright (bash .ci/run does it)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        unavailable("chromium is not installed", "apt-get install chromium (bash .ci/run does it); "
                    "never `playwright install`, which downloads a browser")
    page_path = answers.write_answers(sheet, tmp_path)[0]
    dialogs: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(page_path.as_uri())
        page.wait_for_timeout(500)
        text = page.inner_text("body")
        browser.close()
    assert dialogs == []
    assert '<script>alert("xss")</script>' in text  # the student's HTML is shown as text
