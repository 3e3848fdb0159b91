"""The Colab set-up cell, run for real with pip replaced: nothing to do, pip failing, pip changing a loaded package."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess

import numpy
import pytest
import torch  # loaded, so the cell compares its version too (torch.__version__ may carry "+cu..." or "+cpu")

import labs_utils
from labs_utils.instructor import colab

URL, TAG = "https://github.com/acme/dl-labs-2026", "v2026.1"


def run_cell(monkeypatch, pip_result: subprocess.CompletedProcess | None, versions: dict | None = None) -> list:
    """Execute the set-up cell as if labs_utils were missing (pip_result given) or installed; returns pip calls."""
    calls = []
    if pip_result is not None:
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "labs_utils" else real_find_spec(name, *a))

    def fake_run(args, **kwargs):
        calls.append(args)
        return pip_result

    monkeypatch.setattr(subprocess, "run", fake_run)
    if versions:
        real_version = importlib.metadata.version
        monkeypatch.setattr(importlib.metadata, "version", lambda name: versions.get(name) or real_version(name))
    exec(colab.setup_cell_source(URL, TAG), {})
    return calls


def test_where_labs_utils_is_installed_the_cell_only_prints_its_version(monkeypatch, capsys):
    assert run_cell(monkeypatch, None) == []
    assert capsys.readouterr().out == f"Course helpers ready: labs_utils {labs_utils.__version__} ({TAG})\n"


def test_the_cell_installs_from_the_address_at_the_tag(monkeypatch, capsys):
    calls = run_cell(monkeypatch, subprocess.CompletedProcess([], 0, "", ""))
    assert calls[0][-1] == f"git+{URL}.git@{TAG}" and calls[0][1:4] == ["-m", "pip", "install"]
    out = capsys.readouterr().out
    # torch is loaded and pip "installed" nothing new: the cell compares the loaded version with the installed
    # metadata without its local label ("+cu130"), so the two must agree for "no restart" to be the right answer
    assert importlib.metadata.version("torch").split("+")[0] == torch.__version__.split("+")[0]
    assert "RESTART" not in out and out.endswith(f"labs_utils {labs_utils.__version__} ({TAG})\n")


def test_a_failing_pip_shows_its_messages_and_stops_the_notebook(monkeypatch, capsys):
    error = "ERROR: Could not find a version that satisfies the requirement torch>=99"
    with pytest.raises(RuntimeError, match="pip could not install the course helpers"):
        run_cell(monkeypatch, subprocess.CompletedProcess([], 1, "Collecting ...", error))
    assert error in capsys.readouterr().out


def test_pip_changing_an_already_loaded_package_asks_for_a_restart(monkeypatch, capsys):
    assert numpy.__version__ != "0.0.1"  # numpy is loaded: pip "replaces" it under the running session
    run_cell(monkeypatch, subprocess.CompletedProcess([], 0, "", ""), versions={"numpy": "0.0.1"})
    out = capsys.readouterr().out
    assert "RESTART NEEDED: pip changed numpy " in out and "Runtime > Restart session" in out


def test_without_a_tag_the_cell_installs_the_default_branch():
    assert f'"git+{labs_utils.REPO_URL}.git"' in colab.setup_cell_source()


@pytest.mark.parametrize("ref", ["v1 beta", "v1..2", "-x", "v1@x", ""])
def test_unusable_tags_are_refused(ref):
    with pytest.raises(ValueError, match="not a usable git tag"):
        colab.check_ref(ref)


@pytest.mark.parametrize("url, message", [(URL + "/", "trailing"), ("http://github.com/a/b", "GitHub address"),
                                          ("https://github.com/only-owner", "GitHub address")])
def test_repository_address_must_be_a_github_repository(url, message):
    with pytest.raises(ValueError, match=message):
        colab.setup_cell_source(url, TAG)


def test_no_line_of_the_cell_looks_like_a_shell_command_or_magic():
    # IPython (and the grader, which skips shell commands) read a line starting with ! or % as one.
    lines = colab.setup_cell_source(URL, TAG).split("\n")
    assert not [line for line in lines if line.lstrip().startswith(("!", "%"))]
