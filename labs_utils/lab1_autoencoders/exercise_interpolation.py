"""Exercise 2, ``interpolate(model, x_a, x_b, steps)``: its parts, probe (student's kernel) and judge.

The probe hands the student's function a small autoencoder built from a sub-seed, in evaluation mode, and two
digit-like images. Its encoder is non-linear and has BatchNorm and dropout, and its decoder ends in a steep
sigmoid, so a mix of images, a mix of decoded images and a model run in training mode all differ clearly from
the decoder's images of the codes the contract asks for. The probe wraps the decoder to record every code it is
given, and returns those codes with the images that came back, whether they carry a gradient, which BatchNorm
or dropout layers ran in training mode, and the model's mode, weights and statistics afterwards.

The judge decides from properties of that record, not from a path of its own: each frame must be the decoder's
image of a code it was given; the first of those codes must be f(x_a), the last f(x_b); all of them must lie on
the straight segment between the two, evenly spaced along it; the images carry no gradient and the model is left
as it came.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..checking import describe, tensor_difference, with_hint
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from ._calls import StudentCalls
from ._inputs import draw_images, generator

STEPS = (5, 2, 9)
HIDDEN, CODE_DIM = 16, 3
IMAGE_TOLERANCE = 1e-5  # a frame is the decoder's image of a recorded code
CODE_TOLERANCE = 1e-4  # distances between codes, relative to |f(x_b) - f(x_a)|
MAX_CODES = 256  # codes recorded per call (a path of 9 frames needs 9)

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


class RecordingDecoder(nn.Module):
    """The probe model's decoder, wrapped: it records (a detached copy of) every batch of codes it decodes."""

    def __init__(self, decoder: nn.Sequential):
        super().__init__()
        self.inner = decoder
        self.codes: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if isinstance(z, torch.Tensor) and z.ndim == 2 and z.shape[1] == CODE_DIM:
            self.codes.append(z.detach().to("cpu", torch.float64).clone())
        return self.inner(z)

    def __getitem__(self, index: Any) -> Any:
        return self.inner[index]

    def __len__(self) -> int:
        return len(self.inner)


def inputs_interpolate(*, seed: int) -> dict:
    """The sub-seeds of the probe's model and of torch's generator during the calls, and the images x_a, x_b."""
    images = draw_images(seed, "images", 2)
    return {"model": sub_seed(seed, "model"), "calls": sub_seed(seed, "calls"), "x_a": images[0], "x_b": images[1]}


def _inputs(inputs: dict) -> tuple[ProbeAutoencoder, torch.Tensor, torch.Tensor]:
    """The probe's model (built from its sub-seed) and copies of x_a and x_b."""
    with seeded(inputs["model"]):  # the layers' default initialisation draws from torch's generator: give it back
        return ProbeAutoencoder(inputs["model"]), inputs["x_a"].clone(), inputs["x_b"].clone()


def probe_interpolate(fn: Callable, *, inputs: dict) -> dict:
    """Call ``fn(model, x_a, x_b, steps=k)`` for each k of STEPS; record the results, the codes the decoder was
    given, the layers that ran in training mode, and whether the inputs, the model's state or its mode changed."""
    model, x_a, x_b = _inputs(inputs)
    recorder = RecordingDecoder(model.decoder).eval()
    model.decoder = recorder
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
    evidence: dict[str, Any] = {"name": name, "results": {}, "codes": {}, "requires_grad": {}, "errors": {},
                                "left_in_training_mode": False}
    try:
        for steps in STEPS:
            recorder.codes.clear()
            try:
                with seeded(inputs["calls"]):
                    result = calls(fn, model, x_a, x_b, steps=steps, what=f"{name}(model, x_a, x_b, steps={steps})")
                is_tensor = isinstance(result, torch.Tensor)
                evidence["results"][str(steps)] = (result.detach().to("cpu", torch.float32) if is_tensor
                                                   else type(result).__name__)
                evidence["requires_grad"][str(steps)] = bool(is_tensor and result.requires_grad)
                codes = torch.cat(recorder.codes) if recorder.codes else torch.zeros(0, CODE_DIM, dtype=torch.float64)
                evidence["codes"][str(steps)] = codes[:MAX_CODES]
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

def _fractions(values: list[float]) -> str:
    return ", ".join(f"{round(v, 2) + 0.0:.2f}" for v in values)  # + 0.0: no "-0.00" for a rounding error below 0


