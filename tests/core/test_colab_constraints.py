"""Installing the course in Colab changes none of the packages Colab preinstalls.

``tests/colab_constraints.txt`` holds Colab's versions. Colab's pip keeps an installed package whenever it
satisfies the requirements (its default upgrade strategy), so "nothing changes" is the same as "the course
resolves with every Colab version pinned". Two checks:

- offline: every floor in pyproject.toml and requirements.txt admits Colab's version (``packaging``);
- against PyPI: ``pip install --dry-run`` of the course package with the constraints file, which also checks what
  the course's dependencies require in turn (ipywidgets 7.7.1 -> ipykernel, IPython, ...). It downloads
  metadata only (about a minute, no torch wheel). It is skipped when PyPI cannot be reached, except under CI
  (``CI`` set, as ``.ci/run`` does), where that is a failure.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
    tomllib = pytest.importorskip("tomllib")
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


def pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


def pip_dry_run(tmp_path: Path, *targets: str) -> subprocess.CompletedProcess:
    """``pip install --dry-run`` of ``targets`` from PyPI with Colab's versions as constraints, as if nothing
    were installed; the machine's own pip configuration (local indexes, constraints) is ignored."""
    keep = {"PIP_CERT", "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-build-isolation",
               "--quiet", "--report", str(tmp_path / "report.json"), "-c", str(CONSTRAINTS), *targets]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)


@pytest.fixture(scope="module")
def online():
    if not pypi_reachable():
        if os.environ.get("CI"):
            pytest.fail("PyPI cannot be reached: CI must resolve the course against Colab's versions")
        pytest.skip("PyPI cannot be reached: the resolution against Colab's versions needs the index")


@pytest.mark.network
def test_course_package_resolves_with_every_colab_version_unchanged(online, tmp_path):
    result = pip_dry_run(tmp_path, str(ROOT))
    assert result.returncode == 0, f"installing the course would change a Colab package:\n{result.stderr}"
    report = json.loads((tmp_path / "report.json").read_text())
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}
    print("resolved against Colab's versions:", {name: resolved[name] for name in sorted(COLAB_PACKAGES)})
    assert {name: resolved.get(name) for name in COLAB_PACKAGES} == colab_versions()
    assert resolved["labs-utils"]


@pytest.mark.network
def test_the_resolution_fails_for_a_floor_above_colab(online, tmp_path):
    result = pip_dry_run(tmp_path, "ipywidgets>=8.0")
    assert result.returncode != 0 and "ipywidgets" in result.stderr
