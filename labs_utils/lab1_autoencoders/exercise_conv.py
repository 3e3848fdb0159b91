"""Exercise 3, ``ConvAutoencoder`` as a contract: its parts, probe (student's kernel) and judge.

The text gives no layer table, only what the model must do: codes of ``code_dim`` numbers, images of 28 x 28
rebuilt by transposed convolutions (the student works out their padding), at most ``MAX_NUMBERS`` numbers held,
pixels from black to white out of a sigmoid, every image passing through the code, and a validation MSE the check's
own short training must reach. The probe measures what :func:`.exercise_autoencoders.probe_autoencoder` measures, plus
whether ``forward`` is ``decoder(encoder(x))`` (no path around the code, no state passed from the encoder to the
decoder) and the validation MSE after ``STEPS`` Adam steps on bundled MNIST digits from a fixed seed; the judge
decides each part, so a model that is right but for one thing keeps the other parts' points.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checking import with_hint
from ..exercises import Exercise, Part
from ..runtime import seeded
from . import _measures as measure
from . import exercise_autoencoders as ae
from ._calls import StudentCalls
from ._inputs import draw_images, generator
from .exercise_challenge import _digits
from .experiments import sigmoid_inputs

CODE_DIM, OTHER_CODE_DIM = 32, 8
MAX_NUMBERS = 350_000  # at code_dim 32; the dense autoencoder with a 32-number code holds 439,728
STEPS, BATCH, LR, SEED = 200, 16, 5e-3, 0  # the check's training (a few seconds on a laptop CPU)
TRAIN_DIGITS, VAL_DIGITS = 2000, 500  # the first of the 4,000 bundled training digits, and the last (held out)
TARGET_MSE = 0.05  # the mean image scores about 0.067; designs of the text 0.03-0.046
SAME = 1e-5  # forward and decoder(encoder(x)) may differ by rounding only
TRAIN_SECONDS = 60.0  # only a hang runs this long

SHAPES = "shapes, and every image passes through the code"
BUDGET = f"at most {MAX_NUMBERS:,} numbers held"
LEARNS = f"learns: validation MSE at most {TARGET_MSE} after the check's {STEPS} steps"
PARTS = (Part(SHAPES, 0.5), Part(ae.LAYERS, 0.5), Part(BUDGET, 0.5), Part(ae.RANGE, 0.5), Part(LEARNS, 1.0))


def _bypass(evidence: dict, model: nn.Module, name: str, calls: StudentCalls, inputs: dict) -> None:
    """forward(x) against decoder(encoder(x)), and the decoder's images of one batch's codes before and after
    the encoder saw another batch (a decoder that reads what the encoder kept would change them)."""
    x, other = inputs["bypass_images"], inputs["other_images"].clone()
    model.eval()
    with torch.no_grad():
        out = calls(model, x.clone(), what=f"{name}(images)")
        codes = calls(model.encoder, x.clone(), what=f"{name}.encoder(images)")
        via = calls(model.decoder, codes, what=f"{name}.decoder(codes)")
        calls(model.encoder, other, what=f"{name}.encoder(other images)")
        again = calls(model.decoder, codes.clone(), what=f"{name}.decoder(codes)")
    if all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (out, via, again)):
        evidence["forward_gap"] = (out - via).abs().max().item() if out.shape == via.shape else float("inf")
        evidence["state_gap"] = (via - again).abs().max().item() if via.shape == again.shape else float("inf")


def inputs_conv(*, seed: int) -> dict:
    """The inputs of ``probe_autoencoder`` and two batches of digit-like images for the bypass test."""
    return {**ae.inputs_autoencoder(seed=seed), "bypass_images": draw_images(seed, "bypass images", 16),
            "other_images": draw_images(seed, "other images", 16)}


def probe_conv(cls: Any, *, inputs: dict) -> dict:
    """The measurements of ``probe_autoencoder`` plus the bypass test and the validation MSE of the check's own
    training of a fresh model (seed ``SEED``, whatever the grading seed)."""
    evidence = ae.probe_autoencoder(cls, CODE_DIM, OTHER_CODE_DIM, True, inputs=inputs)
    calls, name = StudentCalls(), evidence["name"]
    try:
        with seeded(SEED):
            model = measure.build(cls, name, calls)
            _bypass(evidence, model, name, calls, inputs)
            measure.warm_up()
            digits = _digits("train", 4000)  # the bundled training digits: 4,000
            calls(measure.train, model, digits[:TRAIN_DIGITS], STEPS, BATCH, LR, generator(SEED), forward=model,
                  what=f"training {name}() for {STEPS} Adam steps", seconds=TRAIN_SECONDS, student=model)
            evidence["val_mse"] = calls(measure.evaluate, model, digits[-VAL_DIGITS:],
                                        what=f"{name} on {VAL_DIGITS} validation digits")
    except AssertionError as exc:
        evidence["contract_error"] = str(exc)
    try:  # what the model's output is a sigmoid of, on a fresh model (None: no sigmoid at the output)
        with seeded(SEED):
            model = measure.build(cls, name, calls)
            found = calls(sigmoid_inputs, model, inputs["bypass_images"], False, what=f"{name}(images)",
                          student=model)
        evidence["sigmoid_output"] = found is not None
    except AssertionError:
        pass  # the other parts say what failed
    return evidence


def _judge_bypass(evidence: dict) -> str | None:
    """Whether forward is decoder(encoder(x)) and the decoder sees nothing but the code."""
    name = evidence["name"]
    forward_gap, state_gap = evidence.get("forward_gap"), evidence.get("state_gap")
    if isinstance(evidence.get("contract_error"), str) and forward_gap is None:
        return evidence["contract_error"]
    if not isinstance(forward_gap, float) or not isinstance(state_gap, float):
        return "The check could not compare forward with decoder(encoder(x))."
    if not forward_gap <= SAME:  # NaN fails too
        return with_hint(f"{name}()(x) differs from {name}.decoder({name}.encoder(x)) by up to {forward_gap:.3g} "
                         "on 16 images: forward takes a path around the code.",
                         "forward must be exactly self.decoder(self.encoder(x)): no skip connection from the input, "
                         "nothing added after the decoder; the code is the only thing the decoder may see.")
    if not state_gap <= SAME:
        return with_hint(f"{name}.decoder draws other images from the same codes after the encoder has seen other "
                         f"images (up to {state_gap:.3g} apart): information reaches the decoder around the code.",
                         "the decoder may use nothing but its input, the code: no tensors kept by the encoder "
                         "(self.something = x), no skip connections between the halves.")
    return None


def _judge_pixels(evidence: dict, base_range: str | None, bypass: str | None) -> str | None:
    """The range of ``probe_autoencoder``, then the contract's "a sigmoid right after the last layer": a clamp or a
    rescaling also keeps pixels in [0, 1] but has no slope where it clips, and section 4 reads the sigmoid's input.
    A path around the code (``bypass``) also makes the output something else than a sigmoid: the first part
    says so, and this one does not count it twice."""
    if base_range is not None:
        return base_range
    if bypass is None and evidence.get("sigmoid_output") is False:
        name = evidence["name"]
        return with_hint(f"{name}'s pixels stay in [0, 1], but its output is not a sigmoid of the last layer's output "
                         "(the check looks for nn.Sigmoid, torch.sigmoid or F.sigmoid right after the last layer).",
                         "the contract ends the decoder with nn.Sigmoid() right after its last layer: a clamp or a "
                         "rescaling passes no gradient where it clips, and section 4's diagnosis reads what enters "
                         "the sigmoid.")
    return None


def _judge_budget(evidence: dict, record: dict) -> str | None:
    name = evidence["name"]
    if not (record.get("codes_shape") == [16, CODE_DIM] and record.get("codes_vary") is True
            and record.get("images_vary") is True):
        return (f"Not judged: the size only counts for an autoencoder whose encoder makes codes of {CODE_DIM} numbers "
                "from its images and whose decoder draws images from its codes (see the first part).")
    numbers = record.get("numbers")
    if not isinstance(numbers, int):
        return "The check could not read how many numbers the model holds."
    if numbers > MAX_NUMBERS:
        return with_hint(f"{name}(code_dim={CODE_DIM}) holds {numbers:,} numbers (parameters, buffers and other "
                         f"tensors), over the budget of {MAX_NUMBERS:,}.",
                         "lab1.model_size works on any layer: the Linear layers next to the code hold (feature maps x "
                         "height x width) x code_dim weights each, so fewer feature maps, or a smaller map, before "
                         "the code shrink them most.")
    return None


def _judge_learns(evidence: dict, base_trains: str | None, bottleneck: str | None) -> str | None:
    name = evidence["name"]
    if bottleneck is not None:
        return (f"Not judged: the validation MSE only counts for images rebuilt from a code of {CODE_DIM} numbers, "
                f"and {name} {bottleneck}.")
    if base_trains is not None:
        return base_trains
    if isinstance(evidence.get("contract_error"), str) and "val_mse" not in evidence:
        return evidence["contract_error"]
    mse = evidence.get("val_mse")
    if not isinstance(mse, float):
        return "The check could not read the validation MSE of its training."
    if not mse <= TARGET_MSE:  # NaN fails too
        return with_hint(f"Trained by the check ({STEPS} Adam steps at lr {LR} on batches of {BATCH} digits, seed "
                         f"{SEED}), {name} reaches a validation MSE of {mse:.4f} on {VAL_DIGITS} held-out digits; the "
                         f"contract asks for at most {TARGET_MSE} (drawing the mean image scores about 0.067).",
                         "a network that learns this fast has enough feature maps (tens per layer, more as the maps "
                         "shrink), ReLU between layers and the BatchNorm layers the contract asks for after the "
                         "(transposed) convolutions.")
    return None


def judge_conv(evidence: Any, *, seed: int) -> dict:
    """The five parts of ``PARTS`` from the probe's evidence."""
    if not isinstance(evidence, dict) or not isinstance(evidence.get("name"), str):
        raise AssertionError("The check's evidence is malformed.")
    base = ae.judge_autoencoder(evidence, CODE_DIM, OTHER_CODE_DIM, True, seed=seed)
    bypass = _judge_bypass(evidence)
    shapes = base[ae.SHAPES] or bypass
    record = evidence.get(f"code_dim_{CODE_DIM}")
    record = record if isinstance(record, dict) else {}
    codes = record.get("codes_shape")
    bottleneck = (f"makes codes shaped {codes}, not (16, {CODE_DIM})" if codes != [16, CODE_DIM] else
                  "lets information around the code (see the first part)" if bypass is not None else None)
    learns = (bypass if bypass is not None and bypass == evidence.get("contract_error")  # it could not measure
              else _judge_learns(evidence, base[ae.TRAINS], bottleneck))
    return {SHAPES: shapes, ae.LAYERS: base[ae.LAYERS], BUDGET: _judge_budget(evidence, record),
            ae.RANGE: _judge_pixels(evidence, base[ae.RANGE], bypass), LEARNS: learns}


CONV = Exercise("Convolutional autoencoder", ("ConvAutoencoder",), PARTS, probe_conv, judge_conv, inputs=inputs_conv)
