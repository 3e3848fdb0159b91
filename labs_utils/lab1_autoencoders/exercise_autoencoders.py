"""Exercise 1, ``DenseAutoencoder``, and the measurements exercise 3 (``ConvAutoencoder``, see
:mod:`.exercise_conv`) builds on: their parts, probe (student's kernel) and judge.

The probe builds the student's class at two code sizes and measures behaviour, not only shapes: the shapes of codes
and images, every number the model holds, the tensor operations each half runs (strided or transposed convolutions,
BatchNorm, pooling, upsampling), whether the encoder and decoder are affine maps, the lowest and highest pixel the
decoder draws for codes near and far from 0, which parameters a loss reaches, and the loss over a few Adam steps on
digit-like images. The judge decides each part from those measurements, so a model that is right but for one layer
keeps the other parts' points.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checking import describe, with_hint
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from . import _measures as measure
from ._calls import StudentCalls
from ._inputs import IMAGE_SHAPE, draw_images, generator

LINEAR_CODE_DIM = 16
MAX_VALUES = 16 * 784  # values per recorded tensor
TRAIN_STEPS, TRAIN_LR, TRAIN_IMAGES = 20, 3e-3, 32
LOSS_DROP = 0.9  # the loss after TRAIN_STEPS steps must be below this share of the first (correct models: 0.34-0.75)
TRAIN_SECONDS = 60.0  # the training takes a second or two; the limit only stops a hang

SHAPES = "shapes and code size"
LAYERS = "layers as the text specifies"
RANGE = "pixels from black to white, none outside [0, 1]"
TRAINS = "trains: every parameter gets a gradient, the loss goes down"
PARTS = (Part(SHAPES, 0.5), Part(LAYERS, 0.5), Part(RANGE, 0.5), Part(TRAINS, 0.5))


def dense_parameter_count(code_dim: int) -> int:
    """Weights and biases of the 784-256-64-code-64-256-784 autoencoder of the exercise."""
    widths = (784, 256, 64, code_dim, 64, 256, 784)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def _values(value: Any) -> Any:
    """A tensor as at most MAX_VALUES float32 values (its shape is recorded separately), else its type name."""
    return value.detach().to("cpu", torch.float32).flatten()[:MAX_VALUES] if isinstance(value, torch.Tensor) \
        else type(value).__name__


def _measuring(evidence: dict, key: str, measure_it: Any) -> None:
    """Run one measurement; when the student's code fails, keep its message under ``key + '_error'``."""
    try:
        measure_it()
    except AssertionError as exc:
        evidence[key + "_error"] = str(exc)


def _probe_sizes(evidence: dict, cls: Any, model: nn.Module, name: str, code_dims: tuple, images: torch.Tensor,
                 calls: StudentCalls) -> None:
    """Per code size: the numbers the model holds, the shapes of codes and images, and whether they vary."""
    for code_dim in code_dims:
        record: dict[str, Any] = {}
        evidence[f"code_dim_{code_dim}"] = record

        def sizes(code_dim: int = code_dim, record: dict = record) -> None:
            m = model if code_dim == code_dims[0] else measure.build(cls, name, calls, code_dim=code_dim)
            record["numbers"] = measure.model_size(m)
            m.eval()
            with torch.no_grad():
                codes = calls(m.encoder, images, what=f"{name}(code_dim={code_dim}).encoder(images)")
                record["codes_shape"], record["codes_vary"] = measure.shape(codes), measure.varies(codes)
                if not record["codes_vary"]:  # a ReLU after the code may be dead on all 16 images, not on far inputs
                    spread = 10 * torch.randn(images.shape, generator=generator(code_dim))
                    record["codes_vary"] = measure.varies(calls(m.encoder, spread, what=f"{name}.encoder(images)"))
                if isinstance(codes, torch.Tensor):
                    record["images_shape"] = measure.shape(calls(m.decoder, codes, what=f"{name}.decoder(codes)"))
                    far = 10 * torch.randn(codes.shape, generator=generator(code_dim))  # where no ReLU is dead
                    record["images_vary"] = measure.varies(calls(m.decoder, far, what=f"{name}.decoder(codes)"))

        _measuring(record, "sizes", sizes)


