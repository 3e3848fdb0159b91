"""Write every PNG output of a notebook to a folder, to look at the figures without Jupyter.

    python scripts/export_figures.py solutions/lab1_autoencoders.ipynb review/lab1
Files are named cell<index>_<n>.png.
"""
from __future__ import annotations

import base64
import sys
from pathlib import Path

import nbformat


def export(notebook: Path, folder: Path) -> list:
    nb = nbformat.read(notebook, as_version=4)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, cell in enumerate(nb.cells):
        for n, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if "image/png" in data:
                target = folder / f"cell{index:02d}_{n}.png"
                target.write_bytes(base64.b64decode(data["image/png"]))
                written.append(target)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    for path in export(Path(sys.argv[1]), Path(sys.argv[2])):
        print(path)
