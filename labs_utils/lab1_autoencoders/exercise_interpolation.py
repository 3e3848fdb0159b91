"""Exercise 2, ``interpolate(model, x_a, x_b, steps)``: its parts, probe (student's kernel) and judge.

The probe hands the student's function a small autoencoder built from the seed, in evaluation mode, and two
digit-like images, and records what comes back for a few ``steps``. Its encoder is non-linear and has
BatchNorm and dropout, and its decoder ends in a steep sigmoid, so encoding the pixel blend, blending the
reconstructions and running the model in training mode all give other images than the decoded straight line
between the two codes. The probe also records whether a BatchNorm or dropout layer ran in training mode, and
the model's mode, weights and statistics afterwards. The judge rebuilds the model and images from the seed,
computes the path the definition asks for and, when the result is something else, the likely mistake.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..checking import describe, tensor_difference, with_hint
from ..exercises import Exercise, Part
from ..runtime import seeded
from ._calls import StudentCalls
from ._inputs import digit_like_images, generator

STEPS = (5, 2, 9)
HIDDEN, CODE_DIM = 16, 3
TOLERANCE = 1e-5

ENDS = "both ends are the two reconstructions"
PATH = "evenly spaced codes on the line, decoded, the model left as it was"
PARTS = (Part(ENDS, 0.5), Part(PATH, 1.0))


class ProbeAutoencoder(nn.Module):
    """A small autoencoder with ``encoder`` and ``decoder`` like the lab's, its weights and BatchNorm statistics
    drawn from a seed; in evaluation mode. Encoder: Linear, BatchNorm, tanh, dropout, Linear; decoder: a steep
    sigmoid of a Linear layer."""

    def __init__(self, seed: int):
        super().__init__()
        g = generator(seed)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, HIDDEN), nn.BatchNorm1d(HIDDEN), nn.Tanh(),
                                     nn.Dropout(0.5), nn.Linear(HIDDEN, CODE_DIM))
        self.decoder = nn.Sequential(nn.Linear(CODE_DIM, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))
        first, norm, last, out = self.encoder[1], self.encoder[2], self.encoder[5], self.decoder[0]
        with torch.no_grad():
            for layer, scale in ((first, 0.1), (last, 0.8), (out, 3.0)):
                layer.weight.copy_(scale * torch.randn(layer.weight.shape, generator=g))
                layer.bias.copy_(0.5 * torch.randn(layer.bias.shape, generator=g))
            norm.weight.copy_(1 + 0.2 * torch.randn(HIDDEN, generator=g))
            norm.bias.copy_(0.3 * torch.randn(HIDDEN, generator=g))
            norm.running_mean.copy_(0.5 * torch.randn(HIDDEN, generator=g))
            norm.running_var.copy_(0.5 + torch.rand(HIDDEN, generator=g))
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def _inputs(seed: int) -> tuple[ProbeAutoencoder, torch.Tensor, torch.Tensor]:
    images = digit_like_images(2, seed)
    with seeded(seed):  # the layers' default initialisation draws from torch's generator: give it back
        return ProbeAutoencoder(seed), images[0], images[1]


def probe_interpolate(fn: Callable, *, seed: int) -> dict:
    """Call ``fn(model, x_a, x_b, steps=k)`` for each k of STEPS; record the results, the layers that ran in
    training mode, and whether the inputs, the model's state or its mode changed."""
    model, x_a, x_b = _inputs(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    a_before, b_before = x_a.clone(), x_b.clone()
    name = describe(fn)
    calls = StudentCalls()
    in_training: set = set()

    def record_mode(module: nn.Module, args: Any) -> None:
        if module.training:
            in_training.add(type(module).__name__)

    hooks = [m.register_forward_pre_hook(record_mode) for m in model.modules()
             if isinstance(m, (nn.BatchNorm1d, nn.Dropout))]
    evidence: dict[str, Any] = {"name": name, "results": {}, "errors": {}, "left_in_training_mode": False}
    try:
        for steps in STEPS:
            try:
                with seeded(seed):
                    result = calls(fn, model, x_a, x_b, steps=steps, what=f"{name}(model, x_a, x_b, steps={steps})")
                evidence["results"][str(steps)] = (result.detach().to("cpu", torch.float32)
                                                   if isinstance(result, torch.Tensor) else type(result).__name__)
            except AssertionError as exc:
                evidence["errors"][str(steps)] = str(exc)
            if any(m.training for m in model.modules()):
                evidence["left_in_training_mode"] = True
                model.eval()  # the next call starts as the notebook's would
    finally:
        for hook in hooks:
            hook.remove()
    evidence["ran_in_training_mode"] = sorted(in_training)
    evidence["inputs_changed"] = not (torch.equal(x_a, a_before) and torch.equal(x_b, b_before))
    evidence["model_changed"] = any(not torch.equal(v, state[k]) for k, v in model.state_dict().items())
    return evidence


# ----------------------------------------------------------------------------------------------- judge

def _close(a: Any, b: torch.Tensor) -> bool:
    difference = tensor_difference(a, b)
    return difference is not None and difference <= TOLERANCE


def _mistakes(call: str, model: ProbeAutoencoder, x_a: torch.Tensor, x_b: torch.Tensor, z_a: torch.Tensor,
              z_b: torch.Tensor, steps: int) -> list[tuple[torch.Tensor, str]]:
    """(path, message) for the paths that classmates' interpolations return instead of the decoded line."""
    t = torch.linspace(0, 1, steps)[:, None]
    t4 = t[:, :, None, None]
    with torch.no_grad():
        def decode(z: torch.Tensor) -> torch.Tensor:
            return model.decoder(z)

        ends = decode(torch.cat([z_a, z_b]))
        blend = (1 - t4) * x_a[None] + t4 * x_b[None]
        linspace_hint = ("the fractions along the segment must run evenly from 0 to 1, both ends included: steps "
                         "values, steps - 1 gaps.")
        return [
            (decode((1 - t) * z_b + t * z_a),
             with_hint(f"{call} goes from x_b to x_a.", "the first image is x_a's reconstruction (t = 0), the last "
                                                         "one x_b's (t = 1).")),
            (decode(z_a + t * z_b),
             with_hint(f"{call} decodes z_a + t * z_b: the last image is the decoding of z_a + z_b, not of z_b.",
                       "the step from z_a towards z_b is not z_b itself: at the far end the code must be z_b. The "
                       "- z_a is missing.")),
            (decode(z_a + (torch.arange(steps)[:, None] / steps) * (z_b - z_a)),
             with_hint(f"{call}: the codes stop short of z_b (t = k / steps): the last image is not x_b's "
                       "reconstruction.", linspace_hint)),
            (decode(z_a + (torch.arange(1, steps + 1)[:, None] / (steps + 1)) * (z_b - z_a)),
             with_hint(f"{call}: the codes leave out both ends (t = k / (steps + 1)).", linspace_hint)),
            ((1 - t4) * ends[:1] + t4 * ends[1:],
             with_hint(f"{call} blends the two reconstructions pixel by pixel (a cross-fade).",
                       "mix the codes, then decode each mixed code: the decoder is not linear, so decoding the blend "
                       "differs from blending the decodings.")),
            (decode(model.encoder(blend)),
             with_hint(f"{call} encodes the pixel blend (1 - t) * x_a + t * x_b.",
                       "blend the codes, not the images: encode x_a and x_b once each, then mix their codes. The "
                       "encoder is not linear, so the code of a blend is not the blend of the codes.")),
            (blend, with_hint(f"{call} blends the images themselves.",
                              "the path runs through code space: encode x_a and x_b, blend the codes, decode.")),
        ]


def _ends_message(call: str, got: torch.Tensor, expected: torch.Tensor, x_a: torch.Tensor) -> str:
    if _close(got[:1], expected[:1]):
        return with_hint(f"{call}: the last image is not x_b's reconstruction model.decoder(model.encoder(x_b)).",
                         "include both ends: the last code is z_b itself, the first z_a.")
    if _close(got[:1], x_a[None]):
        return with_hint(f"{call} starts with x_a itself.", "every image of the path comes out of the decoder, the "
                                                             "ends too: they are the reconstructions of x_a and x_b.")
    return with_hint(f"{call}: the first and last images are not the reconstructions of x_a and x_b.",
                     "encode both images with model.encoder, decode with model.decoder.")


def _judge_call(call: str, got: Any, model: ProbeAutoencoder, x_a: torch.Tensor, x_b: torch.Tensor,
                z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> tuple[str | None, str | None]:
    """(ends message, path message) of one call."""
    with torch.no_grad():  # torch.lerp walks from z_a (weight 0) to z_b (weight 1)
        weights = torch.arange(steps, dtype=z_a.dtype)[:, None] / (steps - 1)
        expected = model.decoder(torch.lerp(z_a.expand(steps, -1), z_b.expand(steps, -1), weights))
    if not isinstance(got, torch.Tensor):
        message = with_hint(f"{call} returned {got}, not a tensor.", "return the decoded images as one tensor of "
                            "shape (steps, 1, 28, 28): torch.stack or one batched decoder call.")
        return message, message
    if got.shape != expected.shape:
        hint = ("one image per step, both ends included" if got.ndim == 4 and got.shape[1:] == expected.shape[1:] else
                "decode the codes with model.decoder, whose images are (N, 1, 28, 28); x_a and x_b are single images "
                "(1, 28, 28): the encoder wants a batch, x_a[None] or x_a.unsqueeze(0)")
        message = with_hint(f"{call} returned shape {tuple(got.shape)}; expected {tuple(expected.shape)}.", hint + ".")
        return message, message
    if _close(got, expected):
        return None, None
    ends_right = _close(got[:1], expected[:1]) and _close(got[-1:], expected[-1:])
    known = next((message for path, message in _mistakes(call, model, x_a, x_b, z_a, z_b, steps)
                  if _close(got, path)), None)
    path_message = known or with_hint(
        f"{call}: the images are not the decoder's outputs for codes evenly spaced on the straight line from "
        "f(x_a) to f(x_b).", "decode `steps` codes evenly spaced from z_a to z_b, both ends included.")
    return None if ends_right else known or _ends_message(call, got, expected, x_a), path_message


def judge_interpolate(evidence: Any, *, seed: int) -> dict:
    """Parts ENDS and PATH from the probe's record."""
    if not isinstance(evidence, dict) or not isinstance(evidence.get("results"), dict) \
            or not isinstance(evidence.get("errors"), dict):
        raise AssertionError("The check's evidence is malformed.")
    name = str(evidence.get("name", "interpolate"))
    error = next((evidence["errors"][str(s)] for s in STEPS if isinstance(evidence["errors"].get(str(s)), str)), None)
    if error:
        return {ENDS: error, PATH: error}
    if evidence.get("inputs_changed") is not False:
        message = with_hint(f"{name} changed x_a or x_b in place (so its path starts from other images).",
                            "leave the inputs alone; build new tensors for the codes and images, no in-place "
                            "operation (a trailing _).")
        return {ENDS: message, PATH: message}
    model, x_a, x_b = _inputs(seed)
    with torch.no_grad():
        z_a, z_b = model.encoder(x_a[None]), model.encoder(x_b[None])
    ends_message: str | None = None
    path_message: str | None = None
    for steps in STEPS:
        call = f"{name}(model, x_a, x_b, steps={steps})"
        ends, path = _judge_call(call, evidence["results"].get(str(steps)), model, x_a, x_b, z_a, z_b, steps)
        ends_message, path_message = ends_message or ends, path_message or path
    in_training = evidence.get("ran_in_training_mode")
    if in_training and (ends_message or path_message):
        layers = " and ".join(map(str, in_training)) if isinstance(in_training, list) else "some layers"
        message = with_hint(f"{name} ran the model in training mode ({layers} of the model ran with "
                            "model.training True): dropout drops random units and BatchNorm uses the batch's "
                            "statistics, so the codes are not f(x_a) and f(x_b).",
                            "the model arrives in evaluation mode: do not call model.train() (nor model.train(True)).")
        ends_message, path_message = ends_message and message, path_message and message
    if evidence.get("left_in_training_mode") is not False:
        path_message = path_message or with_hint(
            f"{name} left the model in training mode.", "interpolating only reads the model: leave its mode as it "
                                                        "was (no model.train() at the end).")
    if evidence.get("model_changed") is not False:
        path_message = path_message or with_hint(
            f"{name} changed the model's weights or BatchNorm statistics.",
            "interpolating only reads the model: no optimizer step, no in-place change of a parameter, and no "
            "forward pass in training mode (which updates BatchNorm's running statistics).")
    return {ENDS: ends_message, PATH: path_message}


INTERPOLATION = Exercise("Latent interpolation", ("interpolate",), PARTS, probe_interpolate, judge_interpolate)
