"""Measure the memory of a forward + backward pass, on the CPU as on a GPU.

``track_memory(device, params=...)`` is one context manager for every device. Inside it, every
tensor operation is seen by a ``TorchDispatchMode``; after each one (and whenever a tensor's memory
is released) it records a sample of the bytes allocated since the ``with`` began:

- on ``cuda``: ``torch.cuda.memory_allocated`` minus its value on entry; the peak is
  ``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats`` on entry, so
  it also sees the short-lived workspaces inside an operation;
- on ``cpu`` (and ``mps``): the exact sum of the live tensor *storages* created inside the block,
  each followed by a weak-reference finalizer that fires when its memory is released. Views share
  their storage and count once. This is deterministic: the same code gives the same bytes on every
  run. It does not see scratch memory inside one operation nor the allocator's rounding.

Parameters (allocated before the block) are reported apart, and so are the parameter gradients
created inside it; what remains is activations: tensors saved for backward, outputs and temporaries.
Each sample carries its phase, found without help from the caller: ``forward``; ``backward`` (the
autograd engine is running, grad mode off); ``recompute`` (the engine is running with grad mode
on: a checkpointed segment being replayed). Whether the engine is running comes from torch's private
``torch._C._current_graph_task_id``; should a torch release remove it, the phases come from the
caller's ``tracker.mark("backward")`` instead (``measure_step`` makes that mark), and
``tests/lab2_checkpointing/test_lab2_tracker.py`` fails to say so.

Why not the process RSS or the torch profiler? RSS moves with the allocator's reuse and with
imported modules, and the profiler's per-operator memory is total allocation, not the peak.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import as_device

try:  # a private module: torch has no public way to see every operation, so it is imported here only
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError as error:  # pragma: no cover - depends on the torch release
    raise ImportError(
        f"labs_utils.lab2_checkpointing.tracker needs torch.utils._python_dispatch.TorchDispatchMode, which torch "
        f"{torch.__version__} does not have: install the torch version of requirements.txt, or update "
        "labs_utils/lab2_checkpointing/tracker.py."
    ) from error

MiB = 2 ** 20
PHASES = ("forward", "backward", "recompute")
_STORAGE_METHOD = "live tensor storages (TorchDispatchMode + weakref finalizers)"
_CUDA_METHOD = "torch.cuda.memory_allocated / max_memory_allocated"


@dataclass(frozen=True)
class MemoryReport:
    """What :func:`track_memory` measured; every figure is in bytes.

    ``timeline[i]``: bytes allocated inside the block and alive after event ``i`` (an operation or a
    release), parameters excluded; ``grad_timeline[i]``: the part of it that is parameter gradients;
    ``phases[i]``: "forward", "backward" or "recompute"; ``marks``: (event index, label) from
    :meth:`MemoryTracker.mark`.
    """

    device: str
    method: str
    param_bytes: int
    grad_bytes: int
    timeline: np.ndarray
    grad_timeline: np.ndarray
    phases: tuple
    marks: tuple
    peak_allocated_bytes: int

    @property
    def peak_bytes(self) -> int:
        """Parameters + the peak of everything allocated in the block: what the step needs."""
        return self.param_bytes + self.peak_allocated_bytes

    @property
    def activation_timeline(self) -> np.ndarray:
        """Bytes of activations (saved tensors, outputs, temporaries) after each event."""
        return self.timeline - self.grad_timeline

    @property
    def peak_activation_bytes(self) -> int:
        """Peak of the activations alone: what checkpointing reduces."""
        return int(self.activation_timeline.max())

    def bytes_at(self, label: str) -> int:
        """Bytes allocated in the block and alive when :meth:`MemoryTracker.mark` ``(label)`` was called."""
        for index, name in self.marks:
            if name == label:
                return int(self.timeline[index]) if index >= 0 else 0
        known = ", ".join(repr(name) for _, name in self.marks) or "none"
        raise KeyError(f"no mark {label!r} in this report (marks: {known})")

    def summary(self) -> str:
        """One line in MiB, e.g. for a print in the notebook."""
        return (f"peak {self.peak_bytes / MiB:.1f} MiB = parameters {self.param_bytes / MiB:.1f} + "
                f"allocated in the step {self.peak_allocated_bytes / MiB:.1f} "
                f"(activations alone peak at {self.peak_activation_bytes / MiB:.1f}; "
                f"gradients at the end {self.grad_bytes / MiB:.1f}) [{self.device}]")


def _storage_nbytes(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().nbytes()


def _has_storage(value: object) -> bool:
    return isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_meta


# Private torch API, -1 unless the autograd engine is running; None if a torch release drops it, and then
# the phases follow tracker.mark("backward").
_graph_task_id: Callable[[], int] | None = getattr(torch._C, "_current_graph_task_id", None)


def _current_phase(backward_marked: bool) -> str:
    in_backward = _graph_task_id() != -1 if _graph_task_id is not None else backward_marked
    if not in_backward:
        return "forward"
    return "recompute" if torch.is_grad_enabled() else "backward"


def _tensors(value: object) -> list:
    """The tensors in an operation's arguments or results (nested in tuples, lists and dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return _tensors(list(value.values()))
    return []


