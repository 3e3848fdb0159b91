"""The experiments of Lab 2 (gradient checkpointing): networks, timing, the segment-size sweep,
the largest batch under a memory budget, and small tools for the pitfalls.

Every function takes the student's ``checkpointed_forward(blocks, x, segment_size)`` (or any
``forward(x)``) as an argument: nothing here implements checkpointing.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .. import runtime
from ..runtime import seeded
from ..validation import positive_int
from .memory_model import predicted_peak_bytes
from .model import StepTime, predicted_time_ratio
from .tracker import MiB, measure_step, track_memory

Forward = Callable[[torch.Tensor], torch.Tensor]
CheckpointedForward = Callable[[Sequence[nn.Module], torch.Tensor, int], torch.Tensor]


# -- networks ---------------------------------------------------------------------------------------
def linear_blocks(n_blocks: int = 12, width: int = 512, seed: int = 0) -> nn.Sequential:
    """n equal blocks Linear(width, width) + ReLU: each stores one (batch, width) activation."""
    n_blocks, width = positive_int("n_blocks", n_blocks), positive_int("width", width)
    with seeded(seed):
        return nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(n_blocks)])


class BlockNet(nn.Module):
    """stem -> blocks -> head, where a function of (blocks, h) may run the blocks, e.g. checkpointed."""

    def __init__(self, stem: nn.Module, blocks: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.stem, self.blocks, self.head = stem, blocks, head

    def forward(self, x: torch.Tensor,
                run_blocks: Callable[[nn.Sequential, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        h = self.stem(x)
        h = self.blocks(h) if run_blocks is None else run_blocks(self.blocks, h)
        return self.head(h)


def blocks_work_share(model: BlockNet, x: torch.Tensor) -> float:
    """Share of ``model``'s forward floating-point operations (convolutions and matrix products, counted by
    ``torch.utils.flop_counter.FlopCounterMode``) that its ``blocks`` do on ``x``."""
    from torch.utils.flop_counter import FlopCounterMode

    def flops(module: nn.Module, inputs: torch.Tensor) -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(inputs)
        return counter.get_total_flops()

    with torch.no_grad():
        stem_output = model.stem(x)
    return flops(model.blocks, stem_output) / flops(model, x)


def deep_cnn(n_blocks: int = 16, channels: int = 16, seed: int = 0) -> BlockNet:
    """A VGG-style CNN for 28x28 images: a stride-2 stem, then n blocks conv-ReLU-conv-ReLU at 14x14.

    Every block has the same size, so checkpointing every k blocks behaves like the n equal layers
    of the analytic model.
    """
    n_blocks, channels = positive_int("n_blocks", n_blocks), positive_int("channels", channels)

    def block() -> nn.Module:
        return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())

    with seeded(seed):
        stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU())
        head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10))
        return BlockNet(stem, nn.Sequential(*[block() for _ in range(n_blocks)]), head)


def downsampling_cnn(channels: Sequence[int] = (16, 32, 64, 128), seed: int = 0) -> BlockNet:
    """Four blocks conv-ReLU-conv-ReLU-maxpool that halve the resolution (28 -> 14 -> 7 -> 3 -> 1)."""
    sizes = (1, *channels)
    with seeded(seed):
        blocks = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1),
                          nn.ReLU(), nn.MaxPool2d(2))
            for c_in, c_out in zip(sizes, sizes[1:])
        ])
        return BlockNet(nn.Identity(), blocks, nn.Sequential(nn.Flatten(), nn.Linear(channels[-1], 10)))


def mnist_like_batch(batch_size: int, device: torch.device | str = "cpu", seed: int = 0):
    """A function making random (batch, 1, 28, 28) images and labels: memory and time do not depend on pixels."""
    batch_size = positive_int("batch_size", batch_size)

    def make() -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        images = torch.rand(batch_size, 1, 28, 28, generator=generator)
        labels = torch.randint(0, 10, (batch_size,), generator=generator)
        return images.to(device), labels.to(device)
    return make


def classification_step_memory(model: BlockNet, run_blocks, batch_size: int, device: torch.device | str) -> int:
    """Peak bytes (parameters included) of one cross-entropy training step of ``model``."""
    images, labels = mnist_like_batch(batch_size, "cpu")()
    labels = labels.to(device)
    report = measure_step(lambda x: model(x, run_blocks), lambda: images.to(device), model.parameters(), device,
                          loss_fn=lambda logits: nn.functional.cross_entropy(logits, labels))
    return report.peak_bytes


def _synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that the clock sees it (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def clock_for(device: torch.device | str) -> tuple[Callable[[], float], str]:
    """The clock :func:`time_steps` uses on ``device``, and its name for a caption.

    The CPU time of this process (``time.process_time``) on a CPU running one torch thread: other
    programs sharing the machine do not inflate it. With several threads it would add up the CPU
    time of all of them, so there, and on a GPU (CUDA, MPS), it is the wall time (``time.perf_counter``).
    """
    if torch.device(device).type == "cpu" and torch.get_num_threads() == 1:
        return time.process_time, "CPU time"
    return time.perf_counter, "wall time"


def time_steps(steps: dict, repeats: int = 3) -> dict:
    """Time training steps, ``{name: () -> loss}``: forward (the call) and backward apart.

    The clock is :func:`clock_for` the device of each loss, read after waiting for the GPU's work.
    Each step runs once to warm up, then ``repeats`` times, interleaved with the other steps; the
    fastest forward and backward are kept. Returns ``{name: StepTime}``.
    """
    repeats = positive_int("repeats", repeats)
    devices = {}
    for name, step in steps.items():  # warm-up, which also tells each step's device
        loss = step()
        loss.backward()
        devices[name] = loss.device
    best = {name: [float("inf"), float("inf")] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            device = devices[name]
            clock, _ = clock_for(device)
            _synchronize(device)
            start = clock()
            loss = step()
            _synchronize(device)
            middle = clock()
            loss.backward()
            _synchronize(device)
            end = clock()
            best[name] = [min(best[name][0], middle - start), min(best[name][1], end - middle)]
            del loss
    return {name: StepTime(*times) for name, times in best.items()}


@dataclass(frozen=True)
class RepeatedRatios:
    """Step time over the reference step's time, measured in several independent rounds."""

    reference: str
    ratios: dict  # name -> one ratio per round
    clock: str

    def shown(self) -> dict:
        """The ratios as :meth:`summary` prints them, to 2 decimals: its medians and ranges are computed from
        these, so that a reader who subtracts the printed values gets the printed range."""
        return {name: tuple(round(r, 2) for r in ratios) for name, ratios in self.ratios.items()}

    @property
    def spread(self) -> float:
        """The largest range (max - min) of one step's printed ratios between rounds: the noise of one measurement."""
        return max(max(r) - min(r) for r in self.shown().values())

    def summary(self) -> str:
        """Each step's ratios, their median and their range (max - min), and the largest range: measurements
        only, the comparison between the steps is the reader's."""
        shown = self.shown()
        width = max(12, *(len(name) for name in shown))
        lines = [f"{name:{width}s} {' '.join(f'{r:.2f}' for r in ratios)}   median {statistics.median(ratios):.2f}"
                 f"   range {max(ratios) - min(ratios):.2f}" for name, ratios in shown.items()]
        lines.append(f"the same step's ratio to {self.reference} varied by up to {self.spread:.2f} between the "
                     f"{len(next(iter(shown.values())))} rounds ({self.clock})")
        return "\n".join(lines)


