"""What grading costs on top of running a notebook, with and without the sandbox (issue 11).

    python scripts/benchmark_grading.py                        # the toy lab of tests/grading_fixtures.py
    python scripts/benchmark_grading.py --notebook solutions/lab3_optimizers.ipynb --fast --repeats 3

1. Grading time vs executing the same notebook with plain nbclient in a fresh kernel (medians over
   --repeats alternating runs), with bubblewrap and without. Target: grading <= 1.3 x plain execution
   (issue 20); the ratio is printed. The batch's one-off check that a clean kernel imports the checks is
   not part of a submission's time.
2. Sandbox start: ``bwrap ... python -c pass`` minus ``python -c pass`` (median of 10). Target: < 1 s.
Timings on a shared machine are noisy: the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from labs_utils.instructor.grading.cli import default_memory_limit  # noqa: E402
from labs_utils.instructor.grading.kernel import Options  # noqa: E402
from labs_utils.instructor.grading.run import grade_submission  # noqa: E402
from labs_utils.instructor.grading.sandbox import Sandbox, unusable_reason  # noqa: E402


def plain_seconds(notebook: Path, fast: bool) -> float:
    """Execute the notebook with plain nbclient in a fresh kernel and a temporary folder."""
    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as cwd:
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": cwd}}).execute(env=dict(os.environ, MPLBACKEND="Agg",
                                                                               **({"LABS_FAST": "1"} if fast else {})))
        return time.perf_counter() - start


def sandbox_start_seconds(runs: int = 10) -> float:
    """Median extra seconds bubblewrap adds to starting ``python -c pass``."""
    with tempfile.TemporaryDirectory() as workdir:
        bare, boxed = [], []
        for _ in range(runs):
            for times, command in ((bare, [sys.executable, "-c", "pass"]),
                                   (boxed, Sandbox().command(workdir, [sys.executable, "-c", "pass"], {}))):
                start = time.perf_counter()
                subprocess.run(command, check=True)
                times.append(time.perf_counter() - start)
    return statistics.median(boxed) - statistics.median(bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", type=Path, help="a solution notebook (default: the toy lab 1 solution)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per median (default: 3)")
    parser.add_argument("--fast", action="store_true", help="fast mode (LABS_FAST=1) for plain runs and grading")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])  # the toy lab, this checkout
    options = Options(timeout=900, fast=args.fast, memory_limit=default_memory_limit(1))
    with tempfile.TemporaryDirectory() as tmp:
        notebook = args.notebook
        if notebook is None:
            import grading_fixtures as gf

            notebook = gf.write(gf.toy_solution(1), Path(tmp) / "toy_lab1.ipynb")
            options = replace(options, labs=gf.toy_labs())
        print(f"{notebook.name}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
              f"sandbox: {unusable_reason() or 'bubblewrap usable'}", flush=True)
        runs: dict[str, list[float]] = {"plain": [], "sandboxed": [], "unsandboxed": []}
        for run in range(args.repeats):
            runs["plain"].append(plain_seconds(notebook, args.fast))
            for name, mode in (("sandboxed", "require"), ("unsandboxed", "off")):
                if name == "sandboxed" and unusable_reason() is not None:
                    continue
                result = grade_submission(notebook, "benchmark", replace(options, sandbox=mode))
                if result.status != "graded":
                    sys.exit(f"grading failed: {result.problems}")
                runs[name].append(result.seconds)
            print(f"  run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in runs.items() if v), flush=True)
    plain = statistics.median(runs["plain"])
    for name in ("sandboxed", "unsandboxed"):
        if runs[name]:
            graded = statistics.median(runs[name])
            print(f"grading {name}: {graded:.2f} s vs plain nbclient {plain:.2f} s: ratio {graded / plain:.2f} "
                  "(target <= 1.3)")
    if unusable_reason() is None:
        print(f"sandbox start: {sandbox_start_seconds():.3f} s per kernel (target < 1 s)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
