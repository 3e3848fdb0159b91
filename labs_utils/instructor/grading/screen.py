"""Screening a submission's code before it runs: what has no place in an exercise is flagged, not silently scored.

    findings = screen(cells, lab)      # exercise name -> [Finding], only for the exercises it withholds

Each code cell is read as IPython runs it (magics and shell lines become calls, see ``TransformerManager``), parsed
(never executed) and walked with the names its imports bind. Flagged, wherever it appears (it can reach every
exercise): process, thread and signal control (``os.kill``, ``subprocess``, ``threading``, ``multiprocessing``,
``ctypes``, ``signal``); introspection of the interpreter, the grader or IPython (``sys.setprofile``,
``sys.modules``, ``gc.get_objects``, ``__code__``, frames, ``importlib``, ``exec``, the input history, IPython's
events and display publishing, ``clear_output``, the grader's result type); ``labs_utils`` internals (anything
but the public helpers and ``check_...`` functions the notebooks use); patching a module's attributes; file
paths outside the notebook's folder; the network; magics other than timing, capturing and ``%matplotlib``.
Flagged only inside an exercise's code (its definitions and the helpers they name): torch.optim's reference
optimizers and functional kernels, ``torch.utils.checkpoint``, and a near copy of torch's own source
(:mod:`.copies`). The course's set-up cell is exempt line by line.
"""
from __future__ import annotations

import ast
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from .copies import copied_fraction
from .labs import Lab
from .submissions import Cell, without_shell_commands

_ANY = [(re.compile(pattern), reason) for pattern, reason in [
    (r"^os\.(kill|killpg|fork|forkpty|system|popen|exec\w*|spawn\w*|posix_spawn\w*|set\w*id|setsid|nice|sched_\w+|"
     r"register_at_fork|pidfd_\w+|wait\w*|abort)\b", "process control"),
    (r"^(subprocess|multiprocessing|torch\.multiprocessing|concurrent|pty|pexpect|asyncio|sched)\b",
     "process or thread control"),
    (r"^(threading|_thread)\b", "thread control"),
    (r"^(signal|faulthandler|resource)\b", "signal and resource control"),
    (r"^(ctypes|_ctypes|cffi|mmap)\b", "native code"),
    (r"^sys\.(setprofile|settrace|_getframe|_current_frames|modules|meta_path|path_hooks|path_importer_cache|path|"
     r"addaudithook|audit|setswitchinterval|displayhook|excepthook|monitoring|remote_exec)\b",
     "the interpreter's internals"),
    (r"^gc\.(get_objects|get_referrers|get_referents|callbacks|freeze)\b", "introspection of live objects"),
    (r"^inspect\.(?!(signature|Signature|Parameter|is[a-z]+)\b)", "introspection (inspect)"),
    (r"^(importlib|imp|pkgutil|runpy|zipimport|builtins|marshal|pickle|dill|cloudpickle|shelve|code|codeop|dis|"
     r"tracemalloc)\b|^traceback\.(walk_\w+|extract_\w+)\b", "the import system or code loading"),
    (r"^types\.(FunctionType|CodeType|ModuleType|FrameType|LambdaType)\b", "functions or modules built by hand"),
    (r"^(exec|eval|compile|__import__|breakpoint)$", "code run from text"),
    (r"^(In|Out|_ih|_oh|_dh|_i+|_i\d+)$", "the input history (it holds the grading cells)"),
    (r"^get_ipython\(\)\.(?!run_line_magic$|run_cell_magic$)", "IPython's internals (events, display publishing)"),
    (r"^IPython\.(core|kernel|terminal|utils|lib|extensions)\b|"
     r"^IPython\.display\.(publish_display_data|clear_output|update_display|DisplayHandle)\b",
     "IPython's display publishing"),
    (r"^(ipykernel|jupyter_client|zmq|comm|tornado|nbformat|nbclient)\b", "the kernel's machinery"),
    (r"^torch\.(_C|_ops|_dispatch|_subclasses|overrides)\b|^torch\.utils\._python_dispatch\b",
     "torch's dispatch internals (where the probes measure memory)"),
    (r"^(socket|ssl|urllib|http|requests|httpx|ftplib|smtplib|telnetlib|xmlrpc|webbrowser)\b", "network access"),
    (r"^(shutil|glob|fnmatch)\b|^os\.(listdir|scandir|walk|fwalk|chdir|fchdir|chroot|chmod|chown|lchown|remove|unlink|"
     r"rmdir|removedirs|rename|renames|replace|symlink|link|mkfifo|mknod|open|truncate)\b|^os\.path\.expanduser\b|"
     r"^pathlib\.(Path|PurePath|PosixPath)\.(home|cwd)\b|^pathlib\b.*\.(parent|parents)\b",
     "file access outside the notebook's folder"),
]]
_EXERCISE = [(re.compile(pattern), reason) for pattern, reason in [
    (r"^torch\.utils\.checkpoint\b", "torch.utils.checkpoint inside the exercise (write the checkpointing yourself)"),
    (r"^torch\.optim\.(?!(lr_scheduler|swa_utils|Optimizer|optimizer\.Optimizer)\b)",
     "torch.optim's reference implementations inside the exercise (write the update yourself)"),
    (r"^torch\b.*\b_(single_tensor|multi_tensor|fused|foreach)", "torch's functional kernels inside the exercise"),
]]
_ATTRIBUTES = {  # attribute names that are introspection whatever they are read from
    *("__code__ __globals__ __closure__ __builtins__ __subclasses__ __import__ __loader__ __spec__ __file__ "
      "__defaults__ __kwdefaults__ __wrapped__ __getattribute__ __self__ __func__ __traceback__ __reduce__ "
      "__reduce_ex__").split(),
    *"f_back f_globals f_locals f_code f_builtins f_trace gi_frame gi_code cr_frame ag_frame tb_frame tb_next".split(),
    *"co_code co_consts co_names co_varnames".split(),
}
_LABS_INTERNAL = {"instructor", "evidence", "tripwire", "grade", "checking", "pytest_plugin", "notebooks",
                  "Exercise", "LabInfo", "GRADING", "LAB", "exercise_checkpointing", "exercise_dropout", "rate_check",
                  "hints", "tracker"}