def time_in_rounds(steps: dict, reference: str, device: torch.device | str, rounds: int = 3,
                   repeats: int = 3) -> RepeatedRatios:
    """Run :func:`time_steps` ``rounds`` times on ``steps`` (which include ``reference``) and keep, per
    round, each other step's total time over the reference's: how much one such measurement varies."""
    rounds = positive_int("rounds", rounds)
    if reference not in steps:
        raise ValueError(f"the reference {reference!r} is not one of the steps: {', '.join(map(str, steps))}")
    ratios: dict = {name: [] for name in steps if name != reference}
    for _ in range(rounds):
        times = time_steps(steps, repeats)
        for name in ratios:
            ratios[name].append(times[name].total_s / times[reference].total_s)
    return RepeatedRatios(reference, {name: tuple(r) for name, r in ratios.items()}, clock_for(device)[1])


# -- the segment-size sweep ---------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepResult:
    """Peak activation bytes and step times against the segment size, with the analytic model."""

    n_blocks: int
    activation_bytes: int
    sizes: tuple
    peaks: tuple
    plain_peak: int
    times: tuple
    plain_time: StepTime
    device: str
    clock: str  # "CPU time" or "wall time": see clock_for

    @property
    def predicted_peaks(self) -> tuple:
        return tuple(predicted_peak_bytes(self.n_blocks, k, self.activation_bytes) for k in self.sizes)

    @property
    def time_ratios(self) -> tuple:
        return tuple(t.total_s / self.plain_time.total_s for t in self.times)

    def time_summary(self) -> str:
        """One sentence on the measured step times against the one-extra-forward model (computed, not asserted)."""
        model = predicted_time_ratio(self.plain_time)
        offsets = [ratio / model - 1 for ratio in self.time_ratios]
        return (f"measured step times {min(self.time_ratios):.2f} to {max(self.time_ratios):.2f} x plain; "
                f"the model predicts {model:.2f} x for every k: measured / model - 1 from {min(offsets):+.0%} "
                f"to {max(offsets):+.0%} ({self.clock}, the fastest of the repeats)")

    def table(self) -> str:
        """Measured vs model, one row per segment size (MiB and time ratios)."""
        rows = [f"{'segments of':>11} {'peak MiB':>9} {'model MiB':>9} {'off by':>7} {'time x plain':>12}",
                f"{'plain':>11} {self.plain_peak / MiB:9.1f} "
                f"{predicted_peak_bytes(self.n_blocks, None, self.activation_bytes) / MiB:9.1f} "
                f"{self.plain_peak / predicted_peak_bytes(self.n_blocks, None, self.activation_bytes) - 1:7.1%} "
                f"{1:12.2f}"]
        for k, peak, model, ratio in zip(self.sizes, self.peaks, self.predicted_peaks, self.time_ratios):
            rows.append(f"{k:11d} {peak / MiB:9.1f} {model / MiB:9.1f} {peak / model - 1:7.1%} {ratio:12.2f}")
        return "\n".join(rows)


