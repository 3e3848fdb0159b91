"""Measure the memory of a forward + backward pass, on the CPU as on a GPU (Lab 2).

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
``tests/test_memory.py`` fails to say so.

Why not the process RSS or the torch profiler? RSS moves with the allocator's reuse and with
imported modules, and the profiler's per-operator memory is total allocation, not the peak.
"""
from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .plotting import COLORS, figure_and_axis, styled

try:  # a private module: torch has no public way to see every operation, so it is imported here only
    from torch.utils._python_dispatch import TorchDispatchMode
except ImportError as error:  # pragma: no cover - depends on the torch release
    raise ImportError(
        f"labs_utils.memory needs torch.utils._python_dispatch.TorchDispatchMode, which torch {torch.__version__} "
        "does not have: install the torch version of requirements.txt, or update labs_utils/memory.py."
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


def _as_device(device: object) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"track_memory: unknown device {device!r}; use 'cpu', 'cuda' (or 'cuda:N') or 'mps'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("track_memory: 'cuda' was asked for but torch sees no CUDA GPU; use 'cpu'.")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def track_memory(device: object = "cpu", params: Iterable[torch.Tensor] | None = None) -> MemoryTracker:
    """Record the memory of what runs inside ``with track_memory(device, params) as tracker:`` (Lab 2).

    ``params``: the parameters (e.g. ``model.parameters()``); their bytes and their gradients are
    reported apart from activations. Only tensors created inside the block count, so create the
    input batch inside it when it should count. Read ``tracker.report()`` after the block.
    """
    return MemoryTracker(_as_device(device), list(params or ()))


def measure_step(forward: Callable[[torch.Tensor], torch.Tensor], make_input: Callable[[], torch.Tensor],
                 params: Iterable[torch.Tensor], device: object = "cpu",
                 loss_fn: Callable[[torch.Tensor], torch.Tensor] | None = None) -> MemoryReport:
    """Memory of one training step: ``loss_fn(forward(make_input()))`` then backward (Lab 2).

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


def predicted_peak_bytes(n_layers: int, segment_size: int | None, activation_bytes: int,
                         in_flight: int = 3) -> int:
    """Predicted peak activation bytes of n equal layers, checkpointed every ``segment_size`` (Lab 2).

    Each layer stores one activation of ``activation_bytes``. Plain backprop (``segment_size=None``)
    holds the input and all n activations, plus two gradients in flight (with respect to a layer's
    output and input): n + 3. Checkpointing every k layers holds ceil(n/k) segment inputs and the
    network's output; during the backward of a segment its k recomputed activations and the two
    gradients in flight come on top: ceil(n/k) + k + 3 (Chen et al., 2016, minimised near k = sqrt(n)).
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    if segment_size is None:
        return (n_layers + in_flight) * activation_bytes
    if segment_size < 1:
        raise ValueError(f"segment_size must be at least 1 (or None for plain backprop), got {segment_size}")
    slots = math.ceil(n_layers / segment_size) + min(segment_size, n_layers) + in_flight
    return slots * activation_bytes


def _runs(flags: np.ndarray) -> list:
    """(start, stop) of each run of True in a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return list(zip(edges[::2], edges[1::2]))


def segment_annotation(first_layer: int, last_layer: int) -> str:
    """The seed slides' label of one recomputed segment, e.g. 'load checkpoint 8 -> recompute 9-12 -> backprop'."""
    source = "load the input" if first_layer == 1 else f"load checkpoint {first_layer - 1}"
    return f"{source}\n\u2192 recompute {first_layer}\u2013{last_layer}\n\u2192 backprop"


@styled
def plot_memory_timeline(report: MemoryReport, *, segments: Sequence[tuple] | None = None,
                         predicted_peak: int | None = None, title: str | None = None,
                         ax=None) -> Figure:
    """Memory after every event of a forward + backward pass, coloured by phase (Lab 2).

    ``segments``: the (first, last) layers, counted from 1, of the segments in the order their
    recomputation happens (the last segment first); each recompute bump gets the slides' label.
    ``predicted_peak``: activation bytes of the analytic model, drawn as a dashed line.
    """
    fig, ax = figure_and_axis(ax, size=(10, 4.2))
    steps = np.arange(len(report.timeline))
    activations = report.activation_timeline / MiB
    total = report.timeline / MiB
    phases = np.asarray(report.phases)
    for color, phase in zip(COLORS, PHASES):
        mask = phases == phase
        if mask.any():
            # a step drawn "post" needs the next sample too, or phases are split by white gaps
            mask = mask | np.concatenate(([False], mask[:-1]))
            ax.fill_between(steps, 0, activations, where=mask, step="post", color=color, alpha=0.6,
                            linewidth=0, label=f"activations: {phase}")
    ax.step(steps, activations, where="post", color="black", linewidth=0.8)
    if report.grad_bytes:
        ax.fill_between(steps, activations, total, step="post", color="0.6", alpha=0.45, linewidth=0,
                        label="parameter gradients")
    if predicted_peak is not None:
        ax.axhline(predicted_peak / MiB, color=COLORS[3], linestyle="--", linewidth=1.2,
                   label=f"model: peak activations {predicted_peak / MiB:.1f} MiB")
    for index, label in report.marks:
        ax.axvline(index + 0.5, color="0.3", linestyle=":", linewidth=1)
        ax.annotate(f" {label}", (index + 0.5, 0.98), xycoords=("data", "axes fraction"),
                    ha="left", va="top", fontsize=8, color="0.3")
    recomputes = _runs(phases == "recompute")
    if segments is not None:
        if len(segments) != len(recomputes):
            raise ValueError(f"{len(segments)} segments given but the timeline shows {len(recomputes)} "
                             "recomputations; list the segments that were recomputed, last segment first")
        for (start, stop), (first, last) in zip(recomputes, segments):
            # the bump peaks after the recomputation, when the first gradients of the segment appear
            end = min(len(steps), stop + (stop - start) * 2)
            peak = start + int(np.argmax(activations[start:end]))
            ax.annotate(segment_annotation(first, last), (peak, activations[peak]), xytext=(peak, 0.86),
                        textcoords=("data", "axes fraction"), ha="center", va="top", fontsize=8,
                        arrowprops=dict(arrowstyle="->", color="0.3", linewidth=0.8))
    top = max(total.max(), (predicted_peak or 0) / MiB)
    ax.set_ylim(0, top * 1.45)
    ax.set_xlim(0, len(steps))
    ax.set_xlabel("events in order (tensor operations and releases)")
    ax.set_ylabel("MiB allocated in the step\n(parameters not shown)")
    ax.set_title(title or f"Memory timeline ({report.device}): peak activations "
                          f"{report.peak_activation_bytes / MiB:.1f} MiB")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
    return fig
