"""Both Lab 2 exercises give a non-attempt nothing (a plain forward, an identity, a constant, torch's checkpoint,
every public helper of the wing), and bad input (a function that hangs, recurses, returns the wrong type or
changes the probe's inputs) fails the parts it spoils, with a message, never the whole check."""
from __future__ import annotations

import signal

import pytest
import torch
from reference_checkpointing import SavedInputSegment, checkpointed_saved_input, run_blocks, segment_params, segments
from torch import nn
from torch.utils.checkpoint import checkpoint_sequential

from labs_utils import evidence as ev
from labs_utils import exercises
from labs_utils import lab2_checkpointing as lab2
from labs_utils.lab2_checkpointing import checks, probe_inputs
from labs_utils.lab2_checkpointing.exercise_checkpointing import (
    GRADIENTS,
    MEMORY,
    NO_INPUT_GRAD,
    PEAK,
    RECOMPUTATION,
)
from labs_utils.lab2_checkpointing.exercise_dropout import DROPOUT  # optional exercise: not in checks.GRADING

CHECKPOINTING = exercises.exercise_named(checks.GRADING, "checkpointed_forward: checkpointing from scratch")


def verdicts(exercise, implementation):
    return exercises.grade_here(exercise, [implementation], exercises.default_seed(exercise))


def points(exercise, implementation):
    return exercises.points(exercise, verdicts(exercise, implementation))


def failed(result):
    return {part for part, message in result.items() if message is not None}


# --- non-attempts ----------------------------------------------------------------------------------------
class Identity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def identity_function_then_plain_forward(blocks, x, segment_size):
    """A Function of one's own on the path to the output, but the blocks run outside it."""
    return run_blocks(blocks, Identity.apply(x))


