"""The Colab set-up cell and the "Open in Colab" badges, both made from one repository address.

Every notebook's first code cell must equal :func:`setup_cell_source` (a test checks it). In Colab it
installs labs_utils from the repository, shows pip's messages when that fails, says when the session must
be restarted, and prints the course version; where labs_utils is already installed (JupyterLab after
``pip install -r requirements.txt``, the grader) it only prints the version. The development repository
uses ``labs_utils.REPO_URL`` at its default branch; a student release
(:mod:`labs_utils.instructor.release`) passes its own address and tag.
"""
from __future__ import annotations

import re

from .. import REPO_URL

# Packages Colab preinstalls (and often has imported by the time the cell runs): if pip changes one that is
# already loaded, the old version stays in memory until the session restarts. Versions are compared without
# their local label (torch's "+cu126"), which a package's __version__ and its metadata do not always share.
RESTART_IF_CHANGED = ("torch", "numpy", "matplotlib", "tqdm", "ipywidgets", "ipykernel", "IPython")
_GITHUB = re.compile(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# What git allows in a tag or branch name, minus the characters that would break a pip URL.
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def check_repo_url(repo_url: str) -> str:
    """``repo_url`` if it is a GitHub repository address (https://github.com/OWNER/NAME); else ValueError."""
    if repo_url.endswith((".git", "/")):
        raise ValueError(f"give the repository address without a trailing '.git' or '/', "
                         f"e.g. https://github.com/OWNER/NAME (got {repo_url!r})")
    if not _GITHUB.fullmatch(repo_url):
        raise ValueError(f"the repository must be a GitHub address https://github.com/OWNER/NAME "
                         f"(Colab opens notebooks from GitHub), got {repo_url!r}")
    return repo_url


def check_ref(ref: str) -> str:
    """``ref`` if it can name a git tag or branch inside a pip URL; else ValueError."""
    if not _REF.fullmatch(ref) or ".." in ref or ref.endswith((".", "/", ".lock")):
        raise ValueError(f"{ref!r} is not a usable git tag: use letters, digits and . _ - / only, e.g. v2026.1")
    return ref


def setup_cell_source(repo_url: str = REPO_URL, ref: str | None = None) -> str:
    """Source of the first code cell of every lab notebook: install labs_utils from ``repo_url`` at ``ref``.

    ``ref`` is a git tag or branch; None installs the repository's default branch (development copies).
    """
    install = f"git+{check_repo_url(repo_url)}.git" + (f"@{check_ref(ref)}" if ref else "")
    at = f" ({ref})" if ref else ""
    watched = "(" + ", ".join(f'"{name}"' for name in RESTART_IF_CHANGED) + ")"
    return (
        "# Set-up: in Colab this installs the course helpers (labs_utils); where they are installed it only "
        "prints their version.\n"
        "import importlib, importlib.metadata, importlib.util, subprocess, sys\n"
        "if importlib.util.find_spec(\"labs_utils\") is None:\n"
        f"    print(\"Installing the course helpers from {install} (about a minute)...\")\n"
        f"    pip = subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"{install}\"], "
        "capture_output=True, text=True)\n"
        "    if pip.returncode != 0:\n"
        "        print(pip.stdout, pip.stderr, sep=\"\\n\")\n"
        "        raise RuntimeError(\"pip could not install the course helpers (its messages are above): \"\n"
        "                           \"check the internet connection, then run this cell again.\")\n"
        "    importlib.invalidate_caches()\n"
        f"    loaded = {{m: str(getattr(sys.modules[m], \"__version__\", \"\")).split(\"+\")[0] for m in {watched} "
        "if m in sys.modules}\n"
        "    changed = [m for m, v in loaded.items() if importlib.metadata.version(m.lower()).split(\"+\")[0] != v]\n"
        "    if changed:\n"
        "        print(\"RESTART NEEDED: pip changed\", \", \".join(changed), "
        "\"which this session had already loaded. \"\n"
        "              \"Colab: Runtime > Restart session; JupyterLab: Kernel > Restart Kernel. Then run the notebook "
        "again.\")\n"
        "import labs_utils\n"
        f"print(f\"Course helpers ready: labs_utils {{labs_utils.__version__}}{at}\")"
    )


def colab_url(notebook_path: str, repo_url: str = REPO_URL, ref: str = "main") -> str:
    """The Colab address that opens ``notebook_path`` (relative to the repository root) from GitHub at ``ref``."""
    prefix = "https://github.com/"
    if not repo_url.startswith(prefix):
        raise ValueError(f"REPO_URL must be a GitHub address starting with {prefix}, got {repo_url!r}")
    return f"https://colab.research.google.com/github/{repo_url[len(prefix):]}/blob/{ref}/{notebook_path}"


def colab_badge(notebook_path: str, repo_url: str = REPO_URL, ref: str = "main") -> str:
    """Markdown for an "Open in Colab" badge (the development README's badges open ``main``)."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook_path, repo_url, ref)})")