def segment_sweep(checkpointed_forward: CheckpointedForward, blocks: nn.Sequential,
                  make_input: Callable[[], torch.Tensor], sizes: Iterable[int], device: torch.device | str,
                  repeats: int = 3) -> SweepResult:
    """Measure peak activation memory (exact) and step time of plain backprop and of every segment size.

    ``blocks`` must be equal blocks that each store one activation the size of ``make_input()``.
    """
    sizes = tuple(positive_int("segment size", k) for k in sizes)
    repeats = positive_int("repeats", repeats)
    params = list(blocks.parameters())
    forwards = {None: blocks, **{k: (lambda x, k=k: checkpointed_forward(blocks, x, k)) for k in sizes}}
    forwards[None](make_input()).sum().backward()  # warm-up: lazy initialisation must not count
    peaks = {k: measure_step(f, make_input, params, device).peak_activation_bytes for k, f in forwards.items()}
    x = make_input()
    times = time_steps({k: (lambda f=f: f(x).sum()) for k, f in forwards.items()}, repeats)
    for param in params:
        param.grad = None
    return SweepResult(n_blocks=len(blocks), activation_bytes=x.numel() * x.element_size(), sizes=sizes,
                       peaks=tuple(peaks[k] for k in sizes), plain_peak=peaks[None],
                       times=tuple(times[k] for k in sizes), plain_time=times[None], device=str(device),
                       clock=clock_for(device)[1])


# -- the largest batch under a memory budget ------------------------------------------------------------
@dataclass(frozen=True)
class BudgetResult:
    """The largest batch whose measured peak fits ``budget_bytes``, and every peak measured on the way."""

    batch_size: int
    budget_bytes: int
    peaks: dict  # batch size -> measured peak bytes


