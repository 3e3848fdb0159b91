"""Helpers for the deep-learning labs (autoencoders, gradient checkpointing, optimizers).

`import labs_utils` is cheap: submodules (and torch) load on first use, so
``labs_utils.load_mnist`` works without importing every helper up front.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Where the course lives. The Colab set-up cell and the README badges are generated
# from this one constant (see labs_utils/colab.py); change it here when the repository moves.
REPO_URL = "https://github.com/dl-frameworks-course/dl-frameworks-labs"

_SUBMODULES = (
    "runtime", "data", "training", "plotting", "widgets", "checks", "colab",
    "autoencoders", "memory", "checkpoint_demo", "landscapes", "convergence", "notebooks", "grade",
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
    "show_images": "plotting",
    "plot_history": "plotting",
    "plot_curves": "plotting",
}

__all__ = ["REPO_URL", "__version__", *_SUBMODULES, *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'labs_utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
