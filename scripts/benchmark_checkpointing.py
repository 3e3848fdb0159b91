"""Print Lab 2's memory and time figures, with the targets of the lab, on a quiet machine.

    python scripts/benchmark_checkpointing.py                   # CPU, 12 x Linear(512), batch 2048
    python scripts/benchmark_checkpointing.py --device cuda     # the CUDA allocator's statistics
    python scripts/benchmark_checkpointing.py --repeats 10 --threads 4

Checkpointing is the solution notebook's own ``checkpointed_forward`` (its exercise cell is executed
here), so the figures are those of the lab. Memory on the CPU is exact and deterministic. Times are
the fastest of ``--repeats`` interleaved runs, in CPU time of this process on the CPU with one thread
(wall time with ``--threads`` above 1, where CPU time would add up the threads, and on CUDA): an idle machine
still gives the cleanest figures (no competition for caches and memory bandwidth).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import nbformat
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential, set_checkpoint_early_stop

from labs_utils import lab2_checkpointing as lab2
from labs_utils.lab2_checkpointing import MiB

NOTEBOOK = Path(__file__).resolve().parents[1] / "solutions" / "lab2_checkpointing.ipynb"


def solution_checkpointed_forward():
    """``checkpointed_forward`` as defined by the solution notebook's exercise cell."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code" and "def checkpointed_forward(" in c.source]
    if len(cells) != 1:
        raise SystemExit(f"expected one cell defining checkpointed_forward in {NOTEBOOK}, found {len(cells)}")
    namespace = {"torch": torch, "nn": nn}
    exec(compile(cells[0], str(NOTEBOOK), "exec"), namespace)  # noqa: S102 - our own notebook
    return namespace["checkpointed_forward"]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def linear_figures(checkpointed_forward, device: torch.device, width: int, batch: int, repeats: int) -> None:
    blocks = lab2.linear_blocks(12, width).to(device)

    def make_input():
        return torch.randn(batch, width, device=device)

    sweep = lab2.segment_sweep(checkpointed_forward, blocks, make_input, range(1, 13), device, repeats)
    param_mib = sum(p.numel() * p.element_size() for p in blocks.parameters()) / MiB
    print(f"12 x (Linear({width}) + ReLU), batch {batch}, on {device}: one activation = "
          f"{sweep.activation_bytes / MiB:.2f} MiB; parameters {param_mib:.1f} MiB\n")
    print(sweep.table())
    worst = max(abs(peak / model - 1) for peak, model in zip(sweep.peaks, sweep.predicted_peaks))
    print(f"\nmemory: worst |measured / model - 1| over k = 1..12: {worst:.1%} (target <= 10%): "
          f"{verdict(worst <= 0.1)}")
    model_ratio = lab2.predicted_time_ratio(sweep.plain_time)
    worst_time = max((ratio / model_ratio - 1 for ratio in sweep.time_ratios), key=abs)
    print(f"time: worst measured / model - 1 over k = 1..12: {worst_time:+.1%} (model {model_ratio:.2f} x plain, "
          f"target within 10%): {verdict(abs(worst_time) <= 0.1)}")
    again = lab2.segment_sweep(checkpointed_forward, blocks, make_input, (4,), device, repeats=1)
    print(f"memory deterministic (k = 4 measured again: {again.peaks[0]} vs {sweep.peaks[3]} bytes): "
          f"{verdict(again.peaks[0] == sweep.peaks[3])}")

    x = make_input()
    times = lab2.time_steps({
        "plain": lambda: blocks(x).sum(),
        "checkpointed_forward, k = 4": lambda: checkpointed_forward(blocks, x, 4).sum(),
        "checkpoint_sequential, 3 segments": lambda: checkpoint_sequential(blocks, 3, x, use_reentrant=False).sum(),
    }, repeats)
    plain = times["plain"]
    print(f"\ntime: plain forward {plain.forward_s * 1e3:.1f} ms, backward {plain.backward_s * 1e3:.1f} ms "
          f"(B/F = {plain.backward_s / plain.forward_s:.2f})")
    for name, fraction in (("checkpointed_forward, k = 4", 1.0), ("checkpoint_sequential, 3 segments", 8 / 12)):
        measured = times[name].total_s / plain.total_s
        model = lab2.predicted_time_ratio(plain, fraction)
        print(f"  {name:34s} {measured:.2f} x plain, model {model:.2f} x "
              f"(off by {measured / model - 1:+.1%}, target within 10%): {verdict(abs(measured / model - 1) <= 0.1)}")
    k1, plain_peak = sweep.peaks[0], sweep.plain_peak
    print(f"k = 1 saves nothing: peak {k1 / MiB:.1f} MiB vs plain {plain_peak / MiB:.1f} MiB")


