"""What grading writes: the gradebook (CSV: a column per exercise; JSON: every part), feedback per student.

Feedback comes as plain text (default), Markdown or a self-contained HTML page; with manual points for the
written answers (:mod:`.manual`) it shows them and the total, auto + manual.
"""
from __future__ import annotations

import csv
import html
import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Any

from .manual import ManualPoint, MaxPoints, feedback_lines, manual_total, review_key
from .results import ExerciseResult, Status, SubmissionResult, SubmissionStatus
from .safe_markdown import markdown_html

MAX_LISTED_ERRORS = 10  # cell errors listed in a student's feedback (all of them are in the JSON report)
FEEDBACK_FORMATS = {"txt": ".txt", "md": ".md", "html": ".html"}


def _mine(result: SubmissionResult, manual: Sequence[ManualPoint]) -> list[ManualPoint]:
    return [p for p in manual if p.student == result.id and p.lab == result.lab]


def released(result: SubmissionResult, exercise: ExerciseResult, mine: Sequence[ManualPoint]) -> ManualPoint | None:
    """The manual-points row that releases a withheld exercise after review (None: still withheld)."""
    if exercise.status is not Status.NEEDS_REVIEW or result.lab is None:
        return None
    key = review_key(result.lab, exercise.name)
    return next((p for p in mine if p.question == key), None)


def _heading(result: SubmissionResult, ex: ExerciseResult, mine: Sequence[ManualPoint]) -> str:
    """"✔ name: 2/2 passed", or for a withheld exercise "✘ name: 0/2 needs review" / "... released after review"."""
    release = released(result, ex, mine)
    points = release.points if release is not None else ex.points
    mark = "✔" if points == ex.max_points else "✘"
    state = (f"released after review{' (' + release.comment + ')' if release.comment else ''}" if release is not None
             else ex.status.text)
    return f"{mark} {ex.name}: {points:g}/{ex.max_points:g} {state}"


def feedback(result: SubmissionResult, manual: Sequence[ManualPoint] = (), max_points: MaxPoints = None) -> str:
    """The short text a student receives: score, each exercise part by part, written answers' points (when
    graded by hand), the total, problems, cells that failed."""
    lab = f"Lab {result.lab}" if result.lab is not None else "Unknown lab"
    mine = _mine(result, manual)
    lines = [f"{lab} - {result.student} ({Path(result.path).name})"]
    if result.status is SubmissionStatus.GRADED:
        lines.append(f"Score: {result.total:g} / {result.max_total:g}" + (" (autograded)" if mine else ""))
        if mine:
            lines += feedback_lines(mine, result.id, result.lab, max_points)
            lines.append(f"Total: {result.total + manual_total(mine):g}")
        lines.append("")
        for ex in result.exercises:
            lines.append(_heading(result, ex, mine))
            lines += [f"    {line}" for line in ex.message.splitlines()]
            lines += [f"    ! {flag}" for flag in ex.flags]
            if _one_reason(ex):
                lines.append(f"    all parts ({', '.join(p.name for p in ex.parts)}) failed:")
                lines += [f"        {line}" for line in str(ex.parts[0].message).splitlines()]
            elif len(ex.parts) > 1 or any(not p.passed for p in ex.parts):
                for part in ex.parts:
                    lines.append(f"    {'✔' if part.passed else '✘'} {part.name}: "
                                 f"{part.points:g}/{part.max_points:g}")
                    lines += [f"        {line}" for line in (part.message or "").splitlines()]
    else:
        lines.append(f"Score: 0 / {result.max_total:g} (not graded: {result.status.value})" if result.exercises
                     else f"Not graded ({result.status.value}).")
        if mine:
            lines += feedback_lines(mine, result.id, result.lab, max_points)
            lines.append(f"Total: {manual_total(mine):g}")
    lines += _closing(result, "")
    return "\n".join(lines) + "\n"


def _one_reason(ex) -> bool:
    """Several parts failed for one and the same reason (say it once)."""
    messages = {p.message for p in ex.parts}
    return len(ex.parts) > 1 and len(messages) == 1 and None not in messages


