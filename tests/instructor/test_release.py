"""The student release: the files it holds, no solution anywhere, links at URL@TAG, byte-identical rebuilds,
and a release folder's files (a .git, an instructor's notes, an edited file) never lost."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import grading_fixtures as gf
import nbformat
import pytest

import labs_utils
from labs_utils.instructor import notebooks, release
from labs_utils.instructor.colab import colab_badge, colab_url, setup_cell_source

pytestmark = pytest.mark.slow  # builds the student release and its wheel, imports it in a fresh Python

ROOT = Path(__file__).resolve().parents[2]
URL, TAG = "https://github.com/acme/dl-labs-2026", "v2026.1"
BEGIN_END = ((notebooks.CODE_BEGIN, notebooks.CODE_END), (notebooks.MARKDOWN_BEGIN, notebooks.MARKDOWN_END))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the course's sources with every solution's set-up cell in sync (what a release starts from)."""
    copy = tmp_path_factory.mktemp("course")
    for name in ("LICENSE", "pyproject.toml", "requirements.txt"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("labs_utils", "solutions"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    notebooks.sync_setup(copy / "solutions")
    return copy


@pytest.fixture(scope="module")
def released(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student") / "repo"
    release.release(out, URL, TAG, source)
    return out


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def text_lines(path: Path) -> list[str]:
    """Every line of a text file, stripped; for a notebook, of every string in its JSON (sources, outputs)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # the bundled MNIST arrays
        return []
    if path.suffix != ".ipynb":
        return [line.strip() for line in text.splitlines()]
    strings, stack = [], [json.loads(text)]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, list):
            stack += item
        elif isinstance(item, str):
            strings.append(item)
    return [line.strip() for s in strings for line in s.splitlines()]


def solution_lines() -> set[str]:
    """The non-trivial lines of every solution block and written answer of the real solutions.

    Trivial: under 10 characters (``)``, ``continue``), a call without arguments (``optimizer.step()``, which any
    training loop in the package has), or also written outside the solution blocks of some solution notebook
    (scaffolding the student sees anyway, e.g. ``with torch.no_grad():``).
    """
    inside, outside = set(), set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            in_block = False
            for line in cell.source.split("\n"):
                stripped = line.strip()
                if any(stripped == begin for begin, _ in BEGIN_END):
                    in_block = True
                elif any(stripped == end for _, end in BEGIN_END):
                    in_block = False
                else:
                    (inside if in_block else outside).add(stripped)
    return {line for line in inside - outside if len(line) >= 10 and not re.fullmatch(r"[\w.]+\(\)", line)}


def leaks(folder: Path, lines: set[str]) -> list[str]:
    return [f"{path.relative_to(folder)}: {line}" for path in sorted(folder.rglob("*")) if path.is_file()
            for line in text_lines(path) if line in lines]


# ----------------------------------------------------------------------------- what the release holds

def test_release_holds_the_student_files_and_no_instructor_tools(released):
    top = sorted(p.name for p in released.iterdir())
    assert top == [".gitignore", release.MANIFEST, "LICENSE", "README.md", "labs_utils", "notebooks",
                   "pyproject.toml", "requirements.txt"]
    assert sorted(p.name for p in (released / "notebooks").iterdir()) == sorted(
        p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    for instructor_only in release.INSTRUCTOR_ONLY:
        assert not (released / "labs_utils" / instructor_only).exists()
    assert (released / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()


def test_released_package_is_every_tracked_module_except_the_instructor_tools(released):
    tracked = subprocess.run(["git", "ls-files", "labs_utils"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    expected = {path for path in tracked
                if path.split("/")[1] not in release.INSTRUCTOR_ONLY and not path.endswith("/.gitkeep")}
    assert {p for p in tree(released) if p.startswith("labs_utils/")} == expected


def test_no_solution_code_or_written_answer_anywhere_in_the_release(released):
    lines = solution_lines()
    assert len(lines) > 100, "the solutions' blocks should give many lines to search for"
    assert leaks(released, lines) == []


def test_the_leak_search_finds_a_planted_solution_line(released, tmp_path):
    line = sorted(solution_lines())[0]
    planted = tmp_path / "planted"
    shutil.copytree(released / "notebooks", planted)
    path = planted / "lab0_setup_check.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[-1].source += f"\n    {line}"
    nbformat.write(notebook, path)
    assert leaks(planted, {line}) == [f"lab0_setup_check.ipynb: {line}"]


def test_badges_and_set_up_cells_point_at_the_tag_never_at_main(released):
    readme = (released / "README.md").read_text(encoding="utf-8")
    for path in sorted((released / "notebooks").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        badge = colab_badge(f"notebooks/{path.name}", URL, TAG)
        assert notebook.cells[0].source == badge and f"/blob/{TAG}/notebooks/" in badge
        assert next(c for c in notebook.cells if c.cell_type == "code").source == setup_cell_source(URL, TAG)
        assert f"git+{URL}.git@{TAG}" in path.read_text(encoding="utf-8")
        assert colab_url(f"notebooks/{path.name}", URL, TAG) in readme
    for path, content in tree(released).items():
        text = content.decode("utf-8", errors="replace")
        assert "/blob/main/" not in text and labs_utils.REPO_URL not in text, path


def test_student_readme_says_how_to_open_work_and_submit(released):
    readme = (released / "README.md").read_text(encoding="utf-8")
    for needed in ("Save a copy in Drive", "pip install -r requirements.txt && jupyter lab", release.CPU_TORCH,
                   "Restart session and run all", "Download .ipynb", "LeCun", "CC BY-SA 3.0", "MIT"):
        assert needed in readme
    assert "solutions/" not in readme and "labs_utils.grade" not in readme


def test_student_requirements_and_pyproject_keep_the_floors_and_drop_the_developer_tools(released):
    import tomllib
    student, course = (tomllib.loads((folder / "pyproject.toml").read_text("utf-8")) for folder in (released, ROOT))
    assert student["project"]["dependencies"] == course["project"]["dependencies"]
    assert "tool" in student and set(student["tool"]) == {"setuptools"}
    assert "grading" not in student["project"]["optional-dependencies"]
    requirements = (released / "requirements.txt").read_text("utf-8").splitlines()
    course_lines = (ROOT / "requirements.txt").read_text("utf-8").splitlines()
    packages = [ln for ln in requirements if ln and not ln.startswith("#")]
    assert packages[-1] == "-e ." and all(ln in course_lines for ln in packages)
    assert not any(ln.startswith(("pytest", "nbval", "nbclient")) for ln in packages)


def test_released_package_imports_without_the_instructor_tools(released):
    code = ("import importlib, pkgutil, labs_utils\n"
            "names = [m.name for m in pkgutil.walk_packages(labs_utils.__path__, 'labs_utils.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "from labs_utils.checks import check_noise, check_checkpointing, check_optimizer\n"
            "print(labs_utils.__file__, labs_utils.REPO_URL, len(names))")
    out = subprocess.run([sys.executable, "-c", code], cwd=released, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(released)})
    assert out.returncode == 0, out.stderr
    file, url, count = out.stdout.split()
    assert Path(file).resolve().is_relative_to(released.resolve()) and url == URL and int(count) > 15


def test_student_repository_builds_the_wheel_colab_installs(released, tmp_path):
    """What the set-up cell's ``pip install git+URL.git@TAG`` builds: the modules, the bundled digits, no tools."""
    repo = tmp_path / "repo"
    shutil.copytree(released, repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {"PIP_CONFIG_FILE": os.devnull}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(repo),
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True, env=env, cwd=tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("labs_utils-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "labs_utils/_data/mnist_subset.npz" in names and "labs_utils/lab1_autoencoders/checks.py" in names
    assert not [n for n in names if n.startswith("labs_utils/instructor") or n == "labs_utils/grade.py"]


# ----------------------------------------------------------------------------- rebuilds and the release folder

def test_rebuild_is_byte_identical_in_place_and_in_a_new_folder(source, released, tmp_path):
    before = tree(released)
    assert release.release(released, URL, TAG, source) == ([], [])
    assert tree(released) == before
    release.release(tmp_path / "again", URL, TAG, source)
    assert tree(tmp_path / "again") == before


def test_rebuild_keeps_files_the_release_did_not_write_and_removes_what_it_no_longer_writes(source, tmp_path):
    out = tmp_path / "repo"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    release.release(out, URL, TAG, source)
    (out / "NOTES.md").write_text("my notes")
    manifest = json.loads((out / release.MANIFEST).read_text())
    (out / "notebooks" / "old_lab.ipynb").write_text("{}")  # as if an earlier release had shipped it
    manifest["files"]["notebooks/old_lab.ipynb"] = release._sha256(b"{}")
    (out / release.MANIFEST).write_text(json.dumps(manifest))
    written, removed = release.release(out, URL, TAG, source)
    assert (written, removed) == ([], ["notebooks/old_lab.ipynb"])
    assert (out / "NOTES.md").read_text() == "my notes" and (out / ".git" / "HEAD").exists()


def test_a_folder_with_other_files_is_refused_and_left_alone(source, tmp_path):
    (tmp_path / "thesis.tex").write_text("mine")
    with pytest.raises(release.ReleaseError, match=r"not empty \(thesis.tex\).*new or empty folder"):
        release.release(tmp_path, URL, TAG, source)
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_a_released_file_edited_since_is_never_overwritten(source, tmp_path):
    out = tmp_path / "repo"
    release.release(out, URL, TAG, source)
    (out / "README.md").write_text("my edits")
    manifest = (out / release.MANIFEST).read_bytes()
    with pytest.raises(release.ReleaseError, match="README.md was edited after the last release"):
        release.release(out, URL, "v2026.2", source)
    assert (out / "README.md").read_text() == "my edits" and (out / release.MANIFEST).read_bytes() == manifest


def test_a_file_in_the_way_that_no_release_wrote_is_refused(source, tmp_path):
    out = tmp_path / "repo"
    release.release(out, URL, TAG, source)
    manifest = json.loads((out / release.MANIFEST).read_text())
    del manifest["files"]["LICENSE"]
    (out / release.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(release.ReleaseError, match="LICENSE exists but no release wrote it"):
        release.release(out, URL, TAG, source)


@pytest.mark.parametrize("url, ref, message", [
    (URL, "main", "tag the version you tested"),
    (URL, "v1 beta", "not a usable git tag"),
    (URL + ".git", TAG, "without a trailing '.git'"),
    ("https://gitlab.com/acme/labs", TAG, "GitHub address"),
])
def test_bad_address_or_ref_is_refused_with_the_fix(source, tmp_path, url, ref, message):
    with pytest.raises(ValueError, match=message):
        release.release(tmp_path / "out", url, ref, source)
    assert not (tmp_path / "out").exists()


def test_command_line_release_reports_errors_with_exit_code_2(tmp_path, capsys):
    assert notebooks.main(["release", str(tmp_path / "out"), "--repo-url", URL, "--ref", "main"]) == 2
    assert "git tag" in capsys.readouterr().err


def test_release_refuses_solutions_whose_set_up_cell_is_out_of_date(source, tmp_path):
    stale = tmp_path / "course"
    shutil.copytree(source, stale, ignore=shutil.ignore_patterns("labs_utils"))
    (stale / "labs_utils").mkdir()
    path = stale / "solutions" / "lab0_setup_check.ipynb"
    notebook = nbformat.read(path, as_version=4)
    next(c for c in notebook.cells if c.cell_type == "code").source = "# Set-up: an old version"
    nbformat.write(notebook, path)
    with pytest.raises(release.ReleaseError, match="sync-setup"):
        release.release(tmp_path / "out", URL, TAG, stale)


# ----------------------------------------------------------------------------- sync-setup

def test_sync_setup_rewrites_only_an_outdated_set_up_cell_and_clears_its_outputs(tmp_path):
    solution = gf.toy_solution(1)
    solution.cells[1].source = "# Set-up: the old cell\nprint('old')"
    gf.write(solution, tmp_path / "lab1_toy.ipynb")
    gf.write(gf.toy_solution(2), tmp_path / "lab2_toy.ipynb")
    assert notebooks.sync_setup(tmp_path) == [tmp_path / "lab1_toy.ipynb"]
    synced = nbformat.read(tmp_path / "lab1_toy.ipynb", as_version=4)
    assert synced.cells[1].source == setup_cell_source() and synced.cells[1].outputs == []
    assert [c.source for c in synced.cells[2:]] == [c.source for c in solution.cells[2:]]
    assert synced.cells[3].outputs == solution.cells[3].outputs
    assert notebooks.sync_setup(tmp_path) == []


def test_sync_setup_refuses_a_notebook_without_a_set_up_cell(tmp_path):
    solution = gf.toy_solution(1)
    solution.cells[1].source = "import os"
    gf.write(solution, tmp_path / "lab1_toy.ipynb")
    with pytest.raises(notebooks.SolutionMarkerError, match="not a set-up cell"):
        notebooks.sync_setup(tmp_path)
