"""Every Lab 3 exercise gives 0 points to a non-attempt, and bad input fails its part, not the check.

Non-attempts: a step that returns without updating (with or without calling the closure), an identity, a
constant, and every public callable of ``labs_utils.lab3_optimizers`` handed in as the answer. Bad input: code
that hangs, recurses, returns the wrong type or changes the probe's inputs.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch
from lab3_reference import Heavy, failed_parts, run_closure, verdicts

from labs_utils import evidence, exercises
from labs_utils import lab3_optimizers as lab3
from labs_utils.lab3_optimizers import exercise_fit_rate, exercise_optimizers
from labs_utils.lab3_optimizers.checks import CHECKS
from labs_utils.lab3_optimizers.exercise_fit_rate import EARLY_ZEROS, FIT_RATE
from labs_utils.lab3_optimizers.exercise_stability import STABILITY
from labs_utils.lab3_optimizers.optimizer_cases import CONTRACT, GROUPS, SPECS

OPTIMIZERS = [exercise for exercise in CHECKS if exercise not in (FIT_RATE, STABILITY)]


def with_signature_of(exercise, step):
    """An Optimizer subclass that accepts the exercise's arguments and steps with ``step``."""
    defaults = SPECS[exercise.args[0]].defaults

    class NonAttempt(torch.optim.Optimizer):
        def __init__(self, params, lr, **hyperparameters):
            super().__init__(params, dict(lr=lr, **{**defaults, **hyperparameters}))

    NonAttempt.step = step
    return NonAttempt


def returns_without_updating(self, closure=None):
    return None


def returns_the_loss_only(self, closure=None):
    return run_closure(closure)


@torch.no_grad()
def identity(self, closure=None):
    for group in self.param_groups:
        for p in group["params"]:
            p.copy_(p)
    return run_closure(closure)


@torch.no_grad()
def constant(self, closure=None):
    for group in self.param_groups:
        for p in group["params"]:
            p.fill_(0.5)
    return run_closure(closure)


@torch.no_grad()
def constant_step(self, closure=None):
    for group in self.param_groups:
        for p in group["params"]:
            p.sub_(group["lr"])
    return run_closure(closure)


PUBLIC = sorted(name for name in lab3.__all__ if callable(getattr(lab3, name)))


def _points(exercise, answer, seed):
    return exercises.points(exercise, exercises.grade_here(exercise, (answer,), seed))


@pytest.mark.parametrize("exercise", OPTIMIZERS, ids=lambda e: e.name)
@pytest.mark.parametrize("step", [returns_without_updating, returns_the_loss_only, identity, constant, constant_step])
def test_an_optimizer_that_does_not_optimize_earns_nothing(exercise, step):
    assert _points(exercise, with_signature_of(exercise, step), seed=3) == 0


@pytest.mark.parametrize("exercise", OPTIMIZERS, ids=lambda e: e.name)
def test_the_packages_own_callables_earn_nothing_as_an_optimizer(exercise):
    earned = {name: _points(exercise, getattr(lab3, name), seed=3) for name in PUBLIC}
    assert earned == {name: 0 for name in PUBLIC}


@pytest.mark.parametrize("answer", [lambda gaps: gaps, lambda gaps: gaps[-1], lambda gaps: 0.9, lambda gaps: 0.5,
                                    lambda gaps: 0.99, lambda gaps: None])
@pytest.mark.parametrize("seed", [3, 2024])
def test_a_fit_rate_that_does_not_fit_earns_nothing(answer, seed):
    assert _points(FIT_RATE, answer, seed) == 0


def test_the_packages_own_callables_earn_nothing_as_fit_rate():
    earned = {name: _points(FIT_RATE, getattr(lab3, name), seed=3) for name in PUBLIC}
    assert earned == {name: 0 for name in PUBLIC}


def test_the_packages_own_callables_earn_nothing_as_largest_stable_lr():
    earned = {name: _points(STABILITY, getattr(lab3, name), seed=3) for name in PUBLIC}
    assert earned == {name: 0 for name in PUBLIC}


def test_no_package_helper_fits_a_rate_for_the_student():
    assert not {"fitted_rate", "fit_tail_rate"} & set(dir(lab3))


# ---------------------------------------------------------------- bad input fails its part, not the check


@pytest.fixture
def short_budget(monkeypatch):
    monkeypatch.setattr(exercise_optimizers, "PER_CALL", 0.5)
    monkeypatch.setattr(exercise_fit_rate, "PER_CALL", 0.5)


