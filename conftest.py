"""pytest runs the notebooks in fast mode and offline-safe, whatever the shell says.

Set here, before nbval starts any kernel, so the kernels inherit it.
"""
import os

os.environ.setdefault("LABS_FAST", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
