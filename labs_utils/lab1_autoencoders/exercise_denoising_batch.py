"""Exercise 5, ``denoising_batch(x_clean, corrupt)``: its parts, probe (student's kernel) and judge.

The probe calls the student's function with digit-like images and a ``corrupt`` that records every argument
it gets and adds seeded Gaussian noise; the judge replays that noise from the seed and decides whether the
inputs are ``corrupt(x_clean)`` and the targets the clean batch, untouched. A function that never calls
``corrupt`` (the plain autoencoder's batch, ``(x, x)``) earns nothing: its clean targets are no attempt.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..checking import describe, with_hint
from ..exercises import Exercise, Part
from ..runtime import seeded
from ._calls import StudentCalls
from ._inputs import digit_like_images, generator

INPUTS = "inputs = corrupt(x_clean)"
TARGETS = "targets = clean batch untouched"
PARTS = (Part(INPUTS, 0.5), Part(TARGETS, 0.5))

CORRUPT_STD = 0.3  # the probe's corrupt(x): Gaussian noise of this std from a generator seeded with seed + 1
MAX_CALLS = 4  # calls of corrupt whose argument the probe records


def probe_denoising_batch(fn: Callable, *, seed: int) -> dict:
    """Call ``fn(x_clean, corrupt)`` with a corrupt that records its arguments; return the pair it made."""
    x_clean = digit_like_images(8, seed)
    noise = generator(seed + 1)
    arguments: list[torch.Tensor] = []
    n_calls = 0

    def corrupt(images: torch.Tensor) -> torch.Tensor:
        nonlocal n_calls
        n_calls += 1
        if len(arguments) < MAX_CALLS:
            arguments.append(images.detach().to("cpu", torch.float32).clone())
        return (images + CORRUPT_STD * torch.randn(images.shape, generator=noise)).clamp(0, 1)

    with seeded(seed + 2):
        result = StudentCalls()(fn, x_clean, corrupt, what=f"{describe(fn)}(x_clean, corrupt)")
    evidence: dict[str, Any] = {"name": describe(fn), "type": type(result).__name__, "n_calls": n_calls,
                                "arguments": arguments, "x_clean_after": x_clean.detach().clone()}
    if isinstance(result, (tuple, list)):
        evidence["length"] = len(result)
        evidence["pair"] = [t.detach().to("cpu", torch.float32) if isinstance(t, torch.Tensor) else type(t).__name__
                            for t in result[:2]]
    return evidence


def _same(a: Any, b: torch.Tensor) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=1e-6,
                                                                                 rtol=0)


def judge_denoising_batch(evidence: Any, *, seed: int) -> dict:
    """Parts INPUTS and TARGETS from the probe's record."""
    if not isinstance(evidence, dict):
        raise AssertionError("The check's evidence is malformed.")
    clean = digit_like_images(8, seed)
    name = str(evidence.get("name", "denoising_batch"))
    pair = evidence.get("pair")
    if evidence.get("length") != 2 or not isinstance(pair, list) or len(pair) != 2 or not all(
            isinstance(t, torch.Tensor) for t in pair):
        message = with_hint(f"{name} returned a {evidence.get('type')} of {evidence.get('length', 'no')} item(s); "
                            "expected a pair of tensors (inputs, targets).",
                            "return a tuple of two tensors: first the inputs, then the targets.")
        return {INPUTS: message, TARGETS: message}
    inputs, targets = pair
    arguments = [a for a in evidence.get("arguments", []) if isinstance(a, torch.Tensor)]
    noise = generator(seed + 1)  # the probe's corrupt, replayed: the k-th call's result
    corrupted = [(a + CORRUPT_STD * torch.randn(a.shape, generator=noise)).clamp(0, 1) for a in arguments]
    on_clean = [k for k, a in enumerate(arguments) if _same(a, clean)]
    swapped = _same(inputs, clean) and any(_same(targets, c) for c in corrupted)
    swap_message = with_hint(f"{name} returned (clean, corrupted): the pair is swapped.",
                             "the network reads the corrupted images and is scored against the clean ones: the "
                             "inputs come first in the pair, the targets second.")
    never_called = with_hint(f"{name} never called corrupt: its pair is the plain autoencoder's (no noise).",
                             "the inputs are made by the corrupt function it receives: corrupt(x_clean).")

    def judge_inputs() -> str | None:
        if any(_same(inputs, corrupted[k]) for k in on_clean):
            return None
        if swapped:
            return swap_message
        if any(_same(inputs, c) and any(_same(arguments[k], corrupted[j]) for j in on_clean)
               for k, c in enumerate(corrupted)):
            return with_hint(f"{name}: the inputs are corrupt(corrupt(x_clean)): the corruption was applied twice, "
                             "so the inputs are noisier than the level asked for.",
                             "call corrupt once, on x_clean, and use its result as the inputs.")
        if not evidence.get("n_calls"):
            return never_called
        if not on_clean:
            return with_hint(f"{name} called corrupt on something other than x_clean.",
                             "corrupt the clean batch itself, with nothing done to it before.")
        if _same(inputs, clean):
            return with_hint(f"{name}: the inputs are the clean images, so there is nothing to denoise.",
                             "the inputs must be the corrupted version of the clean batch.")
        return with_hint(f"{name}: the inputs are not what corrupt(x_clean) returned.",
                         "use corrupt's result as it is, without changing it afterwards.")

    def judge_targets() -> str | None:
        if not evidence.get("n_calls"):
            return never_called
        after = evidence.get("x_clean_after")
        if not isinstance(after, torch.Tensor) or not _same(after, clean) or not torch.equal(after, clean):
            return with_hint(f"{name} changed x_clean in place.", "leave x_clean untouched; it is the target.")
        if swapped:
            return swap_message
        if any(_same(targets, c) for c in corrupted):
            return with_hint(f"{name}: the targets are the corrupted images; a denoiser learns to output clean ones.",
                             "the loss is L(x, g(f(x_noisy))): the targets must be the clean batch itself.")
        if not (targets.shape == clean.shape and torch.equal(targets, clean)):
            return with_hint(f"{name}: the targets (shape {tuple(targets.shape)}) are not the clean batch x_clean.",
                             "the targets must be the clean batch itself, unchanged.")
        return None

    return {INPUTS: judge_inputs(), TARGETS: judge_targets()}


DENOISING_BATCH = Exercise("Denoising batch", ("denoising_batch",), PARTS, probe_denoising_batch, judge_denoising_batch)
