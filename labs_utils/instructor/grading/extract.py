"""The code one exercise needs, taken out of a submission by reading it (never running it).

    found = extract(cells, ("checkpointed_forward",))   # Extracted: statements, missing, problem

The grader probes each exercise in a fresh process that receives only these statements (:mod:`.probe_server`),
not the notebook's kernel: what the rest of the notebook does (threads, hooks, patches, forged output) cannot
reach the probe. Taken, in notebook order: the top-level statement that last binds each needed name (as after
Run All), and, transitively, the top-level statements that bind the names it refers to (imports, functions,
classes, assignments), resolved by Python's own scoping rules (:mod:`symtable`): a name used when the statement
runs (a default, a decorator, a base class, an assignment's value) is the binding before it; a name used inside
a function when it is called is the last binding in the notebook. Assignments to a taken name's items or
attributes (``CONFIG["lr"] = 0.1``) come along. Shell commands are left out and magics are what IPython makes
of them (``%%time`` cells are read without their first line).

Not taken, with a message saying so (:attr:`Extracted.problem`): a needed name bound only inside a top-level
``if``/``for``/``with``/``try`` (or by ``exec``), and a name the needed code uses that is *computed*: an assignment
whose value calls the notebook's own functions or classes, or uses a computed name in a call (a trained model, a
training history). A needed name may itself be computed (``double = make_doubler(2)``).
"""
from __future__ import annotations

import ast
import symtable
from collections.abc import Sequence
from dataclasses import dataclass, field

from .screen import ipython_source, parsed_code_cells
from .submissions import Cell

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)
_COMPREHENSIONS = {"listcomp", "setcomp", "dictcomp", "genexpr"}
_CODE_CELL_MAGICS = ("%%time", "%%capture")  # cell magics whose body runs as the cell's code


@dataclass
class Statement:
    """One top-level statement of a code cell."""

    cell: Cell
    order: tuple[int, int]  # (cell index, statement index): notebook order
    node: ast.stmt
    text: str  # its source, lines ``line`` on of the cell as IPython runs it
    line: int  # its first line in that source (1-based)
    binds: set[str] = field(default_factory=set)
    mutates: set[str] = field(default_factory=set)  # names whose items or attributes it assigns
    kind: str = "other"  # "import", "definition", "assignment", "other" (binds inside a compound statement)
    star: bool = False  # ``from x import *``

    @property
    def where(self) -> str:
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        under = f" (under “{self.cell.heading}”)" if self.cell.heading else ""
        return f"code cell {self.cell.code_number}{under}, line {self.line}: `{first[:80]}`"


@dataclass
class Extracted:
    """What one exercise's probe process receives: ``statements`` in notebook order, or why it cannot."""

    statements: list[Statement]
    missing: list[str]  # needed names the notebook never binds at the top level of a code cell
    problem: str | None = None  # why the needed code cannot be taken out of the notebook (the student's message)

    def sources(self) -> list[tuple[str, int, str]]:
        """(file name, first line, source) per statement, as the probe process compiles them."""
        return [(f"<code cell {s.cell.code_number}>", s.line, s.text) for s in self.statements]


def cell_code(cell: Cell) -> str:
    """The cell as IPython runs it; a ``%%time`` or ``%%capture`` cell's body as code."""
    source = cell.source
    if source.lstrip().startswith(_CODE_CELL_MAGICS):
        first, _, rest = source.lstrip().partition("\n")
        source = "\n" if first.startswith("%%capture") and "--no" in first else "\n" + rest  # keep line numbers
    return ipython_source(Cell(cell.index, cell.cell_type, source, cell.code_number, cell.heading))


def _names(targets: Sequence[ast.expr]) -> tuple[set[str], set[str]]:
    """(names bound, names whose items or attributes are assigned) by assignment targets."""
    bound, mutated = set(), set()
    for target in targets:
        if isinstance(target, ast.Name):
            bound.add(target.id)
        elif isinstance(target, (ast.Tuple, ast.List, ast.Starred)):
            inner = target.elts if not isinstance(target, ast.Starred) else [target.value]
            b, m = _names(inner)
            bound, mutated = bound | b, mutated | m
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            root = target
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            if isinstance(root, ast.Name):
                mutated.add(root.id)
    return bound, mutated


def _classify(statement: Statement) -> None:
    node = statement.node
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        statement.kind = "import"
        statement.star = any(alias.name == "*" for alias in node.names)
        statement.binds = {(a.asname or a.name).split(".")[0] for a in node.names if a.name != "*"}
    elif isinstance(node, _DEFINITIONS):
        statement.kind, statement.binds = "definition", {node.name}
    elif isinstance(node, _ASSIGNMENTS) and (not isinstance(node, ast.AnnAssign) or node.value is not None):
        statement.kind = "assignment"
        statement.binds, statement.mutates = _names(node.targets if isinstance(node, ast.Assign) else [node.target])
    else:  # a compound statement (or an expression): what it binds cannot be taken out alone
        statement.binds = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        statement.binds |= {n.name for n in ast.walk(node) if isinstance(n, _DEFINITIONS)}
        statement.binds |= {(a.asname or a.name).split(".")[0] for n in ast.walk(node)
                            if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names if a.name != "*"}


