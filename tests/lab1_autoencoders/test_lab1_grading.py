"""Lab 1's grading table as a whole: the references earn every point, non-attempts earn none on any part, bad
input (a hang, endless recursion, the wrong type, changed inputs) fails its part with a message, and malformed
evidence never crashes a judge."""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import time

import numpy as np
import pytest
import torch
from lab1_references import SOLUTIONS, DenseAutoencoder
from torch import nn

import labs_utils.lab1_autoencoders as lab1
from labs_utils import evidence, exercises
from labs_utils.lab1_autoencoders import _calls, checks
from labs_utils.lab1_autoencoders import exercise_autoencoders as ae

EXERCISES = {exercise.name: exercise for exercise in checks.GRADING}


def grade(exercise, obj, seed=11):
    return exercises.grade_here(exercise, (obj,), seed)


# ----------------------------------------------------------------------------------------------- non-attempts


class Zeros(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return torch.zeros(len(x), *self.shape)


class IdentityAutoencoder(nn.Module):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = nn.Identity(), nn.Identity()

    def forward(self, x):
        return x


class ConstantAutoencoder(nn.Module):
    """Codes and images of the right shapes that ignore their input (and no parameters)."""

    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = Zeros((code_dim,)), Zeros((1, 28, 28))

    def forward(self, x):
        return self.decoder(self.encoder(x)) + 0.5


NON_ATTEMPTS = {  # per argument kind: identity, constant, plain forward
    "model": [IdentityAutoencoder, ConstantAutoencoder, nn.Identity, nn.Module],
    "interpolate": [lambda model, x_a, x_b, steps=8: x_a,
                    lambda model, x_a, x_b, steps=8: torch.zeros(steps, 1, 28, 28),
                    lambda model, x_a, x_b, steps=8: model(torch.stack([x_a, x_b])),
                    lambda model, x_a, x_b, steps=8: model(x_a[None]).repeat(steps, 1, 1, 1)],
    "noise": [lambda x, level, generator=None: x, lambda x, level, generator=None: x.clone(),
              lambda x, level, generator=None: torch.zeros_like(x),
              lambda x, level, generator=None: torch.full_like(x, 0.5)],
}
KIND = {"DenseAutoencoder": "model", "ConvAutoencoder": "model", "ChallengeAutoencoder": "model",
        "interpolate": "interpolate", "add_gaussian_noise": "noise", "add_salt_and_pepper": "noise",
        "mask_pixels": "noise"}


@pytest.mark.parametrize("exercise", checks.GRADING, ids=lambda e: e.name)
def test_identity_constant_and_plain_forward_earn_nothing_on_any_part(exercise):
    for attempt in NON_ATTEMPTS[KIND[exercise.needs[0]]]:
        verdicts = grade(exercise, attempt)
        assert all(isinstance(message, str) for message in verdicts.values()), (exercise.name, attempt, verdicts)


def _public_callables():
    from labs_utils import training

    found = [getattr(lab1, name) for name in lab1.__all__ if callable(getattr(lab1, name))]
    return [*found, training.reconstruction_batch, training.apply_in_batches]


@pytest.mark.parametrize("exercise", checks.GRADING, ids=lambda e: e.name)
def test_no_public_helper_of_the_package_earns_a_point(exercise):
    helpers = _public_callables()
    assert len(helpers) > 20
    for helper in helpers:
        verdicts = grade(exercise, helper)
        assert exercises.points(exercise, verdicts) == 0, (exercise.name, helper, verdicts)


# ----------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def short_limits(monkeypatch):
    monkeypatch.setattr(_calls, "CALL_SECONDS", 1.0)
    monkeypatch.setattr(ae, "TRAIN_SECONDS", 1.0)


def hang(*args, **kwargs):
    """Never returns. It sleeps in short steps (each limit waits its second without burning a core); the busy loop
    a student would write is stopped the same way (test_a_busy_loop_is_stopped_too)."""
    while True:
        time.sleep(0.005)


def spin(*args, **kwargs):
    while True:
        pass


class EndlessForward(DenseAutoencoder):
    def forward(self, x):
        return self(x)


class TupleForward(DenseAutoencoder):
    def forward(self, x):
        z = self.encoder(x)
        return self.decoder(z), z


def hanging_forward(cls):
    class HangingForward(cls):
        def forward(self, x):
            hang()

    return HangingForward


HANGS = {"model": None, "interpolate": hang, "noise": lambda x, level, generator=None: hang(),
         "batch": lambda x, corrupt: hang()}


@pytest.mark.parametrize("exercise", [e for e in checks.GRADING if e.name != "Open challenge"], ids=lambda e: e.name)
def test_a_hang_fails_the_parts_it_reaches_with_a_message_and_does_not_stall_the_check(exercise, short_limits):
    kind = KIND[exercise.needs[0]]
    start = time.perf_counter()
    verdicts = grade(exercise, HANGS[kind] or hanging_forward(SOLUTIONS[exercise.needs[0]]))
    assert time.perf_counter() - start < 20
    failed = [message for message in verdicts.values() if message is not None]
    assert failed and all("did not finish within 1 s" in message for message in failed), verdicts


def test_a_busy_loop_is_stopped_too(short_limits):
    verdicts = grade(EXERCISES["Latent interpolation"], spin)
    assert all(m is not None and "did not finish within 1 s" in m for m in verdicts.values()), verdicts


def test_a_hanging_forward_costs_the_parts_that_call_it(short_limits):
    verdicts = grade(ae.DENSE, hanging_forward(DenseAutoencoder))
    assert verdicts[ae.LAYERS] is None and verdicts[ae.RANGE] is None  # the halves alone are fine
    assert "did not finish within 1 s" in verdicts[ae.SHAPES] and "did not finish" in verdicts[ae.TRAINS]


def test_a_forward_that_calls_itself_is_told_so():
    message = grade(ae.DENSE, EndlessForward)[ae.SHAPES]
    assert "raised RecursionError" in message and "calls itself without end" in message


@pytest.mark.parametrize("exercise, wrong, message", [
    (ae.DENSE, TupleForward, "returns tuple for images (16, 1, 28, 28)"),
    (EXERCISES["Gaussian noise"], lambda x, level, generator=None: x.numpy(), "returned a ndarray, not a tensor"),
    (EXERCISES["Latent interpolation"], lambda model, x_a, x_b, steps=8: np.zeros((steps, 1, 28, 28)),
     "returned ndarray, not a tensor"),
], ids=["model-tuple", "noise-array", "interpolate-array"])
def test_the_wrong_type_fails_with_a_message(exercise, wrong, message):
    verdicts = grade(exercise, wrong)
    assert any(m is not None and message in m for m in verdicts.values()), verdicts


def test_a_crash_names_the_students_line_not_the_traceback_above():
    def add_gaussian_noise(x, level, generator=None):
        noise = torch.randn(x.shape, generator=generator)
        return (x + level * noise[..., :27]).clamp(0, 1)  # a shape mistake

    message = grade(EXERCISES["Gaussian noise"], add_gaussian_noise)["statistics"]
    assert "raised RuntimeError" in message and "return (x + level * noise[..., :27]).clamp(0, 1)" in message
    assert "traceback above" not in message


# ----------------------------------------------------------------------------------------------- evidence


@pytest.mark.parametrize("found", [None, "passed", [], {}, {"name": "x", "passed": True}, {"__error__": 3},
                                   {"name": 1, "pair": [1, 2], "length": 2},
                                   {"name": "M", "code_dim_2": {}, "code_dim_8": {}, "has_forward": True,
                                    "encoder_ops": "lots", "range": ["a", 1], "losses": [float("nan")] * 20},
                                   {"name": "f", "results": {"5": "x"}, "errors": {}, "inputs_changed": "no"}])
def test_judges_fail_malformed_evidence_without_crashing(found):
    for exercise in checks.GRADING:
        verdicts = exercises.judge(exercise, found, seed=0)
        assert set(verdicts) == {part.name for part in exercise.parts}
        assert all(isinstance(message, str) for message in verdicts.values()), (exercise.name, verdicts)


def test_judges_do_not_trust_evidence_from_another_seed():
    for exercise in checks.GRADING:
        if exercise.name in ("Dense autoencoder", "Convolutional autoencoder", "Open challenge"):
            continue  # their parts are properties of the model, whatever the inputs
        found = exercises.probe(exercise, [SOLUTIONS[exercise.needs[0]]], exercises.draw_inputs(exercise, 1))
        verdicts = exercises.judge(exercise, found, seed=2)
        assert any(message is not None for message in verdicts.values()), exercise.name


# ----------------------------------------------------------------------------------------------- inputs


def test_every_probe_is_sent_small_inputs_and_never_the_seed():
    for exercise in checks.GRADING:
        assert exercise.inputs is not None and "seed" not in inspect.signature(exercise.probe).parameters
        text = evidence.encode(exercise.inputs(*exercise.args, seed=7))
        assert len(text) < 2**20, (exercise.name, len(text))


def spying(obj, seen):
    """The student's class or function, recording torch's seed and the seed of every generator it is handed."""
    if isinstance(obj, type):
        class Spy(obj):
            def __init__(self, *args, **kwargs):
                seen.append(torch.initial_seed())
                super().__init__(*args, **kwargs)

            def forward(self, x):
                seen.append(torch.initial_seed())
                return super().forward(x)

        return Spy

    @functools.wraps(obj)
    def spy(*args, **kwargs):
        seen.extend([torch.initial_seed()] + [g.initial_seed() for g in (*args, *kwargs.values())
                                              if isinstance(g, torch.Generator)])
        return obj(*args, **kwargs)

    return spy


SEED = 987_654_321


@pytest.fixture(scope="module")
def reference_pass():
    """Every check run once on the references as the notebook's check_ functions run them (run_exercise: inputs,
    probe, the evidence's JSON round trip, judge, report), each reference spied on (the seeds it is handed), the
    size of its evidence recorded, and torch's global random numbers compared before and after. One pass serves
    the four tests below: each pass trains Lab 1's models (seconds)."""
    sizes, seen, verdicts, probe = {}, {}, {}, exercises.probe

    def measured_probe(exercise, objects, inputs):
        found = probe(exercise, objects, inputs)
        sizes[exercise.name] = len(evidence.encode(found))
        return found

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(exercises, "probe", measured_probe)
        for exercise in checks.GRADING:
            seen[exercise.name] = []
            objects = [spying(SOLUTIONS[name], seen[exercise.name]) if i == 0 else SOLUTIONS[name]
                       for i, name in enumerate(exercise.needs)]
            try:
                verdicts[exercise.name] = exercises.run_exercise(exercise, objects, seed=SEED)
            except AssertionError as failed:
                verdicts[exercise.name] = {"run_exercise": str(failed)}
    return {"sizes": sizes, "seen": seen, "verdicts": verdicts, "printed": printed.getvalue(),
            "random_before": expected, "random_after": torch.rand(3)}


@pytest.mark.slow  # the reference pass trains every model (seconds)
def test_the_references_earn_every_point(reference_pass):
    failed = {name: v for name, v in reference_pass["verdicts"].items() if any(m is not None for m in v.values())}
    assert failed == {}
    assert reference_pass["printed"].count("\u2714") == len(checks.GRADING)


@pytest.mark.slow  # the reference pass trains every model (seconds)
def test_evidence_is_small_and_survives_the_json_round_trip(reference_pass):
    assert set(reference_pass["sizes"]) == {exercise.name for exercise in checks.GRADING}
    assert {name: size for name, size in reference_pass["sizes"].items() if size >= 2**20} == {}
    # run_exercise judged what came back from the JSON round trip, as the grader does
    assert all(m is None for v in reference_pass["verdicts"].values() for m in v.values())


@pytest.mark.slow  # the reference pass trains every model (seconds)
def test_student_code_finds_no_seed_drawn_from_the_grading_seed_by_an_offset(reference_pass):
    """Every generator and torch seed the probes use comes from a one-way sub-seed: student code that asks them
    (generator.initial_seed(), torch.initial_seed()) learns nothing from which to redraw the judge's inputs."""
    for name, seen in reference_pass["seen"].items():
        assert seen and not any(abs(s - SEED) < 1000 for s in seen), (name, seen)


@pytest.mark.slow  # the reference pass trains every model (seconds)
def test_checks_do_not_change_the_notebooks_random_numbers(reference_pass):
    assert torch.equal(reference_pass["random_after"], reference_pass["random_before"])


class ClampsItsInput(DenseAutoencoder):
    def forward(self, x):
        return self.decoder(self.encoder(x.clamp_(0, 0.5)))


def shrinks_its_inputs(model, x_a, x_b, steps=8):
    x_a.mul_(0.5)
    return SOLUTIONS["interpolate"](model, x_a, x_b, steps)


def noise_in_place(x, level, generator=None):
    return x.add_(level * torch.randn(x.shape, generator=generator)).clamp_(0, 1)


@pytest.mark.parametrize("exercise, wrong", [(EXERCISES["Dense autoencoder"], ClampsItsInput),
                                             (EXERCISES["Latent interpolation"], shrinks_its_inputs),
                                             (EXERCISES["Gaussian noise"], noise_in_place)],
                         ids=lambda v: getattr(v, "name", None))
def test_code_that_changes_its_input_in_place_leaves_the_probes_inputs_as_drawn(exercise, wrong):
    inputs = exercises.draw_inputs(exercise, 3)
    found = exercises.probe(exercise, [wrong], inputs)
    assert "in place" in " ".join(m for m in exercises.judge(exercise, found, seed=3).values() if m)
    assert evidence.encode(inputs) == evidence.encode(exercises.draw_inputs(exercise, 3))
