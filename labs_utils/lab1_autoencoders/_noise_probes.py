"""Probes and judges of the corruption exercises and the denoising batch.

A probe runs the student's function on inputs drawn from ``seed`` and returns what came out (the
corrupted images, their dtype and shape, the input after the call); the judge regenerates the same
inputs from ``seed`` and decides each part from the measurements, outside the student's kernel.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..checking import call_student, describe, require_parameters
from ..runtime import seeded

IMAGE_SHAPE = (1, 28, 28)
STAT_LEVELS = (0.05, 0.2)
N_STAT = 32  # grey images per statistics call: 25,088 pixels
N_SMALL = 4  # images per reproducibility call
PER_PIXEL = ("decide for every pixel on its own: draw the random numbers shaped like x (the whole batch), "
             "not one per image and not one image's worth shared by the batch.")

Verdicts = dict[str, "str | None"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed % 2**63)


def digit_like_images(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images like MNIST's, (n, 1, 28, 28): 60 % exact 0 (background), 10 % exact 1 (ink), grey in between."""
    g = _generator(seed)
    u = torch.rand(n, *IMAGE_SHAPE, generator=g, dtype=torch.float64)
    grey = torch.rand(n, *IMAGE_SHAPE, generator=g, dtype=torch.float64)
    return torch.where(u < 0.6, 0.0, torch.where(u > 0.9, 1.0, grey)).to(dtype)


def grey_images(n: int = N_STAT) -> torch.Tensor:
    return torch.full((n, *IMAGE_SHAPE), 0.5)


# ----------------------------------------------------------------------------------------------- noise probe


def _record(fn: Callable, x: torch.Tensor, level: float, generator: Any, *, keep_input: bool = False) -> dict:
    """Call ``fn(x, level, generator=...)``; the output (as float32), its type, dtype and shape."""
    label = f"{describe(fn)}(x, {level}" + (", generator=...)" if generator is not None else ")")
    output = call_student(fn, x, level, generator=generator, what=label)
    found: dict[str, Any] = {"type": type(output).__name__}
    if isinstance(output, torch.Tensor):
        found.update(dtype=str(output.dtype).replace("torch.", ""), shape=list(output.shape),
                     output=output.detach().to("cpu", torch.float32).flatten()[: x.numel()])
    if keep_input:
        found["input_after"] = x.detach().to("cpu", torch.float32)
    return found


def probe_noise(fn: Callable, kind: str, *, seed: int) -> dict:
    """Run the student's corruption on grey images (statistics), digit-like images (range, level 0,
    float64) and small batches with seeded, shared and no generators (reproducibility)."""
    require_parameters(fn, ["level", "generator"], f"{describe(fn)}(x, level, generator=None)")
    evidence: dict[str, Any] = {"name": describe(fn), "kind": kind}
    with seeded(seed + 11):  # generator=None calls draw from torch's global generator; restored afterwards
        for i, level in enumerate(STAT_LEVELS):
            evidence[f"grey_{level}"] = _record(fn, grey_images(), level, _generator(seed + 1 + i))
        evidence["range"] = _record(fn, digit_like_images(16, seed), 0.5, _generator(seed + 3), keep_input=True)
        evidence["level_0"] = _record(fn, digit_like_images(16, seed), 0.0, _generator(seed + 4))
        evidence["float64"] = _record(fn, digit_like_images(N_SMALL, seed, torch.float64), 0.3,
                                      _generator(seed + 5))
        small = digit_like_images(N_SMALL, seed + 6)
        evidence["seed_a"], evidence["seed_a_again"], evidence["seed_b"] = (
            _record(fn, small, 0.3, _generator(s)) for s in (seed + 7, seed + 7, seed + 8))
        shared = _generator(seed + 9)
        evidence["shared_1"], evidence["shared_2"] = (_record(fn, small, 0.3, shared) for _ in range(2))
        evidence["global_1"], evidence["global_2"] = (_record(fn, small, 0.3, None) for _ in range(2))
    return evidence


