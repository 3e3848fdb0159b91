"""Evidence: what a probe measured in the student's kernel, as plain JSON that the grader can trust to parse.

A probe runs the student's code and returns evidence (numbers, strings, lists, dicts, tensors); the
judge compares it with the references in the grader's own process. Evidence crosses from an untrusted
kernel to the grader, so it travels as JSON (never pickle) and :func:`decode` accepts only this format:

- ``None``, ``bool``, ``int``, ``str``, lists, and dicts with string keys;
- floats, with ``nan``/``inf`` written as ``{"__float__": "nan"}``;
- tensors as ``{"__tensor__": {"dtype": "float32", "shape": [2, 3], "data": "<base64 of the raw bytes>"}}``
  (a few numeric dtypes; the byte count must match the shape).
Tuples become lists. Sizes and nesting depth are capped.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from typing import Any

import numpy as np

MAX_BYTES = 64 * 2**20  # of the encoded JSON text
MAX_DEPTH = 32
MAX_DIMENSIONS = 64  # numpy's limit
MAX_ELEMENTS = MAX_BYTES  # of one tensor, empty ones included (a shape like [2**40, 0] is not evidence)
# name -> numpy dtype; torch's dtype of the same name (torch.float64, ...) is looked up only where a tensor is made:
# evidence without tensors (a toy lab's) is encoded and decoded without importing torch.
_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16, "int64": np.int64,
           "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def _torch():
    import torch

    return torch


class EvidenceError(ValueError):
    """Evidence that is not in the format above (a broken probe, or a kernel that sent something else)."""


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-ready plain data (tensors and non-finite floats tagged as described above)."""
    if depth > MAX_DEPTH:
        raise EvidenceError(f"evidence nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    torch = sys.modules.get("torch")  # no tensor exists before torch is imported
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        name = str(tensor.dtype).removeprefix("torch.")
        if name not in _DTYPES:
            tensor = tensor.to(torch.float64 if tensor.is_floating_point() else torch.int64)
            name = str(tensor.dtype).removeprefix("torch.")
        return {"__tensor__": {"dtype": name, "shape": list(tensor.shape),
                               "data": base64.b64encode(tensor.numpy().tobytes()).decode("ascii")}}
    if isinstance(value, np.ndarray):
        return to_plain(_torch().from_numpy(np.ascontiguousarray(value)), depth)
    if isinstance(value, np.generic):
        return to_plain(value.item(), depth)
    if isinstance(value, (list, tuple)):
        return [to_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise EvidenceError("evidence dicts need string keys")
        return {k: to_plain(v, depth + 1) for k, v in value.items()}
    raise EvidenceError(f"evidence cannot hold a {type(value).__name__}")


def encode(value: Any) -> str:
    """Evidence -> JSON text."""
    text = json.dumps(to_plain(value), allow_nan=False, separators=(",", ":"))
    if len(text) > MAX_BYTES:
        raise EvidenceError(f"evidence of {len(text)} bytes is over the {MAX_BYTES}-byte limit")
    return text


def _tensor(spec: Any) -> Any:
    """A torch.Tensor from its checked description."""
    if not (isinstance(spec, dict) and set(spec) == {"dtype", "shape", "data"}):
        raise EvidenceError("a tensor needs exactly dtype, shape and data")
    dtype, shape, data = spec["dtype"], spec["shape"], spec["data"]
    if dtype not in _DTYPES or not isinstance(data, str):
        raise EvidenceError(f"unknown tensor dtype {dtype!r}")
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMENSIONS
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_ELEMENTS for n in shape)):
        raise EvidenceError(f"a tensor's shape must be a list of at most {MAX_DIMENSIONS} non-negative ints")
    if math.prod(n for n in shape if n) > MAX_ELEMENTS:
        raise EvidenceError(f"a tensor of shape {shape} is larger than any evidence")
    numpy_dtype = _DTYPES[dtype]
    if len(data) != 4 * math.ceil(math.prod(shape) * np.dtype(numpy_dtype).itemsize / 3):
        raise EvidenceError(f"a {dtype} tensor of shape {shape} cannot have {len(data)} characters of data")
    try:
        raw = base64.b64decode(data.encode("ascii"), validate=True)
        array = np.frombuffer(raw, dtype=numpy_dtype).reshape(shape).copy()
    except (binascii.Error, UnicodeError, ValueError, TypeError, OverflowError) as exc:
        raise EvidenceError(f"a {dtype} tensor of shape {shape} has malformed data ({type(exc).__name__})") from None
    return _torch().from_numpy(array)


def from_plain(value: Any, depth: int = 0) -> Any:
    """Inverse of :func:`to_plain`, strict: anything else raises :class:`EvidenceError`."""
    if depth > MAX_DEPTH:
        raise EvidenceError(f"evidence nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [from_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            if value["__float__"] not in ("nan", "inf", "-inf"):
                raise EvidenceError(f"unknown float {value['__float__']!r}")
            return float(value["__float__"])
        if set(value) == {"__tensor__"}:
            return _tensor(value["__tensor__"])
        return {k: from_plain(v, depth + 1) for k, v in value.items()}
    raise EvidenceError(f"unexpected {type(value).__name__} in evidence")


def decode(text: str | bytes) -> Any:
    """JSON text -> evidence; raises :class:`EvidenceError` for anything that is not valid evidence."""
    if len(text) > MAX_BYTES:
        raise EvidenceError(f"evidence of {len(text)} bytes is over the {MAX_BYTES}-byte limit")
    try:
        plain = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise EvidenceError(f"evidence is not JSON: {exc}") from None
    try:
        return from_plain(plain)
    except EvidenceError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:  # anything else: still evidence
        raise EvidenceError(f"evidence that cannot be read ({type(exc).__name__}: {exc})") from None
