"""How much time grading adds to running a notebook, and what --jobs buys (issue 7).

    python scripts/benchmark_grading.py                       # Lab 2's solution, fast mode
    python scripts/benchmark_grading.py --notebook solutions/lab3_optimizers.ipynb --count 10 --jobs 2

1. Overhead per submission, two ways (medians over --repeats runs): grading the notebook with
   labs_utils.grade minus executing it with plain nbclient (as scripts/execute_solutions.py does, both
   in a fresh kernel; the plain run also renders figures, which the grader skips), and the grader's
   own account: its wall time minus the time its kernel spent in the notebook's cells (kernel start,
   importing the checks, running them, clean-up). Target: at most 10 s.
2. A batch of --count copies graded by the command line, sequentially and with --jobs J.
   Target: about 1/J of the sequential time on a machine with J idle cores.
Timings on a shared machine are noisy: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from execute_solutions import execute

from labs_utils import grade

ROOT = Path(__file__).resolve().parents[1]


def overhead(notebook: Path, repeats: int, fast: bool, workdir: Path) -> dict:
    """Medians over ``repeats`` alternating runs: plain execution, grading, and grading minus its cells' time."""
    options = grade.Options(timeout=900, fast=fast, labs=grade.load_labs(),
                            memory_limit=grade.default_memory_limit(1))
    runs: dict = {"plain": [], "graded": [], "beyond cells": []}
    for run in range(repeats):
        copy = workdir / f"plain{run}.ipynb"
        shutil.copy(notebook, copy)
        runs["plain"].append(execute(copy, fast, timeout=900))
        result = grade.grade_submission(notebook, "benchmark", options)
        if result.status != "graded":
            sys.exit(f"grading failed: {result.problems}")
        runs["graded"].append(result.seconds)
        runs["beyond cells"].append(result.seconds - result.cells_seconds)
        print(f"  run {run + 1}: plain execution {runs['plain'][-1]:.1f} s, grading {result.seconds:.1f} s "
              f"(its cells {result.cells_seconds:.1f} s; {result.total:g}/{result.max_total:g} points)", flush=True)
    return {name: statistics.median(values) for name, values in runs.items()}


def batch_seconds(folder: Path, jobs: int, fast: bool) -> float:
    """Wall time of ``python -m labs_utils.grade FOLDER --jobs J`` (the command an instructor runs)."""
    command = [sys.executable, "-m", "labs_utils.grade", str(folder), "--jobs", str(jobs),
               "--out", str(folder.parent / f"gradebook_jobs{jobs}.csv")] + (["--fast"] if fast else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, default=ROOT / "solutions" / "lab2_gradient_checkpointing.ipynb")
    parser.add_argument("--count", type=int, default=10, help="submissions in the batch (default: 10)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel gradings to compare (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs for the overhead median (default: 3)")
    parser.add_argument("--full", action="store_true", help="full mode instead of fast mode")
    args = parser.parse_args()
    fast = not args.full
    print(f"{args.notebook.name}, {'fast' if fast else 'full'} mode, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        medians = overhead(args.notebook, args.repeats, fast, workdir)
        print(f"overhead per submission (target <= 10 s): {medians['graded'] - medians['plain']:.1f} s more than "
              f"plain execution (medians {medians['graded']:.1f} s vs {medians['plain']:.1f} s); "
              f"{medians['beyond cells']:.1f} s of grading beyond running the notebook's cells", flush=True)
        folder = workdir / "submissions"
        folder.mkdir()
        for n in range(args.count):
            shutil.copy(args.notebook, folder / f"student{n:02d}_{args.notebook.name}")
        sequential = batch_seconds(folder, 1, fast)
        parallel = batch_seconds(folder, args.jobs, fast)
    print(f"{args.count} submissions: sequential {sequential:.0f} s, --jobs {args.jobs} {parallel:.0f} s, "
          f"ratio {parallel / sequential:.2f} (ideal {1 / args.jobs:.2f}); "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