class _Recorder(TorchDispatchMode):
    """Sees every operation; keeps one record per live storage created inside the block."""

    def __init__(self, tracker: MemoryTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.tracker._after_op(_tensors((args, kwargs)), _tensors(out))
        return out


class _CudaStatistics:
    """The CUDA caching allocator's own count of bytes in use, relative to the start of the block."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = 0

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.baseline = torch.cuda.memory_allocated(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device) - self.baseline

    def peak(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - self.baseline


class MemoryTracker:
    """Context manager returned by :func:`track_memory`; read :meth:`report` after the block."""

    _active: MemoryTracker | None = None

    def __init__(self, device: torch.device, params: Sequence[torch.Tensor]) -> None:
        self.device = device
        self.params = list(params)
        self._mode: _Recorder | None = None
        self._records: dict = {}  # id(storage) -> (nbytes, weak reference) of each live storage
        self._allocated_at: dict = {}  # id(storage) -> event index of its allocation (kept after release)
        self._live = 0
        self._timeline: list = []
        self._phases: list = []
        self._marks: list = []
        self._backward_marked = False
        self._report: MemoryReport | None = None
        self._failed = False
        self._cuda = _CudaStatistics(device) if device.type == "cuda" else None

    # -- recording -------------------------------------------------------------------------------
    def _on_device(self, tensor: torch.Tensor) -> bool:
        # torch.device("mps") has no index while its tensors say mps:0
        return tensor.device.type == self.device.type and self.device.index in (None, tensor.device.index)

    def _sample(self) -> None:
        self._timeline.append(self._live if self._cuda is None else self._cuda.allocated())
        self._phases.append(_current_phase(self._backward_marked))

    def _after_op(self, inputs: list, outputs: list) -> None:
        seen = {id(t.untyped_storage()) for t in inputs if _has_storage(t)}
        for tensor in outputs:
            if not _has_storage(tensor) or not self._on_device(tensor):
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in seen or key in self._records:
                continue  # a view or an in-place result: its memory is already counted (or not ours)
            seen.add(key)
            nbytes = storage.nbytes()
            self._records[key] = (nbytes, weakref.ref(storage, self._released(key)))
            self._allocated_at[key] = len(self._timeline)
            self._live += nbytes
        self._sample()

    def _released(self, key: int):
        def callback(_ref: weakref.ref) -> None:
            record = self._records.pop(key, None)
            if record is not None:
                self._live -= record[0]
                self._sample()
        return callback

    @property
    def events(self) -> int:
        """How many samples the timeline holds so far: the index the next one will get (e.g. to line up a log)."""
        return len(self._timeline)

    def mark(self, label: str) -> None:
        """Name the present moment of the timeline, e.g. ``tracker.mark("backward")`` after the forward."""
        if self._mode is None:
            raise RuntimeError("mark() only works inside the `with track_memory(...)` block")
        self._marks.append((len(self._timeline) - 1, str(label)))
        self._backward_marked = self._backward_marked or str(label) == "backward"

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> MemoryTracker:
        if MemoryTracker._active is not None:
            raise RuntimeError("track_memory blocks cannot be nested: the outer one already records every "
                               "operation. Measure the two steps one after the other instead.")
        if self._timeline or self._failed:
            raise RuntimeError("this tracker has already been used: call track_memory(...) again")
        if self._cuda is not None:
            self._cuda.start()
        MemoryTracker._active = self
        self._mode = _Recorder(self)
        self._mode.__enter__()
        return self

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            self._mode.__exit__(exc_type, exc_value, traceback)
        finally:
            MemoryTracker._active = None
            self._mode = None
            self._failed = exc_type is not None
        try:
            if not self._failed:
                self._report = self._build_report()
        finally:
            self._records.clear()  # drops the weak references: no callback fires after the block

    def _build_report(self) -> MemoryReport:
        if not self._allocated_at:
            raise RuntimeError(f"track_memory recorded nothing: no tensor was created on {self.device} inside "
                               "the `with` block. Run the forward and backward pass inside it, on that device.")
        grad_timeline = np.zeros(len(self._timeline), dtype=np.int64)
        grad_bytes = 0
        for param in self.params:
            if param.grad is None:
                continue
            nbytes = _storage_nbytes(param.grad)
            grad_bytes += nbytes
            start = self._allocated_at.get(id(param.grad.untyped_storage()))
            if start is not None:
                grad_timeline[start:] += nbytes
        timeline = np.asarray(self._timeline, dtype=np.int64)
        peak = int(timeline.max()) if self._cuda is None else self._cuda.peak()
        return MemoryReport(
            device=str(self.device), method=_STORAGE_METHOD if self._cuda is None else _CUDA_METHOD,
            param_bytes=sum(_storage_nbytes(p) for p in self.params), grad_bytes=grad_bytes,
            timeline=timeline, grad_timeline=grad_timeline, phases=tuple(self._phases),
            marks=tuple(self._marks), peak_allocated_bytes=int(peak),
        )

    def report(self) -> MemoryReport:
        """The measurement, available once the ``with`` block has ended without an error."""
        if self._report is not None:
            return self._report
        if self._mode is not None:
            raise RuntimeError("the report is ready when the `with track_memory(...)` block has ended")
        if self._failed:
            raise RuntimeError("no report: the `with track_memory(...)` block raised an exception")
        raise RuntimeError("no report yet: use the tracker in `with track_memory(...) as tracker:` first")


def track_memory(device: object = "cpu", params: Iterable[torch.Tensor] | None = None) -> MemoryTracker:
    """Record the memory of what runs inside ``with track_memory(device, params) as tracker:``.

    ``params``: the parameters (e.g. ``model.parameters()``); their bytes and their gradients are
    reported apart from activations. Only tensors created inside the block count, so create the
    input batch inside it when it should count. Read ``tracker.report()`` after the block.
    """
    return MemoryTracker(as_device(device, what="track_memory"), list(params or ()))


def measure_step(forward: Callable[[torch.Tensor], torch.Tensor], make_input: Callable[[], torch.Tensor],
                 params: Iterable[torch.Tensor], device: object = "cpu",
                 loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> MemoryReport:
    """Memory of one training step: ``loss_fn(forward(make_input()))`` then backward.

    The input is made inside the tracker, so it counts; the loss defaults to ``output.sum()``.
    Parameter gradients are reset to None first, so the step allocates them. The timeline gets
    the mark "backward" where the backward pass starts.
    """
    params = list(params)
    for param in params:
        param.grad = None
    with track_memory(device, params) as tracker:
        output = forward(make_input())
        loss = output.sum() if loss_fn is None else loss_fn(output)
        tracker.mark("backward")
        loss.backward()
    return tracker.report()


