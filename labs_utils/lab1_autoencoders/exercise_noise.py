"""Exercise 4, the three corruptions ``fn(x, level, generator=None)``: their parts, probe and judge.

The probe runs the student's function on digit-like images (exact black background, white ink, greys in
between, as in MNIST) and records what came out; the judge draws the same inputs from ``seed`` again and
decides each part outside the student's kernel. On such images a corruption that depends on the pixel's
value shows: noise multiplied by the pixel leaves the background black, a mask drawn with a probability
proportional to the pixel spares the dark greys. Gaussian noise is tested for its whole distribution: each
output pixel's change is mapped through the normal CDF of std ``level`` (a pixel held at 0 or 1 to a uniform
draw over the changes that end there), which gives uniform numbers exactly when the output meets the contract.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..checking import describe, require_parameters, with_hint
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from ._calls import StudentCalls
from ._inputs import draw_images, generator

STAT_LEVELS = (0.05, 0.2)
N_STAT = 48  # digit-like images per statistics call: 37,632 pixels, 11,000 of them grey
N_SMALL = 4  # images per reproducibility call
# Largest normality_gap of Gaussian noise by chance. Measured on the statistics calls of 400 seeds (800 runs):
# correct noise at most 1.73 (the Kolmogorov distribution puts 1e-5 above 2.5); uniform or Laplace noise of the
# right std at least 8.9.
KS_LIMIT = 2.5
PER_PIXEL = ("decide for every pixel on its own: draw the random numbers shaped like x (the whole batch), "
             "not one per image and not one image's worth shared by the batch.")

STATISTICS = "statistics"
BASICS = "range and identity at level 0"
RANDOMNESS = "reproducible with a generator, fresh noise on every call"
PARTS = (Part(STATISTICS, 0.5), Part(BASICS, 0.25), Part(RANDOMNESS, 0.25))


GENERATORS = ("stat_0", "stat_1", "range", "level_0", "float64", "seed_a", "seed_b", "shared")


def inputs_noise(*args: Any, seed: int) -> dict:
    """Digit-like images (two statistics batches, 16 for range and level 0, float64 ones, a small batch), the
    sub-seeds of the generators handed to the corruption and of torch's global generator around the calls."""
    return {"stat_images": [draw_images(seed, f"stat images {i}", N_STAT) for i in range(len(STAT_LEVELS))],
            "digits": draw_images(seed, "digits", 16), "float64": draw_images(seed, "float64", N_SMALL, torch.float64),
            "small": draw_images(seed, "small", N_SMALL), "global": sub_seed(seed, "global"),
            "generators": {key: sub_seed(seed, f"generator {key}") for key in GENERATORS}}


def _record(calls: StudentCalls, fn: Callable, x: torch.Tensor, level: float, g: Any, keep_input: bool = False) -> dict:
    """Call ``fn(x, level, generator=g)`` on a copy of x (the inputs serve several calls); the output (as float32),
    its type, dtype and shape (and the copy after the call), or the failure."""
    label = f"{describe(fn)}(x, {level}" + (", generator=...)" if g is not None else ")")
    x = x.clone()
    try:
        output = calls(fn, x, level, generator=g, what=label)
    except AssertionError as exc:
        return {"error": str(exc)}
    found: dict[str, Any] = {"type": type(output).__name__}
    if isinstance(output, torch.Tensor):
        found.update(dtype=str(output.dtype).replace("torch.", ""), shape=list(output.shape),
                     output=output.detach().to("cpu", torch.float32).flatten()[: x.numel()])
    if keep_input:
        found["input_after"] = x.detach().to("cpu", torch.float32)
    return found


