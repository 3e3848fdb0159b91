"""Checks of Lab 1 (autoencoders): the two architectures, the three corruptions, the denoising batch.

Every check tests properties (shapes, ranges, statistics, gradients), never a copy of the solution.
The checks seed their own random numbers and restore torch's generator afterwards, so running a
check does not change the numbers of the training that follows it in the notebook.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..runtime import seeded
from ._common import Exercise, call_student, describe, fail, passed, require_parameters

__all__ = ["check_dense_autoencoder", "check_conv_autoencoder", "check_noise", "check_denoising_batch"]

NOISE_KINDS = ("gaussian", "salt_and_pepper", "mask")
IMAGE_SHAPE = (1, 28, 28)
# The checks' own seed for torch's global generator; distinct from the seeds of the generators they pass to
# the student's code, so test images and corruptions never draw the same random numbers.
CHECK_SEED = 2024


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------------------- autoencoders


def dense_parameter_count(code_dim: int) -> int:
    """Weights and biases of the 784-256-64-code-64-256-784 autoencoder of the exercise."""
    widths = (784, 256, 64, code_dim, 64, 256, 784)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def _build(cls: Any, name: str, **kwargs: Any) -> nn.Module:
    if isinstance(cls, nn.Module):  # an instance works too: the check builds fresh ones from its class
        cls = type(cls)
    arguments = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    model = call_student(cls, what=f"{name}({arguments})", **kwargs)
    if not isinstance(model, nn.Module):
        fail(f"{name}({arguments}) returned a {type(model).__name__}, not an nn.Module.",
             f"Define `class {name}(nn.Module):` and call super().__init__() first in __init__.")
    for part in ("encoder", "decoder"):
        if not isinstance(getattr(model, part, None), nn.Module):
            found = type(getattr(model, part, None)).__name__
            fail(f"{name}({arguments}) has no submodule `.{part}` (found {found}).",
                 "Assign the two halves in __init__: self.encoder = nn.Sequential(...), "
                 "self.decoder = nn.Sequential(...).")
    return model


def _shape_text(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def _encode(model: nn.Module, name: str, images: torch.Tensor, code_dim: int) -> torch.Tensor:
    codes = call_student(model.encoder, images, what=f"{name}.encoder(images)")
    expected = (len(images), code_dim)
    if not isinstance(codes, torch.Tensor) or tuple(codes.shape) != expected:
        fail(f"{name}(code_dim={code_dim}).encoder maps images {tuple(images.shape)} to {_shape_text(codes)}; "
             f"expected codes shaped {expected}.",
             "The code is a flat vector of code_dim numbers per image: flatten what the layers before produce "
             "and end the encoder with nn.Linear(..., code_dim).")
    return codes


def _decode(model: nn.Module, name: str, codes: torch.Tensor, transposed_hint: bool) -> torch.Tensor:
    images = call_student(model.decoder, codes, what=f"{name}.decoder(codes)")
    expected = (len(codes), *IMAGE_SHAPE)
    if not isinstance(images, torch.Tensor) or tuple(images.shape) != expected:
        hint = ("The decoder must give images shaped (N, 1, 28, 28): end it with nn.Unflatten(1, (1, 28, 28)).")
        if transposed_hint:
            hint = ("A transposed convolution gives (in - 1) * stride - 2 * padding + kernel_size + output_padding "
                    "pixels: with kernel 3, stride 2, padding 1, use output_padding=1 for 7 -> 14 -> 28, and 0 for "
                    "4 -> 7. The decoder must end with 1 channel of 28 x 28.")
        fail(f"{name}.decoder maps codes {tuple(codes.shape)} to {_shape_text(images)}; expected {expected}.", hint)
    return images


def _check_output_range(model: nn.Module, name: str, code_dim: int) -> None:
    far_codes = 10 * torch.randn(16, code_dim)
    images = call_student(model.decoder, far_codes, what=f"{name}.decoder(codes)")
    low, high = images.min().item(), images.max().item()
    if low < 0 or high > 1:
        fail(f"{name}.decoder outputs values in [{low:.3g}, {high:.3g}]; pixels live in [0, 1].",
             "End the decoder with nn.Sigmoid(), which squashes any number into (0, 1).")


def _check_linear_code(model: nn.Module, name: str, code_dim: int) -> None:
    codes = call_student(model.encoder, torch.rand(64, *IMAGE_SHAPE), what=f"{name}.encoder(images)")
    if codes.min().item() >= 0:
        fail(f"All {codes.numel()} code values of {name}(code_dim={code_dim}) on 64 random images are >= 0.",
             "The code layer should be linear (an nn.Linear with no ReLU or Sigmoid after it), so codes can be "
             "negative and use the whole plane.")


def _affine_gap(function: Callable[[torch.Tensor], torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> float:
    """|f(a + b) - f(b) - f(a) + f(0)|, which is 0 (up to rounding) exactly when f is affine."""
    with torch.no_grad():
        gap = function(a + b) - function(b) - function(a) + function(torch.zeros_like(a))
    return gap.abs().max().item()


def _check_nonlinear(model: nn.Module, name: str, code_dim: int) -> None:
    images_a, images_b = torch.rand(8, *IMAGE_SHAPE), torch.rand(8, *IMAGE_SHAPE)
    if _affine_gap(model.encoder, images_a, images_b) < 1e-4:
        fail(f"{name}.encoder is an affine map (a stack of linear layers and nothing else).",
             "Put an nn.ReLU() after every hidden layer of the encoder (not after the code layer).")

    def decoder_logits(codes: torch.Tensor) -> torch.Tensor:
        return torch.logit(model.decoder(codes), eps=1e-6)

    codes_a, codes_b = 0.5 * torch.randn(8, code_dim), 0.5 * torch.randn(8, code_dim)
    if _affine_gap(decoder_logits, codes_a, codes_b) < 1e-4:
        fail(f"{name}.decoder is a single sigmoid of an affine map: its hidden layers have no activation.",
             "Put an nn.ReLU() after every hidden layer of the decoder; only the output layer gets the sigmoid.")


def _check_gradients(model: nn.Module, name: str) -> int:
    parameters = list(model.named_parameters())
    if not parameters:
        fail(f"{name} has no parameters.", "Build the encoder and decoder from nn.Linear / nn.Conv2d layers.")
    frozen = [n for n, p in parameters if not p.requires_grad]
    if frozen:
        fail(f"{name} has parameters that cannot train (requires_grad=False): {', '.join(frozen[:4])}.",
             "Do not freeze parameters in the exercise; the optimizer must update all of them.")
    images = torch.rand(8, *IMAGE_SHAPE)
    model.zero_grad(set_to_none=True)
    loss = ((call_student(model, images, what=f"{name}(images)") - images) ** 2).mean()
    loss.backward()
    missing = [n for n, p in parameters if p.grad is None]
    if missing:
        fail(f"No gradient reaches {', '.join(missing[:4])} of {name} after loss.backward().",
             "Every layer defined in __init__ must be used in the forward pass, and no .detach() may cut the "
             "path from the loss back to the encoder.")
    model.zero_grad(set_to_none=True)
    return sum(p.numel() for _, p in parameters)


def _check_autoencoder(cls: Any, default_code_dim: int, other_code_dim: int, convolutional: bool) -> tuple:
    name = describe(type(cls) if isinstance(cls, nn.Module) else cls)
    model = _build(cls, name)
    images = torch.rand(16, *IMAGE_SHAPE)
    codes = _encode(model, name, images, default_code_dim)
    _decode(model, name, codes, convolutional)
    if type(model).forward is nn.Module.forward:
        fail(f"{name} has no forward method.", "Keep the given forward: return self.decoder(self.encoder(x)).")
    output = call_student(model, images, what=f"{name}(images)")
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != tuple(images.shape):
        fail(f"{name}()(images) returns {_shape_text(output)} for images {tuple(images.shape)}.",
             "forward must return decoder(encoder(x)), a batch of images shaped like its input.")
    other = _build(cls, name, code_dim=other_code_dim)
    _decode(other, name, _encode(other, name, images, other_code_dim), convolutional)
    _check_output_range(model, name, default_code_dim)
    _check_linear_code(_build(cls, name, code_dim=16), name, 16)
    _check_nonlinear(model, name, default_code_dim)
    return name, model, _check_gradients(model, name)


def check_dense_autoencoder(cls: Any) -> None:
    """Lab 1: the class ``DenseAutoencoder`` (or an instance): 784-256-64-code-64-256-784, ReLU, sigmoid output."""
    with seeded(CHECK_SEED):
        name, _, n_parameters = _check_autoencoder(cls, default_code_dim=2, other_code_dim=8, convolutional=False)
        for code_dim in (2, 8):
            found = sum(p.numel() for p in _build(cls, name, code_dim=code_dim).parameters())
            expected = dense_parameter_count(code_dim)
            if found != expected:
                fail(f"{name}(code_dim={code_dim}) has {found:,} parameters; the layer sizes "
                     f"784-256-64-{code_dim}-64-256-784 (weights and biases) give {expected:,}.",
                     "Use exactly these nn.Linear layers: 784->256->64->code_dim in the encoder and "
                     "code_dim->64->256->784 in the decoder, each with a bias.")
    passed("check_dense_autoencoder", f"codes (N, 2), images (N, 1, 28, 28) in [0, 1], "
                                      f"{n_parameters:,} trainable parameters")


def _has_layer(module: nn.Module, *types: type) -> bool:
    return any(isinstance(m, types) for m in module.modules())


def check_conv_autoencoder(cls: Any) -> None:
    """Lab 1: the class ``ConvAutoencoder`` (or an instance): strided convolutions to a code, transposed back."""
    with seeded(CHECK_SEED):
        name, model, n_parameters = _check_autoencoder(cls, default_code_dim=32, other_code_dim=8,
                                                       convolutional=True)
        if not _has_layer(model.encoder, nn.Conv2d):
            fail(f"{name}.encoder has no nn.Conv2d layer.",
                 "Start the encoder with strided convolutions, e.g. nn.Conv2d(1, 32, 3, stride=2, padding=1): "
                 "28 -> 14 -> 7 -> 4 pixels.")
        if not _has_layer(model.decoder, nn.ConvTranspose2d, nn.Conv2d):
            fail(f"{name}.decoder has no convolution layer.",
                 "Go back up with nn.ConvTranspose2d(..., stride=2) layers: 4 -> 7 -> 14 -> 28 pixels.")
    passed("check_conv_autoencoder", f"codes (N, 32), images (N, 1, 28, 28) in [0, 1], "
                                     f"{n_parameters:,} trainable parameters")


# ----------------------------------------------------------------------------------------------- corruptions


def _digit_like_images(n: int = 64) -> torch.Tensor:
    """Images like MNIST's: mostly exact 0 (background), some exact 1 (ink), some grey in between."""
    u = torch.rand(n, *IMAGE_SHAPE)
    return torch.where(u < 0.6, torch.zeros_like(u), torch.where(u > 0.9, torch.ones_like(u), torch.rand_like(u)))


