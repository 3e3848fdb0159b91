"""Helpers for the deep-learning labs (autoencoders, gradient checkpointing, optimizers).

The core (lab-agnostic) sits at the top level: ``runtime``, ``data``, ``training``, ``plotting``,
``widgets``, ``tables``, ``validation`` and the check machinery ``checking``. Each lab has one wing named
like its notebook (``lab1_autoencoders``, ...), found on disk by :mod:`labs_utils._wings`.
``from labs_utils.checks import check_...`` reaches every lab's checks.

`import labs_utils` is cheap: submodules (and torch) load on first use, so
``labs_utils.load_mnist`` works without importing every helper up front.
"""
from __future__ import annotations

from ._lazy import lazy_module
from ._wings import wings

__version__ = "0.1.0"

# Where the course lives. The Colab set-up cell and the README badges are generated
# from this one constant (see labs_utils/instructor/colab.py); change it here when the repository moves.
REPO_URL = "https://github.com/dl-frameworks-course/dl-frameworks-labs"

# What students see (``lu.<TAB>``): the core and every lab's wing (found on disk). The instructor tools
# (``labs_utils.instructor``, ``python -m labs_utils.grade``, ``python -m labs_utils.notebooks``) import
# explicitly and are not listed.
_SUBMODULES = (
    "runtime", "data", "training", "plotting", "widgets", "tables", "validation",
    "checking", "exercises", "evidence", "checks", *wings(),
)

# Public helpers re-exported at the top level: name -> submodule that defines it.
_EXPORTS = {
    "setup_lab": "runtime",
    "set_seed": "runtime",
    "get_device": "runtime",
    "fast_mode": "runtime",
    "by_mode": "runtime",
    "load_mnist": "data",
    "make_loaders": "data",
    "tensor_loader": "data",
    "mnist_source": "data",
    "fit": "training",
    "evaluate": "training",
    "History": "training",
    "count_parameters": "training",
    "apply_in_batches": "training",
    "show_images": "plotting",
    "plot_history": "plotting",
    "plot_curves": "plotting",
    "markdown_table": "tables",
}

__getattr__, __dir__, __all__ = lazy_module(__name__, _SUBMODULES, _EXPORTS, public=("REPO_URL", "__version__"))
