"""Execute solution notebooks in place (full mode by default) so they are committed with outputs.

    python scripts/execute_solutions.py                    # every notebook in solutions/
    python scripts/execute_solutions.py solutions/lab1_autoencoders.ipynb --fast

Prints each notebook's runtime. Full mode is what students run and what instructors read;
--fast sets LABS_FAST=1 (what CI runs). Regenerate the student copies afterwards:
    python -m labs_utils.notebooks build
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, fast: bool, timeout: int) -> float:
    for name in ("CI", "LABS_FAST"):
        os.environ.pop(name, None)
    if fast:
        os.environ["LABS_FAST"] = "1"
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    resources = {"metadata": {"path": str(path.parent)}}  # cells run with the notebook's folder as cwd
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources)
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--fast", action="store_true", help="run in fast mode (do not commit those outputs)")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args()
    paths = args.notebooks or sorted((ROOT / "solutions").glob("*.ipynb"))
    # The kernels import this checkout's labs_utils, whatever the interpreter's installed (editable) copy points at.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    for path in paths:
        seconds = execute(path, args.fast, args.timeout)
        print(f"{path}: {seconds:.1f} s ({'fast' if args.fast else 'full'} mode)", flush=True)


if __name__ == "__main__":
    main()
