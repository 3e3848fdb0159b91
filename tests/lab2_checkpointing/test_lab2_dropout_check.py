"""check_dropout_checkpointing: dropout's gradients under recomputation equal plain backprop's, the caller's
random numbers are left as plain backprop leaves them, and the function still checkpoints (mutation tests;
non-attempts: test_lab2_non_attempts.py)."""
from __future__ import annotations

import pytest
import torch
from reference_checkpointing import (
    SavedInputSegment,
    apply_all,
    checkpointed_saved_input,
    function_without_replay,
    run_blocks,
    segment_params,
)

from labs_utils import checks, exercises
from labs_utils.lab2_checkpointing.checks import GRADING, check_dropout_checkpointing
from labs_utils.lab2_checkpointing.exercise_dropout import (
    DROPOUT,
    DROPOUT_GRADIENTS,
    RNG_LEFT_ALONE,
    STILL_CHECKPOINTING,
)

EXERCISE = DROPOUT
ALL_PARTS = {DROPOUT_GRADIENTS, RNG_LEFT_ALONE, STILL_CHECKPOINTING}


def verdicts(implementation, seed=None):
    seed = exercises.default_seed(EXERCISE) if seed is None else seed
    return exercises.grade_here(EXERCISE, [implementation], seed)


def failed(result):
    return {part for part, message in result.items() if message is not None}


# --- correct, written differently ----------------------------------------------------------------------
class ForkRngSegment(SavedInputSegment):
    """Saves the state in forward; replays inside fork_rng, so the caller's generator is untouched."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.rng_state = torch.get_rng_state()
        return SavedInputSegment.forward(ctx, segment, x, *params)

    @staticmethod
    def backward(ctx, grad_output):
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            return SavedInputSegment.backward(ctx, grad_output)


class SetAndResetSegment(ForkRngSegment):
    """Keeps the current state by hand and sets it back after the replay."""

    @staticmethod
    def backward(ctx, grad_output):
        current = torch.get_rng_state()
        torch.set_rng_state(ctx.rng_state)
        try:
            return SavedInputSegment.backward(ctx, grad_output)
        finally:
            torch.set_rng_state(current)


def fork_rng(blocks, x, segment_size):
    return apply_all(ForkRngSegment, blocks, x, segment_size)


def set_and_reset(blocks, x, segment_size):
    return apply_all(SetAndResetSegment, blocks, x, segment_size)


class StateSavedForBackward(torch.autograd.Function):
    """Keeps the random state (a tensor) with ctx.save_for_backward, next to the input and the parameters."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment = segment
        ctx.save_for_backward(torch.get_rng_state(), x, *params)
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        state, x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.random.fork_rng(devices=[]), torch.enable_grad():
            torch.set_rng_state(state)
            out = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def state_saved_for_backward(blocks, x, segment_size):
    return apply_all(StateSavedForBackward, blocks, x, segment_size)


def recursive(blocks, x, segment_size):
    """The first segment, then the rest by recursion."""
    blocks = list(blocks)
    if not blocks:
        return x
    segment = blocks[:segment_size]
    return recursive(blocks[segment_size:], ForkRngSegment.apply(segment, x, *segment_params(segment)), segment_size)


# --- wrong -----------------------------------------------------------------------------------------------
class SetWithoutReset(ForkRngSegment):
    @staticmethod
    def backward(ctx, grad_output):
        torch.set_rng_state(ctx.rng_state)
        return SavedInputSegment.backward(ctx, grad_output)


def set_without_reset(blocks, x, segment_size):
    return apply_all(SetWithoutReset, blocks, x, segment_size)


def one_state_for_all_segments(blocks, x, segment_size):
    """Saves the random state once, before the first segment, and replays every segment from it."""
    state = torch.get_rng_state()

    class SharedState(ForkRngSegment):
        @staticmethod
        def forward(ctx, segment, x, *params):
            ctx.rng_state = state
            return SavedInputSegment.forward(ctx, segment, x, *params)

    return apply_all(SharedState, blocks, x, segment_size)


class ForkRngRetainGraph(ForkRngSegment):
    """Restores the random state right, but keeps each replayed graph on ctx (retain_graph=True)."""

    @staticmethod
    def backward(ctx, grad_output):
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(ctx.rng_state)
            x, *params = ctx.saved_tensors
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                ctx.replayed = run_blocks(ctx.segment, x)
            return (None, *torch.autograd.grad(ctx.replayed, (x, *params), grad_output, retain_graph=True))