def probe_noise(fn: Callable, kind: str, *, inputs: dict) -> dict:
    """Run the student's corruption on digit-like images: two levels for the statistics, then range, level 0,
    float64, and small batches with seeded, shared and no generators (reproducibility)."""
    require_parameters(fn, ["level", "generator"], f"{describe(fn)}(x, level, generator=None)")
    calls = StudentCalls()
    evidence: dict[str, Any] = {"name": describe(fn), "kind": kind}
    seeds = inputs["generators"]
    with seeded(inputs["global"]):  # generator=None calls draw from torch's global generator; restored afterwards
        for i, level in enumerate(STAT_LEVELS):
            evidence[f"stat_{level}"] = _record(calls, fn, inputs["stat_images"][i], level,
                                                generator(seeds[f"stat_{i}"]))
        evidence["range"] = _record(calls, fn, inputs["digits"], 0.5, generator(seeds["range"]), keep_input=True)
        evidence["level_0"] = _record(calls, fn, inputs["digits"], 0.0, generator(seeds["level_0"]))
        evidence["float64"] = _record(calls, fn, inputs["float64"], 0.3, generator(seeds["float64"]))
        small = inputs["small"]
        evidence["seed_a"], evidence["seed_a_again"], evidence["seed_b"] = (
            _record(calls, fn, small, 0.3, generator(seeds[key])) for key in ("seed_a", "seed_a", "seed_b"))
        shared = generator(seeds["shared"])
        evidence["shared_1"], evidence["shared_2"] = (_record(calls, fn, small, 0.3, shared) for _ in range(2))
        evidence["global_1"], evidence["global_2"] = (_record(calls, fn, small, 0.3, None) for _ in range(2))
    return evidence


# ----------------------------------------------------------------------------------------------- judge


def _output(record: Any, x: torch.Tensor, label: str) -> tuple[torch.Tensor | None, str | None]:
    """The output of one recorded call as a float64 tensor shaped like x, or a message saying why not."""
    if isinstance(record, dict) and isinstance(record.get("error"), str):
        return None, record["error"]
    if not isinstance(record, dict) or not isinstance(record.get("type"), str):
        return None, f"the check recorded nothing for {label} (malformed evidence)."
    if record["type"] != "Tensor" or not isinstance(record.get("output"), torch.Tensor):
        return None, with_hint(f"{label} returned a {record['type']}, not a tensor.", "return the corrupted images.")
    if record.get("shape") != list(x.shape) or record["output"].numel() != x.numel():
        return None, with_hint(f"{label} returned shape {tuple(record.get('shape') or ())} for x of shape "
                               f"{tuple(x.shape)}.", "the corrupted batch has the shape of x: draw one random number "
                                                     "per pixel of the whole batch.")
    return record["output"].double().view(x.shape), None


def judge_basics(evidence: dict, name: str, inputs: dict) -> str | None:
    """Part BASICS: a tensor like x (shape, dtype), in [0, 1], x untouched, level 0 = x, level 0.5 changes x."""
    digits = inputs["digits"].double()
    calls = {"range": (digits, "float32", f"{name}(x, 0.5)"), "level_0": (digits, "float32", f"{name}(x, 0.0)"),
             "float64": (inputs["float64"], "float64", f"{name}(x, 0.3)")}
    outputs = {}
    for key, (x, dtype, label) in calls.items():
        outputs[key], problem = _output(evidence.get(key), x, label)
        if problem:
            return problem
        if evidence[key].get("dtype") != dtype:
            return with_hint(f"{label} returned dtype {evidence[key].get('dtype')} for x of dtype {dtype}.",
                             "keep the dtype of x (no .float() or .double() at the end): random numbers and "
                             "replacement values must have x's dtype, or be converted to it, before they are "
                             "combined with x.")
        if not torch.isfinite(outputs[key]).all():
            return f"{label} returned NaN or inf."
    after = evidence["range"].get("input_after")
    if not isinstance(after, torch.Tensor) or after.shape != digits.shape or not torch.equal(after.double(), digits):
        return with_hint(f"{name} changed its input x in place.",
                         "return a new tensor and leave x untouched: the clean images are still needed as targets. "
                         "Avoid in-place operations such as x.add_(...), x[mask] = ... or x.clamp_(...) on x itself.")
    if torch.equal(outputs["range"], digits):
        return with_hint(f"{name}(x, 0.5) returned the images unchanged: nothing was corrupted.",
                         "corrupt x by the amount `level` asks for.")
    low, high = outputs["range"].min().item(), outputs["range"].max().item()
    if low < 0 or high > 1:
        one_sided = " Its changes all go one way: it looks like the noise was clamped, not the result." if bool(
            (outputs["range"] >= digits).all()) else ""
        return with_hint(f"{name}(x, 0.5) returned values in [{low:.3g}, {high:.3g}]; images live in [0, 1]."
                         + one_sided,
                         "noise pushes pixels past 0 and 1, and the damaged image is what must stay in [0, 1]: "
                         "clamping the noise alone does not keep x + noise in range.")
    change = (outputs["level_0"] - digits).abs().max().item()
    if change > 1e-6:
        return with_hint(f"{name}(x, 0) changed the images (max change {change:.3g}); level 0 means no corruption.",
                         "make the amount of corruption proportional to `level`.")
    return None