def cnn_figures(checkpointed_forward, device: torch.device, budget_mib: int, repeats: int) -> None:
    cnn = lab2.deep_cnn(16, 16).to(device)

    def every_4(blocks, h):
        return checkpointed_forward(blocks, h, 4)

    results = {name: lab2.largest_batch(lambda b, run=run: lab2.classification_step_memory(cnn, run, b, device),
                                        budget_mib * MiB)
               for name, run in (("plain", None), ("checkpointed every 4 blocks", every_4))}
    plain_batch, checkpointed_batch = (r.batch_size for r in results.values())
    ratio = checkpointed_batch / plain_batch
    print(f"\nCNN, 16 blocks conv-ReLU-conv-ReLU at 14x14, budget {budget_mib} MiB: largest batch {plain_batch} plain, "
          f"{checkpointed_batch} checkpointed: {ratio:.2f}x (target >= 2x): {verdict(ratio >= 2)}")
    steps = {}
    for name, run, batch in (("plain", None, plain_batch), ("checkpointed, same batch", every_4, plain_batch),
                             ("checkpointed, its largest batch", every_4, checkpointed_batch)):
        images, labels = lab2.mnist_like_batch(batch, device)()
        steps[name] = lambda images=images, labels=labels, run=run: nn.functional.cross_entropy(cnn(images, run),
                                                                                                labels)
    times = lab2.time_steps(steps, repeats)
    for (name, step_time), batch in zip(times.items(), (plain_batch, plain_batch, checkpointed_batch)):
        print(f"  {name:32s} batch {batch:4d}: {batch / step_time.total_s:7.0f} samples/s")

    small = lab2.downsampling_cnn().to(device)
    runs = {None: None, **{k: (lambda blocks, h, k=k: checkpointed_forward(blocks, h, k)) for k in (2, 1)}}
    peaks = {k: lab2.classification_step_memory(small, run, 64, device) for k, run in runs.items()}
    print(f"4-block downsampling CNN, batch 64: peak {peaks[None] / MiB:.1f} MiB plain, "
          f"{peaks[2] / peaks[None] - 1:+.0%} with 2 segments of 2 blocks, "
          f"{peaks[1] / peaks[None] - 1:+.0%} with 4 of 1")


def pitfall_figures(checkpointed_forward) -> None:
    tiny = lab2.linear_blocks(12, 64)
    x = torch.randn(32, 64, requires_grad=True)
    with set_checkpoint_early_stop(False), lab2.count_calls(tiny) as calls:
        checkpoint_sequential(tiny, 3, x, use_reentrant=False).sum().backward()
    print(f"\ncheckpoint_sequential(3 segments) forward calls per block: {calls} (last segment never recomputed)")
    torch.manual_seed(0)
    dropout_net = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.5)) for _ in range(6)])
    data = torch.randn(32, 64)
    variants = {
        "yours": lambda h: checkpointed_forward(dropout_net, h, 2),
        "torch, preserve_rng_state=False":
            lambda h: checkpoint_sequential(dropout_net, 3, h, use_reentrant=False, preserve_rng_state=False),
        "torch, default": lambda h: checkpoint_sequential(dropout_net, 3, h, use_reentrant=False),
    }
    for name, forward in variants.items():
        error = lab2.gradient_error(forward, dropout_net, list(dropout_net.parameters()), data)
        print(f"dropout, relative gradient error, {name:32s} {error:.2f}")
    bn_net = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU()) for _ in range(6)])
    checkpoint_sequential(bn_net, 3, data, use_reentrant=False).sum().backward()
    print(f"BatchNorm num_batches_tracked after one checkpoint_sequential step: "
          f"{[block[1].num_batches_tracked.item() for block in bn_net]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per configuration (the fastest is kept)")
    parser.add_argument("--budget-mib", type=int, default=48, help="memory budget of the CNN experiment")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    checkpointed_forward = solution_checkpointed_forward()
    start = time.perf_counter()
    linear_figures(checkpointed_forward, device, args.width, args.batch, args.repeats)
    cnn_figures(checkpointed_forward, device, args.budget_mib, args.repeats)
    pitfall_figures(checkpointed_forward)
    print(f"\n{time.perf_counter() - start:.0f} s, torch {torch.__version__}, {args.threads} CPU thread(s)")


if __name__ == "__main__":
    main()