def largest_batch(peak_bytes: Callable[[int], int], budget_bytes: int, probes: tuple = (4, 8)) -> BudgetResult:
    """Largest batch size whose measured peak is within the budget.

    Memory grows about linearly with the batch: the line through the two latest measurements
    predicts the answer (secant steps), which is then confirmed by measuring it and the batch one larger.
    """
    budget_bytes = positive_int("budget_bytes", budget_bytes)
    peaks: dict = {}

    def measured(b: int) -> int:
        if b not in peaks:
            peaks[b] = peak_bytes(b)
        return peaks[b]

    def predicted(b: int, other: int) -> int:
        per_sample = (measured(b) - measured(other)) / (b - other)
        if per_sample <= 0:
            raise ValueError("the measured peak does not grow with the batch size")
        return max(1, int(b + (budget_bytes - measured(b)) // per_sample))

    if measured(1) > budget_bytes:
        raise ValueError(f"a batch of 1 needs {measured(1) / MiB:.1f} MiB, more than the budget "
                         f"of {budget_bytes / MiB:.1f} MiB")
    previous, batch = probes
    for _ in range(10):
        previous, batch = batch, predicted(batch, previous)
        if batch == previous:
            break
    while batch > 1 and measured(batch) > budget_bytes:
        batch -= 1
    while measured(batch + 1) <= budget_bytes:
        batch += 1
    return BudgetResult(batch, budget_bytes, dict(sorted(peaks.items())))


def stored_bytes_per_block(blocks: Iterable[nn.Module], x: torch.Tensor) -> list:
    """Bytes each block adds to memory in a plain forward (what it saves for backward plus its output)."""
    sizes = []
    h = x
    for block in blocks:
        with track_memory(h.device) as tracker:
            h = block(h)
        sizes.append(int(tracker.report().timeline[-1]))
    return sizes


def first_checkpoint_cost() -> tuple[int, float]:
    """What the first non-reentrant ``torch.utils.checkpoint`` call of a process costs besides its activations:
    ``(modules imported, MiB added to the peak resident set size)`` (0 and about 0 once it has run in this kernel).
    On Windows (no ``resource`` module) the peak working set comes from psutil (ipykernel's dependency); NaN where
    neither is there."""
    import sys

    from torch.utils.checkpoint import checkpoint

    def peak_rss_mib() -> float:
        try:
            import resource
        except ImportError:  # Windows
            try:
                import psutil

                return psutil.Process().memory_info().peak_wset / 2**20
            except (ImportError, AttributeError):
                return float("nan")
        # ru_maxrss: KiB on Linux, bytes on macOS
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)

    modules_before, rss_before = len(sys.modules), peak_rss_mib()
    probe_input = torch.randn(64, 64, requires_grad=True)
    checkpoint(torch.tanh, probe_input, use_reentrant=False).sum().backward()  # a 16 KiB activation
    return len(sys.modules) - modules_before, peak_rss_mib() - rss_before


def fast_note() -> None:
    """Print, in fast mode only (LABS_FAST / CI), that the numbers above are not the lab's results."""
    note = runtime.fast_note("smaller layers and batches, one timing repeat")
    if note:
        print(note)


# -- pitfalls ------------------------------------------------------------------------------------------
@contextmanager
def count_calls(modules: Sequence[nn.Module]):
    """``with count_calls(blocks) as calls:`` -- ``calls[i]`` counts the forward runs of ``modules[i]``."""
    calls = [0] * len(modules)
    handles = [module.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
               for i, module in enumerate(modules)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def gradient_error(forward: Forward, reference: Forward, params: Sequence[torch.Tensor], x: torch.Tensor,
                   seed: int = 0) -> float:
    """Relative error ||g - g_ref|| / ||g_ref|| of the parameter gradients of ``forward``.

    Both run from the same random state (``seed``), so random layers such as dropout draw the same
    masks as long as the forward passes consume random numbers in the same way. The caller's random
    state is left as it was.
    """
    def gradients(f: Forward) -> torch.Tensor:
        for param in params:
            param.grad = None
        with seeded(seed):
            f(x).pow(2).sum().backward()
        return torch.cat([param.grad.flatten() for param in params])

    expected = gradients(reference)
    return ((gradients(forward) - expected).norm() / expected.norm()).item()