def _same_pattern(name: str, level: float, what: str) -> str:
    return with_hint(f"{name}(x, {level}): images 1 and 2 of the batch got exactly the same {what}; every image needs "
                     "its own.", PER_PIXEL)


def _binomial_gap(fraction: float, level: float, n: float, sigmas: float) -> bool:
    """Whether a share ``fraction`` of ``n`` independent draws is too far from ``level`` to be chance."""
    return abs(fraction - level) > sigmas * math.sqrt(max(level * (1 - level), 1e-4) / max(n, 1.0)) + 0.005


def _hits(name: str, hit: torch.Tensor, among: torch.Tensor, x: torch.Tensor, level: float, what: str) -> str | None:
    """The pixels hit among the pixels ``among`` (where a hit shows): a share ``level``, per image, whatever the
    pixel's value, and not the same pixels in images 1 and 2."""
    groups = {"dark grey": among & (x < 0.5), "light grey": among & (x >= 0.5) & (x < 1), "white": among & (x == 1)}
    sizes = {g: m.sum().item() for g, m in groups.items() if m.sum() >= 200}
    shares = {g: hit[groups[g]].double().mean().item() for g in sizes}
    pooled = hit[among].double().mean().item()
    spread = 5 * math.sqrt(max(pooled * (1 - pooled), 1e-4) * 2 / max(min(sizes.values(), default=1), 1))
    if len(shares) > 1 and max(shares.values()) - min(shares.values()) > spread + 0.005:  # the groups disagree
        found = ", ".join(f"{s:.1%} of the {g} pixels" for g, s in shares.items())
        return with_hint(f"{name}(x, {level}) {what} {found}: the chance depends on the pixel's value.",
                         "every pixel is hit with the same probability `level`, whatever its value: compare one "
                         "uniform random number per pixel with level itself, not with level * x.")
    counts = among.flatten(1).sum(dim=1).double()
    per_image = (hit & among).flatten(1).sum(dim=1).double() / counts.clamp_min(1)
    fraction = hit[among].double().mean().item()
    wide = [i for i in range(len(x)) if _binomial_gap(per_image[i].item(), level, counts[i].item(), 6)]
    if _binomial_gap(fraction, level, among.sum().item(), 5) or wide:
        return with_hint(f"{name}(x, {level}) {what} {fraction:.1%} of the pixels (between "
                         f"{per_image.min().item():.0%} and {per_image.max().item():.0%} per image); expected "
                         f"{level:.0%}.", "decide for every pixel on its own, with probability level: one uniform "
                                          "random number per pixel, compared with level.")
    both = among[0] & among[1]
    if both.sum() > 50 and torch.equal(hit[0][both], hit[1][both]):
        return _same_pattern(name, level, f"pixels {what}")
    return None


def _normal_cdf(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-v / math.sqrt(2))