def _corrupt(fn: Callable, images: torch.Tensor, level: float, seed: int | None = 0) -> torch.Tensor:
    """Call the student's corruption and check what every call must satisfy: a new tensor like x, x untouched."""
    label = f"{describe(fn)}(x, {level}, generator=...)"
    original = images.clone()
    if seed is None:
        output = call_student(fn, images, level, what=f"{describe(fn)}(x, {level})")
    else:
        output = call_student(fn, images, level, generator=_generator(seed), what=label)
    if not torch.equal(images, original):
        fail(f"{describe(fn)} changed its input x in place.",
             "Return a new tensor and leave x untouched: the clean images are still needed as targets. "
             "Avoid in-place operations such as x.add_(...), x[mask] = ... or x.clamp_(...) on x itself.")
    if not isinstance(output, torch.Tensor):
        fail(f"{label} returned a {type(output).__name__}, not a tensor.", "Return the corrupted images.")
    if output.shape != images.shape:
        fail(f"{label} returned shape {tuple(output.shape)} for x of shape {tuple(images.shape)}.",
             "The corrupted batch has the shape of x: draw one random number per pixel of the whole batch.")
    if output.dtype != images.dtype:
        fail(f"{label} returned dtype {output.dtype} for x of dtype {images.dtype}.",
             "Keep the dtype of x: random numbers and replacement values must have x's dtype (or be converted "
             "to it) before they are combined with x.")
    if not torch.isfinite(output).all():
        fail(f"{label} returned NaN or inf.")
    return output