def _probe_layers(evidence: dict, cls: Any, model: nn.Module, name: str, code_shape: tuple, inputs: dict,
                  calls: StudentCalls) -> None:
    """The operations of each half, the codes of a 16-number model, and the affine test of both halves."""
    g = generator(inputs["layers"])

    def layers() -> None:
        codes, evidence["encoder_ops"] = measure.record_ops(calls, model.encoder, inputs["layer_images"].clone(),
                                                            f"{name}.encoder(images)")
        if isinstance(codes, torch.Tensor):
            _, evidence["decoder_ops"] = measure.record_ops(calls, model.decoder, codes, f"{name}.decoder(codes)")
        small = measure.build(cls, name, calls, code_dim=LINEAR_CODE_DIM).eval()
        a, b = torch.rand(8, *IMAGE_SHAPE, generator=g), torch.rand(8, *IMAGE_SHAPE, generator=g)
        za, zb = 0.5 * torch.randn(8, *code_shape, generator=g), 0.5 * torch.randn(8, *code_shape, generator=g)
        with torch.no_grad():
            codes = calls(small.encoder, torch.rand(64, *IMAGE_SHAPE, generator=g),
                          what=f"{name}(code_dim=16).encoder(images)")
            evidence["codes_16"], evidence["codes_16_shape"] = _values(codes), measure.shape(codes)
            for half, (u, v) in (("encoder", (a, b)), ("decoder", (za, zb))):
                evidence[f"{half}_affine"] = [_values(out) for out in measure.affine_outputs(
                    calls, getattr(model, half), u, v, f"{name}.{half}(...)")]

    _measuring(evidence, "layers", layers)


def _probe_training(evidence: dict, model: nn.Module, name: str, inputs: dict, calls: StudentCalls) -> None:
    parameters = list(model.named_parameters())
    evidence["parameter_names"] = [n for n, _ in parameters]
    evidence["frozen"] = [n for n, p in parameters if not p.requires_grad]
    model.train()
    images = inputs["train_images"].clone()
    measure.warm_up()

    def training() -> None:
        evidence["without_gradient"] = calls(measure.gradients, model, images[:16], model, student=model,
                                             what=f"{name}(images) and its backward pass")
        evidence["losses"] = calls(measure.train, model, images, TRAIN_STEPS, TRAIN_IMAGES, TRAIN_LR,
                                   generator(inputs["batches"]), forward=model, seconds=TRAIN_SECONDS, student=model,
                                   what=f"training {name} for {TRAIN_STEPS} Adam steps")

    _measuring(evidence, "training", training)


def inputs_autoencoder(*args: Any, seed: int) -> dict:
    """Digit-like images to measure, to record the layers, to train on; sub-seeds of the init, codes and batches."""
    return {"images": draw_images(seed, "images", 16), "layer_images": draw_images(seed, "layer images", 8),
            "train_images": draw_images(seed, "train images", TRAIN_IMAGES),
            **{key: sub_seed(seed, key) for key in ("init", "layers", "range", "batches")}}


def probe_autoencoder(cls: Any, default_code_dim: int, other_code_dim: int, convolutional: bool, *,
                      inputs: dict) -> dict:
    """Measure the student's autoencoder class (see the module docstring) on ``inputs_autoencoder``'s inputs."""
    g = generator(inputs["range"])
    calls = StudentCalls()
    images = inputs["images"].clone()
    name = describe(type(cls) if isinstance(cls, nn.Module) else cls)
    evidence: dict[str, Any] = {"name": name}
    with seeded(inputs["init"]):  # the models' initial weights; the notebook's random state is restored afterwards
        model = measure.build(cls, name, calls)
        evidence["has_forward"] = type(model).forward is not nn.Module.forward
        _probe_sizes(evidence, cls, model, name, (default_code_dim, other_code_dim), images, calls)
        model.eval()

        def forward() -> None:
            given = images.clone()
            with torch.no_grad():
                evidence["output_shape"] = measure.shape(calls(model, given, what=f"{name}(images)"))
            evidence["input_changed"] = not torch.equal(given, images)

        _measuring(evidence, "output", forward)
        codes = evidence[f"code_dim_{default_code_dim}"].get("codes_shape")
        code_shape = tuple(codes[1:]) if isinstance(codes, list) and len(codes) > 1 else (default_code_dim,)
        _probe_layers(evidence, cls, model, name, code_shape, inputs, calls)  # codes shaped like the encoder's

        def output_range() -> None:
            evidence["range"] = measure.decoder_range(calls, model.decoder, code_shape, g, f"{name}.decoder(codes)")

        _measuring(evidence, "range", output_range)
        _probe_training(evidence, model, name, inputs, calls)
    return evidence


# ----------------------------------------------------------------------------------------------- judge

TRANSPOSED_HINT = ("a transposed convolution gives (in - 1) * stride - 2 * padding + kernel_size + output_padding "
                   "pixels per side: write down the size after each layer of your decoder and choose padding and "
                   "output_padding (smaller than the stride) so that the last layer gives 1 channel of 28 x 28.")


