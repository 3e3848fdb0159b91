"""Reading a submission: its cells, the names its code defines, shell commands left out, how to name a cell.

A submission is read (never written) and never trusted: any bytes give either a list of :class:`Cell`
or :class:`NotANotebook` with a reason a student understands.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_SUBMISSION_BYTES = 256 * 2**20
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")
_PLACEHOLDER = re.compile(r"^raise\s+NotImplementedError\b")


class NotANotebook(ValueError):
    """The file cannot be read as a notebook (the message says why)."""


@dataclass(frozen=True)
class Cell:
    """One cell of a submission, with where a student finds it (``code_number``, ``heading``)."""

    index: int  # 0-based position among all cells
    cell_type: str
    source: str
    code_number: int = 0  # 1-based among the code cells (what Jupyter's "cell N" means to a student); 0: not code
    heading: str = ""  # the last markdown heading above the cell

    @property
    def first_line(self) -> str:
        """The line a student recognises the cell by: its first definition, else its first line of code
        other than ``raise NotImplementedError()``, else its first line; at most 60 characters."""
        lines = [ln.strip() for ln in self.source.splitlines() if ln.strip()]
        code = [ln for ln in lines if not ln.startswith("#")]
        line = next((ln for ln in code if re.match(r"(async\s+)?(def|class)\s", ln)), None)
        line = line or next((ln for ln in code if not _PLACEHOLDER.match(ln)), None)
        line = line or (code[0] if code else lines[0] if lines else "")
        return line if len(line) <= 60 else line[:57] + "..."

    @property
    def label(self) -> str:
        """E.g. "code cell 7 (under “2.1 Gaussian noise”, starting `def add_gaussian_noise(x, std):`)"."""
        kind = f"code cell {self.code_number}" if self.code_number else f"{self.cell_type or 'unknown'} cell"
        under = f"under “{self.heading}”, " if self.heading else ""
        return f"{kind} ({under}starting `{self.first_line}`)"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(part) for part in value)
    return value if isinstance(value, str) else ""


def read_cells(raw: bytes) -> list[Cell]:
    """The cells of a notebook file's bytes (nbformat 3 or 4, any editor's metadata); NotANotebook otherwise."""
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise NotANotebook(f"the file is {len(raw) / 2**20:.0f} MiB, over the {MAX_SUBMISSION_BYTES >> 20} MiB limit")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotANotebook("the file is not UTF-8 text (a notebook is a JSON text file)") from None
    except json.JSONDecodeError as exc:
        raise NotANotebook(f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise NotANotebook("the JSON is nested too deeply to be a notebook") from None
    if not isinstance(data, dict):
        raise NotANotebook("the JSON is not a notebook (no cells)")
    if isinstance(data.get("cells"), list):
        raw_cells = data["cells"]
    elif isinstance(data.get("worksheets"), list):  # nbformat 3
        raw_cells = [c for ws in data["worksheets"] if isinstance(ws, dict)
                     for c in (ws.get("cells") if isinstance(ws.get("cells"), list) else [])]
    else:
        raise NotANotebook("the JSON is not a notebook (no cells)")
    cells: list[Cell] = []
    heading, code_number = "", 0
    for cell in raw_cells:
        if not isinstance(cell, dict):
            continue
        cell_type = str(cell.get("cell_type", ""))
        source = _text(cell.get("source", cell.get("input", "")))
        if cell_type == "code":
            code_number += 1
        cells.append(Cell(len(cells), cell_type, source, code_number if cell_type == "code" else 0, heading))
        if cell_type in ("markdown", "heading"):
            found = [m.group(1) for m in map(_HEADING.match, source.splitlines()) if m]
            heading = found[-1][:60] if found else heading
    return cells


def empty_answers(cells: Sequence[Cell], prompt: str | Sequence[str]) -> list[str]:
    """Where the written answers left empty are: markdown cells still holding one of the student notebook's answer
    prompts unchanged, each as "the answer to “<question's first line>” (under “<heading>”)"."""
    prompts = [p.strip() for p in ([prompt] if isinstance(prompt, str) else prompt)]
    found = []
    for cell in cells:
        lines = {line.strip() for line in cell.source.splitlines()}
        held = next((p for p in prompts if p in lines), None) if cell.cell_type == "markdown" else None
        if held is not None:
            question = cell.first_line if cell.first_line.strip() != held[:60].strip() else ""
            where = f" (under “{cell.heading}”)" if cell.heading else ""
            found.append((f"the answer to “{question}”" if question else "an answer") + where)
    return found


_MAGIC = re.compile(r"^\s*[%!]|\?\s*$")
_DEFINITION = re.compile(r"^(?:async\s+def|def|class)\s+(\w+)|^(\w+)\s*(?::[^=]*)?=(?!=)", re.MULTILINE)


def defined_names(source: str) -> set[str]:
    """Names a cell defines at top level (functions, classes, assignments, imports); magics ignored."""
    code = "\n".join("" if _MAGIC.search(line) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return {a or b for a, b in _DEFINITION.findall(code)}
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def definitions_outside_code(cells: Sequence[Cell], name: str) -> Cell | None:
    """A non-code cell (e.g. an exercise turned into markdown) that defines ``name``."""
    pattern = re.compile(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*=", re.MULTILINE)
    return next((c for c in cells if c.cell_type != "code" and pattern.search(c.source)), None)


_SHELL_LINE = re.compile(r"^(\s*)(?:!|%(?:pip|conda|mamba|system|sx|sc)\b)")
_SHELL_CELL = re.compile(r"^\s*%%(?:bash|sh|system|script|sx)\b")


def without_shell_commands(source: str) -> tuple[str, list[str]]:
    """(source with shell commands replaced by ``pass``, the commands): ``!pip install ...``, ``%pip``,
    ``%%bash`` cells. A Colab habit that would otherwise change the grading environment."""
    if _SHELL_CELL.match(source):
        return "pass", [source.strip().splitlines()[0]]
    lines, commands = [], []
    for line in source.split("\n"):
        match = _SHELL_LINE.match(line)
        if match:
            commands.append(line.strip())
            line = f"{match.group(1)}pass  # shell command left out by the grader"
        lines.append(line)
    return "\n".join(lines), commands