def _check_range_and_identity(fn: Callable) -> None:
    images = _digit_like_images()
    output = _corrupt(fn, images, 0.5)
    low, high = output.min().item(), output.max().item()
    if low < 0 or high > 1:
        fail(f"{describe(fn)}(x, 0.5) returned values in [{low:.3g}, {high:.3g}]; images live in [0, 1].",
             "The corrupted images must be clamped into [0, 1] at the end.")
    identity = _corrupt(fn, images, 0.0)
    if not torch.allclose(identity, images, atol=1e-6):
        fail(f"{describe(fn)}(x, 0) changed the images (max change "
             f"{(identity - images).abs().max().item():.3g}); level 0 means no corruption.",
             "Make the amount of corruption proportional to `level`.")


def _check_reproducible(fn: Callable) -> None:
    images = _digit_like_images()
    first, again, other = (_corrupt(fn, images, 0.3, seed) for seed in (7, 7, 8))
    if not torch.equal(first, again):
        fail(f"Two calls of {describe(fn)} with generators seeded alike gave different images.",
             "Draw every random number from the generator argument: pass it to each torch.rand / "
             "torch.randn call instead of using torch's global generator.")
    if torch.equal(first, other):
        fail(f"{describe(fn)} gave the same images for generators with different seeds.",
             "The corruption must be random: draw it from the generator argument, not from fixed values.")
    _corrupt(fn, images, 0.3, seed=None)  # generator=None must work too (torch's global generator)