def _text(shape: Any) -> str:
    return str(tuple(shape)) if isinstance(shape, list) else str(shape)


def _error(evidence: dict, *keys: str) -> str | None:
    return next((evidence[k + "_error"] for k in keys if isinstance(evidence.get(k + "_error"), str)), None)


def _judge_shapes(evidence: dict, code_dims: tuple, convolutional: bool) -> str | None:
    name = evidence["name"]
    for code_dim in code_dims:
        record = evidence[f"code_dim_{code_dim}"]
        if _error(record, "sizes"):
            return _error(record, "sizes")
        if record.get("codes_shape") != [16, code_dim]:
            return with_hint(f"{name}(code_dim={code_dim}).encoder maps images (16, 1, 28, 28) to "
                             f"{_text(record.get('codes_shape'))}; expected codes shaped (16, {code_dim}).",
                             "the code is a flat vector of code_dim numbers per image: flatten what the layers "
                             "before produce and end the encoder with nn.Linear(..., code_dim).")
        if record.get("images_shape") != [16, *IMAGE_SHAPE]:
            return with_hint(f"{name}.decoder maps codes (16, {code_dim}) to {_text(record.get('images_shape'))}; "
                             "expected (16, 1, 28, 28).", TRANSPOSED_HINT if convolutional else
                             "the decoder must give the 784 numbers of each image back their shape (N, 1, 28, 28): "
                             "torch.nn has a layer for that.")
        for half, key, given, made in (("encoder", "codes_vary", "images", "code"),
                                       ("decoder", "images_vary", "codes", "image")):
            if record.get(key) is not True:
                return with_hint(f"{name}(code_dim={code_dim}).{half} gives the same {made} for 16 different "
                                 f"{given}: its output does not depend on its input.",
                                 f"the {half} must compute its output from its input, through the layers the text "
                                 "lists.")
    if not evidence["has_forward"]:
        return with_hint(f"{name} has no forward method.",
                         "keep the given forward: return self.decoder(self.encoder(x)).")
    if _error(evidence, "output"):
        return _error(evidence, "output")
    if evidence.get("output_shape") != [16, *IMAGE_SHAPE]:
        return with_hint(f"{name}()(images) returns {_text(evidence.get('output_shape'))} for images (16, 1, 28, 28).",
                         "forward must return decoder(encoder(x)), a batch of images shaped like its input.")
    if evidence.get("input_changed") is not False:
        return with_hint(f"{name}()(images) changed its input images in place.",
                         "the input batch is also the target of the loss: use out-of-place operations on x "
                         "(x = x.clamp(0, 1), not x.clamp_(0, 1)) and no inplace=True on the first layer.")
    return None


def _ops(evidence: dict, key: str) -> list | None:
    ops = evidence.get(key)
    if not isinstance(ops, list) or not all(isinstance(op, list) and len(op) == 5 and isinstance(op[0], str)
                                            and isinstance(op[1], list) and isinstance(op[2], list) for op in ops):
        return None
    return ops


def _size(shape: list) -> tuple | None:
    return tuple(shape[-2:]) if len(shape) == 4 else None


