"""The labs' wings, found without importing them: every ``labs_utils/lab<N>_<name>/`` package.

The ``labs_utils.checks`` façade and ``lu.<TAB>`` are built from this, so a new lab (a folder ``lab4_...`` with its
``checks.py``: ``LAB``, ``GRADING``, ``__all__``) needs no entry anywhere else. The wings' ``checks.__all__`` is read
from the source, not imported: importing one lab's check loads no other lab (nor torch before it is needed).
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_WING = re.compile(r"lab(\d+)_\w+")


@lru_cache(maxsize=1)
def wings() -> tuple[str, ...]:
    """The wings' module names (``lab1_autoencoders``, ...), in lab order."""
    found = [(int(m.group(1)), p.name) for p in _PACKAGE.iterdir()
             if p.is_dir() and (m := _WING.fullmatch(p.name)) and (p / "__init__.py").is_file()]
    return tuple(name for _, name in sorted(found))


@lru_cache(maxsize=1)
def check_exports() -> dict[str, str]:
    """name -> ``"<wing>.checks"`` for every name a wing's ``checks.__all__`` lists."""
    exports: dict[str, str] = {}
    for wing in wings():
        path = _PACKAGE / wing / "checks.py"
        for name in exported_names(path) if path.is_file() else ():
            if name in exports:
                raise ImportError(f"{name!r} is exported by both labs_utils.{exports[name]} and "
                                  f"labs_utils.{wing}.checks: rename one of them")
            exports[name] = f"{wing}.checks"
    return exports


def exported_names(path: Path) -> tuple[str, ...]:
    """The names a module's top-level ``__all__`` assignments (``=``, ``: list[str] =``, ``+=``) list."""
    names: list[str] = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                if not isinstance(node, ast.AugAssign):
                    names.clear()
                names += list(ast.literal_eval(node.value))
    return tuple(names)