def statements(cells: Sequence[Cell]) -> list[Statement]:
    """Every top-level statement of the code cells that parse, in notebook order."""
    found = []
    for cell, tree, code in parsed_code_cells(cells, cell_code):
        lines = code.splitlines(keepends=True)
        for number, node in enumerate(tree.body):
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", ()))])
            text = "".join(lines[first - 1:node.end_lineno])
            statement = Statement(cell, (cell.index, number), node, text, first)
            _classify(statement)
            found.append(statement)
    return found


def _references(statement: Statement) -> tuple[set[str], set[str]]:
    """(names used when the statement runs, names used later, when its functions are called)."""
    try:
        table = symtable.symtable(statement.text, "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError):
        return set(), set()
    now, later = set(), set()

    def walk(scope: symtable.SymbolTable, running_now: bool) -> None:
        for symbol in scope.get_symbols():
            used = symbol.is_referenced() and (scope.get_type() == "module" or symbol.is_global())
            if used:
                (now if running_now else later).add(symbol.get_name())
        for child in scope.get_children():
            kind = child.get_type()
            walk(child, running_now and (kind == "class" or child.get_name() in _COMPREHENSIONS))

    walk(table, True)
    return now, later


class _Slicer:
    def __init__(self, found: list[Statement]) -> None:
        self.found = found
        self.user_defined = {n for s in found if s.kind == "definition" for n in s.binds}
        self.computed_cache: dict[int, bool] = {}

    def binding(self, name: str, before: tuple[int, int] | None) -> Statement | None:
        """The statement that last binds ``name`` (before ``before`` when given)."""
        last = None
        for statement in self.found:
            if before is not None and statement.order >= before:
                break
            if name in statement.binds:
                last = statement
        return last

    def computed(self, statement: Statement, depth: int = 0) -> bool:
        """An assignment whose value calls the notebook's own code or uses a computed name in a call."""
        if statement.kind != "assignment" or depth > 50:
            return False
        key = id(statement)
        if key not in self.computed_cache:
            self.computed_cache[key] = False  # cycles are not computed
            value = statement.node.value
            names = {n.id for call in ast.walk(value) if isinstance(call, ast.Call)
                     for n in ast.walk(call) if isinstance(n, ast.Name)}
            result = False
            for name in names:
                bound = self.binding(name, statement.order)
                if bound is not None and (bound.kind == "definition" or self.computed(bound, depth + 1)):
                    result = True
                    break
            self.computed_cache[key] = result
        return self.computed_cache[key]

    def problem(self, name: str, statement: Statement, user: Statement | None) -> str | None:
        who = f"`{user.node.name}` uses `{name}`" if user is not None and isinstance(user.node, _DEFINITIONS) \
            else f"`{name}`"
        if statement.kind == "other":
            return (f"{who}, which is defined inside a block ({statement.where}): the grader checks each exercise "
                    "with its own functions, classes, imports and constants only, taken from the top level of your "
                    "cells. Define it at the top level of a cell (not inside an `if`, a loop, `with` or `try`).")
        if self.computed(statement):
            return (f"{who}, which is computed by running your code ({statement.where}), e.g. a trained model or "
                    "results: the grader checks each exercise with its own functions, classes, imports and "
                    "constants only, not the rest of the notebook. Compute it inside the function, or pass it in "
                    "as an argument.")
        return None


def extract(cells: Sequence[Cell] | Sequence[Statement], needs: Sequence[str]) -> Extracted:
    """The statements one exercise (needing ``needs``) depends on, from the cells or their :func:`statements`
    (read once for every exercise of a submission); see the module's docstring."""
    found = [c for c in cells if isinstance(c, Statement)] or statements(cells)
    slicer = _Slicer(found)
    taken: dict[int, Statement] = {}
    missing: list[str] = []
    todo: list[tuple[str, tuple[int, int] | None, Statement | None]] = [(n, None, None) for n in needs]
    while todo:
        name, before, user = todo.pop(0)
        statement = slicer.binding(name, before)
        if statement is None:
            if user is None:
                missing.append(name)
            continue  # a builtin, or a name the notebook never binds (a NameError, as in the notebook)
        problem = slicer.problem(name, statement, user) if user is not None or statement.kind == "other" else None
        if problem is not None:
            return Extracted([], missing, problem)
        if id(statement) in taken:
            continue
        taken[id(statement)] = statement
        now, later = _references(statement)
        todo += [(n, statement.order, statement) for n in sorted(now)]
        todo += [(n, None, statement) for n in sorted(later)]
        for other in found:  # CONFIG["lr"] = 0.1 after CONFIG = {}: it belongs to CONFIG's value
            if (statement.binds & other.mutates and other.order > statement.order and id(other) not in taken
                    and not slicer.computed(other) and other.kind == "assignment"):
                taken[id(other)] = other
                n2, l2 = _references(other)
                todo += [(n, other.order, other) for n in sorted(n2)] + [(n, None, other) for n in sorted(l2)]
    if missing:
        return Extracted([], missing)
    stars = [s for s in found if s.star]
    chosen = sorted([*taken.values(), *(s for s in stars if id(s) not in taken)], key=lambda s: s.order)
    return Extracted(chosen, [])