# ----------------------------------------------------------------------------------------------- noise judge


def _output(name: str, record: Any, x: torch.Tensor, label: str) -> tuple[torch.Tensor | None, str | None]:
    """The output of one recorded call as a tensor shaped like x, or a message saying why not."""
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return None, f"the check recorded nothing for {label} (malformed evidence)."
    if record["type"] != "Tensor" or not isinstance(record.get("output"), torch.Tensor):
        return None, f"{label} returned a {record['type']}, not a tensor. Hint: return the corrupted images."
    if record.get("shape") != list(x.shape) or record["output"].numel() != x.numel():
        return None, (f"{label} returned shape {tuple(record.get('shape') or ())} for x of shape {tuple(x.shape)}. "
                      "Hint: the corrupted batch has the shape of x: draw one random number per pixel of the "
                      "whole batch.")
    return record["output"].double().view(x.shape), None


def judge_basics(evidence: dict, name: str, seed: int) -> str | None:
    """Part "range and identity at level 0": a tensor like x (shape, dtype), in [0, 1], x untouched, level 0 = x."""
    digits = digit_like_images(16, seed).double()
    calls = {"range": (digits, "float32", f"{name}(x, 0.5)"), "level_0": (digits, "float32", f"{name}(x, 0.0)"),
             "float64": (digit_like_images(N_SMALL, seed, torch.float64), "float64", f"{name}(x, 0.3)")}
    outputs = {}
    for key, (x, dtype, label) in calls.items():
        outputs[key], problem = _output(name, evidence.get(key), x, label)
        if problem:
            return problem
        if evidence[key].get("dtype") != dtype:
            return (f"{label} returned dtype {evidence[key].get('dtype')} for x of dtype {dtype}. Hint: keep the "
                    "dtype of x (no .float() or .double() at the end): random numbers and replacement values "
                    "must have x's dtype, or be converted to it, before they are combined with x.")
        if not torch.isfinite(outputs[key]).all():
            return f"{label} returned NaN or inf."
    after = evidence["range"].get("input_after")
    if not isinstance(after, torch.Tensor) or after.shape != digits.shape or not torch.equal(after.double(), digits):
        return (f"{name} changed its input x in place. Hint: return a new tensor and leave x untouched: the clean "
                "images are still needed as targets. Avoid in-place operations such as x.add_(...), "
                "x[mask] = ... or x.clamp_(...) on x itself.")
    low, high = outputs["range"].min().item(), outputs["range"].max().item()
    if low < 0 or high > 1:
        return (f"{name}(x, 0.5) returned values in [{low:.3g}, {high:.3g}]; images live in [0, 1]. Hint: the "
                "corrupted images must be clamped into [0, 1] at the end.")
    change = (outputs["level_0"] - digits).abs().max().item()
    if change > 1e-6:
        return (f"{name}(x, 0) changed the images (max change {change:.3g}); level 0 means no corruption. "
                "Hint: make the amount of corruption proportional to `level`.")
    return None


def _same_pattern_message(name: str, level: float, what: str) -> str:
    return (f"{name}(x, {level}): images 1 and 2 of the batch got exactly the same {what}; every image needs its "
            f"own. Hint: {PER_PIXEL}")


def _hit_fraction(name: str, hit: torch.Tensor, level: float, what: str) -> str | None:
    fraction = hit.double().mean().item()
    per_image = hit.flatten(1).double().mean(dim=1)
    if abs(fraction - level) > 0.02 or (per_image - level).abs().max().item() > 0.1:
        return (f"{name}(x, {level}) {what} {fraction:.1%} of the pixels (between {per_image.min().item():.0%} "
                f"and {per_image.max().item():.0%} per image); expected {level:.0%}. Hint: decide for every pixel "
                "on its own, with probability level: one uniform random number per pixel, compared with level.")
    if torch.equal(hit[0], hit[1]):
        return _same_pattern_message(name, level, "pixels " + what)
    return None


