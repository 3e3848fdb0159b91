"""check_checkpointing accepts correct checkpointing written in several ways and rejects the usual mistakes."""
from __future__ import annotations

import pytest
import torch
from reference_checkpointing import SavedInputSegment, checkpointed_saved_input, run_blocks, segment_params, segments
from torch.utils.checkpoint import checkpoint_sequential

from labs_utils import checks, exercises
from labs_utils.lab2_checkpointing.checks import GRADING, check_checkpointing
from labs_utils.lab2_checkpointing.exercise_checkpointing import (
    AUTOGRAD_GRAD,
    GRADIENTS,
    MEMORY,
    NO_INPUT_GRAD,
    RECOMPUTATION,
)

EXERCISE = exercises.exercise_named(GRADING, "checkpointed_forward: checkpointing from scratch")
ALL_PARTS = {GRADIENTS, MEMORY, RECOMPUTATION, NO_INPUT_GRAD, AUTOGRAD_GRAD}


def verdicts(implementation, seed=None):
    """What the grader would decide: probe, the JSON round trip, judge."""

    seed = exercises.default_seed(EXERCISE) if seed is None else seed
    return exercises.grade_here(EXERCISE, [implementation], seed)


def failed(result):
    return {part for part, message in result.items() if message is not None}


class CtxAttributeSegment(torch.autograd.Function):
    """Reentrant style: keeps the input on a ctx attribute, returns None for every parameter and lets the
    inner backward accumulate the parameter gradients into .grad (loss.backward() works, torch.autograd.grad not)."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.x, ctx.n_params = segment, x.detach(), len(params)
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.x.requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.backward(run_blocks(ctx.segment, x), grad_output)
        return (None, x.grad, *([None] * ctx.n_params))


def checkpointed_ctx_attribute(blocks, x, segment_size):
    start = 0
    while start < len(blocks):
        segment = blocks[start:start + segment_size]  # slicing an nn.Sequential gives an nn.Sequential
        x = CtxAttributeSegment.apply(segment, x, *segment.parameters())
        start += segment_size
    return x


class WholeNetwork(torch.autograd.Function):
    """One Function for all segments: keeps every segment input, backpropagates them last to first."""

    @staticmethod
    def forward(ctx, blocks, segment_size, x, *params):
        ctx.segments = segments(blocks, segment_size)
        inputs = []
        with torch.no_grad():
            for segment in ctx.segments:
                inputs.append(x)
                x = run_blocks(segment, x)
        ctx.save_for_backward(*inputs)
        ctx.n_params = len(params)
        return x

    @staticmethod
    def backward(ctx, grad):
        param_grads = []
        for segment, x in zip(reversed(ctx.segments), reversed(ctx.saved_tensors)):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                grad, *grads = torch.autograd.grad(run_blocks(segment, x), (x, *segment_params(segment)), grad)
            param_grads = grads + param_grads
        return (None, None, grad, *param_grads)


def checkpointed_whole_network(blocks, x, segment_size):
    return WholeNetwork.apply(blocks, segment_size, x, *segment_params(blocks))


class InputGradOnlyWhenNeeded(SavedInputSegment):
    """Skips the gradient of a segment input that needs none (the first segment's, for a batch of data)."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x)
        if not ctx.needs_input_grad[1]:
            return (None, None, *torch.autograd.grad(out, params, grad_output))
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def checkpointed_input_grad_when_needed(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = InputGradOnlyWhenNeeded.apply(segment, x, *segment_params(segment))
    return x


CORRECT = [checkpointed_saved_input, checkpointed_whole_network, checkpointed_input_grad_when_needed]


# --- wrong implementations --------------------------------------------------------------------------
class StoreEverything(torch.autograd.Function):
    """Keeps every intermediate activation on ctx and backpropagates block by block."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.inputs = segment, []
        with torch.no_grad():
            for block in segment:
                ctx.inputs.append(x)
                x = block(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        param_grads = []
        for block, x in zip(reversed(ctx.segment), reversed(ctx.inputs)):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                grad, *grads = torch.autograd.grad(block(x), (x, *block.parameters()), grad)
            param_grads = grads + param_grads
        return (None, grad, *param_grads)


def stores_every_activation(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = StoreEverything.apply(segment, x, *segment_params(segment))
    return x


def plain_backprop(blocks, x, segment_size):
    return run_blocks(blocks, x)


def no_grad_without_function(blocks, x, segment_size):
    with torch.no_grad():
        return run_blocks(blocks, x)


def torch_checkpoint(blocks, x, segment_size):
    n_segments = -(-len(blocks) // segment_size)
    return checkpoint_sequential(torch.nn.Sequential(*blocks), n_segments, x, use_reentrant=False)


def detached_segment_inputs(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = SavedInputSegment.apply(segment, x.detach(), *segment_params(segment))
    return x


def segments_one_too_long(blocks, x, segment_size):
    """Segments of segment_size + 1 blocks: right outputs, wrong segments."""
    for segment in segments(blocks, segment_size + 1):
        x = SavedInputSegment.apply(segment, x, *segment_params(segment))
    return x


def overlapping_segments(blocks, x, segment_size):
    """Slices one block too far: the first block of each segment also ends the previous one."""
    blocks = list(blocks)
    for start in range(0, len(blocks), segment_size):
        segment = blocks[start:start + segment_size + 1]
        x = SavedInputSegment.apply(segment, x, *segment_params(segment))
    return x


def segments_off_by_one(blocks, x, segment_size):
    """Starts segments at 0, k-1, 2(k-1), ...: right outputs, wrong segments."""
    blocks = list(blocks)
    step = max(segment_size - 1, 1)
    for start in range(0, len(blocks), step):
        segment = blocks[start:start + step]
        x = SavedInputSegment.apply(segment, x, *segment_params(segment))
    return x


class RecomputeTwice(SavedInputSegment):
    @staticmethod
    def backward(ctx, grad_output):
        x, *_ = ctx.saved_tensors
        with torch.no_grad():
            run_blocks(ctx.segment, x)  # a wasted replay, e.g. to "check" the output
        return SavedInputSegment.backward(ctx, grad_output)


def recomputes_twice(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = RecomputeTwice.apply(segment, x, *segment_params(segment))
    return x


def only_x_as_input(blocks, x, segment_size):
    """Like torch's reentrant checkpoint: no gradient at all when x does not require grad."""
    for segment in segments(blocks, segment_size):
        x = CtxAttributeSegment.apply(segment, x)
    return x


class NoGradRecompute(SavedInputSegment):
    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        out = run_blocks(ctx.segment, x.detach())
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def recompute_without_grad(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = NoGradRecompute.apply(segment, x, *segment_params(segment))
    return x


def not_implemented(blocks, x, segment_size):
    raise NotImplementedError()


def no_checkpointing_for_non_divisors(blocks, x, segment_size):
    """Checkpoints only when segment_size divides the number of blocks; otherwise plain backprop."""
    if len(blocks) % segment_size:
        return run_blocks(blocks, x)
    return checkpointed_saved_input(blocks, x, segment_size)


def floor_many_uneven_segments(blocks, x, segment_size):
    """n // segment_size segments, the blocks shared out among them (segments of 6 for 12 blocks and size 5)."""
    n_segments = max(len(blocks) // segment_size, 1)
    size = -(-len(blocks) // n_segments)
    return checkpointed_saved_input(blocks, x, size)


def plain_when_segment_size_is_one(blocks, x, segment_size):
    """Treats segment_size=1 as "no checkpointing"."""
    if segment_size == 1:
        return run_blocks(blocks, x)
    return checkpointed_saved_input(blocks, x, segment_size)


def drops_blocks_beyond_last_full_segment(blocks, x, segment_size):
    """Loops over whole segments only: the blocks after the last full segment (all, if size > n) are skipped."""
    blocks = list(blocks)
    for start in range(0, len(blocks) - segment_size + 1, segment_size):
        segment = blocks[start:start + segment_size]
        x = SavedInputSegment.apply(segment, x, *segment_params(segment))
    return x


# --- the correct ones get every point ------------------------------------------------------------------
@pytest.mark.parametrize("implementation", CORRECT, ids=lambda f: f.__name__)
def test_correct_implementations_pass(implementation, capsys):
    check_checkpointing(implementation)
    out = capsys.readouterr().out
    assert "\u2714 checkpointed_forward: checkpointing from scratch: all 5 part(s) passed (10/10 points)" in out


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_implementation_passes_with_the_graders_fresh_seeds(seed):
    assert failed(verdicts(checkpointed_saved_input, seed)) == set()


# --- wrong ones: the parts they fail, the message naming the mistake -------------------------------------
WRONG = [
    # implementation, the parts it fails, words of the message of one of them
    (stores_every_activation, {MEMORY, RECOMPUTATION}, "activations are still alive"),
    (plain_backprop, {MEMORY, RECOMPUTATION}, "contains no torch.autograd.Function"),
    (no_grad_without_function, ALL_PARTS, "does not require grad"),
    (torch_checkpoint, ALL_PARTS, "Write the checkpointing yourself"),
    (detached_segment_inputs, ALL_PARTS - {MEMORY}, "gradient stops at a segment boundary"),
    (segments_one_too_long, {RECOMPUTATION}, "were recomputed as"),
    (overlapping_segments, ALL_PARTS - {MEMORY}, "output"),
    (segments_off_by_one, {MEMORY, RECOMPUTATION}, "expected each segment once, the last first"),
    (recomputes_twice, {RECOMPUTATION}, "recomputed more than once"),
    (only_x_as_input, {NO_INPUT_GRAD, AUTOGRAD_GRAD}, "Pass the parameters of each segment"),
    (recompute_without_grad, ALL_PARTS - {MEMORY}, "Recompute it under torch.enable_grad"),
    (no_checkpointing_for_non_divisors, {MEMORY, RECOMPUTATION}, "segment_size=5"),
    (floor_many_uneven_segments, {RECOMPUTATION}, "2 segment(s) of 6, 6 blocks"),
    (plain_when_segment_size_is_one, {MEMORY, RECOMPUTATION}, "segment_size=1"),
    (drops_blocks_beyond_last_full_segment, {GRADIENTS, MEMORY, RECOMPUTATION}, "output"),
    (checkpointed_ctx_attribute, {AUTOGRAD_GRAD}, "returned None for 24 of 24 parameters"),
]


@pytest.mark.parametrize("implementation, parts, message", WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_wrong_implementations_fail_the_parts_they_get_wrong(implementation, parts, message):
    result = verdicts(implementation)
    assert failed(result) == parts, {p: m for p, m in result.items() if m}
    assert any(message.lower() in result[part].lower() for part in parts), result


@pytest.mark.parametrize("implementation", [stores_every_activation, recomputes_twice, checkpointed_ctx_attribute,
                                            no_checkpointing_for_non_divisors, floor_many_uneven_segments],
                         ids=lambda f: f.__name__)
def test_right_gradients_with_a_flaw_earn_part_of_the_points(implementation):
    earned = exercises.points(EXERCISE, verdicts(implementation))
    assert 0 < earned < EXERCISE.points == 10


@pytest.mark.parametrize("implementation, message", [
    (no_checkpointing_for_non_divisors, "also one that does not divide"),
    (floor_many_uneven_segments, "were recomputed as"),
    (stores_every_activation, "activations are still alive"),
    (only_x_as_input, "Pass the parameters of each segment"),
    (not_implemented, "not implemented yet"),
], ids=lambda v: getattr(v, "__name__", "message"))
def test_the_notebook_check_raises_with_the_message(implementation, message):
    with pytest.raises(AssertionError, match=message):
        check_checkpointing(implementation)


def test_the_missing_gradient_hint_does_not_blame_detaching_when_parameters_are_not_passed():
    message = verdicts(only_x_as_input)[NO_INPUT_GRAD]
    assert "detach" not in message.split("Hint:")[1]


def test_malformed_evidence_fails_every_part_without_crashing():
    seed = exercises.default_seed(EXERCISE)
    for evidence in ({}, {"cases": "many"}, {"cases": [{}] * 6, "autograd_grad": 3}, None, [1, 2]):
        assert failed(exercises.judge(EXERCISE, evidence, seed)) == ALL_PARTS


def test_forged_evidence_from_another_seed_fails():
    other = exercises.probe(EXERCISE, [checkpointed_saved_input], seed=99)
    seed = exercises.default_seed(EXERCISE)
    assert GRADIENTS in failed(exercises.judge(EXERCISE, other, seed))


def test_check_leaves_the_random_state_unchanged(capsys):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_checkpointing(checkpointed_saved_input)
    assert torch.equal(torch.get_rng_state(), before), "the check changed the student's random numbers"


def test_wrong_signature_is_rejected():
    with pytest.raises(AssertionError, match="no parameter"):
        check_checkpointing(lambda blocks, x: x)


def test_grading_table_names_the_exercise_its_parts_and_ten_points():
    assert EXERCISE.needs == ("checkpointed_forward",)
    assert EXERCISE.points == 10
    assert {part.name for part in EXERCISE.parts} == ALL_PARTS
    assert EXERCISE.forbidden == ("torch.utils.checkpoint",)
    assert checks.check_checkpointing is check_checkpointing  # re-exported for the notebooks
