"""Installing the course in Colab changes none of the packages Colab preinstalls.

``tests/colab_constraints.txt`` holds Colab's versions. Colab's pip keeps an installed package whenever it
satisfies the requirements (its default upgrade strategy), so "nothing changes" is the same as "the course
resolves with every Colab version pinned". Two checks:

- offline: every floor in pyproject.toml and requirements.txt admits Colab's version (``packaging``);
- on Colab's stack itself: ``.ci/run`` builds an environment with exactly Colab's versions (and every other floor,
  ``scripts/colab_stack.py``), executes every solution there, and sets LABS_COLAB_ENV; ``pip install --dry-run`` of
  the course package in it must install the course and change nothing else (what Colab's pip does: it keeps an
  installed package while it satisfies the requirements). Without that environment these tests skip, except
  under CI, where that is a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tooling import unavailable

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "tests" / "colab_constraints.txt"
COLAB_PACKAGES = {"ipywidgets", "ipykernel", "ipython", "numpy", "matplotlib", "tqdm", "torch"}


def colab_versions() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{line}: the constraints file pins exact versions"
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def course_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    lines += [ln.split("#")[0].strip() for ln in (ROOT / "requirements.txt").read_text().splitlines()]
    return [Requirement(ln) for ln in lines if ln and not ln.startswith("-")]


def test_constraints_file_lists_every_package_colab_preinstalls():
    assert set(colab_versions()) == COLAB_PACKAGES


def test_every_floor_admits_the_version_colab_ships_and_nothing_is_pinned():
    pins = colab_versions()
    checked = set()
    for requirement in course_requirements():
        assert all(spec.operator in (">=", ">", "!=", "<", "<=") for spec in requirement.specifier), (
            f"{requirement}: use version floors, never pins")
        name = canonicalize_name(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{requirement} would make Colab replace its {name} {pins[name]}: lower the floor")
            checked.add(name)
    assert {"torch", "numpy", "matplotlib", "tqdm", "ipywidgets", "ipykernel"} <= checked


def test_every_floor_is_a_version_ci_executes():
    """A floor nobody runs is a promise nobody checks: each Colab package's floor is Colab's version, and every other
    package's floor is the version the Colab-stack environment of ``.ci/run`` installs (scripts/colab_stack.py)."""
    pins = colab_versions()
    floors: dict[str, set] = {}
    for requirement in course_requirements():
        floors.setdefault(canonicalize_name(requirement.name), set()).update(
            spec.version for spec in requirement.specifier if spec.operator == ">=")
    for name, versions in floors.items():
        assert len(versions) == 1, f"{name} has different floors in pyproject.toml and requirements.txt: {versions}"
        if name in pins:
            assert versions == {pins[name]}, (f"{name}>={versions.pop()} is below Colab's {pins[name]}, which is the "
                                              "oldest version CI executes: raise the floor to it")
    stack = subprocess.run([sys.executable, str(ROOT / "scripts" / "colab_stack.py"), "constraints"],
                           capture_output=True, text=True, check=True).stdout.split()
    executed = {canonicalize_name(line.split("==")[0]): line.split("==")[1] for line in stack}
    assert {name for name in floors if name != "jupyterlab"} <= set(executed)
    assert all(executed[name] == next(iter(floors[name])) or executed[name] == pins.get(name)
               for name in executed if name in floors)


def colab_env() -> Path:
    """The environment ``.ci/run`` builds with Colab's exact versions (and every other floor): LABS_COLAB_ENV."""
    env = Path(os.environ.get("LABS_COLAB_ENV", "/nonexistent"))
    if not (env / ".complete").exists():
        unavailable("there is no Colab-stack environment here (LABS_COLAB_ENV)",
                    "run `bash .ci/run`, which builds it from tests/colab_constraints.txt and the floors and sets it")
    return env


def would_install(env: Path, tmp_path: Path, *targets: str) -> dict[str, str]:
    """What ``pip install TARGETS`` would install or replace in ``env``, as Colab's pip runs it (installed packages
    are kept while they satisfy the requirements): name -> version. Reads the index, installs nothing."""
    report = tmp_path / "report.json"
    command = [str(env / "bin" / "python"), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
               *targets]
    # A budget, not the thing under test: metadata only, from the local pip cache or the index.
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, f"pip could not resolve {targets} on Colab's stack:\n{result.stderr[-3000:]}"
    found = json.loads(report.read_text())
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in found["install"]}


@pytest.mark.network
@pytest.mark.slow
def test_the_colab_stack_environment_holds_exactly_colabs_versions():
    env = colab_env()
    script = ROOT / "scripts" / "colab_stack.py"
    result = subprocess.run([str(env / "bin" / "python"), str(script), "verify"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for name, version in colab_versions().items():
        assert f"{name} {version}" in result.stdout


@pytest.mark.network
@pytest.mark.slow
def test_installing_the_course_on_colabs_stack_changes_no_package(tmp_path):
    changes = would_install(colab_env(), tmp_path, str(ROOT))
    assert changes.pop("labs-utils") and changes == {}, f"installing the course would change {changes} on Colab"


@pytest.mark.network
@pytest.mark.slow
def test_a_floor_above_colabs_version_would_change_a_package(tmp_path):
    changes = would_install(colab_env(), tmp_path, "ipywidgets>=8.0")
    assert "ipywidgets" in changes and not changes["ipywidgets"].startswith("7.")