def _check_gaussian_statistics(fn: Callable) -> str:
    grey = torch.full((64, *IMAGE_SHAPE), 0.5)
    for level in (0.05, 0.2):
        noise = _corrupt(fn, grey, level) - grey
        std_per_image = noise.flatten(1).std(dim=1)
        if torch.equal(noise[0], noise[1]):
            fail(f"{describe(fn)} added the same noise to every image of the batch.",
                 "Draw one noise value per pixel of the whole batch (noise shaped like x), not one per image "
                 "or one for the batch.")
        std = std_per_image.mean().item()
        if std < 1e-3 * level:
            fail(f"{describe(fn)}(x, {level}): the noise is (nearly) constant within each image "
                 f"(standard deviation {std:.4f}); each pixel needs its own noise value.",
                 "Draw one noise value per pixel of the whole batch (noise shaped like x), not one per image "
                 "or one for the batch.")
        mean = noise.mean().item()
        if abs(mean) > 0.05 * level:
            fail(f"{describe(fn)}(x, {level}): the added noise has mean {mean:.4f}; Gaussian noise has mean 0.",
                 "Use torch.randn (normal, mean 0), not torch.rand (uniform in [0, 1)).")
        if abs(std - level) > 0.1 * level:
            guess = ""
            if abs(std - level ** 2) < 0.1 * level ** 2:
                guess = " It looks like level**2: level is the standard deviation, not the variance."
            fail(f"{describe(fn)}(x, {level}): the added noise has standard deviation {std:.4f} within an image; "
                 f"expected {level} (level is the standard deviation).{guess}",
                 "Scale standard normal noise (std 1) by level itself: not by level**2, sqrt(level) or a "
                 "fixed number.")
    return "noise std = level, mean 0"