_ALLOWED_MAGICS = {"matplotlib", "time", "timeit", "capture", "pinfo", "pinfo2", "precision", "xmode", "pprint",
                   "autoreload", "load_ext", "who", "whos"}
_CODE_MAGICS = {"time", "timeit", "capture"}  # their argument (or body) is code, screened like the cell
_SETTINGS = re.compile(r"^torch\.backends\.")  # module attributes a notebook may set
_PATH = re.compile(r"^(~|/(proc|sys|dev|etc|tmp|root|home|usr|opt|var|run|mnt|srv|work|labs-grading|bin|lib|lib64|"
                   r"boot|media|snap|nix|private|Users|Volumes)(/|$))|(^|/)\.\.(/|$)")
_BUILTIN_ROOTS = {"exec", "eval", "compile", "__import__", "breakpoint", "getattr", "setattr", "delattr", "hasattr",
                  "get_ipython", "In", "Out", "_ih", "_oh", "_dh", "_i", "_ii", "_iii"}
RESULT_TYPE = "application/vnd.labs-utils"
COPIED = 0.6  # a definition whose tokens are this much torch's own source (and long, see copies.MIN_TOKENS)


@dataclass(frozen=True)
class Finding:
    """A line the screen flagged: where (as the student finds it), the line, and why."""

    cell: str
    line: int
    text: str
    reason: str
    scope: str | None = None  # the top-level definition it lies in, None: top-level code
    anywhere: bool = True  # False: matters only inside an exercise's code

    def __str__(self) -> str:
        return f"{self.cell}, line {self.line}: `{self.text}`: {self.reason}"


def _labs_reason(path: str, checks_module: str | None) -> str | None:
    parts = path.split(".")
    if checks_module and checks_module.split(".")[0] != "labs_utils" and parts[0] == checks_module.split(".")[0]:
        return None if len(parts) == 1 or parts[1].startswith("check_") else "the checks' internals"
    if parts[0] != "labs_utils":
        return None
    for index, part in enumerate(parts[1:], start=1):
        after = parts[index + 1] if index + 1 < len(parts) else None
        if (part.startswith("_") and part != "__version__") or part in _LABS_INTERNAL \
                or part.startswith(("probe", "judge")) \
                or (part == "exercises" and after not in (None, "summary")) \
                or (part == "checks" and after is not None and not after.startswith("check_")
                    and after != "OPTIMIZER_NAMES"):
            return "labs_utils internals (the grader's and the checks' own code)"
    return None


