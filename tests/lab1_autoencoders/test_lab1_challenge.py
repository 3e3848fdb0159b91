"""Lab 1's open challenge check: it builds the student's design afresh, checks the rules and trains it itself, so
its points come from a validation MSE (held-out training digits) the check measured; designs outside the rules, or
that cannot learn, earn 0."""
from __future__ import annotations

import functools

import pytest
import torch
from lab1_references import ChallengeAutoencoder
from torch import nn

from labs_utils import exercises
from labs_utils.checks import check_challenge
from labs_utils.lab1_autoencoders import model_size
from labs_utils.lab1_autoencoders.exercise_challenge import CHALLENGE, CHALLENGE_EXERCISE, GOOD, MEETS_TARGET

pytestmark = pytest.mark.slow  # every test trains the design the check builds (seconds each)


@functools.cache
def verdicts(model) -> dict:
    """The check's verdicts (each design trains once per test run)."""
    return exercises.grade_here(CHALLENGE_EXERCISE, (model,), seed=4)


def verdict(model) -> str | None:
    return verdicts(model)[MEETS_TARGET]


def test_the_notebook_design_passes_as_a_class(capsys):
    check_challenge(ChallengeAutoencoder)
    assert "\u2714 Open challenge: all 2 part(s) passed (1.5/1.5 points)" in capsys.readouterr().out


def test_an_instance_is_judged_by_a_fresh_model_of_its_class():
    trained_elsewhere = ChallengeAutoencoder()
    with torch.no_grad():
        for p in trained_elsewhere.parameters():
            p.fill_(0.0)  # whatever the instance holds, the check builds and trains its own
    assert verdict(trained_elsewhere) is None


def test_a_smaller_design_with_other_channels_passes():
    class Narrow(ChallengeAutoencoder):
        def __init__(self, code_dim: int = 32):
            super().__init__(code_dim, channels=(8, 16, 8))

    assert model_size(Narrow()) < 15_000 and verdict(Narrow) is None
    good = verdicts(Narrow)[GOOD]  # it learns, but less well than the notebook's design in the same steps
    assert good is not None and f"asks for at most {CHALLENGE.check_good_mse}" in good and "Hint" in good


class ExtraBuffer(ChallengeAutoencoder):
    """Under 50,000 parameters, but a buffer takes the numbers it holds over the budget."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.register_buffer("lookup", torch.zeros(15_000))


class HiddenWeights(ChallengeAutoencoder):
    """Weights kept as a plain tensor with requires_grad, outside parameters()."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.extra = torch.zeros(784, 20, requires_grad=True)


class Tiny(ChallengeAutoencoder):
    """One feature map per layer: a few hundred numbers, which cannot draw or learn the digits."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim, channels=(1, 1, 1))


class FrozenEncoder(ChallengeAutoencoder):
    """Within the rules, but its encoder never trains: the decoder alone learns little more than the mean image."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.encoder.requires_grad_(False)


class ConstantCode(ChallengeAutoencoder):
    """Within the rules, but every image gets the same code (the encoder's output times 0): the decoder can learn the
    mean image at best."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.encoder.append(Scale(0.0))


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class ReluBeforeSigmoid(ChallengeAutoencoder):
    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.decoder.insert(len(self.decoder) - 1, nn.ReLU())


class SigmoidInForwardOnly(ChallengeAutoencoder):
    """The decoder ends without a sigmoid; forward adds it: the text asks for images in [0, 1] out of the decoder."""

    def __init__(self, code_dim: int = 32):
        super().__init__(code_dim)
        self.decoder = self.decoder[:-1]

    def forward(self, x):
        return torch.sigmoid(self.decoder(self.encoder(x)))


class SkipInForward(ChallengeAutoencoder):
    """forward blends the input into the output: a path around the code."""

    def forward(self, x):
        return 0.5 * (self.decoder(self.encoder(x)) + x)


class Code16(ChallengeAutoencoder):
    def __init__(self):
        super().__init__(code_dim=16)


@pytest.mark.parametrize("wrong, message", [
    (ExtraBuffer, "holds 50,958 numbers (parameters, buffers and other tensors), over the budget of 50,000"),
    (HiddenWeights, "holds 51,638 numbers"),
    (Code16, "shape [8, 16]; the challenge's code is 32 numbers"),
    (ReluBeforeSigmoid, "a ReLU before the sigmoid keeps every pixel at 0.5 or above"),
    (SigmoidInForwardOnly, "the sigmoid, and everything else, belongs inside the decoder"),
    (SkipInForward, "is not SkipInForward.decoder(SkipInForward.encoder(x)) (up to"),
    (ConstantCode, "Trained by the check (200 Adam steps"),
    (nn.Sequential(nn.Identity()), "needs the two halves self.encoder and self.decoder"),
], ids=lambda v: getattr(v, "__name__", type(v).__name__))
def test_designs_outside_the_rules_or_that_cannot_learn_earn_nothing(wrong, message):
    found = verdict(wrong)
    assert found is not None and message in found and "Hint" in found
    assert verdicts(wrong)[GOOD] == found


def test_a_frozen_encoder_learns_something_but_not_enough_for_the_second_part():
    good = verdicts(FrozenEncoder)[GOOD]  # a random fixed encoder: the decoder alone gets a little below the mean image
    assert good is not None and f"asks for at most {CHALLENGE.check_good_mse}" in good


def test_a_design_that_cannot_learn_is_told_the_mse_the_check_measured_and_the_target():
    found = verdict(ConstantCode)
    assert f"the check asks for at most {CHALLENGE.check_mse}" in found
    assert float(found.split("reaches a validation MSE of ")[1].split(" ")[0]) > CHALLENGE.check_mse


def test_an_untrained_tiny_model_earns_nothing():
    assert model_size(Tiny()) < 1_500 and verdict(Tiny) is not None


def test_the_check_scores_on_held_out_training_digits_never_on_test_digits(monkeypatch):
    """Its number is a validation MSE: the test digits stay for the notebook's last cell, read once."""
    from labs_utils.lab1_autoencoders import exercise_challenge

    splits, seen = [], {}
    real_load = exercise_challenge.load_bundled

    def load(split, *args, **kwargs):
        splits.append(split)
        return real_load(split, *args, **kwargs)

    def train(model, images, *args, **kwargs):
        seen["train"] = images.clone()

    def evaluate(model, images):
        seen["eval"] = images.clone()
        return 0.02

    monkeypatch.setattr(exercise_challenge, "load_bundled", load)
    monkeypatch.setattr(exercise_challenge.measure, "train", train)
    monkeypatch.setattr(exercise_challenge.measure, "evaluate", evaluate)
    evidence = exercise_challenge.probe_challenge(ChallengeAutoencoder,
                                                  inputs=exercise_challenge.inputs_challenge(seed=0))
    assert evidence["mse"] == 0.02 and splits and set(splits) == {"train"}
    trained, scored = seen["train"].flatten(1), seen["eval"].flatten(1)
    assert len(scored) == CHALLENGE.check_val_digits and len(trained) == CHALLENGE.check_digits
    assert not (torch.cdist(scored, trained).min(dim=1).values == 0).any()  # no scored digit was trained on
