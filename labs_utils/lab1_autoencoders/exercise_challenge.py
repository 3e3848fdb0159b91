"""Exercise 5, the open challenge ``ChallengeAutoencoder``: its rules, probe (student's kernel) and judge.

The points come from a result the check measures itself, never from the student's own numbers: the probe
builds a fresh model from the student's class, checks the rules (a code of 32 numbers, images in [0, 1] out
of ``self.decoder``, black and white both reachable, ``forward`` equal to ``decoder(encoder(x))``, at most
50,000 numbers held), then trains it from a fixed seed for a short budget (a few seconds on a CPU) on bundled
MNIST training digits and measures its MSE on other, held-out training digits (a validation MSE: the test digits
stay for the notebook's last cell), against two bars (a design that learns, and a good one). An untrained model, or
one that cannot learn, misses both. The full challenge (60 s of CPU time of training, validation MSE 0.010) is the
student's to reach; ``experiments.challenge_verdict`` judges it on the notebook's own training (CPU time and
validation MSE) and reports the test MSE, measured once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checking import describe, with_hint
from ..data import BundledDataError, load_bundled
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from . import _measures as measure
from ._calls import StudentCalls
from ._inputs import draw_images, generator


@dataclass(frozen=True)
class Challenge:
    """The open challenge's rules: a code of ``code_dim`` numbers, at most ``max_numbers`` numbers held (see
    :func:`~labs_utils.lab1_autoencoders.model_size`), at most ``max_seconds`` of training on a laptop CPU
    (CPU time of the training thread, :func:`~labs_utils.lab1_autoencoders.training_clock`), a
    validation MSE of at most ``target_mse`` after that training (full mode); and the check's own training:
    ``check_steps`` Adam steps at ``check_lr`` on batches of ``check_batch`` of ``check_digits`` training digits,
    from seed ``check_seed``, to a validation MSE of at most ``check_mse`` on the last ``check_val_digits`` bundled
    training digits, which it never trains on (the mean image: 0.067; an untrained model: 0.1-0.25), and at most
    ``check_good_mse`` for the second part."""

    code_dim: int = 32
    max_numbers: int = 50_000
    max_seconds: float = 60.0
    target_mse: float = 0.0100
    check_steps: int = 200
    check_batch: int = 16
    check_lr: float = 5e-3
    check_digits: int = 2000
    check_val_digits: int = 500
    check_seed: int = 0
    check_mse: float = 0.05
    check_good_mse: float = 0.03
    check_seconds: float = 60.0


CHALLENGE = Challenge()
MEETS_TARGET = f"trained by the check: validation MSE at most {CHALLENGE.check_mse}, within the rules"
GOOD = f"trained by the check: validation MSE at most {CHALLENGE.check_good_mse}"
PARTS = (Part(MEETS_TARGET, 0.5), Part(GOOD, 1.0))
SAME = 1e-5  # forward and decoder(encoder(x)) may differ by rounding only


def _digits(split: str, n: int) -> torch.Tensor:
    """The first ``n`` bundled MNIST digits of a split as float images (n, 1, 28, 28) in [0, 1]."""
    try:
        return load_bundled(split)[0][:n].float().div(255).unsqueeze(1)
    except BundledDataError as exc:
        raise AssertionError(f"The check could not load the digits it trains on: {exc}") from None


def inputs_challenge(*, seed: int) -> dict:
    """Eight digit-like images for the encoder and forward, and the sub-seed of the decoder's random codes."""
    return {"images": draw_images(seed, "images", 8), "range": sub_seed(seed, "range")}


def probe_challenge(model: Any, *, inputs: dict) -> dict:
    """Build a fresh model from the student's class (or an instance's), measure the rules, train it as
    ``CHALLENGE`` says and measure its validation MSE on held-out training digits."""
    rules, calls = CHALLENGE, StudentCalls()
    cls = type(model) if isinstance(model, nn.Module) else model
    name = describe(cls)
    with seeded(rules.check_seed):  # the initial weights, as the training: fixed, whatever the grading seed
        built = calls(cls, what=f"{name}()")
    evidence: dict[str, Any] = {"name": name, "type": type(built).__name__}
    if not isinstance(built, nn.Module):
        return evidence
    evidence["numbers"] = measure.model_size(built)
    evidence["halves"] = [h for h in ("encoder", "decoder") if isinstance(getattr(built, h, None), nn.Module)]
    if len(evidence["halves"]) < 2:
        return evidence
    built.eval()
    try:
        with torch.no_grad():
            codes = calls(built.encoder, inputs["images"].clone(), what=f"{name}.encoder(images)")
            evidence["codes_shape"] = measure.shape(codes)
            if evidence["codes_shape"] != [8, rules.code_dim]:
                return evidence
            images = calls(built.decoder, codes, what=f"{name}.decoder(codes)")
            evidence["images_shape"] = measure.shape(images)
            out = calls(built, inputs["images"].clone(), what=f"{name}(images)")
            if isinstance(out, torch.Tensor) and isinstance(images, torch.Tensor) and out.shape == images.shape:
                evidence["forward_gap"] = (out.double() - images.double()).abs().max().item()
        evidence["range"] = measure.decoder_range(calls, built.decoder, (rules.code_dim,), generator(inputs["range"]),
                                                  f"{name}.decoder(codes)")
        measure.warm_up()
        with seeded(rules.check_seed):
            digits = _digits("train", 4000)  # the bundled training digits: 4,000; the last ones are held out
            calls(measure.train, built, digits[:rules.check_digits], rules.check_steps, rules.check_batch,
                  rules.check_lr, generator(rules.check_seed), seconds=rules.check_seconds,
                  what=f"training {name}() for {rules.check_steps} Adam steps")
        evidence["mse"] = calls(measure.evaluate, built, digits[-rules.check_val_digits:],
                                what=f"{name} on {rules.check_val_digits} validation digits")
    except AssertionError as exc:
        evidence["error"] = str(exc)
    return evidence