class _Walker(ast.NodeVisitor):
    def __init__(self, screen: _Screen, cell: Cell, lines: list[str], offset: int, scope: str | None) -> None:
        self.screen, self.cell, self.lines, self.offset, self.scope = screen, cell, lines, offset, scope

    def flag(self, node: ast.AST, reason: str, anywhere: bool = True) -> None:
        number = self.offset + getattr(node, "lineno", 1)
        text = self.lines[number - 1].strip() if 0 < number <= len(self.lines) else ""
        if text in self.screen.exempt:
            return
        self.screen.found.append(Finding(self.cell.label, number, text[:100], reason, self.scope, anywhere))

    def check_path(self, node: ast.AST, path: str | None) -> None:
        if not path:
            return
        for pattern, reason in _ANY:
            if pattern.search(path):
                self.flag(node, f"{reason} ({path})")
        for pattern, reason in _EXERCISE:
            if pattern.search(path):
                self.flag(node, f"{reason} ({path})", anywhere=False)
        labs = _labs_reason(path, self.screen.checks_module)
        if labs:
            self.flag(node, f"{labs} ({path})")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.check_path(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.check_path(node, f"{node.module or ''}.{alias.name}".strip("."))

    def visit_Expr(self, node: ast.Expr) -> None:
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):  # not a docstring
            self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.check_path(node, self.screen.resolve(node))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in _ATTRIBUTES:
            self.flag(node, f"introspection ({node.attr})")
        path = self.screen.resolve(node)
        self.check_path(node, path)
        if isinstance(node.ctx, (ast.Store, ast.Del)) and path and self.screen.rooted(node, plain=True) \
                and not _SETTINGS.search(path):
            self.flag(node, f"patches a module ({path})")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = self.screen.resolve(node.func)
        if func in ("getattr", "setattr", "delattr", "hasattr") and node.args:
            target = self.screen.resolve(node.args[0])
            name = node.args[1] if len(node.args) > 1 else None
            if target and self.screen.rooted(node.args[0], plain=True):
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    self.check_path(node, f"{target}.{name.value}")
                    if func in ("setattr", "delattr") and not _SETTINGS.search(target + "."):
                        self.flag(node, f"patches a module ({target}.{name.value})")
                else:
                    self.flag(node, f"an attribute of {target} named at run time")
        if func == "get_ipython().run_line_magic" or func == "get_ipython().run_cell_magic":
            self.magic(node, func.endswith("cell_magic"))
        self.generic_visit(node)

    def magic(self, node: ast.Call, cell_magic: bool) -> None:
        values = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args]
        name = values[0] if values else None
        if name not in _ALLOWED_MAGICS or (name == "load_ext" and values[1:2] != ["autoreload"]):
            self.flag(node, f"the magic %{'%' if cell_magic else ''}{name}")
            return
        code = values[2] if cell_magic and len(values) > 2 else values[1] if len(values) > 1 else None
        if name in _CODE_MAGICS and code:
            self.screen.walk(code, self.cell, self.lines, self.offset + node.lineno - (not cell_magic), self.scope)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            if RESULT_TYPE in node.value:
                self.flag(node, "the grader's result type (a forged result)")
            elif _PATH.search(node.value.strip()):
                self.flag(node, "a path outside the notebook's folder")


