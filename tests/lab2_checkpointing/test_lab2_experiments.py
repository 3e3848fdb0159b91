"""Lab 2's notebook-side experiments (labs_utils/lab2_checkpointing/experiments.py) where a platform differs."""


def test_first_checkpoint_cost_measures_without_the_resource_module(monkeypatch):
    """Windows has no ``resource``: the peak working set comes from psutil, or the cost is NaN, never an error."""
    import math
    import sys
    import types

    from labs_utils.lab2_checkpointing import experiments

    monkeypatch.setitem(sys.modules, "resource", None)  # import resource -> ImportError, as on Windows
    peaks = iter([100 * 2**20, 150 * 2**20])
    fake = types.SimpleNamespace(Process=lambda: types.SimpleNamespace(
        memory_info=lambda: types.SimpleNamespace(peak_wset=next(peaks))))
    monkeypatch.setitem(sys.modules, "psutil", fake)
    modules, mib = experiments.first_checkpoint_cost()
    assert modules >= 0 and mib == 50
    monkeypatch.setitem(sys.modules, "psutil", None)
    assert math.isnan(experiments.first_checkpoint_cost()[1])
