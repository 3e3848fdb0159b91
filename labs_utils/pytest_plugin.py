"""pytest plugin (enabled in pyproject.toml): run the notebooks in fast mode, offline, and mark them slow.

Loaded before collection, so the kernels that nbval starts inherit these settings,
whether pytest runs the whole suite or a single notebook.
"""
import os

os.environ.setdefault("LABS_FAST", "1")
# No download attempts from tests: every run uses the bundled MNIST subset, online or not.
os.environ.setdefault("LABS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# Before nbval imports nbformat: the instructor tools' package makes jsonschema skip its IRI parser (it says why).
import labs_utils.instructor  # noqa: E402,F401


def pytest_configure(config):
    """Under pytest-xdist (``-n``) each worker, and every kernel it starts, uses one thread for torch: two workers
    of two threads each on two cores would spend their time waiting for each other."""
    workers = getattr(config.option, "numprocesses", None)
    if os.environ.get("PYTEST_XDIST_WORKER") or workers not in (None, 0):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Executing a notebook (nbval's items) is slow: ``pytest -m "not slow"`` leaves them out."""
    import pytest

    for item in items:
        if type(item).__module__.startswith("nbval"):
            item.add_marker(pytest.mark.slow)