def _conv(op: list, transposed: bool) -> bool:
    """Whether the operation is a (transposed) convolution with a stride of 2 or more."""
    return op[0] in measure.CONVOLUTIONS and op[4] is transposed and isinstance(op[3], list) and max(op[3] or [1]) >= 2


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _judge_conv_layers(name: str, encoder: list, decoder: list) -> str | None:
    """Strided convolutions down, transposed ones up, no pooling or upsampling, BatchNorm after each but the last."""
    for half, ops in (("encoder", encoder), ("decoder", decoder)):
        for op in ops:
            before, after = _size(op[1]), _size(op[2])
            if before and after and before != after and op[0] not in measure.CONVOLUTIONS:
                kind = ("pooling" if "pool" in op[0] else "upsampling" if op[0] in ("interpolate", "upsample",
                        "upsample_nearest", "upsample_bilinear", "pixel_shuffle") else "not a convolution")
                return with_hint(f"{name}.{half} changes the image size from {before[0]}x{before[1]} to "
                                 f"{after[0]}x{after[1]} in {op[0]} ({kind}); the exercise asks for strided "
                                 "convolutions down and transposed convolutions up.",
                                 "go down with nn.Conv2d(..., stride=2) and back up with nn.ConvTranspose2d(..., "
                                 "stride=2), with the padding you work out: no nn.MaxPool2d, nn.AvgPool2d or "
                                 "nn.Upsample.")
    down = sum(_conv(op, False) for op in encoder)
    up = sum(_conv(op, True) for op in decoder)
    if down < 2:
        return with_hint(f"{name}.encoder runs {down} strided convolution(s); the exercise asks for at least two "
                         "convolutions with stride 2, each halving the image (rounding up).",
                         "nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=...) halves the image; "
                         "a convolution gives (in + 2 * padding - kernel_size) // stride + 1 pixels per side.")
    if up < 2:
        return with_hint(f"{name}.decoder runs {up} transposed convolution(s) with stride 2; the exercise asks for at "
                         "least two, each about doubling the image, back up to 28 x 28.",
                         "go back up with nn.ConvTranspose2d(..., stride=2, padding=..., output_padding=...): "
                         + TRANSPOSED_HINT)
    missing = []
    for half, ops in (("encoder", encoder), ("decoder", decoder)):
        convs = [i for i, op in enumerate(ops) if op[0] in measure.CONVOLUTIONS]
        for k, i in enumerate(convs):
            if half == "decoder" and k == len(convs) - 1:
                continue  # the last layer: its output goes to the sigmoid
            end = convs[k + 1] if k + 1 < len(convs) else len(ops)
            before = ops[i][1][1] if len(ops[i][1]) == 4 else None
            channels = ops[i][2][1] if len(ops[i][2]) == 4 else None
            if not any("batch_norm" in op[0] and len(op[1]) == 4 and op[1][1] == channels for op in ops[i + 1:end]):
                missing.append(f"the {_ordinal(k + 1)} convolution of the {half} ({before} -> {channels} channels)")
    if missing:
        return with_hint(f"{name} has no BatchNorm after " + ", ".join(missing) + ".",
                         "the exercise puts nn.BatchNorm2d(channels) after every convolution and transposed "
                         "convolution except the last one (which feeds the sigmoid).")
    return None


def _affine_gap(outputs: Any, logit: bool = False) -> float | None:
    if not (isinstance(outputs, list) and len(outputs) == 4 and all(isinstance(t, torch.Tensor) for t in outputs)
            and len({t.shape for t in outputs}) == 1):
        return None
    logit = logit and all(bool(((t >= 0) & (t <= 1)).all()) for t in outputs)  # a sigmoid's (no sigmoid: RANGE)
    s, a, b, zero = (torch.logit(t.double(), eps=1e-6) if logit else t.double() for t in outputs)
    return (s - a - b + zero).abs().max().item() if s.numel() else 0.0


def _judge_layers(evidence: dict, code_dims: tuple, convolutional: bool) -> str | None:
    name = evidence["name"]
    if _error(evidence, "layers"):
        return _error(evidence, "layers")
    codes = evidence.get("codes_16")
    if evidence.get("codes_16_shape") == [64, LINEAR_CODE_DIM] and isinstance(codes, torch.Tensor) \
            and codes.numel() and codes.min().item() >= 0:  # 64 codes of 16 numbers, not one negative
        return with_hint(f"All {codes.numel()} code values of {name}(code_dim=16) on 64 random images are >= 0.",
                         "something after the code layer cuts off negative values, so the codes cannot use the whole "
                         "plane: what should the code layer allow?")
    gap = _affine_gap(evidence.get("encoder_affine"))
    if gap is None or gap < 1e-4:
        return with_hint(f"{name}.encoder is an affine map (linear layers and nothing else).",
                         "linear layers with nothing between them make one linear map, whatever their widths: "
                         "the encoder's hidden layers have no nonlinearity.")
    gap = _affine_gap(evidence.get("decoder_affine"), logit=True)
    if gap is None or gap < 1e-4:
        return with_hint(f"{name}.decoder is a single sigmoid of an affine map: its hidden layers have no activation.",
                         "linear layers with nothing between them make one linear map: before its sigmoid the "
                         "decoder is no more than one nn.Linear.")
    if convolutional:
        encoder, decoder = _ops(evidence, "encoder_ops"), _ops(evidence, "decoder_ops")
        if encoder is None or decoder is None:
            return "The check could not read the operations of the encoder and decoder."
        return _judge_conv_layers(name, encoder, decoder)
    for code_dim in code_dims:
        if evidence[f"code_dim_{code_dim}"].get("codes_shape") != [16, code_dim]:
            continue  # a code of another size changes the count: the shapes part says so
        numbers, expected = evidence[f"code_dim_{code_dim}"].get("numbers"), dense_parameter_count(code_dim)
        if not isinstance(numbers, int):
            return "The check could not read how many numbers the model holds."
        if numbers != expected:
            return with_hint(f"{name}(code_dim={code_dim}) holds {numbers:,} numbers (parameters, buffers and other "
                             f"tensors); the layers 784-256-64-{code_dim}-64-256-784 (weights and biases) hold "
                             f"{expected:,}.", "use exactly these nn.Linear layers, each with a bias: 784->256->64->"
                             "code_dim in the encoder and code_dim->64->256->784 in the decoder, nothing else.")
    return None


