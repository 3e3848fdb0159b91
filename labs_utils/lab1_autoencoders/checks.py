"""Checks of the autoencoder lab: its ``LAB`` and ``GRADING`` table, and the notebook's check functions.

Each exercise is an ``inputs_...`` function (draws the probe's inputs from a seed, where the seed is), a probe
(runs the student's code on those inputs alone, in their kernel) and a judge (decides each part from the
measurements, in the grader's process): see :mod:`.exercise_autoencoders`,
:mod:`.exercise_conv`, :mod:`.exercise_interpolation`, :mod:`.exercise_noise` and :mod:`.exercise_challenge`.
The probes give torch's random state back afterwards, so running a check does not
change the numbers of the training that follows it in the notebook.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..exercises import LabInfo, run_exercise
from .exercise_autoencoders import DENSE
from .exercise_challenge import CHALLENGE_EXERCISE
from .exercise_conv import CONV
from .exercise_interpolation import INTERPOLATION
from .exercise_noise import GAUSSIAN, MASK, NOISE_EXERCISES, NOISE_KINDS, SALT_AND_PEPPER

__all__ = ["check_dense_autoencoder", "check_interpolate", "check_conv_autoencoder", "check_noise",
           "check_challenge"]

LAB = LabInfo(1, "autoencoders and denoising", "lab1_autoencoders")

GRADING = [DENSE, INTERPOLATION, CONV, GAUSSIAN, SALT_AND_PEPPER, MASK, CHALLENGE_EXERCISE]


def check_dense_autoencoder(cls: Any) -> None:
    """The class ``DenseAutoencoder`` (or an instance): widths 784-256-64-code-64-256-784, pixels in [0, 1]."""
    run_exercise(DENSE, (cls,))


def check_interpolate(fn: Callable) -> None:
    """``interpolate(model, x_a, x_b, steps)``: the decoder's images of ``steps`` codes evenly spaced from
    f(x_a) to f(x_b), ends included, as one tensor (steps, 1, 28, 28)."""
    run_exercise(INTERPOLATION, (fn,))


def check_conv_autoencoder(cls: Any) -> None:
    """The class ``ConvAutoencoder`` (or an instance) against its contract: codes of 32 numbers, images rebuilt to
    28 x 28 by transposed convolutions, every image through the code, at most 350,000 numbers held, pixels from
    black to white, and a validation MSE the check's own short training must reach."""
    run_exercise(CONV, (cls,))


def check_noise(fn: Callable, kind: str) -> None:
    """A corruption ``fn(x, level, generator=None)``; kind is "gaussian", "salt_and_pepper" or "mask"."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"Unknown noise kind {kind!r}: use one of {', '.join(NOISE_KINDS)}.")
    run_exercise(NOISE_EXERCISES[kind], (fn,))


def check_challenge(cls: Any) -> None:
    """The open challenge: the class (or an instance's class) built afresh must keep the rules (``.encoder`` and
    ``.decoder``, a code of 32 numbers, images in [0, 1] from black to white out of the decoder, ``forward`` equal
    to ``decoder(encoder(x))``, at most 50,000 numbers held), and the check trains it itself for a short fixed
    budget and measures its validation MSE (on held-out training digits) against ``CHALLENGE.check_mse`` and
    ``CHALLENGE.check_good_mse``. The full
    challenge's target and time budget are reported by ``lab1.challenge_verdict`` after the notebook's own
    training."""
    run_exercise(CHALLENGE_EXERCISE, (cls,))
