"""Probe and judge of the two autoencoder exercises.

The probe builds the student's class at a few code sizes and records what it measured: the shapes of
codes and images, parameter counts, the decoder's outputs on far-away codes, the encoder's and
decoder's outputs on a + b, a, b and 0 (an affine map has f(a + b) - f(a) - f(b) + f(0) = 0), the
parameters that are frozen or get no gradient. The judge decides each part from those measurements.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checking import call_student, describe, fail
from ..runtime import seeded

IMAGE_SHAPE = (1, 28, 28)
LINEAR_CODE_DIM = 16
MAX_VALUES = 16 * 784  # values per recorded tensor


def dense_parameter_count(code_dim: int) -> int:
    """Weights and biases of the 784-256-64-code-64-256-784 autoencoder of the exercise."""
    widths = (784, 256, 64, code_dim, 64, 256, 784)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def _build(cls: Any, name: str, **kwargs: Any) -> nn.Module:
    if isinstance(cls, nn.Module):  # an instance works too: the probe builds fresh ones from its class
        cls = type(cls)
    arguments = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    model = call_student(cls, what=f"{name}({arguments})", **kwargs)
    if not isinstance(model, nn.Module):
        fail(f"{name}({arguments}) returned a {type(model).__name__}, not an nn.Module.",
             f"Define `class {name}(nn.Module):` and call super().__init__() first in __init__.")
    for half in ("encoder", "decoder"):
        if not isinstance(getattr(model, half, None), nn.Module):
            fail(f"{name}({arguments}) has no submodule `.{half}` (found {type(getattr(model, half, None)).__name__}).",
                 "Assign the two halves in __init__: self.encoder = nn.Sequential(...), "
                 "self.decoder = nn.Sequential(...).")
    return model


def _values(value: Any) -> Any:
    """A tensor as at most MAX_VALUES float32 values (its shape is recorded separately), else its type name."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float32).flatten()[:MAX_VALUES]
    return type(value).__name__


def _shape(value: Any) -> Any:
    return list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def _try(record: dict, key: str, fn: Any, *args: Any, what: str) -> Any:
    """Call student code; on failure keep the message under ``key + '_error'`` and return None."""
    try:
        return call_student(fn, *args, what=what)
    except AssertionError as exc:
        record[key + "_error"] = str(exc)
        return None


