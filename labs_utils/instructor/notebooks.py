"""Generate the student notebooks (notebooks/) from the solutions (solutions/); used by every lab.

    python -m labs_utils.notebooks build    # write notebooks/*.ipynb from solutions/*.ipynb
    python -m labs_utils.notebooks check    # exit 1 and list the student notebooks that are out of date
    python -m labs_utils.notebooks sync-setup   # make every solution's first code cell the current set-up cell
    python -m labs_utils.notebooks release OUT --repo-url URL --ref TAG   # the student repository (release.py)

Run both from the repository root. In a solution notebook:

- code between lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` at the markers' indentation (signatures and docstrings outside stay); a block
  at the top level of a cell (a code question, not a function to fill in) becomes ``# YOUR CODE HERE`` alone, so
  "Restart & Run All" does not stop at a question the student has not reached;
- markdown between lines ``<!-- BEGIN SOLUTION -->`` and ``<!-- END SOLUTION -->`` (a written answer)
  becomes :data:`ANSWER_PROMPT`, or :data:`PREDICTION_PROMPT` where the paragraph right above the block (back to
  the previous blank line) contains ``**Your prediction`` (a prediction, written before the cell that measures it);
- ``# NBVAL_...`` comment lines (test markers) are dropped, outputs and execution counts cleared, metadata
  reduced to what Colab and JupyterLab need. The output is byte-identical on every rebuild.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import nbformat

from .colab import setup_cell_source

CODE_BEGIN = "### BEGIN SOLUTION"
CODE_END = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
TOP_LEVEL_CODE_STUB = ("# YOUR CODE HERE",)
MARKDOWN_BEGIN = "<!-- BEGIN SOLUTION -->"
MARKDOWN_END = "<!-- END SOLUTION -->"
ANSWER_PROMPT = ("**Your answer:** _(double-click to edit; show your steps, and back each claim about a result with a "
                 "number or a figure from this notebook)_")
PREDICTION_PROMPT = ("**Your answer:** _(double-click to edit; reason from what the notebook has shown so far: no "
                     "measurement is needed)_")
ANSWER_PROMPTS = (ANSWER_PROMPT, PREDICTION_PROMPT)  # what an unanswered written answer still holds
_PREDICTION_MARK = "**Your prediction"

# Only these keys are written: what JupyterLab and Colab use, nothing tied to one machine or editor.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}
_NBVAL_COMMENT = re.compile(r"^\s*# NBVAL_[A-Z_]+\s*$")


class SolutionMarkerError(ValueError):
    """A solution notebook whose markers do not pair up, or whose set-up cell is not the standard one."""


def replace_solution_blocks(source: str, begin: str, end: str,
                            stub: Sequence[str] | Callable[[list[str]], Sequence[str]],
                            top_level_stub: Sequence[str] | None = None) -> str:
    """Replace each ``begin`` ... ``end`` block of lines (markers included) by ``stub`` at the markers' indentation
    (by ``top_level_stub``, when given, for markers that are not indented). A callable ``stub`` is given the lines
    written so far and returns the block's stub.

    A marker is a line whose stripped text equals ``begin`` or ``end``.
    """
    out: list[str] = []
    indent: str | None = None
    for number, line in enumerate(source.split("\n"), start=1):
        marker = line.strip()
        if marker == begin:
            if indent is not None:
                raise SolutionMarkerError(f"line {number}: {begin!r} inside another solution block")
            indent = line[: len(line) - len(line.lstrip())]
            lines = stub(out) if callable(stub) else stub
            out.extend(indent + stub_line for stub_line in (lines if indent or top_level_stub is None
                                                           else top_level_stub))
        elif marker == end:
            if indent is None:
                raise SolutionMarkerError(f"line {number}: {end!r} without a {begin!r} above it")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise SolutionMarkerError(f"{begin!r} without a matching {end!r}")
    return "\n".join(out)


def student_code(source: str) -> str:
    """The student version of a solution code cell."""
    lines = [line for line in source.split("\n") if not _NBVAL_COMMENT.match(line)]
    return replace_solution_blocks("\n".join(lines), CODE_BEGIN, CODE_END, CODE_STUB, TOP_LEVEL_CODE_STUB)


def _answer_stub(above: list[str]) -> tuple[str]:
    """PREDICTION_PROMPT if the paragraph right above the block holds ``**Your prediction``, else ANSWER_PROMPT."""
    paragraph: list[str] = []
    for line in reversed(above):
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line)
    return (PREDICTION_PROMPT if any(_PREDICTION_MARK in line for line in paragraph) else ANSWER_PROMPT,)


def student_markdown(source: str) -> str:
    """The student version of a solution markdown cell (written answers become a prompt; predictions their own)."""
    return replace_solution_blocks(source, MARKDOWN_BEGIN, MARKDOWN_END, _answer_stub)


def _student_cell(cell: nbformat.NotebookNode, cell_id: str) -> nbformat.NotebookNode:
    metadata = {"tags": list(cell.metadata["tags"])} if cell.metadata.get("tags") else {}
    if cell.cell_type == "code":
        new = nbformat.v4.new_code_cell(student_code(cell.source), metadata=metadata)
    elif cell.cell_type == "markdown":
        new = nbformat.v4.new_markdown_cell(student_markdown(cell.source), metadata=metadata)
        if cell.get("attachments"):
            new.attachments = cell.attachments
    else:
        new = nbformat.v4.new_raw_cell(cell.source, metadata=metadata)
    new.id = cell_id
    return new


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student notebook made from a solution notebook (nbformat 4.5, validated)."""
    code = [cell for cell in solution.cells if cell.cell_type == "code"]
    if not code or code[0].source != setup_cell_source():
        raise SolutionMarkerError("the first code cell must be exactly labs_utils.instructor.colab.setup_cell_source()")
    ids = [cell.get("id") for cell in solution.cells]
    keep_ids = all(ids) and len(set(ids)) == len(ids)
    cells = []
    for index, cell in enumerate(solution.cells):
        try:
            cells.append(_student_cell(cell, ids[index] if keep_ids else f"cell-{index}"))
        except SolutionMarkerError as exc:
            raise SolutionMarkerError(f"cell {index}: {exc}") from None
    notebook = nbformat.v4.new_notebook(
        cells=cells, metadata={"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    )
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def render(notebook: nbformat.NotebookNode) -> bytes:
    """The exact bytes written for a notebook (sorted keys, one-space indent, final newline, UTF-8)."""
    return (nbformat.writes(notebook, version=4) + "\n").encode("utf-8")


def expected_files(solutions_dir: Path) -> dict[str, bytes]:
    """Student notebook file name -> the bytes it should contain, for every solutions_dir/*.ipynb."""
    expected = {}
    for path in sorted(solutions_dir.glob("*.ipynb")):
        try:
            expected[path.name] = render(student_notebook(nbformat.read(path, as_version=4)))
        except SolutionMarkerError as exc:
            raise SolutionMarkerError(f"{path}: {exc}") from None
    return expected


def build(solutions_dir: Path, notebooks_dir: Path) -> tuple[list[Path], list[Path]]:
    """Write every student notebook whose content changed and remove those no solution generates.

    Returns (files written, files removed); notebooks_dir holds generated files only.
    """
    notebooks_dir.mkdir(parents=True, exist_ok=True)
    expected = expected_files(solutions_dir)
    written = []
    for name, content in expected.items():
        target = notebooks_dir / name
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
            written.append(target)
    removed = [path for path in sorted(notebooks_dir.glob("*.ipynb")) if path.name not in expected]
    for path in removed:
        path.unlink()
    return written, removed


def stale(solutions_dir: Path, notebooks_dir: Path) -> list[str]:
    """Problems that make the student notebooks out of date (empty when they are up to date)."""
    expected = expected_files(solutions_dir)
    problems = []
    for name, content in expected.items():
        target = notebooks_dir / name
        if not target.exists():
            problems.append(f"{target}: missing")
        elif target.read_bytes() != content:
            problems.append(f"{target}: differs from what {solutions_dir / name} generates")
    problems += [f"{path}: no solution {solutions_dir / path.name} generates it"
                 for path in sorted(notebooks_dir.glob("*.ipynb")) if path.name not in expected]
    return problems


def sync_setup(solutions_dir: Path) -> list[Path]:
    """Make the first code cell of every solution notebook :func:`setup_cell_source` (after it changed).

    Only that cell changes (its stale outputs are cleared); returns the notebooks rewritten. A notebook whose
    first code cell is not a set-up cell (``# Set-up`` comment) is an error: nothing is guessed.
    """
    changed = []
    for path in sorted(solutions_dir.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cell = next((c for c in notebook.cells if c.cell_type == "code"), None)
        if cell is None or not cell.source.startswith("# Set-up"):
            raise SolutionMarkerError(f"{path}: the first code cell is not a set-up cell; insert "
                                      "labs_utils.instructor.colab.setup_cell_source() as the first code cell")
        if cell.source != setup_cell_source():
            cell.source, cell.outputs, cell.execution_count = setup_cell_source(), [], None
            nbformat.write(notebook, path)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labs_utils.notebooks",
                                     description="Generate or check the student notebooks; release them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="build|check|sync-setup|release")
    for name, text in (("build", "write notebooks/*.ipynb from solutions/*.ipynb"),
                       ("check", "exit 1 and list the student notebooks that are out of date"),
                       ("sync-setup", "make every solution's first code cell the current set-up cell")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--solutions", type=Path, default=Path("solutions"), help="default: ./solutions")
        command.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="default: ./notebooks")
    publish = commands.add_parser("release", help="write the student repository (no solutions) into OUT",
                                  description="Write the student repository into OUT: README, notebooks/, "
                                  "labs_utils/ (no instructor tools), requirements.txt, pyproject.toml, LICENSE.")
    publish.add_argument("out", type=Path, help="a new or empty folder, or a previous release")
    publish.add_argument("--repo-url", required=True, help="the student repository, https://github.com/OWNER/NAME")
    publish.add_argument("--ref", required=True, help="the git tag students install and open, e.g. v2026.1")
    args = parser.parse_args(argv)
    if args.command == "release":
        from .release import ReleaseError, release

        try:
            written, removed = release(args.out, args.repo_url, args.ref)
        except (ReleaseError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{len(written)} file(s) written, {len(removed)} removed in {args.out} "
              f"(the student repository at {args.repo_url}, tag {args.ref}).")
        print(f"Next: commit and push it, then `git tag {args.ref} && git push origin {args.ref}` in {args.out}.")
        return 0
    if not args.solutions.is_dir():
        parser.error(f"no folder {args.solutions} (run from the repository root)")
    try:
        if args.command == "sync-setup":
            changed = sync_setup(args.solutions)
            for path in changed:
                print(f"set-up cell updated in {path}")
            print(f"{len(changed)} solution notebook(s) changed; then run `python -m labs_utils.notebooks build`.")
            return 0
        if args.command == "build":
            written, removed = build(args.solutions, args.notebooks)
            for path in written:
                print(f"wrote {path}")
            for path in removed:
                print(f"removed {path} (no solution generates it)")
            print(f"{len(written)} student notebook(s) updated in {args.notebooks}")
            return 0
        problems = stale(args.solutions, args.notebooks)
    except SolutionMarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        print("Student notebooks are out of date: run `python -m labs_utils.notebooks build`.")
        return 1
    print(f"Student notebooks in {args.notebooks} are up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