def _check_hit_fraction(fn: Callable, hit: torch.Tensor, level: float, what: str) -> None:
    fraction = hit.float().mean().item()
    per_image = hit.flatten(1).float().mean(dim=1)
    if abs(fraction - level) > 0.02 or (per_image - level).abs().max().item() > 0.1:
        fail(f"{describe(fn)}(x, {level}) {what} {fraction:.1%} of the pixels (between "
             f"{per_image.min().item():.0%} and {per_image.max().item():.0%} per image); expected {level:.0%}.",
             "Decide for every pixel on its own, with probability level: one uniform random number per pixel, "
             "compared with level.")


def _check_salt_and_pepper_statistics(fn: Callable) -> str:
    grey = torch.full((64, *IMAGE_SHAPE), 0.5)
    for level in (0.05, 0.2):
        output = _corrupt(fn, grey, level)
        hit = output != grey
        values = output[hit]
        if not ((values == 0) | (values == 1)).all():
            odd = values[(values != 0) & (values != 1)][:3].tolist()
            fail(f"{describe(fn)} set hit pixels to values such as {odd}; salt-and-pepper pixels are exactly "
                 "1 (salt) or 0 (pepper), and the other pixels keep their value.",
                 "A hit pixel takes exactly 0 or 1 (not a random grey value, not x plus something); a pixel "
                 "that is not hit keeps its value from x.")
        _check_hit_fraction(fn, hit, level, "changed")
        salt = (values == 1).float().mean().item()
        if not 0.25 <= salt <= 0.75:
            fail(f"{describe(fn)}(x, {level}): {salt:.0%} of the hit pixels are salt (1) and {1 - salt:.0%} "
                 "pepper (0); the noise needs both, about half each.",
                 "Each hit pixel needs its own fair coin flip between 0 and 1, drawn separately from the choice of "
                 "the pixels hit.")
    return "a fraction `level` of pixels set to 0 or 1, both present"


def _check_mask_statistics(fn: Callable) -> str:
    grey = torch.full((64, *IMAGE_SHAPE), 0.5)
    for level in (0.05, 0.2):
        output = _corrupt(fn, grey, level)
        changed = output != grey
        if not (output[changed] == 0).all():
            example = output[changed & (output != 0)][:3].tolist()
            scaled = " (like F.dropout, which rescales the kept pixels by 1 / (1 - p))" if example else ""
            fail(f"{describe(fn)}(x, {level}) changed pixels to values such as {example}{scaled}; masked pixels "
                 "become 0 and every other pixel keeps its value.",
                 "Set the chosen pixels to exactly 0 and copy every other pixel of x unchanged (no rescaling "
                 "as in dropout).")
        _check_hit_fraction(fn, changed, level, "masked")
    return "a fraction `level` of pixels set to 0, the others unchanged"


_STATISTICS = {
    "gaussian": _check_gaussian_statistics,
    "salt_and_pepper": _check_salt_and_pepper_statistics,
    "mask": _check_mask_statistics,
}


