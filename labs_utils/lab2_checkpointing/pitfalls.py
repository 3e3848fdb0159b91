"""Where an error of section 6's experiments was raised, for the notebook's printouts."""
from __future__ import annotations

import os
import traceback

import torch

_TORCH_FILES = os.path.dirname(torch.__file__)


def raised_at(error: BaseException) -> str:
    """The innermost frame of ``error``'s traceback outside torch's own files: "`function`, at `line`".

    Errors that autograd raises inside a custom ``backward`` keep the Python frames of that ``backward``,
    so this names the line of the student's code that was running (or the ``.backward()`` call itself).
    """
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_TORCH_FILES)]
    if not frames:
        return "torch's own code"
    return f"`{frames[-1].name}`, at `{(frames[-1].line or '').strip()}`"
