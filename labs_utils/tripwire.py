"""Trip-wires: notice when student code calls the reference implementation it is compared against.

An exercise asks students to write an optimizer or a checkpointing Function themselves; calling
``torch.optim.Adam`` (directly, through a subclass, a wrapper, or torch's functional kernels) or
``torch.utils.checkpoint`` instead would pass any comparison. While a probe runs, a profile hook
(``sys.setprofile``, this thread and new threads) records every call that enters those modules' files
or torch's fused optimizer kernels. References held before the probe started are caught too, since
the hook looks at the code that runs, not at names.

This is a deterrent inside a kernel the student controls: code that removes the hook is reported as
well, but a determined attacker can still hide a call (see the README's threat model).
"""
from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# Files of torch.optim that a student's own Optimizer subclass may run: the base class and schedulers.
_OPTIM_ALLOWED = {"__init__.py", "optimizer.py", "lr_scheduler.py", "swa_utils.py"}
HINTS = {
    "torch.optim": "Write the update yourself with tensor operations: subclassing, wrapping or calling a "
                   "torch.optim optimizer (or its functional kernels) is what the check compares against.",
    "torch.utils.checkpoint": "Write the checkpointing yourself in your autograd.Function: calling "
                              "torch.utils.checkpoint is what the check compares against.",
}


def _forbidden_files(references: Sequence[str]) -> tuple[set[str], tuple[str, ...]]:
    """(absolute file names, prefixes of forbidden C functions) for the named references."""
    import torch.optim
    import torch.utils.checkpoint

    files: set[str] = set()
    builtins: tuple[str, ...] = ()
    for reference in references:
        if reference == "torch.optim":
            root = os.path.dirname(os.path.abspath(torch.optim.__file__))
            for folder, _, names in os.walk(root):
                files |= {os.path.join(folder, name) for name in names
                          if name.endswith(".py") and not (folder == root and name in _OPTIM_ALLOWED)}
            builtins += ("_fused_",)
        elif reference == "torch.utils.checkpoint":
            files.add(os.path.abspath(torch.utils.checkpoint.__file__))
        elif reference.startswith("labs_utils."):  # a course helper that does the exercise's work
            import importlib

            files.add(os.path.abspath(importlib.import_module(reference).__file__))
        else:
            raise ValueError(f"no trip-wire for {reference!r}; known: {', '.join(HINTS)} and labs_utils modules")
    return files, builtins


@contextmanager
def trip_wires(references: Sequence[str]) -> Iterator[list[str]]:
    """``with trip_wires(["torch.optim"]) as calls:`` -- afterwards ``calls`` lists what was called.

    Entries look like ``"torch/optim/adam.py: _single_tensor_adam"``; an entry ``"profile hook removed"``
    means the code inside replaced or removed the hook. Does nothing for an empty ``references``.
    """
    calls: list[str] = []
    if not references:
        yield calls
        return
    files, builtin_prefixes = _forbidden_files(references)

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = frame.f_code.co_filename
            if name in files and len(calls) < 20:
                calls.append(f"{'/'.join(name.split(os.sep)[-3:])}: {frame.f_code.co_name}")
        elif event == "c_call" and builtin_prefixes:
            called = getattr(arg, "__name__", "")
            if called.startswith(builtin_prefixes) and len(calls) < 20:
                calls.append(f"torch.{called}")

    previous, previous_threads = sys.getprofile(), threading.getprofile()
    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield calls
    finally:
        if sys.getprofile() is not hook:
            calls.append("profile hook removed")
        sys.setprofile(previous)
        threading.setprofile(previous_threads)


def delegation_message(references: Sequence[str], calls: Sequence[str]) -> str:
    """The message a student sees when a trip-wire fired."""
    hint = " ".join(HINTS.get(r, f"Write the measurement yourself: no function of {r} may run in this exercise "
                                 "(the landscapes, runs and sweeps included); build what you need with torch.")
                    for r in references)
    what = ("the reference implementation it is compared against" if any(r in HINTS for r in references)
            else "a course helper this exercise asks you to write yourself")
    return f"Your code called {what} ({'; '.join(calls[:3])}).\nHint: {hint}"
