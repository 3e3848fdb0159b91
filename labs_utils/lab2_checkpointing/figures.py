"""Figures of Lab 2: the memory timeline, the segment sweep, the memory budget and the per-block memory."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..plotting import COLORS, figure_and_axis, new_figure, styled
from .experiments import SweepResult
from .model import predicted_time_ratio
from .tracker import PHASES, MemoryReport, MiB


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
    """Memory after every event of a forward + backward pass, coloured by phase.

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
                        label="parameter gradients (on top)")
    if predicted_peak is not None:
        ax.axhline(predicted_peak / MiB, color=COLORS[3], linestyle="--", linewidth=1.2,
                   label=f"model: peak of the activations alone, {predicted_peak / MiB:.1f} MiB")
    for index, label in report.marks:
        ax.axvline(index + 0.5, color="0.3", linestyle=":", linewidth=1)
        ax.annotate(f" {label}", (index + 0.5, 0.98), xycoords=("data", "axes fraction"),
                    ha="left", va="top", fontsize=8, color="0.3")
    recomputes = _runs(phases == "recompute")
    if segments is not None:
        if len(segments) != len(recomputes):
            found = (f"shows {len(recomputes)} recomputations" if recomputes else
                     "shows no recomputation: nothing ran during backward in what you measured")
            raise ValueError(f"This figure labels {len(segments)} recomputed segments, but the timeline {found}. "
                             "If you measured your checkpointed_forward, it does not recompute one segment at a "
                             "time during backward yet: run check_checkpointing(checkpointed_forward), which says "
                             "what goes wrong, and come back to this cell when it passes. (Plotting your own "
                             "measurement? Pass segments=None, or the segments in the order they were recomputed, "
                             "last segment first.)")
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
    ax.set_ylabel("MiB allocated in the step\n(weights not shown)")
    ax.set_title(title or f"Memory timeline ({report.device}): peak activations "
                          f"{report.peak_activation_bytes / MiB:.1f} MiB")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8)
    return fig


@styled
def plot_segment_sweep(result: SweepResult) -> Figure:
    """Peak activation memory and step time against the segment size, measured and modelled."""
    fig, axes = new_figure(1, 2, size=(10, 3.8))
    memory_ax, time_ax = axes[0]
    sizes = np.asarray(result.sizes)
    memory_ax.plot(sizes, np.asarray(result.predicted_peaks) / MiB, color=COLORS[0], linewidth=2, alpha=0.6,
                   label="memory model of section 4")
    memory_ax.plot(sizes, np.asarray(result.peaks) / MiB, "o", color=COLORS[3], label="measured")
    memory_ax.axhline(result.plain_peak / MiB, color="0.3", linestyle="--", linewidth=1, label="plain backprop")
    lowest = min(result.peaks)
    best = " and ".join(str(k) for k, peak in zip(sizes, result.peaks) if peak == lowest)
    memory_ax.set_xlabel("segment size k (blocks per segment)")
    memory_ax.set_ylabel("peak activation memory (MiB)")
    memory_ax.set_title(f"Memory, n = {result.n_blocks} blocks: lowest at k = {best}")
    memory_ax.set_ylim(0, max(result.peaks + (result.plain_peak,)) / MiB * 1.15)
    memory_ax.legend(loc="lower right")
    time_ax.plot(sizes, result.time_ratios, "o", color=COLORS[3], label="measured")
    time_ax.axhline(predicted_time_ratio(result.plain_time), color=COLORS[0], linewidth=2, alpha=0.6,
                    label="model: one extra forward")
    time_ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1, label="plain backprop")
    time_ax.set_xlabel("segment size k (blocks per segment)")
    time_ax.set_ylabel("step time / plain step time")
    time_ax.set_title(f"Time, measured ({result.clock} on {result.device})")
    time_ax.set_ylim(0.5, max(1.6, max(result.time_ratios) * 1.1))
    time_ax.legend(loc="lower right")
    for ax in axes[0]:
        ax.set_xticks(sizes)
    return fig


@styled
def plot_budget(results: dict) -> Figure:
    """Measured peak memory against batch size for each variant, the budget, and the largest batches."""
    fig, ax = figure_and_axis(size=(6.5, 3.8))
    budget = next(iter(results.values())).budget_bytes
    markers = "osD^v"  # one shape per variant; drawn over the stars, with dark edges, so that none hides
    for color, marker, (name, result) in zip(COLORS, markers, results.items()):
        batches = np.asarray(list(result.peaks))
        peaks = np.asarray(list(result.peaks.values())) / MiB
        slope, intercept = np.polyfit(batches, peaks, 1)
        xs = np.array([0, max(r.batch_size for r in results.values()) * 1.2])
        ax.plot(xs, intercept + slope * xs, color=color, linewidth=1.2, alpha=0.7)
        ax.plot([result.batch_size], [result.peaks[result.batch_size] / MiB], "*", color=color, markersize=18,
                alpha=0.45, zorder=3)
        ax.plot(batches, peaks, marker, color=color, markersize=5, markeredgecolor="0.15", markeredgewidth=0.7,
                linestyle="none", zorder=4, label=f"{name}: largest batch {result.batch_size}")
    ax.axhline(budget / MiB, color="0.2", linestyle="--", linewidth=1, label=f"budget {budget / MiB:.0f} MiB")
    # legend only: the fits and stars are drawn in each variant's colour
    ax.plot([], [], color="0.4", linewidth=1.2, alpha=0.7, label="straight-line fit, in each variant's colour")
    ax.plot([], [], "*", color="0.4", markersize=13, alpha=0.45, label="largest batch under the budget, in its colour")
    ax.set_xlabel("batch size")
    ax.set_ylabel("measured peak memory (MiB)\nparameters included")
    ax.set_title("Largest batch under the same memory budget")
    ax.set_ylim(0, budget / MiB * 1.3)
    ax.legend(loc="lower right", fontsize=9)
    return fig


@styled
def plot_block_memory(block_bytes: Sequence[int], peaks: dict, batch_size: int) -> Figure:
    """Left: bytes each block keeps for backward; right: peak of each variant (the 4-block CNN)."""
    fig, axes = new_figure(1, 2, size=(10, 3.6))
    left, right = axes[0]
    names = [f"block {i + 1}" for i in range(len(block_bytes))]
    share = np.asarray(block_bytes) / sum(block_bytes)
    bars = left.bar(names, np.asarray(block_bytes) / MiB, color=COLORS[0])
    left.bar_label(bars, labels=[f"{s:.0%}" for s in share], fontsize=10)
    left.set_ylabel(f"MiB kept for backward\n(batch {batch_size})")
    left.set_title("Where the activations are")
    plain = peaks[next(iter(peaks))]
    bars = right.bar(list(peaks), np.asarray(list(peaks.values())) / MiB, color=COLORS[1:1 + len(peaks)])
    right.bar_label(bars, labels=[f"{p / plain - 1:+.0%}" if i else "" for i, p in enumerate(peaks.values())],
                    fontsize=10)
    right.set_ylabel(f"peak memory (MiB, batch {batch_size})")
    right.set_title("Checkpointing by block count")
    right.tick_params(axis="x", labelsize=10)
    for ax in (left, right):
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    return fig
