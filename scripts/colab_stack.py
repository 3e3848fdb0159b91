"""The oldest stack the course supports, as one set of exact versions: Colab's and the declared floors.

Colab's preinstalled versions (``tests/colab_constraints.txt``) plus, for every other package the course
declares (``requirements.txt``, ``pyproject.toml``), the version of its floor. ``.ci/run`` installs exactly this
set into its own environment and executes every solution notebook there in fast mode, so each declared floor
is one that CI runs (a floor nothing runs is a promise nobody checks).

    python scripts/colab_stack.py constraints   # the pins, one per line (pip's --constraint format)
    python scripts/colab_stack.py packages      # the names to install
    python scripts/colab_stack.py key PYTHON    # a short hash of the pins and the interpreter's version: the
                                                # environment is rebuilt when either changes
    python scripts/colab_stack.py verify        # run *inside* that environment: every version is the pinned one
"""
from __future__ import annotations

import hashlib
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLAB = ROOT / "tests" / "colab_constraints.txt"
# Declared but not needed to execute a notebook: the JupyterLab front end is run by people, not by this stack.
NOT_EXECUTED = {"jupyterlab"}


def _requirement_lines() -> list[str]:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("-")]


def _name(text: str) -> str:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(text).name)


def pins() -> dict[str, str]:
    """name -> exact version: Colab's, then each other declared package's floor."""
    from packaging.requirements import Requirement

    found: dict[str, str] = {}
    for line in COLAB.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            (spec,) = Requirement(line).specifier
            found[_name(line)] = spec.version
    for line in _requirement_lines():
        name = _name(line)
        if name in found or name in NOT_EXECUTED:
            continue
        floors = [s.version for s in Requirement(line).specifier if s.operator == ">="]
        if len(floors) != 1:
            raise SystemExit(f"requirements.txt: {line!r} needs exactly one '>=' floor for the Colab stack")
        found[name] = floors[0]
    return found


def constraints() -> str:
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins().items()))


def key(python: str) -> str:
    text = constraints() + python
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def verify() -> int:
    from packaging.version import Version

    wrong = []
    for name, version in sorted(pins().items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed == "missing" or Version(installed.split("+")[0]) != Version(version):
            wrong.append(f"{name}: {installed} installed, {version} pinned")
    if wrong:
        print("The Colab stack is not what tests/colab_constraints.txt and the floors say:\n  " + "\n  ".join(wrong))
        return 1
    print(f"Colab stack (python {sys.version.split()[0]}): " + ", ".join(f"{n} {v}" for n, v in sorted(pins().items())))
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "constraints":
        print(constraints(), end="")
    elif command == "packages":
        print(" ".join(sorted(pins())))
    elif command == "key" and len(argv) == 2:
        print(key(argv[1]))
    elif command == "verify":
        return verify()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