def _gaussian(name: str, noise: torch.Tensor, level: float) -> str | None:
    if torch.equal(noise[0], noise[1]):
        return _same_pattern_message(name, level, "noise")
    std = noise.flatten(1).std(dim=1).mean().item()
    if std < 1e-3 * level:
        return (f"{name}(x, {level}): the noise is (nearly) constant within each image (standard deviation "
                f"{std:.4f}); each pixel needs its own noise value. Hint: {PER_PIXEL}")
    mean = noise.mean().item()
    if abs(mean) > 0.05 * level:
        return (f"{name}(x, {level}): the added noise has mean {mean:.4f}; Gaussian noise has mean 0. "
                "Hint: use torch.randn (normal, mean 0), not torch.rand (uniform in [0, 1)).")
    if abs(std - level) > 0.1 * level:
        guess = (" It looks like level**2: level is the standard deviation, not the variance."
                 if abs(std - level ** 2) < 0.1 * level ** 2 else "")
        return (f"{name}(x, {level}): the added noise has standard deviation {std:.4f} within an image; expected "
                f"{level} (level is the standard deviation).{guess} Hint: scale standard normal noise (std 1) by "
                "level itself: not by level**2, sqrt(level) or a fixed number.")
    return None


def _salt_and_pepper(name: str, output: torch.Tensor, level: float) -> str | None:
    hit = output != 0.5
    values = output[hit]
    if not ((values == 0) | (values == 1)).all():
        odd = [round(v, 3) for v in values[(values != 0) & (values != 1)][:3].tolist()]
        return (f"{name} set hit pixels to values such as {odd}; salt-and-pepper pixels are exactly 1 (salt) or "
                "0 (pepper), and the other pixels keep their value. Hint: a hit pixel takes exactly 0 or 1 (not a "
                "random grey value, not x plus something); a pixel that is not hit keeps its value from x.")
    problem = _hit_fraction(name, hit, level, "changed")
    if problem:
        return problem
    salt = (values == 1).double().mean().item()
    if not 0.25 <= salt <= 0.75:
        return (f"{name}(x, {level}): {salt:.0%} of the hit pixels are salt (1) and {1 - salt:.0%} pepper (0); the "
                "noise needs both, about half each. Hint: each hit pixel needs its own fair coin flip between 0 "
                "and 1, drawn separately from the choice of the pixels hit.")
    if level >= 0.2:
        hits, salts = hit.flatten(1).sum(dim=1), (output == 1).flatten(1).sum(dim=1)
        share = salts.double() / hits.clamp_min(1)
        lopsided = ((share < 0.2) | (share > 0.8)) & (hits >= 50)
        if lopsided.any():
            i = int(lopsided.nonzero()[0])
            return (f"{name}(x, {level}): in image {i + 1}, {int(salts[i])} of its {int(hits[i])} hit pixels are "
                    "salt: salt or pepper was chosen once per image, not per pixel. Hint: flip the salt-or-pepper "
                    "coin for every pixel: draw it shaped like x, not one per image.")
    return None


def _mask(name: str, output: torch.Tensor, level: float) -> str | None:
    changed = output != 0.5
    if not (output[changed] == 0).all():
        example = [round(v, 3) for v in output[changed & (output != 0)][:3].tolist()]
        scaled = " (like F.dropout, which rescales the kept pixels by 1 / (1 - p))" if example else ""
        return (f"{name}(x, {level}) changed pixels to values such as {example}{scaled}; masked pixels become 0 "
                "and every other pixel keeps its value. Hint: set the chosen pixels to exactly 0 and copy every "
                "other pixel of x unchanged (no rescaling as in dropout).")
    return _hit_fraction(name, changed, level, "masked")