def _closing(result: SubmissionResult, heading: str) -> list[str]:
    """Empty written answers, problems and failed cells: headed lines (``heading``: "" or "## ")."""
    lines: list[str] = []
    if result.empty_answers:
        lines += ["", f"{heading}Written answers left empty (graded by hand; these get no points as they are):"]
        lines += [""] * bool(heading) + [f"- {label}" for label in result.empty_answers]
    if result.problems:
        lines += ["", f"{heading}Problems:"] + [""] * bool(heading) + [f"- {p}" for p in result.problems]
    if result.cell_errors:
        lines += ["", f"{heading}Cells that raised an error when the notebook was run from the top:"]
        lines += [""] * bool(heading)
        lines += [f"- {e.label}: {e.ename}: {e.evalue.splitlines()[0] if e.evalue else ''}"
                  for e in result.cell_errors[:MAX_LISTED_ERRORS]]
        if len(result.cell_errors) > MAX_LISTED_ERRORS:
            lines.append(f"- ... and {len(result.cell_errors) - MAX_LISTED_ERRORS} more")
    return lines


def _fenced(text: str) -> list[str]:
    """``text`` as a fenced code block whose fence no line of it can close."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return ["", f"{fence}text", *text.splitlines(), fence, ""]


def feedback_markdown(result: SubmissionResult, manual: Sequence[ManualPoint] = (),
                      max_points: MaxPoints = None) -> str:
    """The same feedback as Markdown: a heading per exercise, hints in code blocks (for an LMS or a page)."""
    lab = f"Lab {result.lab}" if result.lab is not None else "Unknown lab"
    mine = _mine(result, manual)
    lines = [f"# {lab}: {result.student}", "", f"File: `{Path(result.path).name}`", ""]
    graded = result.status is SubmissionStatus.GRADED
    if graded:
        lines.append(f"**Score: {result.total:g} / {result.max_total:g}**" + (" (autograded)" if mine else ""))
    else:
        lines.append(f"**Not graded ({result.status.value})**" + (f": 0 / {result.max_total:g}"
                                                                   if result.exercises else ""))
    if mine:
        written = feedback_lines(mine, result.id, result.lab, max_points)
        lines += ["", f"**{written[0]}**", "", *written[1:], "",
                  f"**Total: {(result.total if graded else 0) + manual_total(mine):g}**"]
    for ex in result.exercises if graded else []:
        lines += ["", f"## {_heading(result, ex, mine)}"]
        if ex.message:
            lines += _fenced(ex.message)
        if ex.flags:
            lines += _fenced("\n".join(ex.flags))
        if _one_reason(ex):
            lines += ["", f"All parts ({', '.join(p.name for p in ex.parts)}) failed:"]
            lines += _fenced(str(ex.parts[0].message))
        elif len(ex.parts) > 1 or any(not p.passed for p in ex.parts):
            for part in ex.parts:
                lines += ["", f"- {'✔' if part.passed else '✘'} {part.name}: "
                              f"{part.points:g}/{part.max_points:g}"]
                if part.message:
                    lines += _fenced(part.message)
    lines += _closing(result, "## ")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def feedback_html(result: SubmissionResult, manual: Sequence[ManualPoint] = (), max_points: MaxPoints = None) -> str:
    """The Markdown feedback as one self-contained page (no script; everything a student wrote is escaped)."""
    title = html.escape(f"Lab {result.lab if result.lab is not None else '?'}: {result.student}")
    body = markdown_html(feedback_markdown(result, manual, max_points), heading_offset=0)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            f"<title>{title}</title><style>{_FEEDBACK_STYLE}</style></head><body>\n{body}\n</body></html>\n")


_FEEDBACK_STYLE = ("body { font: 16px/1.5 system-ui, sans-serif; max-width: 56rem; margin: 2rem auto; padding: 0 1rem; "
                   "color: #222; } h2 { font-size: 1.15rem; border-top: 1px solid #ccc; padding-top: .6rem; } "
                   "pre { background: #f4f4f4; padding: .5rem; overflow-x: auto; white-space: pre-wrap; }")
_RENDER = {"txt": feedback, "md": feedback_markdown, "html": feedback_html}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_dict(result: SubmissionResult, manual: Sequence[ManualPoint] = (), max_points: MaxPoints = None) -> dict:
    """Everything about a submission (parts and manual points included) as JSON-ready data, with its feedback."""
    data = _plain(asdict(result))
    mine = _mine(result, manual)
    data.update(student_id=result.id, auto=result.total, max_auto=result.max_total,
                manual=[asdict(p) for p in mine], manual_points=manual_total(mine),
                total=result.total + manual_total(mine), max_total=result.max_total,
                feedback=feedback(result, manual, max_points))
    return data


def write_csv(results: Sequence[SubmissionResult], path: Path, manual: Sequence[ManualPoint] | None = None) -> None:
    """One row per submission: student id (for an LMS), name, file, lab, status, the total (auto + manual),
    autograded points (total, maximum, per exercise), manual points (with ``manual``), problems, sandboxed."""
    from .answers import csv_safe

    exercise_names = list(dict.fromkeys(ex.name for r in results for ex in r.exercises))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "student", "file", "lab", "status", "total", "auto", "max_auto", "manual",
                         *exercise_names, "empty_answers", "problems", "sandboxed", "sha256", "seconds"])
        for r in results:
            mine = _mine(r, manual or ())
            points = {ex.name: _cell(r, ex, mine) for ex in r.exercises}
            by_hand = manual_total(mine) if manual is not None else None
            writer.writerow([csv_safe(r.id), csv_safe(r.student), csv_safe(r.path), "" if r.lab is None else r.lab,
                             r.status.value, f"{r.total + (by_hand or 0):g}", f"{r.total:g}", f"{r.max_total:g}",
                             "" if by_hand is None else f"{by_hand:g}", *(points.get(n, "") for n in exercise_names),
                             len(r.empty_answers), csv_safe(" | ".join(r.problems)), "yes" if r.sandboxed else "NO",
                             r.sha256, f"{r.seconds:.1f}"])


def _cell(result: SubmissionResult, ex: ExerciseResult, mine: Sequence[ManualPoint]) -> str:
    """An exercise's gradebook cell: its points, or "needs review" until a manual row releases it."""
    release = released(result, ex, mine)
    if ex.status is Status.NEEDS_REVIEW:
        return f"{release.points:g}" if release is not None else "needs review"
    return f"{ex.points:g}"


