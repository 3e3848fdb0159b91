"""The students' written answers of one lab: found in their notebooks, shown on one page, graded by hand.

    questions = lab_questions(solution_notebook(1))             # from solutions/lab1_*.ipynb
    sheet = collect_answers([(Path("subs/alice.ipynb"), "alice"), ...], questions)
    write_answers(sheet, Path("answers"))   # answers/lab1_answers.html, answers/lab1_manual.csv
    empty_answers(sheet)                    # {"alice": [Question(... "Q2" ...)], ...}

A written question is a markdown cell of the solution holding ``<!-- BEGIN SOLUTION -->`` ...
``<!-- END SOLUTION -->``; students see :data:`~labs_utils.instructor.notebooks.ANSWER_PROMPT` (or
``PREDICTION_PROMPT``) in its place. The question is the text before the block in that cell, else the nearest
markdown cell above it.

Finding an answer never relies on cell ids or metadata (Colab rewrites both). The solution's other markdown
cells are landmarks, recognised by their text even when edited a little; each piece of text a student wrote
belongs to the question whose region (its question cell up to the next landmark after its prompt) holds the
last landmark above it, unless it starts with another question's label ("Q2: ..."). So an answer typed in
place of the prompt, below the kept prompt, in a new cell, inside the question cell, or twice, is found; an
unchanged prompt is an empty answer. Text in code cells is not an answer.

The page escapes every character a student wrote: only tags this module writes reach the browser, and its
Content-Security-Policy runs no script but MathJax's (from a CDN; offline, the maths stays as TeX).
"""
from __future__ import annotations

import base64
import csv
import difflib
import hashlib
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..notebooks import ANSWER_PROMPTS, MARKDOWN_BEGIN, MARKDOWN_END, student_markdown
from .safe_markdown import markdown_html
from .submissions import NotANotebook, read_cells

MANUAL_HEADER = ("student", "question", "points", "comment")
NO_ANSWER_COMMENT = "no answer found"
_LABEL = re.compile(r"^\W*(Q\d+)\b")
_LABEL_REFERENCE = re.compile(r"^\W*(?:answer\s*(?:to\s*)?)?(?:q|question\s*)(\d+)\b", re.IGNORECASE)
_PROMPT_PARTS = re.compile(
    r"^[ \t]*\**[ \t]*your answer[ \t]*:?[ \t]*\**[ \t]*:?|_?\(?double-click to edit;[^\n)]*\)?_?",
    re.IGNORECASE | re.MULTILINE)
_MIN_LANDMARK_CHARS = 12  # shorter markdown ("---", "## 3") is too common to place anything by
_LINE_SIMILARITY = 0.8  # a line edited this little is still the template's line
_LANDMARK_SHARE = 0.6  # share of a template cell's text found in a cell for the cell to be that landmark


@dataclass(frozen=True)
class Question:
    """A written question: ``key`` (``lab1-Q2``) names it in the manual-points CSV."""

    lab: int
    label: str  # "Q2", from the question's "**Q2." (else "P1", "P2", ... for unlabelled predictions)
    text: str  # markdown, as the students read it
    anchor: int = 0  # index of the question's cell in the solution notebook
    end: int = 0  # index of the first landmark after its answer cell (the region's end, exclusive)

    @property
    def key(self) -> str:
        return f"lab{self.lab}-{self.label}"


@dataclass
class AnswerSheet:
    """Every submission's answers to one lab's questions; ``unreadable``: file -> why it was skipped."""

    lab: int
    questions: list[Question]
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # student -> question key -> markdown
    unreadable: dict[str, str] = field(default_factory=dict)


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def _without_prompt(text: str) -> str:
    for prompt in ANSWER_PROMPTS:
        text = text.replace(prompt, "")
    return _PROMPT_PARTS.sub("", text).strip()