def judge_statistics(evidence: dict, name: str, kind: str) -> str | None:
    """Part "statistics": the corruption of grey images (0.5 everywhere) at two levels, pixel by pixel."""
    grey = grey_images().double()
    for level in STAT_LEVELS:
        output, problem = _output(name, evidence.get(f"grey_{level}"), grey, f"{name}(x, {level})")
        if problem:
            return problem
        if kind == "gaussian":
            problem = _gaussian(name, output - grey, level)
        elif kind == "salt_and_pepper":
            problem = _salt_and_pepper(name, output, level)
        else:
            problem = _mask(name, output, level)
        if problem:
            return problem
    return None


def judge_randomness(evidence: dict, name: str, seed: int) -> str | None:
    """Part "reproducible with a generator, fresh noise on every call"."""
    small = digit_like_images(N_SMALL, seed + 6).double()
    out = {}
    for key in ("seed_a", "seed_a_again", "seed_b", "shared_1", "shared_2", "global_1", "global_2"):
        out[key], problem = _output(name, evidence.get(key), small, f"{name}(x, 0.3)")
        if problem:
            return problem
    if not torch.equal(out["seed_a"], out["seed_a_again"]):
        return (f"Two calls of {name} with generators seeded alike gave different images. Hint: draw every random "
                "number from the generator argument: pass it to each torch.rand / torch.randn call instead of "
                "using torch's global generator.")
    if torch.equal(out["seed_a"], out["seed_b"]):
        return (f"{name} gave the same images for generators with different seeds. Hint: the corruption must be "
                "random: draw it from the generator argument, not from fixed values or a generator of your own.")
    reseed = ("Hint: never seed inside the corruption (no torch.manual_seed, no generator.manual_seed, no "
              "torch.Generator().manual_seed(...) of your own): draw from `generator`, or from torch's global "
              "generator when it is None, which the notebook seeds once at the top.")
    if torch.equal(out["shared_1"], out["shared_2"]):
        return (f"Two successive calls of {name} with the same generator gave identical images: the function "
                f"reseeds the generator, so every batch would get the same noise. {reseed}")
    if torch.equal(out["global_1"], out["global_2"]):
        return (f"Two successive calls of {name}(x, 0.3) without a generator gave identical images: the function "
                f"reseeds torch's random numbers, so every training batch would get the same noise. {reseed}")
    return None


def judge_noise(evidence: Any, kind: str, *, seed: int) -> Verdicts:
    from .checks import NOISE_PARTS  # the part names live with the grading table

    if not isinstance(evidence, dict):
        return {part.name: "the check's evidence is malformed." for part in NOISE_PARTS}
    name = str(evidence.get("name", {"gaussian": "add_gaussian_noise", "salt_and_pepper": "add_salt_and_pepper",
                                     "mask": "mask_pixels"}.get(kind, "the corruption")))
    statistics, basics, randomness = (part.name for part in NOISE_PARTS)
    return {basics: judge_basics(evidence, name, seed), statistics: judge_statistics(evidence, name, kind),
            randomness: judge_randomness(evidence, name, seed)}


# ----------------------------------------------------------------------------------------------- denoising batch

CORRUPT_STD = 0.3  # the probe's corrupt(x): Gaussian noise of this std from a generator seeded with seed + 1
MAX_CALLS = 4  # calls of corrupt whose argument the probe records


def probe_denoising_batch(fn: Callable, *, seed: int) -> dict:
    """Call ``fn(x_clean, corrupt)`` with a corrupt that records its arguments; return the pair it made."""
    x_clean = digit_like_images(8, seed)
    generator = _generator(seed + 1)
    arguments: list[torch.Tensor] = []
    n_calls = 0

    def corrupt(images: torch.Tensor) -> torch.Tensor:
        nonlocal n_calls
        n_calls += 1
        if len(arguments) < MAX_CALLS:
            arguments.append(images.detach().to("cpu", torch.float32).clone())
        return (images + CORRUPT_STD * torch.randn(images.shape, generator=generator)).clamp(0, 1)

    with seeded(seed + 2):
        result = call_student(fn, x_clean, corrupt, what=f"{describe(fn)}(x_clean, corrupt)")
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