def gaussian_scores(x: torch.Tensor, out: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """Each pixel's noise through the normal CDF of std ``level``; a pixel clamped to 0 (or 1) gets a uniform
    draw below (above) the CDF of the clamp. Uniform on (0, 1) exactly when ``out`` meets the Gaussian contract."""
    u = _normal_cdf((out - x) / level)
    draw = torch.rand(out.shape, generator=generator(seed), dtype=torch.float64)
    u = torch.where(out == 0, draw * _normal_cdf(-x / level), u)
    return torch.where(out == 1, 1 - draw * _normal_cdf((x - 1) / level), u)


def normality_gap(u: torch.Tensor) -> float:
    """sqrt(n) times the largest gap between the empirical CDF of the n values ``u`` and the uniform one (the
    Kolmogorov-Smirnov statistic, scaled so that its distribution hardly depends on n)."""
    u, n = u.flatten().sort().values, u.numel()
    grid = torch.arange(1, n + 1, dtype=torch.float64) / n
    return math.sqrt(n) * torch.maximum(grid - u, u - (grid - 1 / n)).max().item()


def _gaussian(name: str, x: torch.Tensor, out: torch.Tensor, level: float, seed: int) -> str | None:
    call = f"{name}(x, {level})"
    noise = out - x
    if noise.abs().max().item() < 1e-7:
        return with_hint(f"{call} returned the images unchanged.",
                         "is the noise added to x, and is that sum what the function returns?")
    inside = (out > 0) & (out < 1)  # pixels whose noise no clamp cut
    both = inside[0] & inside[1]
    if both.sum() > 50 and torch.allclose(noise[0][both], noise[1][both], atol=1e-6, rtol=0):
        return _same_pattern(name, level, "noise")
    if (noise >= -1e-7).all() or (noise <= 1e-7).all():
        unchanged = (noise[(x > 0) & (x < 1)].abs() < 1e-7).double().mean().item()
        if unchanged > 0.3:
            return with_hint(f"{call}: the noise never goes {'down' if (noise >= -1e-7).all() else 'up'} and "
                             f"{unchanged:.0%} of the grey pixels did not change: the noise was clamped, not the "
                             "result.", "clamping the noise before adding it cuts off half of it; the [0, 1] rule is "
                             "about the damaged image, not the noise.")
        return with_hint(f"{call}: the noise never goes {'down' if (noise >= -1e-7).all() else 'up'}; Gaussian noise "
                         "has mean 0.", "use torch.randn (normal, mean 0), not torch.rand (uniform in [0, 1)).")
    if (out[x == 0] != 0).double().mean().item() < 0.1:
        return with_hint(f"{call} left the black background (pixels at 0) black: the noise is multiplied by the "
                         "pixel's value.", "Gaussian noise is added to every pixel whatever its value; a product "
                         "with x silences it on black pixels.")
    spread = [n[m].std().item() for n, m in zip(noise, inside) if m.sum() > 2]
    if spread and sum(spread) / len(spread) < 1e-3 * level:
        return with_hint(f"{call}: the noise is (nearly) constant within each image (standard deviation "
                         f"{sum(spread) / len(spread):.4f}); each pixel needs its own noise value.", PER_PIXEL)
    middle = noise[inside & (x >= 0.25) & (x <= 0.75)]  # at level 0.05 no clamp reaches these: plain noise
    if level <= 0.1:
        mean, std = middle.mean().item(), middle.std().item()
        if abs(mean) > 0.1 * level:
            return with_hint(f"{call}: the added noise has mean {mean:.4f}; Gaussian noise has mean 0.",
                             "use torch.randn (normal, mean 0), not torch.rand (uniform in [0, 1)).")
        if abs(std - level) > 0.1 * level:
            guess = (" It looks like level**2: level is the standard deviation, not the variance."
                     if abs(std - level ** 2) < 0.1 * level ** 2 else "")
            return with_hint(f"{call}: the added noise has standard deviation {std:.4f}; expected {level} (level is "
                             f"the standard deviation).{guess}", "scale standard normal noise (std 1) by level itself: "
                                                                 "not by level**2, sqrt(level) or a fixed number.")
    gap = normality_gap(gaussian_scores(x, out, level, seed))
    if gap > KS_LIMIT:
        kurtosis = ((middle - middle.mean()) ** 4).mean().item() / middle.var(unbiased=False).item() ** 2
        return with_hint(f"{call}: the added noise is not Gaussian with std {level}: its distribution differs from "
                         f"that one by {gap:.1f} (at most {KS_LIMIT} by chance), and its kurtosis is {kurtosis:.2f} "
                         "(Gaussian: 3; uniform: 1.8).",
                         "draw the noise with torch.randn and scale it by level: uniform noise scaled to the right "
                         "std is not Gaussian.")
    return None


def _salt_and_pepper(name: str, x: torch.Tensor, out: torch.Tensor, level: float) -> str | None:
    changed = out != x
    values = out[changed]
    if not ((values == 0) | (values == 1)).all():
        odd = [round(v, 3) for v in values[(values != 0) & (values != 1)][:3].tolist()]
        return with_hint(f"{name} set hit pixels to values such as {odd}; salt-and-pepper pixels are exactly 1 (salt) "
                         "or 0 (pepper), and the other pixels keep their value.",
                         "a hit pixel takes exactly 0 or 1 (not a random grey value, not x plus something); a pixel "
                         "that is not hit keeps its value from x.")
    grey = (x > 0) & (x < 1)  # where both salt and pepper show
    problem = _hits(name, changed, grey, x, level, "changed")
    if problem:
        return problem
    salt = (out[changed & grey] == 1).double().mean().item()
    if not 0.25 <= salt <= 0.75:
        return with_hint(f"{name}(x, {level}): {salt:.0%} of the hit pixels are salt (1) and {1 - salt:.0%} pepper "
                         "(0); the noise needs both, about half each.",
                         "each hit pixel needs its own fair coin flip between 0 and 1, drawn separately from the "
                         "choice of the pixels hit.")
    hits, salts = (changed & grey).flatten(1).sum(dim=1), (grey & (out == 1)).flatten(1).sum(dim=1)
    share = salts.double() / hits.clamp_min(1)
    lopsided = ((share < 0.1) | (share > 0.9)) & (hits >= 30)
    if lopsided.any():
        i = int(lopsided.nonzero()[0])
        return with_hint(f"{name}(x, {level}): in image {i + 1}, {int(salts[i])} of its {int(hits[i])} hit grey "
                         "pixels are salt: salt or pepper was chosen once per image, not per pixel.",
                         "flip the salt-or-pepper coin for every pixel: draw it shaped like x, not one per image.")
    for value, where, what in ((1, x == 0, "black pixels turned white"), (0, x == 1, "white pixels turned black")):
        share = (out[where] == value).double().mean().item()
        if _binomial_gap(share, level / 2, where.sum().item(), 5):
            return with_hint(f"{name}(x, {level}): {share:.1%} of the {what}; expected about {level / 2:.1%} (half of "
                             "the hit pixels are salt, half pepper, whatever their value).",
                             "choose the hit pixels and the salt-or-pepper coin independently of x.")
    return None


def _mask(name: str, x: torch.Tensor, out: torch.Tensor, level: float) -> str | None:
    changed = out != x
    if not (out[changed] == 0).all():
        example = [round(v, 3) for v in out[changed & (out != 0)][:3].tolist()]
        scaled = " (like F.dropout, which rescales the kept pixels by 1 / (1 - p))" if bool(
            ((out[changed & (out != 0)] - x[changed & (out != 0)] / (1 - level)).abs() < 1e-5).all()) else ""
        return with_hint(f"{name}(x, {level}) changed pixels to values such as {example}{scaled}; masked pixels "
                         "become 0 and every other pixel keeps its value.",
                         "set the chosen pixels to exactly 0 and copy every other pixel of x unchanged (no rescaling "
                         "as in dropout).")
    return _hits(name, changed, x > 0, x, level, "masked")


def judge_statistics(evidence: dict, name: str, kind: str, inputs: dict, seed: int) -> str | None:
    """Part STATISTICS: the corruption of digit-like images at two levels, pixel by pixel."""
    for i, level in enumerate(STAT_LEVELS):
        x = inputs["stat_images"][i].double()
        output, problem = _output(evidence.get(f"stat_{level}"), x, f"{name}(x, {level})")
        if problem:
            return problem
        if kind == "gaussian":
            problem = _gaussian(name, x, output, level, seed + 100 + i)
        elif kind == "salt_and_pepper":
            problem = _salt_and_pepper(name, x, output, level)
        else:
            problem = _mask(name, x, output, level)
        if problem:
            return problem
    return None


def judge_randomness(evidence: dict, name: str, inputs: dict) -> str | None:
    """Part RANDOMNESS: the same seed gives the same images, another seed or a second call other ones."""
    small = inputs["small"].double()
    out = {}
    for key in ("seed_a", "seed_a_again", "seed_b", "shared_1", "shared_2", "global_1", "global_2"):
        out[key], problem = _output(evidence.get(key), small, f"{name}(x, 0.3)")
        if problem:
            return problem
    if not torch.equal(out["seed_a"], out["seed_a_again"]):
        return with_hint(f"Two calls of {name} with generators seeded alike gave different images.",
                         "draw every random number from the generator argument: pass it to each torch.rand / "
                         "torch.randn call instead of using torch's global generator.")
    if torch.equal(out["seed_a"], out["seed_b"]):
        return with_hint(f"{name} gave the same images for generators with different seeds.",
                         "the corruption must be random: draw it from the generator argument, not from fixed values "
                         "or a generator of your own.")
    reseed = ("never seed inside the corruption (no torch.manual_seed, no generator.manual_seed, no "
              "torch.Generator().manual_seed(...) of your own): draw from `generator`, or from torch's global "
              "generator when it is None, which the notebook seeds once at the top.")
    if torch.equal(out["shared_1"], out["shared_2"]):
        return with_hint(f"Two successive calls of {name} with the same generator gave identical images: the function "
                         "reseeds the generator, so every batch would get the same noise.", reseed)
    if torch.equal(out["global_1"], out["global_2"]):
        return with_hint(f"Two successive calls of {name}(x, 0.3) without a generator gave identical images: the "
                         "function reseeds torch's random numbers, so every training batch would get the same noise.",
                         reseed)
    return None


def judge_noise(evidence: Any, kind: str, *, seed: int) -> dict:
    """The three parts of ``PARTS`` from the probe's evidence."""
    if not isinstance(evidence, dict):
        raise AssertionError("The check's evidence is malformed.")
    name = str(evidence.get("name", {"gaussian": "add_gaussian_noise", "salt_and_pepper": "add_salt_and_pepper",
                                     "mask": "mask_pixels"}.get(kind, "the corruption")))
    inputs = inputs_noise(kind, seed=seed)  # what the probe was given
    return {BASICS: judge_basics(evidence, name, inputs),
            STATISTICS: judge_statistics(evidence, name, kind, inputs, seed),
            RANDOMNESS: judge_randomness(evidence, name, inputs)}


NOISE_KINDS = ("gaussian", "salt_and_pepper", "mask")


def _exercise(name: str, needs: str, kind: str) -> Exercise:
    return Exercise(name, (needs,), PARTS, probe_noise, judge_noise, args=(kind,), inputs=inputs_noise)


GAUSSIAN = _exercise("Gaussian noise", "add_gaussian_noise", "gaussian")
SALT_AND_PEPPER = _exercise("Salt-and-pepper noise", "add_salt_and_pepper", "salt_and_pepper")
MASK = _exercise("Pixel masking", "mask_pixels", "mask")
NOISE_EXERCISES = {"gaussian": GAUSSIAN, "salt_and_pepper": SALT_AND_PEPPER, "mask": MASK}