class _Walk:
    """What one call returned, measured against the contract: for each frame the recorded code the decoder drew
    it from (None when no recorded code gives that image), and where those codes sit relative to the segment
    from z_a to z_b (fraction along it, distance off it, both relative to its length)."""

    def __init__(self, model: ProbeAutoencoder, got: torch.Tensor, codes: torch.Tensor, z_a: torch.Tensor,
                 z_b: torch.Tensor):
        self.frame_codes: list[torch.Tensor | None] = [None] * len(got)
        if len(codes):
            with torch.no_grad():
                drawn = model.decoder(codes.float()).double()
            gaps = (got.double()[:, None] - drawn[None]).abs().flatten(2).amax(2)  # (frames, codes)
            best, which = gaps.min(dim=1)
            self.frame_codes = [codes[i] if b <= IMAGE_TOLERANCE else None for b, i in zip(best.tolist(), which)]
        span = (z_b - z_a).flatten()
        self.length = span.norm().item()
        self.z_a, self.z_b, self.span = z_a.flatten(), z_b.flatten(), span

    def drawn(self) -> bool:
        return all(c is not None for c in self.frame_codes)

    def distance(self, k: int, target: torch.Tensor) -> float:
        code = self.frame_codes[k]
        return float("inf") if code is None else ((code - target.flatten()).norm() / self.length).item()

    def fractions(self) -> list[float]:
        return [((c - self.z_a) @ self.span / self.length ** 2).item() for c in self.frame_codes]  # type: ignore

    def off_line(self) -> float:
        return max(((c - self.z_a - t * self.span).norm() / self.length).item()
                   for c, t in zip(self.frame_codes, self.fractions()))  # type: ignore


def _ends_message(call: str, walk: _Walk, got: torch.Tensor, x_a: torch.Tensor) -> str | None:
    """None when the first frame is f(x_a) decoded and the last f(x_b); otherwise what went wrong."""
    first, last = walk.distance(0, walk.z_a), walk.distance(-1, walk.z_b)
    if first <= CODE_TOLERANCE and last <= CODE_TOLERANCE:
        return None
    if walk.frame_codes[0] is None or walk.frame_codes[-1] is None:
        if _close(got[:1], x_a[None]):
            return with_hint(f"{call} starts with x_a itself.", "every frame comes out of the decoder, the ends "
                                                                 "too: they are the reconstructions of x_a and x_b.")
        return with_hint(f"{call}: the first or last image is not the decoder's image of any code it was given.",
                         "every frame, the two ends included, is model.decoder's image of a code.")
    if walk.distance(0, walk.z_b) <= CODE_TOLERANCE and walk.distance(-1, walk.z_a) <= CODE_TOLERANCE:
        return with_hint(f"{call} goes from x_b to x_a.", "the first image is x_a's reconstruction, the last one "
                                                          "x_b's.")
    if walk.distance(-1, walk.z_a + walk.z_b) <= CODE_TOLERANCE:
        return with_hint(f"{call}: the last image decodes z_a + z_b, not z_b.",
                         "a step from z_a towards z_b is a fraction of the difference between them: at the far "
                         "end the code must be z_b itself.")
    where = ""
    if walk.drawn() and walk.off_line() <= CODE_TOLERANCE:
        fractions = walk.fractions()
        where = f" The codes sit at fractions {_fractions(fractions)} of the way from z_a to z_b."
        if first <= CODE_TOLERANCE and fractions[-1] < 1:
            return with_hint(f"{call}: the codes stop short of z_b, so the last image is not x_b's "
                             f"reconstruction.{where}", "both ends are included: the last code is z_b itself.")
        if last <= CODE_TOLERANCE and fractions[0] > 0:
            return with_hint(f"{call}: the codes start after z_a, so the first image is not x_a's "
                             f"reconstruction.{where}", "both ends are included: the first code is z_a itself.")
    end = "first" if first > CODE_TOLERANCE else "last"
    return with_hint(f"{call}: the {end} image is not decoded from the code of x_{'a' if end == 'first' else 'b'} "
                     f"(z_a = model.encoder(x_a) and z_b = model.encoder(x_b)).{where}",
                     "both ends are included: the first code is z_a itself, the last z_b.")


def _close(a: Any, b: torch.Tensor) -> bool:
    difference = tensor_difference(a, b)
    return difference is not None and difference <= IMAGE_TOLERANCE