def fork_rng_retain_graph(blocks, x, segment_size):
    return apply_all(ForkRngRetainGraph, blocks, x, segment_size)


class ReseedSegment(SavedInputSegment):
    """Seeds the generator with a constant in forward and for the replay instead of saving its state."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        torch.manual_seed(0)
        return SavedInputSegment.forward(ctx, segment, x, *params)

    @staticmethod
    def backward(ctx, grad_output):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return SavedInputSegment.backward(ctx, grad_output)


def reseeds(blocks, x, segment_size):
    return apply_all(ReseedSegment, blocks, x, segment_size)


@pytest.mark.parametrize("implementation", [fork_rng, set_and_reset, state_saved_for_backward, recursive],
                         ids=lambda f: f.__name__)
def test_correct_implementations_pass(implementation, capsys):
    assert check_dropout_checkpointing(implementation) is True
    out = capsys.readouterr().out
    assert "all 3 part(s) passed (ungraded)" in out and "/4 points" not in out  # review 23: not shown as if graded


def test_skipping_the_optional_exercise_does_not_stop_run_all(capsys):
    """Review 23: the stub (NotImplementedError) is reported as skipped, without raising; an attempt still raises."""
    def todo(blocks, x, segment_size):
        raise NotImplementedError()
    assert check_dropout_checkpointing(todo) is False
    assert "skipped" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="ungraded") as raised:
        check_dropout_checkpointing(set_without_reset)
    assert "Failed:" in str(raised.value) and "/4 points" not in str(raised.value)


@pytest.mark.parametrize("seed", [0, 2**31 - 1])
def test_correct_implementation_passes_with_fresh_seeds(seed):
    assert failed(verdicts(fork_rng, seed)) == set()


@pytest.mark.parametrize("implementation, parts, message", [
    (checkpointed_saved_input, {DROPOUT_GRADIENTS, RNG_LEFT_ALONE}, "the random state the segment's forward"),
    (set_without_reset, {RNG_LEFT_ALONE}, "where it was when backward began"),
    (one_state_for_all_segments, {DROPOUT_GRADIENTS}, "other dropout masks"),
    (reseeds, {DROPOUT_GRADIENTS, RNG_LEFT_ALONE}, "do not draw random numbers yourself"),
    (fork_rng_retain_graph, {STILL_CHECKPOINTING}, "the segments replayed before were not freed"),
    (function_without_replay, ALL_PARTS, "its backward recomputed none of them"),
], ids=lambda v: getattr(v, "__name__", ""))
def test_wrong_implementations_fail_the_parts_they_get_wrong(implementation, parts, message):
    result = verdicts(implementation)
    assert failed(result) == parts, {p: m for p, m in result.items() if m}
    assert any(message in result[part] for part in parts), result


@pytest.mark.parametrize("implementation", [set_without_reset, one_state_for_all_segments, fork_rng_retain_graph,
                                            checkpointed_saved_input], ids=lambda f: f.__name__)
def test_partly_right_implementations_earn_part_of_the_points(implementation):
    assert 0 < exercises.points(EXERCISE, verdicts(implementation)) < EXERCISE.points


def test_check_leaves_the_random_state_unchanged(capsys):
    torch.manual_seed(7)
    before = torch.get_rng_state()
    check_dropout_checkpointing(fork_rng)
    assert torch.equal(torch.get_rng_state(), before)


def test_malformed_evidence_fails_every_part():
    seed = exercises.default_seed(EXERCISE)
    for found in ({}, {"cases": [], "still": {}}, {"cases": [{}, {}], "still": 1}, None):
        assert failed(exercises.judge(EXERCISE, found, seed)) == ALL_PARTS


def test_the_facade_exports_the_check():
    assert checks.check_dropout_checkpointing is check_dropout_checkpointing


def test_the_exercise_is_optional_so_not_graded():
    """Exercise 2 is ungraded: the grader and summary() run only GRADING, which leaves it out (13 points)."""
    assert EXERCISE.name == "checkpointed_forward_rng: dropout replayed exactly"
    assert EXERCISE not in GRADING
    assert [e.name for e in GRADING] == ["checkpointed_forward: checkpointing from scratch",
                                         "checkpointed_forward_inplace: an overwritten checkpoint"]
    assert sum(e.points for e in GRADING) == 13
