"""The Colab set-up cell and the README badges, both made from ``labs_utils.REPO_URL``.

Every notebook's first code cell must equal :func:`setup_cell_source` (a test checks it):
in Colab it installs labs_utils from the repository; where labs_utils is already
installed (JupyterLab after ``pip install -r requirements.txt``) it does nothing.
"""
from __future__ import annotations

from . import REPO_URL


def setup_cell_source(repo_url: str = REPO_URL) -> str:
    """Source of the first code cell of every lab notebook."""
    install = f"git+{repo_url}.git"
    return (
        "# Set-up: in Colab this installs the course helpers (labs_utils); elsewhere it does nothing.\n"
        "import importlib.util, subprocess, sys\n"
        "if importlib.util.find_spec(\"labs_utils\") is None:\n"
        f"    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\", \"{install}\"], check=True)"
    )


def colab_url(notebook_path: str, repo_url: str = REPO_URL, branch: str = "main") -> str:
    """The Colab address that opens ``notebook_path`` (relative to the repository root) from GitHub."""
    prefix = "https://github.com/"
    if not repo_url.startswith(prefix):
        raise ValueError(f"REPO_URL must be a GitHub address starting with {prefix}, got {repo_url!r}")
    return f"https://colab.research.google.com/github/{repo_url[len(prefix):]}/blob/{branch}/{notebook_path}"


def colab_badge(notebook_path: str, repo_url: str = REPO_URL) -> str:
    """Markdown for an "Open in Colab" badge."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook_path, repo_url)})")