def _judge_range(evidence: dict) -> str | None:
    name, found = evidence["name"], evidence.get("range")
    if _error(evidence, "range"):
        return _error(evidence, "range")
    if not (isinstance(found, list) and len(found) == 2 and all(isinstance(v, float) for v in found)):
        return "The check could not read the range of the decoder's pixels."
    low, high = found
    where = f"{name}.decoder draws pixels from {low:.3g} to {high:.3g} for codes near and far from 0"
    if not (low >= 0 and high <= 1):  # NaN fails too
        return with_hint(f"{where}; pixels live in [0, 1].", "end the decoder with nn.Sigmoid(), which squashes any "
                                                              "number into (0, 1).")
    if low > measure.BLACK:
        return with_hint(f"{where}: it can never draw a black pixel (below {measure.BLACK}), and most of every "
                         "digit is black background.",
                         "nothing may sit between the last layer and the sigmoid: a ReLU (or anything >= 0) before "
                         "the sigmoid keeps every pixel at 0.5 or above.")
    if high < measure.WHITE:
        return with_hint(f"{where}: it can never draw a white pixel (above {measure.WHITE}).",
                         "end the decoder with one nn.Sigmoid() right after its last layer, and nothing after it "
                         "(no second sigmoid, no scaling).")
    return None


def _judge_trains(evidence: dict, range_problem: str | None) -> str | None:
    """Gradients reach every parameter and the loss goes down; the loss is not judged when the decoder cannot
    draw the pixels (RANGE says why, and this part would blame training for it)."""
    name = evidence["name"]
    if not evidence.get("has_forward"):
        return with_hint(f"{name} has no forward method, so it cannot train.",
                         "keep the given forward: return self.decoder(self.encoder(x)).")
    if not evidence.get("parameter_names"):
        return with_hint(f"{name} has no parameters.",
                         "build the encoder and decoder from nn.Linear / nn.Conv2d layers.")
    if evidence.get("frozen"):
        return with_hint(f"{name} has parameters that cannot train (requires_grad=False): "
                         f"{', '.join(map(str, evidence['frozen'][:4]))}.",
                         "do not freeze parameters in the exercise; the optimizer must update all of them.")
    if _error(evidence, "training"):
        return _error(evidence, "training")
    missing = evidence.get("without_gradient")
    if not isinstance(missing, list) or missing:
        return with_hint(f"No gradient reaches {', '.join(map(str, (missing or ['?'])[:4]))} of {name} after "
                         "loss.backward().", "every layer defined in __init__ must be used in the forward pass, and no "
                         ".detach() or torch.no_grad() may cut the path from the loss back to the encoder.")
    losses = evidence.get("losses")
    if not (isinstance(losses, list) and len(losses) == TRAIN_STEPS and all(isinstance(v, float) for v in losses)):
        return "The check could not read the losses of the training steps."
    if not losses[-1] <= LOSS_DROP * losses[0] and range_problem is None:  # NaN fails too
        return with_hint(f"Training {name} with Adam (lr {TRAIN_LR}) for {TRAIN_STEPS} steps on {TRAIN_IMAGES} "
                         f"digit-like images took the loss from {losses[0]:.4f} to {losses[-1]:.4f}, less than "
                         f"{1 - LOSS_DROP:.0%} lower.", "every operation from the input to the output must pass "
                         "gradients on: no .round(), no torch.no_grad(), no layers created anew inside forward.")
    return None


def judge_autoencoder(evidence: Any, default_code_dim: int, other_code_dim: int, convolutional: bool, *,
                      seed: int) -> dict:
    """The four parts of ``PARTS`` from the probe's evidence."""
    if not isinstance(evidence, dict) or not isinstance(evidence.get("name"), str):
        raise AssertionError("The check's evidence is malformed.")
    code_dims = (default_code_dim, other_code_dim)
    output_range = _judge_range(evidence)
    return {SHAPES: _judge_shapes(evidence, code_dims, convolutional),
            LAYERS: _judge_layers(evidence, code_dims, convolutional),
            RANGE: output_range, TRAINS: _judge_trains(evidence, output_range)}


DENSE = Exercise("Dense autoencoder", ("DenseAutoencoder",), PARTS, probe_autoencoder, judge_autoencoder,
                 args=(2, 8, False), inputs=inputs_autoencoder)
# The convolutional autoencoder (exercise 3) is a contract with parts of its own: see .exercise_conv.