def probe_autoencoder(cls: Any, default_code_dim: int, other_code_dim: int, convolutional: bool, *,
                      seed: int) -> dict:
    """Measure the student's autoencoder class (see the module docstring); inputs drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(16, *IMAGE_SHAPE, generator=g)
    name = describe(type(cls) if isinstance(cls, nn.Module) else cls)
    evidence: dict[str, Any] = {"name": name, "default_code_dim": default_code_dim}
    with seeded(seed):  # the models' initial weights; the notebook's random state is restored afterwards
        model = _build(cls, name)
        evidence["has_forward"] = type(model).forward is not nn.Module.forward
        for code_dim in (default_code_dim, other_code_dim):
            m = model if code_dim == default_code_dim else _build(cls, name, code_dim=code_dim)
            record: dict[str, Any] = {"parameters": sum(p.numel() for p in m.parameters())}
            codes = _try(record, "codes", m.encoder, images, what=f"{name}(code_dim={code_dim}).encoder(images)")
            record["codes_shape"] = _shape(codes)
            if isinstance(codes, torch.Tensor):
                decoded = _try(record, "images", m.decoder, codes, what=f"{name}.decoder(codes)")
                record["images_shape"] = _shape(decoded)
            evidence[f"code_dim_{code_dim}"] = record
        output = _try(evidence, "output", model, images, what=f"{name}(images)")
        evidence["output_shape"] = _shape(output)
        evidence["encoder_convolutions"] = any(isinstance(m, nn.Conv2d) for m in model.encoder.modules())
        evidence["decoder_convolutions"] = any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))
                                               for m in model.decoder.modules())
        far_codes = 10 * torch.randn(16, default_code_dim, generator=g)
        evidence["far_images"] = _values(_try(evidence, "far_images", model.decoder, far_codes,
                                              what=f"{name}.decoder(codes)"))
        small = _build(cls, name, code_dim=LINEAR_CODE_DIM)
        evidence["codes_16"] = _values(_try(evidence, "codes_16", small.encoder, torch.rand(64, *IMAGE_SHAPE,
                                                                                            generator=g),
                                            what=f"{name}(code_dim=16).encoder(images)"))
        a, b = torch.rand(8, *IMAGE_SHAPE, generator=g), torch.rand(8, *IMAGE_SHAPE, generator=g)
        za, zb = 0.5 * torch.randn(8, default_code_dim, generator=g), 0.5 * torch.randn(8, default_code_dim,
                                                                                         generator=g)
        with torch.no_grad():
            for half, (u, v) in (("encoder", (a, b)), ("decoder", (za, zb))):
                evidence[f"{half}_affine"] = [_values(_try(evidence, half, getattr(model, half), t,
                                                           what=f"{name}.{half}(...)"))
                                              for t in (u + v, u, v, torch.zeros_like(u))]
        parameters = list(model.named_parameters())
        evidence["parameter_names"] = [n for n, _ in parameters]
        evidence["frozen"] = [n for n, p in parameters if not p.requires_grad]
        model.zero_grad(set_to_none=True)
        output = _try(evidence, "backward", model, images, what=f"{name}(images)")
        if isinstance(output, torch.Tensor) and output.shape == images.shape and output.requires_grad:
            ((output - images) ** 2).mean().backward()
        evidence["without_gradient"] = [n for n, p in parameters if p.grad is None]
        model.zero_grad(set_to_none=True)
    return evidence


# ----------------------------------------------------------------------------------------------- judge

TRANSPOSED_HINT = ("Hint: a transposed convolution gives (in - 1) * stride - 2 * padding + kernel_size + output_padding"
                   " pixels: with kernel 3, stride 2, padding 1, use output_padding=1 for 7 -> 14 -> 28, and 0 for "
                   "4 -> 7. The decoder must end with 1 channel of 28 x 28.")


def _text(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, list) else str(shape)


def _judge_shapes(evidence: dict, default_code_dim: int, other_code_dim: int, convolutional: bool) -> str | None:
    name = evidence["name"]
    for code_dim in (default_code_dim, other_code_dim):
        record = evidence[f"code_dim_{code_dim}"]
        for key in ("codes_error", "images_error"):
            if isinstance(record.get(key), str):
                return record[key]
        if record["codes_shape"] != [16, code_dim]:
            return (f"{name}(code_dim={code_dim}).encoder maps images (16, 1, 28, 28) to "
                    f"{_text(record['codes_shape'])}; expected codes shaped (16, {code_dim}). Hint: the code is a "
                    "flat vector of code_dim numbers per image: flatten what the layers before produce and end "
                    "the encoder with nn.Linear(..., code_dim).")
        if record.get("images_shape") != [16, *IMAGE_SHAPE]:
            shape = record.get("images_shape")
            hint = TRANSPOSED_HINT if convolutional else ("Hint: the decoder must give images shaped (N, 1, 28, 28):"
                                                          " end it with nn.Unflatten(1, (1, 28, 28)).")
            return (f"{name}.decoder maps codes (16, {code_dim}) to {_text(shape)}; expected (16, 1, 28, 28). {hint}")
        if not convolutional and record["parameters"] != dense_parameter_count(code_dim):
            return (f"{name}(code_dim={code_dim}) has {record['parameters']:,} parameters; the layer sizes "
                    f"784-256-64-{code_dim}-64-256-784 (weights and biases) give {dense_parameter_count(code_dim):,}."
                    " Hint: use exactly these nn.Linear layers: 784->256->64->code_dim in the encoder and "
                    "code_dim->64->256->784 in the decoder, each with a bias.")
    if not evidence["has_forward"]:
        return f"{name} has no forward method. Hint: keep the given forward: return self.decoder(self.encoder(x))."
    if isinstance(evidence.get("output_error"), str):
        return evidence["output_error"]
    if evidence["output_shape"] != [16, *IMAGE_SHAPE]:
        return (f"{name}()(images) returns {_text(evidence['output_shape'])} for images (16, 1, 28, 28). Hint: forward "
                "must return decoder(encoder(x)), a batch of images shaped like its input.")
    if convolutional and not evidence["encoder_convolutions"]:
        return (f"{name}.encoder has no nn.Conv2d layer. Hint: start the encoder with strided convolutions, e.g. "
                "nn.Conv2d(1, 32, 3, stride=2, padding=1): 28 -> 14 -> 7 -> 4 pixels.")
    if convolutional and not evidence["decoder_convolutions"]:
        return (f"{name}.decoder has no convolution layer. Hint: go back up with nn.ConvTranspose2d(..., stride=2) "
                "layers: 4 -> 7 -> 14 -> 28 pixels.")
    return None


def _judge_range(evidence: dict) -> str | None:
    name, images = evidence["name"], evidence["far_images"]
    if isinstance(evidence.get("far_images_error"), str):
        return evidence["far_images_error"]
    if not isinstance(images, torch.Tensor) or images.numel() == 0:
        return f"{name}.decoder(codes) returned a {images}, not a tensor of images."
    low, high = images.min().item(), images.max().item()
    if not (low >= 0 and high <= 1):  # NaN fails too
        return (f"{name}.decoder outputs values in [{low:.3g}, {high:.3g}] for codes far from 0; pixels live in "
                "[0, 1]. Hint: end the decoder with nn.Sigmoid(), which squashes any number into (0, 1).")
    return None


def _affine_gap(outputs: Any, logit: bool = False) -> float | None:
    if not (isinstance(outputs, list) and len(outputs) == 4 and all(isinstance(t, torch.Tensor) for t in outputs)
            and len({t.shape for t in outputs}) == 1):
        return None
    s, a, b, zero = (torch.logit(t.double(), eps=1e-6) if logit else t.double() for t in outputs)
    return (s - a - b + zero).abs().max().item() if s.numel() else 0.0


def _judge_trainable(evidence: dict) -> str | None:
    name = evidence["name"]
    for key in ("codes_16_error", "encoder_error", "decoder_error", "backward_error"):
        if isinstance(evidence.get(key), str):
            return evidence[key]
    codes = evidence["codes_16"]
    if isinstance(codes, torch.Tensor) and codes.numel() and codes.min().item() >= 0:
        return (f"All {codes.numel()} code values of {name}(code_dim=16) on 64 random images are >= 0. Hint: the "
                "code layer should be linear (an nn.Linear with no ReLU or Sigmoid after it), so codes can be "
                "negative and use the whole plane.")
    gap = _affine_gap(evidence["encoder_affine"])
    if gap is None or gap < 1e-4:
        return (f"{name}.encoder is an affine map (a stack of linear layers and nothing else). Hint: put an "
                "nn.ReLU() after every hidden layer of the encoder (not after the code layer).")
    gap = _affine_gap(evidence["decoder_affine"], logit=True)
    if gap is None or gap < 1e-4:
        return (f"{name}.decoder is a single sigmoid of an affine map: its hidden layers have no activation. Hint: "
                "put an nn.ReLU() after every hidden layer of the decoder; only the output layer gets the sigmoid.")
    if not evidence["parameter_names"]:
        return f"{name} has no parameters. Hint: build the encoder and decoder from nn.Linear / nn.Conv2d layers."
    if evidence["frozen"]:
        return (f"{name} has parameters that cannot train (requires_grad=False): {', '.join(evidence['frozen'][:4])}."
                " Hint: do not freeze parameters in the exercise; the optimizer must update all of them.")
    if evidence["without_gradient"]:
        return (f"No gradient reaches {', '.join(evidence['without_gradient'][:4])} of {name} after loss.backward()."
                " Hint: every layer defined in __init__ must be used in the forward pass, and no .detach() may cut "
                "the path from the loss back to the encoder.")
    return None


def judge_autoencoder(evidence: Any, default_code_dim: int, other_code_dim: int, convolutional: bool, *,
                      seed: int) -> dict:
    """Parts "shapes and code size", "output in [0, 1]", "non-linear and trainable" (see checks.MODEL_PARTS)."""
    from .checks import MODEL_PARTS

    shapes, output_range, trainable = (part.name for part in MODEL_PARTS)
    return {shapes: _judge_shapes(evidence, default_code_dim, other_code_dim, convolutional),
            output_range: _judge_range(evidence), trainable: _judge_trainable(evidence)}