class _Screen:
    def __init__(self, lab: Lab, exempt: frozenset[str]) -> None:
        self.checks_module, self.exempt = lab.module, exempt
        self.aliases: dict[str, str] = {}
        self.imported: set[str] = set()  # names bound by imports (or to what an import bound)
        self.found: list[Finding] = []

    def bind(self, tree: ast.AST) -> None:
        """Pass 1: the names imports (and plain aliases of them) bind, in every cell."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
                    self.imported.add(a.asname or a.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                    self.imported.add(a.asname or a.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if self.rooted(node.value, plain=True):
                    self.aliases[node.targets[0].id] = self.resolve(node.value) or ""
                    self.imported.add(node.targets[0].id)

    def resolve(self, node: ast.AST) -> str | None:
        """The dotted path an expression names: ``np.linalg.norm`` -> ``numpy.linalg.norm``; calls add ``()``."""
        if isinstance(node, ast.Name):
            if node.id not in self.imported:
                return node.id if node.id in _BUILTIN_ROOTS or re.fullmatch(r"_i\d+", node.id) else None
            path = self.aliases.get(node.id, node.id)
            return "get_ipython" if path == "IPython.get_ipython" else path
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            base = self.resolve(node.func)
            return f"{base}()" if base else None
        return None

    def rooted(self, node: ast.AST, plain: bool = False) -> bool:
        """Whether an expression starts at something an import bound (a module, or a name taken from one);
        ``plain``: and reaches it through attributes only (``torch.Tensor``, not ``torch.zeros(3)``)."""
        while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
            if plain and not isinstance(node, ast.Attribute):
                return False
            node = node.func if isinstance(node, ast.Call) else node.value
        return isinstance(node, ast.Name) and node.id in self.imported

    def walk(self, source: str, cell: Cell, lines: list[str], offset: int, scope: str | None) -> None:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):
            return  # IPython cannot run it either
        for statement in tree.body:
            inner = statement.name if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                             ast.ClassDef)) else scope
            _Walker(self, cell, lines, offset, inner).visit(statement)


@functools.lru_cache(maxsize=1)
def _transformer():
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


def ipython_source(cell: Cell) -> str:
    """The cell as the grader runs it (shell commands left out) and IPython executes it (magics as calls)."""
    source, _ = without_shell_commands(cell.source)
    try:
        return _transformer().transform_cell(source)
    except Exception:  # IPython would not run it either
        return source


@functools.lru_cache(maxsize=1)
def exempt_lines() -> frozenset[str]:
    """The course's set-up cell (the same in every notebook), line by line."""
    from ..colab import setup_cell_source

    return frozenset(line.strip() for line in setup_cell_source().splitlines() if line.strip())


def _definitions(trees: Sequence[tuple[Cell, ast.Module, str]]) -> dict[str, set[str]]:
    """Top-level function and class name -> the top-level names its code refers to."""
    refers: dict[str, set[str]] = {}
    for _, tree, _ in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
                refers.setdefault(node.name, set()).update(names - {node.name})
    return refers


def _closure(roots: Sequence[str], refers: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [r for r in roots if r in refers]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [n for n in refers.get(name, ()) if n in refers and n not in seen]
    return seen


def parsed_code_cells(cells: Sequence[Cell], code_of: Callable[[Cell], str] = ipython_source,
                      ) -> Iterator[tuple[Cell, ast.Module, str]]:
    """(cell, syntax tree, code) of every non-empty code cell whose code (``code_of(cell)``) parses; the others
    are skipped (the kernel could not run them either)."""
    for cell in cells:
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        code = code_of(cell)
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError):
            continue
        yield cell, tree, code


def screen(cells: Sequence[Cell], lab: Lab) -> dict[str, list[Finding]]:
    """Exercise name -> the findings that withhold it (only exercises with findings)."""
    checker = _Screen(lab, exempt_lines())
    trees = list(parsed_code_cells(cells))
    for _, tree, _ in trees:
        checker.bind(tree)
    for cell, _, source in trees:
        checker.walk(source, cell, cell.source.splitlines(), 0, None)
    refers = _definitions(trees)
    for cell, tree, source in trees:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                fraction, tokens = copied_fraction(ast.get_source_segment(source, node) or "")
                if fraction >= COPIED:
                    line = cell.source.splitlines()[node.lineno - 1].strip() if cell.source else ""
                    checker.found.append(Finding(cell.label, node.lineno, line[:100], (
                        f"{fraction:.0%} of its {tokens} tokens are torch's own source (a near copy)"), node.name,
                        False))
    kept = {}  # one finding per line and kind of reason (``signal.signal(signal.SIGINT, ...)`` is one)
    for finding in checker.found:
        kept.setdefault((finding.cell, finding.line, finding.reason.split(" (")[0], finding.scope), finding)
    found: dict[str, list[Finding]] = {}
    for exercise in lab.exercises:
        mine = _closure(exercise.needs, refers)
        hits = [f for f in kept.values() if f.anywhere or f.scope in mine]
        if hits:
            found[exercise.name] = hits
    return found