def check_noise(fn: Callable, kind: str) -> None:
    """Lab 1: a corruption ``fn(x, level, generator=None)``; kind is "gaussian", "salt_and_pepper" or "mask"."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {kind!r}: use one of {', '.join(NOISE_KINDS)}.")
    require_parameters(fn, ["level", "generator"], f"{describe(fn)}(x, level, generator=None)")
    with seeded(CHECK_SEED):
        statistics = _STATISTICS[kind](fn)
        _check_range_and_identity(fn)
        _check_reproducible(fn)
    passed("check_noise", f"{describe(fn)} ({kind}): {statistics}; range [0, 1], level 0 = identity, "
                          "input untouched, reproducible with a generator")


# ----------------------------------------------------------------------------------------------- denoising batch


def check_denoising_batch(fn: Callable) -> None:
    """Lab 1: ``denoising_batch(x_clean, corrupt)``: corrupted inputs, clean targets, x_clean left alone."""
    with seeded(CHECK_SEED):
        clean = _digit_like_images(8)
        original = clean.clone()
        calls: list[tuple[torch.Tensor, torch.Tensor]] = []
        generator = _generator(0)

        def corrupt(x: torch.Tensor) -> torch.Tensor:
            noisy = (x + 0.3 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
            calls.append((x.clone(), noisy.clone()))
            return noisy

        result = call_student(fn, clean, corrupt, what=f"{describe(fn)}(x_clean, corrupt)")
    name = describe(fn)
    if not isinstance(result, (tuple, list)) or len(result) != 2 or not all(
            isinstance(t, torch.Tensor) for t in result):
        fail(f"{name} returned {type(result).__name__} {_shape_text(result)}; expected a pair of tensors "
             "(inputs, targets).", "Return a tuple of two tensors: first the inputs, then the targets.")
    if not torch.equal(clean, original):
        fail(f"{name} changed x_clean in place.", "Leave x_clean untouched; it is the target.")
    if not calls:
        fail(f"{name} never called corrupt.", "The inputs are made by the corrupt function it receives.")
    if not any(torch.equal(argument, original) for argument, _ in calls):
        fail(f"{name} called corrupt on something other than x_clean.",
             "Corrupt the clean batch itself, with nothing done to it before.")
    inputs, targets = result
    corrupted = [noisy for _, noisy in calls]
    inputs_are_noisy = any(inputs.shape == c.shape and torch.equal(inputs, c) for c in corrupted)
    targets_are_noisy = any(targets.shape == c.shape and torch.equal(targets, c) for c in corrupted)
    inputs_are_clean = inputs.shape == original.shape and torch.equal(inputs, original)
    targets_are_clean = targets.shape == original.shape and torch.equal(targets, original)
    if inputs_are_clean and targets_are_noisy:
        fail(f"{name} returned (clean, corrupted): the pair is swapped.",
             "The network reads the corrupted images and is scored against the clean ones: the inputs "
             "come first in the pair, the targets second.")
    if targets_are_noisy:
        fail(f"{name}: the targets are the corrupted images; a denoiser learns to output clean ones.",
             "The loss is L(x, g(f(x_noisy))): the targets must be the clean batch itself.")
    if not targets_are_clean:
        fail(f"{name}: the targets (shape {tuple(targets.shape)}) are not the clean batch x_clean.",
             "The targets must be the clean batch itself, unchanged.")
    if inputs_are_clean:
        fail(f"{name}: the inputs are the clean images, so there is nothing to denoise.",
             "The inputs must be the corrupted version of the clean batch.")
    if not inputs_are_noisy:
        fail(f"{name}: the inputs are not what corrupt(x_clean) returned.",
             "Use corrupt's result as it is, without changing it afterwards.")
    passed("check_denoising_batch", "inputs = corrupt(x_clean), targets = x_clean, x_clean untouched")


GRADING: list = [
    Exercise("Dense autoencoder", 2, ("DenseAutoencoder",), "check_dense_autoencoder(DenseAutoencoder)"),
    Exercise("Convolutional autoencoder", 2, ("ConvAutoencoder",), "check_conv_autoencoder(ConvAutoencoder)"),
    Exercise("Gaussian noise", 1, ("add_gaussian_noise",), "check_noise(add_gaussian_noise, 'gaussian')"),
    Exercise("Salt-and-pepper noise", 1, ("add_salt_and_pepper",),
             "check_noise(add_salt_and_pepper, 'salt_and_pepper')"),
    Exercise("Pixel masking", 1, ("mask_pixels",), "check_noise(mask_pixels, 'mask')"),
    Exercise("Denoising batch", 1, ("denoising_batch",), "check_denoising_batch(denoising_batch)"),
]