def solution_notebook(lab: int, solutions_dir: Path = Path("solutions")) -> Path:
    """The lab's solution notebook ``solutions_dir/labN_*.ipynb`` (FileNotFoundError if none)."""
    found = sorted(solutions_dir.glob(f"lab{lab}_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no {solutions_dir}/lab{lab}_*.ipynb: run from the course repository's root")
    return found[0]


def read_markdown_cells(path: Path) -> list[tuple[int, str]]:
    """(index, source) of a notebook's markdown cells, read like a submission (:func:`.submissions.read_cells`:
    nbformat 3 or 4, any metadata); ValueError saying why if unreadable."""
    try:
        cells = read_cells(path.read_bytes())
    except NotANotebook as exc:
        raise ValueError(f"not a notebook ({exc})") from None
    return [(cell.index, cell.source) for cell in cells if cell.cell_type == "markdown"]


def _student_texts(cells: Sequence[tuple[int, str]]) -> dict[int, str]:
    """Solution cell index -> the text students see in that markdown cell, prompt removed."""
    return {index: _without_prompt(student_markdown(source)) for index, source in cells}


def _landmarks(texts: dict[int, str]) -> dict[int, str]:
    """The student texts long enough to place answers by (landmarks)."""
    return {index: text for index, text in texts.items() if len(_normal(text)) >= _MIN_LANDMARK_CHARS}


def lab_questions(solution: Path) -> list[Question]:
    """The written questions of a solution notebook ``labN_*.ipynb``, in order."""
    cells = read_markdown_cells(solution)
    return _questions(solution.name, cells, _landmarks(_student_texts(cells)))


def _questions(name: str, cells: Sequence[tuple[int, str]], marks: dict[int, str]) -> list[Question]:
    match = re.match(r"lab(\d+)_", name)
    if not match:
        raise ValueError(f"{name}: a solution notebook is named labN_*.ipynb")
    questions: list[Question] = []
    for index, source in cells:
        if MARKDOWN_BEGIN not in source:
            continue
        before = source.split(MARKDOWN_BEGIN, 1)[0].strip()
        anchor = index if before else max((i for i in marks if i < index), default=index)
        text = before or marks.get(anchor, "")
        lines = text.split("\n")
        start = next((n for n, line in enumerate(lines) if _LABEL.match(line)), 0)  # drop a section's intro
        text = "\n".join(lines[start:]).strip()
        label = _LABEL.match(text)
        end = min((i for i in marks if i > index), default=10**9)
        if MARKDOWN_END in source and source.split(MARKDOWN_END, 1)[1].strip():
            end = index  # text after the block is the next landmark
        # unlabelled written answers (predict-then-run experiments) are P1, P2, ... so keys never collide
        unlabelled = sum(1 for q in questions if q.label.startswith("P"))
        questions.append(Question(int(match.group(1)), label.group(1) if label else f"P{unlabelled + 1}",
                                  text, anchor, max(end, index + 1)))
    return questions


def _line_matches(line: str, template_lines: Sequence[str], template_text: str) -> bool:
    """Whether a (normalised) line is one of the template's, maybe edited a little or reflowed."""
    if line in template_lines or line in template_text:
        return True
    matcher = difflib.SequenceMatcher(None, b=line)
    for other in template_lines:
        matcher.set_seq1(other)
        if (matcher.real_quick_ratio() >= _LINE_SIMILARITY and matcher.quick_ratio() >= _LINE_SIMILARITY
                and matcher.ratio() >= _LINE_SIMILARITY):
            return True
    return False


def _classify(text: str, marks: dict[int, str], exact: dict[str, list[int]], after: int) -> tuple[int | None, str]:
    """(landmark index or None, the text the student added): what one student markdown cell is.

    ``after``: the landmark above it, to tell identical template cells apart (the next one is taken).
    """
    normal = _normal(text)
    if normal in exact:
        same = exact[normal]
        return next((i for i in same if i > after), same[0]), ""
    lines = text.split("\n")
    normal_lines = [_normal(line) for line in lines]
    best, best_share, best_template, best_text = None, _LANDMARK_SHARE, [""], ""
    for index, mark in marks.items():
        template = [_normal(line) for line in mark.split("\n") if len(_normal(line)) >= _MIN_LANDMARK_CHARS]
        total = sum(map(len, template))
        found = sum(len(t) for t in template if t in normal or _line_matches(t, normal_lines, normal))
        if total and found / total > best_share:
            best, best_share, best_template, best_text = index, found / total, template, _normal(mark)
    if best is None:
        return None, text
    short = {_normal(line) for line in marks[best].split("\n")} - {""}  # the question's own short lines ("model's.")
    added = [line for line, normal_line in zip(lines, normal_lines)
             if not (normal_line in short or len(normal_line) >= _MIN_LANDMARK_CHARS
                     and _line_matches(normal_line, best_template, best_text))]
    return best, "\n".join(added).strip()


def _short_cells(texts: dict[int, str]) -> set[str]:
    """The students' markdown cells too short to be landmarks ("## Greeting"), normalised: never answers."""
    return {t for t in map(_normal, texts.values()) if 0 < len(t) < _MIN_LANDMARK_CHARS}


def find_answers(path: Path, questions: Sequence[Question], marks: dict[int, str],
                 short: frozenset[str] | set[str] = frozenset()) -> dict[str, str]:
    """Question key -> the markdown a submission answers it with ("" when empty); ValueError if unreadable.

    ``short``: the template's short markdown cells (:func:`_short_cells`), left as they were: not answers."""
    exact: dict[str, list[int]] = {}
    for index, mark in marks.items():
        exact.setdefault(_normal(mark), []).append(index)
    by_label = {q.label.lower(): q for q in questions}
    found: dict[str, list[str]] = {q.key: [] for q in questions}
    last: int | None = None
    for _index, source in read_markdown_cells(path):
        text = _without_prompt(source)
        if _normal(text) in short:
            continue
        landmark, added = _classify(text, marks, exact, -1 if last is None else last)
        if landmark is not None:
            last = landmark
        if not added:
            continue
        reference = _LABEL_REFERENCE.match(added)
        question = by_label.get(f"q{reference.group(1)}") if reference else None
        if question is None and last is not None:
            question = next((q for q in questions if q.anchor <= last < q.end), None)
        if question is not None and _normal(added) not in map(_normal, found[question.key]):
            found[question.key].append(added)
    return {key: "\n\n".join(parts) for key, parts in found.items()}


def collect_answers(submissions: Sequence[tuple[Path, str]], solution: Path) -> AnswerSheet:
    """Every submission's answers, ``submissions`` being (notebook, student id) pairs of the solution's lab.

    A file that cannot be read is listed in ``unreadable`` (with the reason) and gets no answers.
    """
    cells = read_markdown_cells(solution)  # the template, read once
    texts = _student_texts(cells)
    marks = _landmarks(texts)
    questions = _questions(solution.name, cells, marks)
    short = _short_cells(texts)
    sheet = AnswerSheet(questions[0].lab if questions else int(solution.name[3:].split("_")[0]), questions)
    for path, student in submissions:
        try:
            sheet.answers[student] = find_answers(Path(path), questions, marks, short)
        except (OSError, ValueError) as exc:
            sheet.unreadable[str(path)] = str(exc)
            sheet.answers[student] = {q.key: "" for q in questions}
    return sheet


def empty_answers(sheet: AnswerSheet) -> dict[str, list[Question]]:
    """Student -> the questions their submission leaves unanswered (every student is a key)."""
    return {student: [q for q in sheet.questions if not answers.get(q.key, "").strip()]
            for student, answers in sheet.answers.items()}


# ----------------------------------------------------------------------------- the page and the CSV

MATHJAX_URL = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"
_MATHJAX_CONFIG = (
    "window.MathJax = {tex: {inlineMath: [['\\\\(', '\\\\)']], displayMath: [['\\\\[', '\\\\]']]},"
    " loader: {load: ['ui/safe']}, options: {enableMenu: false}};"
    " window.addEventListener('load', function () {"
    " if (!window.MathJax.version) { document.getElementById('offline').hidden = false; } });"
)
_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { border-top: 3px solid #0072B2; padding-top: .8rem; margin-top: 2.5rem; }
nav li { margin: .2rem 0; } .note { color: #555; font-size: .9rem; }
.question { background: #eef5fb; border-left: 4px solid #0072B2; padding: .4rem 1rem; }
article { border: 1px solid #ccc; border-radius: 6px; padding: .2rem 1rem; margin: 1rem 0; overflow-x: auto; }
article h3 { font-size: 1rem; margin: .6rem 0 .2rem; } article h3 small { color: #666; font-weight: normal; }
article.empty { background: #f6f6f6; color: #666; } pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #bbb; padding: .2rem .5rem; }
blockquote { border-left: 3px solid #bbb; margin-left: 0; padding-left: 1rem; color: #444; }
"""


def answers_html(sheet: AnswerSheet) -> str:
    """One self-contained page: each question, then every student's answer to it (empty ones marked)."""
    config_hash = base64.b64encode(hashlib.sha256(_MATHJAX_CONFIG.encode()).digest()).decode()
    policy = (f"default-src 'none'; script-src 'sha256-{config_hash}' https://cdn.jsdelivr.net; "
              "style-src 'unsafe-inline'; font-src https://cdn.jsdelivr.net data:; img-src data:; "
              "base-uri 'none'; form-action 'none'")
    students = sorted(sheet.answers)
    empty = empty_answers(sheet)
    title = f"Lab {sheet.lab}: written answers"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
        f"<title>{title}</title><style>{_STYLE}</style>",
        f"<script>{_MATHJAX_CONFIG}</script>", f'<script defer src="{MATHJAX_URL}"></script>',
        "</head><body>", f"<h1>{title}</h1>",
        f'<p class="note">{len(students)} submission(s), {len(sheet.questions)} question(s). Points go in '
        f"<code>lab{sheet.lab}_manual.csv</code> (question ids below). Students' text is shown as written, "
        "rendered as Markdown; HTML in it is shown, never run.</p>",
        '<p class="note" id="offline" hidden>MathJax could not be loaded (offline?): maths is shown as TeX '
        "between \\( \\) or \\[ \\].</p>",
        "<nav><ul>",
    ]
    for q in sheet.questions:
        missing = sum(q in qs for qs in empty.values())
        parts.append(f'<li><a href="#{q.key}">{q.label}</a> <code>{q.key}</code>: '
                     f"{len(students) - missing} answered, {missing} empty</li>")
    parts.append("</ul></nav>")
    for q in sheet.questions:
        parts += [f'<section id="{q.key}"><h2>{q.label} <small><code>{q.key}</code></small></h2>',
                  f'<div class="question">{markdown_html(q.text)}</div>']
        for student in students:
            answer = sheet.answers[student].get(q.key, "")
            who = f"<h3>{html.escape(student)} <small>{q.key}</small></h3>"
            if answer.strip():
                parts.append(f"<article>{who}{markdown_html(answer)}</article>")
            else:
                parts.append(f'<article class="empty">{who}<p><em>No answer.</em></p></article>')
        parts.append("</section>")
    if sheet.unreadable:
        parts.append("<h2>Submissions that could not be read</h2><ul>")
        parts += [f"<li>{html.escape(path)}: {html.escape(why)}</li>" for path, why in sheet.unreadable.items()]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def csv_safe(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (a leading ``=+-@`` gets a ``'``; manual.py strips it)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def manual_template_rows(sheet: AnswerSheet, reviews: Sequence[list[str]] = ()) -> list[list[str]]:
    """Rows (header first) of the manual-points CSV: points left blank, 0 for an empty answer; then ``reviews``
    (rows that release exercises withheld for review, points left blank)."""
    rows = [list(MANUAL_HEADER)]
    empty = empty_answers(sheet)
    for q in sheet.questions:
        for student in sorted(sheet.answers):
            is_empty = q in empty[student]
            rows.append([csv_safe(student), q.key, "0" if is_empty else "", NO_ANSWER_COMMENT if is_empty else ""])
    return rows + [[csv_safe(cell) for cell in row] for row in reviews]


def write_answers(sheet: AnswerSheet, out_dir: Path, reviews: Sequence[list[str]] = ()) -> list[Path]:
    """Write ``out_dir/labN_answers.html`` and ``out_dir/labN_manual.csv`` (UTF-8); returns both paths.

    An existing CSV is never overwritten (it may hold the instructor's points): the template is then written
    as ``labN_manual.new.csv``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / f"lab{sheet.lab}_answers.html"
    page.write_text(answers_html(sheet), encoding="utf-8")
    template = out_dir / f"lab{sheet.lab}_manual.csv"
    if template.exists():
        template = out_dir / f"lab{sheet.lab}_manual.new.csv"
    with template.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(manual_template_rows(sheet, reviews))
    return [page, template]