NON_ATTEMPTS = {
    "plain forward": lambda blocks, x, segment_size: blocks(x),
    "plain forward, block by block": lambda blocks, x, segment_size: run_blocks(blocks, x),
    "forward without grad": lambda blocks, x, segment_size: torch.no_grad()(run_blocks)(blocks, x),
    "identity": lambda blocks, x, segment_size: x,
    "constant": lambda blocks, x, segment_size: torch.zeros_like(x),
    "zero times the input": lambda blocks, x, segment_size: x * 0,
    "torch.utils.checkpoint": lambda blocks, x, segment_size: checkpoint_sequential(
        nn.Sequential(*blocks), -(-len(blocks) // segment_size), x, use_reentrant=False),
    "torch.utils.checkpoint, reentrant": lambda blocks, x, segment_size: checkpoint_sequential(
        nn.Sequential(*blocks), -(-len(blocks) // segment_size), x, use_reentrant=True),
    "an identity Function, then a plain forward": identity_function_then_plain_forward,
    "the wing's BlockNet": lambda blocks, x, segment_size: lab2.BlockNet(nn.Identity(), blocks, nn.Identity())(x),
}
HELPERS = {f"lab2.{name}": getattr(lab2, name) for name in lab2.__all__ if callable(getattr(lab2, name))}
HELPERS.update({f"checks.{name}": getattr(checks, name) for name in checks.__all__})


def test_every_public_helper_of_the_wing_is_tried():
    assert {"lab2.measure_step", "lab2.gradient_error", "lab2.count_calls", "checks.check_checkpointing",
            "checks.check_dropout_checkpointing"} <= set(HELPERS)


@pytest.mark.filterwarnings("ignore:None of the inputs have requires_grad")  # torch's reentrant checkpoint
@pytest.mark.parametrize("exercise", checks.GRADING, ids=lambda e: e.needs[0])
@pytest.mark.parametrize("name", [*NON_ATTEMPTS, *HELPERS])
def test_a_non_attempt_earns_nothing(exercise, name):
    implementation = NON_ATTEMPTS.get(name) or HELPERS[name]
    result = verdicts(exercise, implementation)
    assert exercises.points(exercise, result) == 0, {p: m for p, m in result.items() if m is None}
    assert all(isinstance(message, str) and message for message in result.values())


def test_a_plain_forward_is_told_its_blocks_ran_outside_a_function_of_its_own():
    for exercise in (CHECKPOINTING, DROPOUT):  # the in-place exercise says "does not checkpoint" (its own tests)
        result = verdicts(exercise, NON_ATTEMPTS["plain forward"])
        assert all("ran outside any torch.autograd.Function of yours" in m for m in result.values()), result


# --- bad input fails its parts, with a message --------------------------------------------------------------
@pytest.fixture
def short_time_limits(monkeypatch):
    """A hang is found after 0.5 s (then 0.2 s per call) instead of the check's seconds."""
    monkeypatch.setattr(probe_inputs, "CALL_S", 0.5)
    monkeypatch.setattr(probe_inputs, "AFTER_HANG_S", 0.2)
    monkeypatch.setattr(probe_inputs, "TOTAL_S", 5.0)


def hangs(blocks, x, segment_size):
    while True:
        pass


def hangs_when_segment_size_does_not_divide(blocks, x, segment_size):
    start = 0
    while start < len(blocks):  # a loop that calls len(): the trip-wire's profile hook runs all the time
        if len(blocks) % segment_size == 0:
            start += segment_size
    return checkpointed_saved_input(blocks, x, segment_size)


class HangsInBackward(SavedInputSegment):
    @staticmethod
    def backward(ctx, grad_output):
        while len(ctx.segment) == 1:
            pass
        return SavedInputSegment.backward(ctx, grad_output)


def backward_hangs_for_one_block_segments(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = HangsInBackward.apply(segment, x, *segment_params(segment))
    return x


def test_a_function_that_hangs_everywhere_fails_every_part_in_time(short_time_limits):
    handler = signal.getsignal(signal.SIGALRM)
    result = verdicts(CHECKPOINTING, hangs)
    assert failed(result) == {part.name for part in CHECKPOINTING.parts}
    assert all("did not finish within" in message for message in result.values())
    assert signal.getsignal(signal.SIGALRM) is handler and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_function_that_hangs_on_some_cases_fails_only_their_parts(short_time_limits):
    result = verdicts(CHECKPOINTING, hangs_when_segment_size_does_not_divide)
    assert failed(result) == {GRADIENTS, MEMORY, PEAK, RECOMPUTATION}, result
    assert "segment_size=5) did not finish within 0.5 s" in result[GRADIENTS]
    assert "profile hook" not in result[GRADIENTS]  # the time limit never fires inside the trip-wire


def test_a_backward_that_hangs_fails_the_parts_of_its_case(short_time_limits):
    result = verdicts(CHECKPOINTING, backward_hangs_for_one_block_segments)
    assert failed(result) == {GRADIENTS, PEAK, RECOMPUTATION}, result
    assert "backward through backward_hangs_for_one_block_segments did not finish" in result[GRADIENTS]


def test_the_dropout_check_survives_a_hang_too(short_time_limits):
    result = verdicts(DROPOUT, hangs)
    assert all("did not finish within" in message for message in result.values())


def test_the_in_place_check_survives_a_hang_and_a_meta_tensor(short_time_limits):
    in_place = exercises.exercise_named(checks.GRADING, "checkpointed_forward_inplace: an overwritten checkpoint")
    for implementation, message in ((hangs, "did not finish within 0.5 s"),
                                    (returns_a_meta_tensor, "could not measure what returns_a_meta_tensor returned")):
        result = verdicts(in_place, implementation)
        assert all(message in m for m in result.values()), result


def recurses(blocks, x, segment_size):
    return recurses(blocks, x, segment_size)


def returns_a_tuple(blocks, x, segment_size):
    return checkpointed_saved_input(blocks, x, segment_size), segment_size


def returns_a_list_for_one_block_segments(blocks, x, segment_size):
    out = checkpointed_saved_input(blocks, x, segment_size)
    return [out] if segment_size == 1 else out


def returns_a_meta_tensor(blocks, x, segment_size):
    return torch.empty(x.shape, device="meta")


def scales_the_parameters(blocks, x, segment_size):
    out = checkpointed_saved_input(blocks, x, segment_size)
    with torch.no_grad():
        for p in blocks.parameters():
            p.mul_(0.5)
    return out


def scales_a_batch_of_data_in_place(blocks, x, segment_size):
    if not x.requires_grad:
        x.mul_(2)
    return checkpointed_saved_input(blocks, x, segment_size)


@pytest.mark.parametrize("implementation, parts, message", [
    (recurses, None, "raised RecursionError"),
    (returns_a_tuple, None, "returned tuple, expected the output tensor"),
    (returns_a_list_for_one_block_segments, {GRADIENTS, MEMORY, PEAK, RECOMPUTATION}, "returned list"),
    (returns_a_meta_tensor, None, "could not measure what returns_a_meta_tensor returned"),
    (scales_the_parameters, None, "changed the probe's inputs"),
    (scales_a_batch_of_data_in_place, {NO_INPUT_GRAD}, "changed the probe's inputs (n=6 blocks, segment_size=2, "
                                                       "x.requires_grad=False): the values of x"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_bad_input_fails_the_parts_it_spoils_with_a_message(implementation, parts, message):
    result = verdicts(CHECKPOINTING, implementation)
    if parts is not None:
        assert failed(result) == parts, result
    assert any(message in m for m in result.values() if m), result


def doubles_its_input_in_place(blocks, x, segment_size):
    with torch.no_grad():
        x.mul_(2)
    return checkpointed_saved_input(blocks, x, segment_size)


@pytest.mark.parametrize("exercise", checks.GRADING, ids=lambda e: e.name.partition(":")[0])
def test_code_that_modifies_its_input_in_place_leaves_the_probes_inputs_as_drawn(exercise):
    """The probe is sent one inputs object for all its parts: each call of the student's code gets a copy."""
    seed = exercises.default_seed(exercise)
    inputs = exercises.draw_inputs(exercise, seed)
    exercises.probe(exercise, [doubles_its_input_in_place], inputs)
    assert ev.encode(inputs) == ev.encode(exercises.draw_inputs(exercise, seed))


def test_an_input_modified_in_place_is_named_in_every_case():
    result = verdicts(CHECKPOINTING, doubles_its_input_in_place)
    assert "changed the probe's inputs (n=12 blocks, segment_size=4, x.requires_grad=True): the values of x" \
        in result[GRADIENTS]
    assert "changed the probe's inputs (n=6 blocks, segment_size=2, x.requires_grad=False): the values of x" \
        in result[NO_INPUT_GRAD]


def test_changed_parameters_fail_the_gradients_not_the_measurements_of_memory():
    result = verdicts(CHECKPOINTING, scales_the_parameters)
    assert {GRADIENTS, NO_INPUT_GRAD} <= failed(result) and MEMORY not in failed(result)
    assert "never change them in place" in result[GRADIENTS] and "requires_grad_" not in result[GRADIENTS]

