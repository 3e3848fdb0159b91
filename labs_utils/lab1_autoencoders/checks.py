"""Checks of the autoencoder lab: the two architectures, the latent interpolation, the three corruptions, the
denoising batch and the open challenge.

Every exercise is a probe (runs the student's code on inputs drawn from a seed, in their kernel) and a
judge (decides each part from the measurements, in the grader's process); see
:mod:`labs_utils.exercises`. The probes live in ``_model_probes``, ``_interpolation_probes``,
``_noise_probes`` and ``experiments`` (the challenge). They test
properties (shapes, ranges, statistics, gradients), never a copy of the solution, and give torch's
random state back afterwards, so running a check does not change the numbers of the training that
follows it in the notebook.
"""
from __future__ import annotations

from typing import Any, Callable

from ..exercises import Exercise, LabInfo, Part, exercise_named, run_exercise
from ._interpolation_probes import judge_interpolate, probe_interpolate
from ._model_probes import dense_parameter_count, judge_autoencoder, probe_autoencoder
from ._noise_probes import judge_denoising_batch, judge_noise, probe_denoising_batch, probe_noise
from .experiments import CHALLENGE, judge_challenge, probe_challenge

__all__ = ["check_dense_autoencoder", "check_interpolate", "check_conv_autoencoder", "check_noise",
           "check_denoising_batch", "check_challenge"]

LAB = LabInfo(1, "autoencoders and denoising", "lab1_autoencoders")

NOISE_KINDS = ("gaussian", "salt_and_pepper", "mask")

MODEL_PARTS = (Part("shapes and code size", 1.0), Part("output in [0, 1]", 0.5), Part("non-linear and trainable", 0.5))
NOISE_PARTS = (Part("statistics", 0.5), Part("range and identity at level 0", 0.25),
               Part("reproducible with a generator, fresh noise on every call", 0.25))
BATCH_PARTS = (Part("inputs = corrupt(x_clean)", 0.5), Part("targets = clean batch untouched", 0.5))
INTERPOLATION_PARTS = (Part("both ends are the two reconstructions", 0.5),
                       Part("evenly spaced codes on the line, decoded", 1.0))
CHALLENGE_PARTS = (Part(f"code size {CHALLENGE.code_dim}, at most {CHALLENGE.max_parameters:,} parameters", 0.5),)


def _noise_exercise(name: str, needs: str, kind: str) -> Exercise:
    return Exercise(name, (needs,), NOISE_PARTS, probe_noise, judge_noise, args=(kind,))


GRADING: list[Exercise] = [
    Exercise("Dense autoencoder", ("DenseAutoencoder",), MODEL_PARTS, probe_autoencoder, judge_autoencoder,
             args=(2, 8, False)),
    Exercise("Latent interpolation", ("interpolate",), INTERPOLATION_PARTS, probe_interpolate, judge_interpolate),
    Exercise("Convolutional autoencoder", ("ConvAutoencoder",), MODEL_PARTS, probe_autoencoder, judge_autoencoder,
             args=(32, 8, True)),
    _noise_exercise("Gaussian noise", "add_gaussian_noise", "gaussian"),
    _noise_exercise("Salt-and-pepper noise", "add_salt_and_pepper", "salt_and_pepper"),
    _noise_exercise("Pixel masking", "mask_pixels", "mask"),
    Exercise("Denoising batch", ("denoising_batch",), BATCH_PARTS, probe_denoising_batch, judge_denoising_batch),
    Exercise("Open challenge", ("ChallengeAutoencoder",), CHALLENGE_PARTS, probe_challenge, judge_challenge),
]
_NOISE_EXERCISES = {"gaussian": "Gaussian noise", "salt_and_pepper": "Salt-and-pepper noise", "mask": "Pixel masking"}


def check_dense_autoencoder(cls: Any) -> None:
    """The class ``DenseAutoencoder`` (or an instance): 784-256-64-code-64-256-784, ReLU, sigmoid output."""
    run_exercise(exercise_named(GRADING, "Dense autoencoder"), (cls,))


def check_interpolate(fn: Callable) -> None:
    """``interpolate(model, x_a, x_b, steps)``: the decoder's images of ``steps`` codes evenly spaced from
    f(x_a) to f(x_b), ends included, as one tensor (steps, 1, 28, 28)."""
    run_exercise(exercise_named(GRADING, "Latent interpolation"), (fn,))


def check_conv_autoencoder(cls: Any) -> None:
    """The class ``ConvAutoencoder`` (or an instance): strided convolutions to a code, transposed back."""
    run_exercise(exercise_named(GRADING, "Convolutional autoencoder"), (cls,))


def check_noise(fn: Callable, kind: str) -> None:
    """A corruption ``fn(x, level, generator=None)``; kind is "gaussian", "salt_and_pepper" or "mask"."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {kind!r}: use one of {', '.join(NOISE_KINDS)}.")
    run_exercise(exercise_named(GRADING, _NOISE_EXERCISES[kind]), (fn,))


def check_denoising_batch(fn: Callable) -> None:
    """``denoising_batch(x_clean, corrupt)``: inputs = corrupt(x_clean), targets = x_clean, x_clean left alone."""
    run_exercise(exercise_named(GRADING, "Denoising batch"), (fn,))


def check_challenge(cls: Any) -> None:
    """The open challenge's rules a model must meet before it trains: the class (or an instance) has
    ``.encoder`` and ``.decoder``, a code of 32 numbers, images in [0, 1], at most 50,000 parameters.
    The error target and the time budget are checked after training by ``lab1.challenge_verdict``."""
    run_exercise(exercise_named(GRADING, "Open challenge"), (cls,))


__all__ += ["dense_parameter_count"]
