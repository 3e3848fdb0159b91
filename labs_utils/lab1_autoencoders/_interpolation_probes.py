"""Probe and judge of the interpolation exercise: ``interpolate(model, x_a, x_b, steps)``.

The probe hands the student's function a small autoencoder built from the seed (a linear encoder to 3
numbers, a decoder ending in a steep sigmoid, so blending images and blending codes give different
pictures) and two digit-like images, and records what comes back for a few ``steps``. The judge rebuilds the
model and the images from the seed and compares with what the definition asks for: the decoder applied to
``steps`` codes evenly spaced on the segment from f(x_a) to f(x_b), both ends included. When the result is
something else it names the likely mistake (images blended instead of codes, an end left out, the order
reversed).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..checking import call_student, describe
from ..runtime import seeded
from ._noise_probes import digit_like_images

STEPS = (5, 2, 9)
CODE_DIM = 3
TOLERANCE = 1e-5
Verdicts = dict


class ProbeAutoencoder(nn.Module):
    """A small autoencoder with ``encoder`` and ``decoder`` like the lab's, its weights drawn from a seed."""

    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, CODE_DIM))
        self.decoder = nn.Sequential(nn.Linear(CODE_DIM, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
        with torch.no_grad():
            for layer, scale in ((self.encoder[1], 0.1), (self.decoder[0], 3.0)):
                layer.weight.copy_(scale * torch.randn(layer.weight.shape, generator=g))
                layer.bias.copy_(0.5 * torch.randn(layer.bias.shape, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _inputs(seed: int) -> tuple[ProbeAutoencoder, torch.Tensor, torch.Tensor]:
    images = digit_like_images(2, seed)
    return ProbeAutoencoder(seed), images[0], images[1]


def probe_interpolate(fn: Callable, *, seed: int) -> dict:
    """Call ``fn(model, x_a, x_b, steps=k)`` for a few k; record the results and whether inputs changed."""
    model, x_a, x_b = _inputs(seed)
    before = [p.detach().clone() for p in model.parameters()]
    a_before, b_before = x_a.clone(), x_b.clone()
    name = describe(fn)
    evidence: dict[str, Any] = {"name": name, "results": {}}
    for steps in STEPS:
        with seeded(seed):
            result = call_student(fn, model, x_a, x_b, steps=steps, what=f"{name}(model, x_a, x_b, steps={steps})")
        evidence["results"][str(steps)] = (result.detach().to("cpu", torch.float32) if isinstance(result, torch.Tensor)
                                           else type(result).__name__)
    evidence["inputs_changed"] = not (torch.equal(x_a, a_before) and torch.equal(x_b, b_before))
    evidence["model_changed"] = any(not torch.equal(p, q) for p, q in zip(model.parameters(), before))
    return evidence


def _close(a: Any, b: torch.Tensor) -> bool:
    return (isinstance(a, torch.Tensor) and a.shape == b.shape
            and torch.allclose(a.double(), b.double(), atol=TOLERANCE, rtol=0))


def _decode(model: ProbeAutoencoder, codes: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.decoder(codes)


def judge_interpolate(evidence: Any, *, seed: int) -> Verdicts:
    """Parts "both ends" and "evenly spaced codes, decoded", from the probe's record."""
    from .checks import INTERPOLATION_PARTS

    ends_part, path_part = (part.name for part in INTERPOLATION_PARTS)
    if not isinstance(evidence, dict) or not isinstance(evidence.get("results"), dict):
        return {part.name: "the check's evidence is malformed." for part in INTERPOLATION_PARTS}
    name = str(evidence.get("name", "interpolate"))
    model, x_a, x_b = _inputs(seed)
    if evidence.get("inputs_changed"):
        message = (f"{name} changed x_a or x_b in place (so its path starts from other images). Hint: leave the "
                   "inputs alone; build new tensors for the codes and images, no in-place operation (a trailing _).")
        return {ends_part: message, path_part: message}
    with torch.no_grad():
        z_a, z_b = model.encoder(x_a[None]), model.encoder(x_b[None])
    ends_message: str | None = None
    path_message: str | None = None
    for steps in STEPS:
        got = evidence["results"].get(str(steps))
        t = torch.linspace(0, 1, steps)[:, None]
        expected = _decode(model, (1 - t) * z_a + t * z_b)
        call = f"{name}(model, x_a, x_b, steps={steps})"
        if not isinstance(got, torch.Tensor):
            message = (f"{call} returned {got}, not a tensor. Hint: return the decoded images as one tensor of "
                       f"shape (steps, 1, 28, 28): torch.stack or one batched decoder call.")
            return {ends_part: message, path_part: message}
        if got.shape != expected.shape:
            hint = ("one image per step, both ends included"
                    if got.ndim == 4 and got.shape[1:] == expected.shape[1:] else
                    "decode the codes with model.decoder, whose images are (N, 1, 28, 28); x_a and x_b are single "
                    "images (1, 28, 28): the encoder wants a batch, x_a[None] or x_a.unsqueeze(0)")
            message = f"{call} returned shape {tuple(got.shape)}; expected {tuple(expected.shape)}. Hint: {hint}."
            return {ends_part: message, path_part: message}
        if ends_message is None and not (_close(got[:1], expected[:1]) and _close(got[-1:], expected[-1:])):
            if _close(got[:1], expected[-1:]) and _close(got[-1:], expected[:1]):
                ends_message = (f"{call} goes from x_b to x_a. Hint: the first image is x_a's reconstruction "
                                "(t = 0), the last one x_b's (t = 1).")
            elif _close(got[:1], expected[:1]):
                ends_message = (f"{call}: the last image is not x_b's reconstruction "
                                "model.decoder(model.encoder(x_b)). Hint: include both ends: torch.linspace(0, 1, "
                                "steps) gives steps values from 0 to 1 inclusive.")
            elif _close(got[:1], x_a[None]):
                ends_message = (f"{call} starts with x_a itself. Hint: every image of the path comes out of the "
                                "decoder, the ends too: they are the reconstructions of x_a and x_b.")
            else:
                ends_message = (f"{call}: the first and last images are not the reconstructions of x_a and x_b. "
                                "Hint: encode both images with model.encoder, decode with model.decoder.")
        if path_message is None and not _close(got, expected):
            path_message = _path_mistake(call, got, model, x_a, x_b, z_a, z_b, t)
    if evidence.get("model_changed"):
        path_message = path_message or (f"{name} changed the model's weights. Hint: interpolating only reads the "
                                        "model; no optimizer step, no in-place change of a parameter.")
    return {ends_part: ends_message, path_part: path_message}


def _path_mistake(call: str, got: torch.Tensor, model: ProbeAutoencoder, x_a: torch.Tensor, x_b: torch.Tensor,
                  z_a: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor) -> str:
    """The message for a path that is not the decoded straight line between the codes."""
    ends = _decode(model, torch.cat([z_a, z_b]))
    if _close(got, (1 - t[:, :, None, None]) * ends[:1] + t[:, :, None, None] * ends[1:]):
        return (f"{call} blends the two reconstructions pixel by pixel (a cross-fade). Hint: interpolate the codes "
                "z = (1 - t) * z_a + t * z_b, then decode each z: the decoder is not linear, so decoding the "
                "blend differs from blending the decodings.")
    if _close(got, (1 - t[:, :, None, None]) * x_a[None] + t[:, :, None, None] * x_b[None]):
        return (f"{call} blends the images themselves. Hint: the path runs through code space: encode x_a and x_b, "
                "blend the codes, decode.")
    steps = got.shape[0]
    if steps > 1:
        for wrong in (torch.arange(steps)[:, None] / steps, torch.arange(1, steps + 1)[:, None] / (steps + 1)):
            if _close(got, _decode(model, (1 - wrong) * z_a + wrong * z_b)):
                return (f"{call}: the codes are not evenly spaced from z_a to z_b with both ends included. Hint: "
                        "t = torch.linspace(0, 1, steps) gives 0, 1/(steps-1), ..., 1.")
    return (f"{call}: the images are not the decoder's outputs for codes evenly spaced on the straight line "
            "from f(x_a) to f(x_b). Hint: z = (1 - t) * z_a + t * z_b for t = torch.linspace(0, 1, steps), "
            "then model.decoder(z).")