class HangsWithoutGradient(Heavy):
    def step(self, closure=None):
        loss = run_closure(closure)
        while any(p.grad is None for group in self.param_groups for p in group["params"]):
            pass
        super().step()
        return loss


def test_a_step_that_hangs_on_a_missing_gradient_fails_those_parts_only(short_budget):
    assert failed_parts("momentum", HangsWithoutGradient) == [GROUPS]
    assert "did not finish within" in verdicts("momentum", HangsWithoutGradient)[GROUPS]


def test_a_step_that_always_hangs_ends_the_check_in_seconds(short_budget):
    class Hangs(Heavy):
        def step(self, closure=None):
            try:
                while True:
                    pass
            except Exception:  # the check's interruption is not an Exception
                return None

    found = verdicts("momentum", Hangs)
    assert all("did not finish within" in message or "not run" in message for message in found.values())


def test_a_step_that_recurses_fails_with_a_recursion_message():
    class RecursesWithoutGradient(Heavy):
        def step(self, closure=None):
            loss = run_closure(closure)
            if any(p.grad is None for group in self.param_groups for p in group["params"]):
                return self.step()
            super().step()
            return loss

    assert failed_parts("momentum", RecursesWithoutGradient) == [GROUPS]
    message = verdicts("momentum", RecursesWithoutGradient)[GROUPS]
    assert "RecursionError" in message and "calls itself" in message
    assert "reference implementation" not in message  # the trip-wires' hook survived the recursion


def test_a_fit_rate_that_hangs_or_recurses_fails_those_curves(short_budget):
    def hangs_on_zeros(gaps):
        while (gaps == 0).any():
            pass
        usable = gaps[gaps > 0]
        t = np.arange(len(usable))[len(usable) // 2:]
        return math.exp(np.polyfit(t, np.log(usable[t]), 1)[0] / 2)

    def recurses_on_zeros(gaps):
        return recurses_on_zeros(gaps) if (gaps == 0).any() else hangs_on_zeros(gaps)

    for fn, fragment in [(hangs_on_zeros, "did not finish within"), (recurses_on_zeros, "RecursionError")]:
        found = exercises.grade_here(FIT_RATE, (fn,), 7)
        assert [part for part, message in found.items() if message] == [EARLY_ZEROS]
        assert fragment in found[EARLY_ZEROS]


# ---------------------------------------------------------------- the probe's inputs (sent to it instead of the seed)


@pytest.mark.parametrize("exercise", CHECKS, ids=lambda exercise: exercise.name)
def test_every_probe_is_sent_its_inputs_not_the_seed_and_they_are_small(exercise):
    seed = 918273645
    sent = evidence.encode(exercise.inputs(*exercise.args, seed=seed))
    assert "seed" not in inspect.signature(exercise.probe).parameters
    assert str(seed) not in sent and len(sent) < 2**20


def _graded_on_sent_inputs(exercise, answer, seed=3):
    """Verdicts from the probe run on the inputs the grader would send, and whether they came back unchanged."""
    inputs = exercises.draw_inputs(exercise, seed)
    sent = evidence.encode(inputs)
    found = evidence.decode(evidence.encode(exercises.probe(exercise, (answer,), inputs)))
    return exercises.judge(exercise, found, seed), evidence.encode(inputs) == sent


class ScalesTheGradientsAfterStepping(Heavy):
    """Correct momentum steps, then every p.grad multiplied in place."""

    def step(self, closure=None):
        loss = super().step(closure)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(-3.0)
        return loss


def test_an_optimizer_that_edits_its_gradients_in_place_leaves_the_inputs_and_fails_the_contract_only():
    found, unchanged = _graded_on_sent_inputs(exercises.exercise_named(CHECKS, "Momentum"),
                                              ScalesTheGradientsAfterStepping)
    assert unchanged
    assert [part for part, message in found.items() if message] == [CONTRACT]
    assert "changed p.grad" in found[CONTRACT]


def test_a_fit_rate_that_overwrites_its_array_leaves_the_inputs_and_is_told_so():
    def fits_then_overwrites(gaps):
        usable = gaps[gaps > 0]
        t = np.arange(len(usable))[len(usable) // 2:]
        rate = math.exp(np.polyfit(t, np.log(usable[t]), 1)[0] / 2)
        gaps[:] = 1.0
        return rate

    found, unchanged = _graded_on_sent_inputs(FIT_RATE, fits_then_overwrites)
    assert unchanged
    assert all("changed the array it was given" in message for message in found.values())
