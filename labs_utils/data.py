"""MNIST for every lab: the full set through torchvision, or the subset bundled in the package.

``load_mnist`` first tries torchvision (download into a cache folder). On any failure, or when
``LABS_OFFLINE=1``, it falls back to 5,000 real MNIST digits shipped with labs_utils
(4,000 train / 1,000 test, stratified; built by ``scripts/build_bundled_mnist.py``) and
warns once, saying why and how to get the full set.
"""
from __future__ import annotations

import os
import sys
import warnings
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from .runtime import _env_flag

SPLITS = ("train", "test")
BUNDLED_FILE = Path(__file__).resolve().parent / "_data" / "mnist_subset.npz"
BUNDLED_SIZES = {"train": 4000, "test": 1000}
FULL_SIZES = {"train": 60000, "test": 10000}
REBUILD_HINT = (
    "Reinstall the course package (pip install -e . from the repository, or the Colab set-up cell), "
    "or rebuild the file with: python scripts/build_bundled_mnist.py"
)


class BundledDataWarning(UserWarning):
    """Emitted once per process when the labs fall back to the bundled MNIST subset."""


class BundledDataError(RuntimeError):
    """The bundled MNIST file is missing or corrupted."""


def default_root() -> Path:
    """Where torchvision downloads MNIST: ``$LABS_DATA_DIR`` or ``~/.cache/labs_utils``."""
    return Path(os.environ.get("LABS_DATA_DIR") or Path.home() / ".cache" / "labs_utils")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use split='train' or split='test'.")


def _check_limit(limit: int | None) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int or None, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be a positive number of digits (or None for all), got {limit}")


def load_mnist(
    split: str = "train", *, limit: int | None = None, root: str | Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST digits as ``(images, labels)``.

    images: float32, shape (N, 1, 28, 28), values in [0, 1]; labels: int64, shape (N,).
    ``limit`` keeps the first ``limit`` digits (the bundled splits are pre-shuffled, so any
    prefix is close to balanced). Used by Lab 0, Lab 1 and Lab 3.
    """
    _check_split(split)
    _check_limit(limit)
    images, labels = _load_uint8(split, str(Path(root) if root is not None else default_root()))
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    # Fresh tensors every call: the cache keeps the uint8 originals, and an in-place edit of what is
    # returned here (``y[y == 3] = 0``) must not reach the next load. ``.long()`` on int64 would alias.
    return images.float().div_(255.0).unsqueeze(1), labels.to(torch.int64, copy=True)


def mnist_source(root: str | Path | None = None) -> str:
    """A sentence saying which MNIST the labs use: the full set or the bundled subset."""
    _load_uint8("train", str(Path(root) if root is not None else default_root()))
    if _SOURCE.get("train") == "torchvision":
        return "full MNIST via torchvision: 60,000 training and 10,000 test digits"
    return (
        "the bundled MNIST subset: 4,000 training and 1,000 test digits (full MNIST could not be loaded; "
        "the labs work with the subset, only the numbers are a little worse)"
    )


# split -> "torchvision" or "bundled"; filled by _load_uint8
_SOURCE: dict[str, str] = {}
# root -> why torchvision failed there: one failed download per process, not one per split
_FAILED_ROOTS: dict[str, str] = {}
_WARNED = False


@lru_cache(maxsize=4)
def _load_uint8(split: str, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    if _env_flag("LABS_OFFLINE"):
        reason = "LABS_OFFLINE is set"
    elif root in _FAILED_ROOTS:
        reason = _FAILED_ROOTS[root]
    else:
        try:
            images, labels = _load_torchvision(split, Path(root))
            _SOURCE[split] = "torchvision"
            return images, labels
        except Exception as exc:  # any failure: no torchvision, no network, partial files, ...
            reason = f"torchvision could not provide MNIST: {type(exc).__name__}: {_one_line(exc)}"
            _FAILED_ROOTS[root] = reason
    _SOURCE[split] = "bundled"
    _warn_once(reason)
    return load_bundled(split)


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """The exception's message on one line, shortened (torchvision's are several lines long)."""
    text = " ".join(str(exc).split()) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _warn_once(reason: str) -> None:
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    warnings.warn(
        f"Using the bundled MNIST subset (4,000 train / 1,000 test digits) because {reason}. "
        "For the full 70,000 digits, run once with internet access (torchvision downloads them to "
        f"{default_root()}), or set LABS_DATA_DIR to a folder that already holds torchvision's MNIST.",
        BundledDataWarning,
        stacklevel=_first_frame_outside_package(),
    )


def _first_frame_outside_package() -> int:
    """The ``stacklevel`` that makes a warning point at the caller's code, not at labs_utils."""
    frame, level = sys._getframe(1), 1
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith("labs_utils"):
        frame, level = frame.f_back, level + 1
    return level


def _load_torchvision(split: str, root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    from torchvision.datasets import MNIST  # heavy import: only when data is asked for

    root.mkdir(parents=True, exist_ok=True)
    dataset = MNIST(str(root), train=(split == "train"), download=True)
    images, labels = dataset.data, dataset.targets
    expected = FULL_SIZES[split]
    if tuple(images.shape) != (expected, 28, 28) or labels.shape != (expected,):
        raise RuntimeError(f"unexpected MNIST shape {tuple(images.shape)} in {root}: delete that folder to download "
                           "MNIST again, or set LABS_DATA_DIR to another folder")
    return images.to(torch.uint8), labels


def load_bundled(split: str, path: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled subset as uint8 images (N, 28, 28) and uint8 labels; validated on load."""
    _check_split(split)
    path = Path(path) if path is not None else BUNDLED_FILE
    if not path.is_file():
        raise BundledDataError(f"The bundled MNIST file {path} is missing. {REBUILD_HINT}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            images = archive[f"{split}_images"]
            labels = archive[f"{split}_labels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise BundledDataError(
            f"The bundled MNIST file {path} is corrupted ({type(exc).__name__}: {_one_line(exc)}). {REBUILD_HINT}"
        ) from exc
    n = BUNDLED_SIZES[split]
    problems = []
    if images.shape != (n, 28, 28) or images.dtype != np.uint8:
        problems.append(f"images are {images.dtype}{images.shape}, expected uint8({n}, 28, 28)")
    if labels.shape != (n,) or labels.size and (labels.min() < 0 or labels.max() > 9):
        problems.append(f"labels are {labels.dtype}{labels.shape} with values outside 0-9")
    if problems:
        raise BundledDataError(f"The bundled MNIST file {path} is corrupted: {'; '.join(problems)}. {REBUILD_HINT}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def tensor_loader(
    *tensors: torch.Tensor, batch_size: int = 128, shuffle: bool = False, seed: int = 0
) -> DataLoader:
    """A DataLoader over tensors with a seeded shuffle (the same batches on every run)."""
    if not tensors:
        raise ValueError("tensor_loader needs at least one tensor, e.g. tensor_loader(images, labels)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    sizes = {len(t) for t in tensors}
    if len(sizes) != 1:
        raise ValueError(f"all tensors need the same first dimension, got sizes {sorted(sizes)}")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=generator)


def make_loaders(
    batch_size: int = 128,
    *,
    train_limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
    root: str | Path | None = None,
) -> tuple[DataLoader, DataLoader]:
    """MNIST ``(train_loader, test_loader)`` of (images, labels) batches; train shuffled with ``seed``."""
    x_train, y_train = load_mnist("train", limit=train_limit, root=root)
    x_test, y_test = load_mnist("test", limit=test_limit, root=root)
    return (
        tensor_loader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed),
        tensor_loader(x_test, y_test, batch_size=batch_size, shuffle=False),
    )
