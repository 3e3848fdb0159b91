"""Lazy attribute access for packages: a submodule (and torch behind it) loads on first use.

Used by ``labs_utils`` itself, by each lab's wing and by the ``labs_utils.checks`` façade, so that
``import labs_utils`` stays cheap and importing one lab's check loads no other lab.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_module(package: str, submodules: Iterable[str], exports: Mapping[str, str],
                public: Iterable[str] = (), base: str | None = None,
                ) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for the module named ``package``.

    ``submodules`` load as attributes (``package.name``); ``exports`` maps a name to the submodule
    (relative to ``base``, by default ``package``) that defines it. ``public`` adds names the module
    defines itself.
    """
    base = base or package
    submodules = tuple(submodules)
    everything = sorted({*public, *submodules, *exports})

    def __getattr__(name: str) -> Any:
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        if name in exports:
            module = importlib.import_module(f"{base}.{exports[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(everything)

    return __getattr__, __dir__, everything