def write_reports(results: Sequence[SubmissionResult], out: Path, manual: Sequence[ManualPoint] | None = None,
                  max_points: MaxPoints = None, feedback_format: str = "txt") -> list[Path]:
    """Write ``out`` (.json: everything; .csv: the gradebook plus OUT_feedback/<student>.txt|.md|.html, as
    ``feedback_format`` says); ``manual``: the manual points to merge (None: no manual column). Returns paths."""
    if feedback_format not in _RENDER:
        raise ValueError(f"feedback format {feedback_format!r}: choose one of {', '.join(_RENDER)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        data = [to_dict(r, manual or (), max_points) for r in results]
        out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return [out]
    write_csv(results, out, manual)
    folder = feedback_folder(out)
    folder.mkdir(exist_ok=True)
    written = [out]
    render = _RENDER[feedback_format]
    for r in results:
        target = folder / (re.sub(r"[^\w.-]+", "_", r.student) + FEEDBACK_FORMATS[feedback_format])
        target.write_text(render(r, manual or (), max_points), encoding="utf-8")
        written.append(target)
    return written


def feedback_folder(out: Path) -> Path:
    """Where the feedback files of gradebook ``out`` go: ``OUT_feedback/`` next to it."""
    return out.with_name(out.stem + "_feedback")


def summary_table(results: Sequence[SubmissionResult]) -> str:
    """The table printed at the end of a run: student, lab, score, status (and NOT SANDBOXED where so)."""
    width = max([len("student")] + [len(r.student) for r in results])
    lines = [f"{'student':<{width}}  lab  score      status"]
    for r in results:
        score = f"{r.total:g}/{r.max_total:g}" if r.exercises else "-"
        lab = "?" if r.lab is None else str(r.lab)
        unsandboxed = "  (NOT SANDBOXED)" if r.status is SubmissionStatus.GRADED and not r.sandboxed else ""
        lines.append(f"{r.student:<{width}}  {lab:<3}  {score:<9}  {r.status.value}{unsandboxed}")
    return "\n".join(lines)