def judge_denoising_batch(evidence: Any, *, seed: int) -> Verdicts:
    """Parts "inputs = corrupt(x_clean)" and "targets = clean batch untouched", from the probe's record."""
    from .checks import BATCH_PARTS

    inputs_part, targets_part = (part.name for part in BATCH_PARTS)
    if not isinstance(evidence, dict):
        return {part.name: "the check's evidence is malformed." for part in BATCH_PARTS}
    clean = digit_like_images(8, seed)
    name = str(evidence.get("name", "denoising_batch"))
    pair = evidence.get("pair")
    if evidence.get("length") != 2 or not isinstance(pair, list) or len(pair) != 2 or not all(
            isinstance(t, torch.Tensor) for t in pair):
        message = (f"{name} returned a {evidence.get('type')} of {evidence.get('length', 'no')} item(s); expected a "
                   "pair of tensors (inputs, targets). Hint: return a tuple of two tensors: first the inputs, then "
                   "the targets.")
        return {inputs_part: message, targets_part: message}
    inputs, targets = pair
    arguments = [a for a in evidence.get("arguments", []) if isinstance(a, torch.Tensor)]
    generator = _generator(seed + 1)  # the probe's corrupt, replayed: the k-th call's result
    corrupted = [(a + CORRUPT_STD * torch.randn(a.shape, generator=generator)).clamp(0, 1) for a in arguments]
    on_clean = [k for k, a in enumerate(arguments) if _same(a, clean)]
    swapped = _same(inputs, clean) and any(_same(targets, c) for c in corrupted)
    swap_message = (f"{name} returned (clean, corrupted): the pair is swapped. Hint: the network reads the "
                    "corrupted images and is scored against the clean ones: the inputs come first in the pair, "
                    "the targets second.")

    def judge_inputs() -> str | None:
        if any(_same(inputs, corrupted[k]) for k in on_clean):
            return None
        if swapped:
            return swap_message
        if any(_same(inputs, c) and any(_same(arguments[k], corrupted[j]) for j in on_clean)
               for k, c in enumerate(corrupted)):
            return (f"{name}: the inputs are corrupt(corrupt(x_clean)): the corruption was applied twice, so the "
                    "inputs are noisier than the level asked for. Hint: call corrupt once, on x_clean, and use "
                    "its result as the inputs.")
        if not evidence.get("n_calls"):
            return f"{name} never called corrupt. Hint: the inputs are made by the corrupt function it receives."
        if not on_clean:
            return (f"{name} called corrupt on something other than x_clean. Hint: corrupt the clean batch "
                    "itself, with nothing done to it before.")
        if _same(inputs, clean):
            return (f"{name}: the inputs are the clean images, so there is nothing to denoise. Hint: the inputs "
                    "must be the corrupted version of the clean batch.")
        return (f"{name}: the inputs are not what corrupt(x_clean) returned. Hint: use corrupt's result as it is, "
                "without changing it afterwards.")

    def judge_targets() -> str | None:
        after = evidence.get("x_clean_after")
        if not isinstance(after, torch.Tensor) or not _same(after, clean) or not torch.equal(after, clean):
            return f"{name} changed x_clean in place. Hint: leave x_clean untouched; it is the target."
        if swapped:
            return swap_message
        if any(_same(targets, c) for c in corrupted):
            return (f"{name}: the targets are the corrupted images; a denoiser learns to output clean ones. Hint: "
                    "the loss is L(x, g(f(x_noisy))): the targets must be the clean batch itself.")
        if not (targets.shape == clean.shape and torch.equal(targets, clean)):
            return (f"{name}: the targets (shape {tuple(targets.shape)}) are not the clean batch x_clean. Hint: the "
                    "targets must be the clean batch itself, unchanged.")
        return None

    return {inputs_part: judge_inputs(), targets_part: judge_targets()}