def _path_message(call: str, walk: _Walk, steps: int, requires_grad: Any) -> str | None:
    """None when every frame is decoded from a code on the segment, evenly spaced, and carries no gradient."""
    loose = [k for k, c in enumerate(walk.frame_codes) if c is None]
    if loose:
        return with_hint(f"{call}: image(s) {', '.join(map(str, loose))} (counting from 0) are not the decoder's "
                         "image of any code it was given (mixed after decoding?).",
                         "every frame comes out of the decoder: mix the codes, then decode. The decoder is not "
                         "linear, so a mix of its images is not its image of the mixed code.")
    off = walk.off_line()
    if off > CODE_TOLERANCE:
        return with_hint(f"{call}: the codes between the ends are not on the straight segment from z_a to z_b (the "
                         f"farthest is {off:.2g} of the segment's length off it).",
                         "mix the two codes, not the images: the encoder is not linear, so the code of a mix of "
                         "images is not a mix of the codes.")
    fractions = walk.fractions()
    even = [k / (steps - 1) for k in range(steps)]
    if max(abs(f - e) for f, e in zip(fractions, even)) > CODE_TOLERANCE:
        return with_hint(f"{call}: the codes sit at fractions {_fractions(fractions)} of the way from z_a to z_b, "
                         "not evenly spaced.", f"{steps} codes evenly spaced, both ends included: {steps - 1} "
                                               "equal gaps, in order from z_a to z_b.")
    if requires_grad is not False:
        return with_hint(f"{call} returned images that still carry the autograd graph (requires_grad is True).",
                         "nothing is trained here: compute the walk under torch.no_grad() (or detach the result).")
    return None


def _judge_call(call: str, got: Any, codes: Any, requires_grad: Any, model: ProbeAutoencoder, x_a: torch.Tensor,
                z_a: torch.Tensor, z_b: torch.Tensor, steps: int) -> tuple[str | None, str | None]:
    """(ends message, path message) of one call."""
    expected = (steps, 1, 28, 28)
    if not isinstance(got, torch.Tensor):
        message = with_hint(f"{call} returned {got}, not a tensor.", "return the decoded images as one tensor of "
                            "shape (steps, 1, 28, 28): torch.stack or one batched decoder call.")
        return message, message
    if tuple(got.shape) != expected:
        hint = ("one image per step, both ends included" if got.ndim == 4 and tuple(got.shape[1:]) == expected[1:]
                else "decode the codes with model.decoder, whose images are (N, 1, 28, 28); x_a and x_b are single "
                     "images (1, 28, 28): the encoder wants a batch, x_a[None] or x_a.unsqueeze(0)")
        message = with_hint(f"{call} returned shape {tuple(got.shape)}; expected {expected}.", hint + ".")
        return message, message
    if not torch.isfinite(got).all():
        message = with_hint(f"{call} returned images with NaN or infinite pixels.", "decode finite codes.")
        return message, message
    if not (isinstance(codes, torch.Tensor) and codes.ndim == 2 and codes.shape[1] == CODE_DIM
            and len(codes) <= MAX_CODES and torch.isfinite(codes).all()):
        codes = torch.zeros(0, CODE_DIM, dtype=torch.float64)
    if not len(codes):
        message = with_hint(f"{call} never ran model.decoder.", "every frame is the decoder's image of a code: "
                                                                 "encode x_a and x_b, then decode codes.")
        if _close(got[:1], x_a[None]):
            message = with_hint(f"{call} starts with x_a itself, and never ran model.decoder.",
                                "the path runs through code space: every frame comes out of the decoder.")
        return message, message
    walk = _Walk(model, got, codes.double(), z_a.double(), z_b.double())
    ends = _ends_message(call, walk, got, x_a)
    return ends, ends or _path_message(call, walk, steps, requires_grad)


def judge_interpolate(evidence: Any, *, seed: int) -> dict:
    """Parts ENDS and PATH from the probe's record."""
    if not isinstance(evidence, dict) or not all(isinstance(evidence.get(k), dict)
                                                 for k in ("results", "errors", "codes", "requires_grad")):
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
    model, x_a, x_b = _inputs(inputs_interpolate(seed=seed))  # what the probe was given
    with torch.no_grad():
        z_a, z_b = model.encoder(x_a[None]), model.encoder(x_b[None])
    ends_message: str | None = None
    path_message: str | None = None
    for steps in STEPS:
        key = str(steps)
        ends, path = _judge_call(f"{name}(model, x_a, x_b, steps={steps})", evidence["results"].get(key),
                                 evidence["codes"].get(key), evidence["requires_grad"].get(key), model, x_a,
                                 z_a, z_b, steps)
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


INTERPOLATION = Exercise("Latent interpolation", ("interpolate",), PARTS, probe_interpolate, judge_interpolate,
                         inputs=inputs_interpolate)
