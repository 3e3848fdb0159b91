"""Seeds, devices, fast mode and the torch thread policy (used by every lab)."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

_FALSE_WORDS = {"", "0", "false", "no", "off"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in _FALSE_WORDS


def fast_mode() -> bool:
    """True when the environment variable ``CI`` or ``LABS_FAST`` is set (to anything but 0/false).

    Fast mode shrinks data and epochs so a notebook runs in about a minute (CI, nbval).
    """
    return _env_flag("CI") or _env_flag("LABS_FAST")


def fast_note(shrunk: str = "shrunk runs") -> str:
    """In fast mode, a line saying that the numbers just printed are not the lab's results ("" in full mode).

    ``shrunk`` says what fast mode made smaller, e.g. ``"tiny trainings"``. Each lab's ``fast_note`` prints it.
    """
    if not fast_mode():
        return ""
    return (f"[fast mode: {shrunk}, so these numbers are not the lab's results; the text describes full mode, and "
            "the questions need a full-mode run]")


def by_mode(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise, e.g. ``epochs = by_mode(full=30, fast=2)``."""
    return fast if fast_mode() else full


def set_seed(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) so a rerun gives the same numbers."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Seed torch inside the block and give the caller's random state back afterwards.

    Checks and demo helpers use it, so running them never changes the numbers of the cells that follow.
    """
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        yield


def get_device(prefer: str | None = None) -> torch.device:
    """The best available device: cuda, then mps, then cpu.

    ``prefer`` (or the environment variable ``LABS_DEVICE``) forces one of "cpu", "cuda", "mps".
    """
    choice = prefer if prefer is not None else os.environ.get("LABS_DEVICE") or None
    if choice is not None:  # one validator for every device argument of the course
        from .validation import as_device

        return as_device(choice, what="device" if prefer is not None else "LABS_DEVICE")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def recommended_threads() -> int:
    """How many CPU threads torch should use.

    On a small, busy machine torch's default (one thread per core, spin-waiting) made an
    epoch 3-80x slower than a single thread. We use 1 thread on machines with <= 2 cores
    and half the cores (at most 4) elsewhere. ``LABS_THREADS`` overrides this.
    """
    override = os.environ.get("LABS_THREADS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise ValueError(f"LABS_THREADS must be a positive integer, got {override!r}")
        return int(override)
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(4, cores // 2)


def configure_threads() -> int:
    """Apply :func:`recommended_threads` to torch and return the number used."""
    threads = recommended_threads()
    torch.set_num_threads(threads)
    return threads


def setup_lab(seed: int = 0, device: str | None = None, verbose: bool = True) -> torch.device:
    """One call at the top of every lab: seed, thread policy, device; prints a one-line summary."""
    set_seed(seed)
    threads = configure_threads()
    dev = get_device(device)
    if verbose:
        mode = "fast (CI/LABS_FAST)" if fast_mode() else "full"
        print(f"torch {torch.__version__} | device: {dev} | mode: {mode} | CPU threads: {threads} | seed: {seed}")
    return dev