def _judge_rules(evidence: dict, name: str) -> str | None:
    rules = CHALLENGE
    if "numbers" not in evidence:
        return with_hint(f"{name}() is a {evidence.get('type')}, not an nn.Module.",
                         "define a class with self.encoder and self.decoder like ConvAutoencoder, and pass the class.")
    if evidence.get("halves") != ["encoder", "decoder"]:
        return with_hint(f"{name} needs the two halves self.encoder and self.decoder (the code is what the encoder "
                         "returns).", "assign both in __init__, as in ConvAutoencoder.")
    if isinstance(evidence.get("error"), str) and "codes_shape" not in evidence:
        return evidence["error"]
    if evidence.get("codes_shape") != [8, rules.code_dim]:
        return with_hint(f"{name}.encoder turns 8 images into shape {evidence.get('codes_shape')}; the challenge's "
                         f"code is {rules.code_dim} numbers per image: (8, {rules.code_dim}).",
                         f"end the encoder with a Linear layer to {rules.code_dim} outputs.")
    if isinstance(evidence.get("error"), str) and "images_shape" not in evidence:
        return evidence["error"]
    if evidence.get("images_shape") != [8, 1, 28, 28]:
        return with_hint(f"{name}.decoder turns 8 codes into shape {evidence.get('images_shape')}, not (8, 1, 28, 28).",
                         "the decoder must give images back at their size (see the transposed-convolution formula of "
                         "exercise 3).")
    gap = evidence.get("forward_gap")
    if not (isinstance(gap, float) and gap <= SAME):  # NaN fails too
        return with_hint(f"{name}()(x) is not {name}.decoder({name}.encoder(x))"
                         + (f" (up to {gap:.3g} apart)" if isinstance(gap, float) else "") + ": the check trains and "
                         "measures decoder(encoder(x)), the images that pass through the code.",
                         "keep forward as return self.decoder(self.encoder(x)): the sigmoid, and everything else, "
                         "belongs inside the decoder.")
    numbers = evidence.get("numbers")
    if not isinstance(numbers, int):
        return "The check could not read how many numbers the model holds."
    if numbers > rules.max_numbers:
        return with_hint(f"{name} holds {numbers:,} numbers (parameters, buffers and other tensors), over the budget "
                         f"of {rules.max_numbers:,}.", "lab1.model_size on each layer shows where they are.")
    return None


def judge_challenge(evidence: Any, *, seed: int) -> dict:
    """Part MEETS_TARGET: the rules, the decoder's range, then the MSE the check's training reached; part GOOD:
    the same, with the tighter bar."""
    verdict = _judge_target(evidence)
    if verdict is not None:
        return {MEETS_TARGET: verdict, GOOD: verdict}
    mse, rules, name = evidence["mse"], CHALLENGE, str(evidence.get("name", "your model"))
    if not mse <= rules.check_good_mse:
        return {MEETS_TARGET: None, GOOD: with_hint(
            f"Trained by the check, {name} reaches a validation MSE of {mse:.4f}: it learns, but the second part asks "
            f"for at most {rules.check_good_mse} from the same {rules.check_steps} steps.",
            "spend the budget where it helps: more feature maps where the images are small, BatchNorm after the "
            "(transposed) convolutions, ReLU between layers.")}
    return {MEETS_TARGET: None, GOOD: None}


def _judge_target(evidence: Any) -> str | None:
    """MEETS_TARGET's verdict (None: passed)."""
    if not isinstance(evidence, dict):
        raise AssertionError("The check's evidence is malformed.")
    name, rules = str(evidence.get("name", "your model")), CHALLENGE
    problem = _judge_rules(evidence, name)
    if problem:
        return problem
    found = evidence.get("range")
    if isinstance(evidence.get("error"), str) and found is None:
        return evidence["error"]
    if not (isinstance(found, list) and len(found) == 2 and all(isinstance(v, float) for v in found)):
        return "The check could not read the range of the decoder's pixels."
    low, high = found
    if not (0.0 <= low and high <= 1.0) or low > measure.BLACK or high < measure.WHITE:
        return with_hint(
            f"{name}.decoder draws pixels from {low:.3g} to {high:.3g} for codes near and far from 0; the challenge "
            f"asks for images in [0, 1], from black (below {measure.BLACK}) to white (above {measure.WHITE}).",
            "end the decoder with one sigmoid right after its last layer, with nothing in between (a ReLU before the "
            "sigmoid keeps every pixel at 0.5 or above).")
    if isinstance(evidence.get("error"), str):
        return evidence["error"]
    mse = evidence.get("mse")
    if not isinstance(mse, float):
        return "The check could not read the validation MSE of its training."
    if not mse <= rules.check_mse:  # NaN fails too
        return with_hint(
            f"Trained by the check ({rules.check_steps} Adam steps at lr {rules.check_lr} on batches of "
            f"{rules.check_batch} digits, seed {rules.check_seed}), {name} reaches a validation MSE of {mse:.4f} "
            f"on {rules.check_val_digits} held-out digits; the check asks for at most {rules.check_mse} (a model that "
            "draws the mean image scores about 0.067).",
            "a design that learns this fast: BatchNorm after the (transposed) convolutions, ReLU between layers, "
            "enough feature maps (three levels down and up with a few dozen feature maps in all reach below 0.03 "
            "here).")
    return None


CHALLENGE_EXERCISE = Exercise("Open challenge", ("ChallengeAutoencoder",), PARTS, probe_challenge, judge_challenge,
                              inputs=inputs_challenge)
