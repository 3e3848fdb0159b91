"""check_inplace_checkpointing: a segment that modifies its own input in place (its checkpoint) must give plain
backprop's gradients or raise before the replay; wrong fixes a classmate would write are rejected with a message
that names the mistake, correct fixes written differently pass, non-attempts earn nothing."""
from __future__ import annotations

import pytest
import torch
from reference_checkpointing import (
    SavedInputSegment,
    apply_all,
    checkpointed_saved_input,
    run_blocks,
)

from labs_utils import checks, exercises
from labs_utils.lab2_checkpointing.checks import GRADING, check_inplace_checkpointing
from labs_utils.lab2_checkpointing.exercise_inplace import IN_PLACE_DATA, IN_PLACE_EVERY

EXERCISE = exercises.exercise_named(GRADING, "checkpointed_forward_inplace: an overwritten checkpoint")
ALL_PARTS = {IN_PLACE_DATA, IN_PLACE_EVERY}


def verdicts(implementation, seed=None):
    seed = exercises.default_seed(EXERCISE) if seed is None else seed
    return exercises.grade_here(EXERCISE, [implementation], seed)


def failed(result):
    return {part for part, message in result.items() if message is not None}


def _backward_from(ctx, x, params, grad_output, copy_for_replay=True):
    """Replay from x (made a leaf that requires grad), through a copy the segment may modify in place."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        out = run_blocks(ctx.segment, x.clone() if copy_for_replay else x)
    return (None, *torch.autograd.grad(out, (x, *params), grad_output))


# --- correct, written differently ----------------------------------------------------------------------
def _clone_segment(copy):
    class CloneFirst(torch.autograd.Function):
        @staticmethod
        def forward(ctx, segment, x, *params):
            ctx.segment = segment
            ctx.save_for_backward(copy(x), *params)
            with torch.no_grad():
                return run_blocks(segment, x)

        @staticmethod
        def backward(ctx, grad_output):
            x, *params = ctx.saved_tensors
            return _backward_from(ctx, x, params, grad_output)
    return CloneFirst


class RunOnCopy(torch.autograd.Function):
    """Never lets the segment touch the checkpoint: forward and replay both run on a copy."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment = segment
        ctx.save_for_backward(x, *params)
        with torch.no_grad():
            return run_blocks(segment, x.clone())

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        return _backward_from(ctx, x, params, grad_output)


class VersionCheckInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.version = segment, x._version
        ctx.save_for_backward(x, *params)
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        if x._version != ctx.version:
            raise RuntimeError("the checkpoint was modified in place by its own segment")
        return _backward_from(ctx, x, params, grad_output, copy_for_replay=False)


class VersionCheckInForward(VersionCheckInBackward):
    @staticmethod
    def forward(ctx, segment, x, *params):
        version = x._version
        out = VersionCheckInBackward.forward(ctx, segment, x, *params)
        if x._version != version:
            raise RuntimeError("this segment modifies its input in place: it cannot be checkpointed")
        return out


CORRECT = {
    "x.detach().clone()": _clone_segment(lambda x: x.detach().clone()),
    "x.clone().detach()": _clone_segment(lambda x: x.clone().detach()),
    "x.clone()": _clone_segment(lambda x: x.clone()),
    "run on a copy": RunOnCopy,
    "version check in backward": VersionCheckInBackward,
    "version check in forward": VersionCheckInForward,
}


@pytest.mark.parametrize("name", list(CORRECT))
def test_correct_fixes_written_differently_pass(name):
    assert failed(verdicts(lambda blocks, x, segment_size: apply_all(CORRECT[name], blocks, x, segment_size))) == set()


def test_check_function_passes_and_other_seeds_agree():
    check_inplace_checkpointing(
        lambda blocks, x, segment_size: apply_all(CORRECT["x.detach().clone()"], blocks, x, segment_size))
    assert "check_inplace_checkpointing" in checks.__all__
    fn = lambda blocks, x, segment_size: apply_all(VersionCheckInBackward, blocks, x, segment_size)  # noqa: E731
    assert failed(verdicts(fn, seed=12345)) == set()


# --- wrong fixes a classmate would write -----------------------------------------------------------------
class SkipInputGrad(SavedInputSegment):
    """The unfixed function with the ctx.needs_input_grad variant the lab allows: silent on a data batch."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            return _backward_from(ctx, x, params, grad_output, copy_for_replay=False)
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x.detach())
        return (None, None, *torch.autograd.grad(out, params, grad_output))


def _saving(save, version_after=False):
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, segment, x, *params):
            ctx.segment = segment
            saved = save(x)
            with torch.no_grad():
                out = run_blocks(segment, x)
            saved = saved if saved is not None else x.detach().clone()  # None: a copy made after the segment ran
            ctx.version = saved._version if version_after else None
            ctx.save_for_backward(saved, *params)
            return out

        @staticmethod
        def backward(ctx, grad_output):
            x, *params = ctx.saved_tensors
            if ctx.version is not None and x._version != ctx.version:
                raise RuntimeError("checkpoint modified")
            if not ctx.needs_input_grad[1]:  # the needs_input_grad variant: the replay runs silently
                with torch.enable_grad():
                    out = run_blocks(ctx.segment, x.detach())
                return (None, None, *torch.autograd.grad(out, params, grad_output))
            return _backward_from(ctx, x, params, grad_output)
    return Wrong


WRONG = {
    "no clone": _saving(lambda x: x),
    "clone after the in-place op": _saving(lambda x: None),
    "detach without clone": _saving(lambda x: x.detach()),
    "version check that never raises": _saving(lambda x: x, version_after=True),
    "unfixed, needs_input_grad variant": SkipInputGrad,
}


@pytest.mark.parametrize("name", list(WRONG))
def test_wrong_fixes_fail_both_parts_naming_the_overwritten_checkpoint(name):
    result = verdicts(lambda blocks, x, segment_size: apply_all(WRONG[name], blocks, x, segment_size))
    assert failed(result) == ALL_PARTS
    assert "overwritten" in result[IN_PLACE_DATA]
    assert "differ from plain backprop" in result[IN_PLACE_DATA]  # silent wrong gradients, not a crash


def test_unfixed_function_raises_only_during_the_replay_and_earns_nothing():
    result = verdicts(checkpointed_saved_input)  # exercise 1's textbook solution: autograd's leaf rule fires
    assert failed(result) == ALL_PARTS
    assert "while replaying a segment whose checkpoint had been overwritten" in result[IN_PLACE_DATA]
    assert "leaf" in result[IN_PLACE_DATA]


def test_clone_without_a_replay_copy_fails_on_the_leaf_rule():
    class CloneButReplayOnLeaf(_clone_segment(lambda x: x.detach().clone())):
        @staticmethod
        def backward(ctx, grad_output):
            x, *params = ctx.saved_tensors
            return _backward_from(ctx, x, params, grad_output, copy_for_replay=False)
    result = verdicts(lambda blocks, x, segment_size: apply_all(CloneButReplayOnLeaf, blocks, x, segment_size))
    assert failed(result) == ALL_PARTS
    assert "a leaf that requires grad" in result[IN_PLACE_EVERY]
    assert "clone" not in result[IN_PLACE_EVERY]  # the hint names the mistake, not the recipe


def test_raising_for_every_in_place_operation_is_refused():
    class RaiseOnAnyChange(VersionCheckInBackward):
        @staticmethod
        def backward(ctx, grad_output):
            raise RuntimeError("in-place operation detected")
    result = verdicts(lambda blocks, x, segment_size: apply_all(RaiseOnAnyChange, blocks, x, segment_size))
    assert failed(result) == ALL_PARTS
    assert "harmless" in result[IN_PLACE_DATA]


def test_a_version_guard_against_zero_is_refused():
    """Review 23: a guard that raises whenever x._version > 0 passed, because every harmless input had version 0;
    the harmless inputs are now modified in place before the call, which the exercise says must be accepted."""
    class VersionAboveZero(VersionCheckInBackward):
        @staticmethod
        def backward(ctx, grad_output):
            x, *params = ctx.saved_tensors
            if x._version > 0:
                raise RuntimeError("the checkpoint was modified in place")
            return _backward_from(ctx, x, params, grad_output)
    result = verdicts(lambda blocks, x, segment_size: apply_all(VersionAboveZero, blocks, x, segment_size))
    assert exercises.points(EXERCISE, result) == 0
    assert "harmless" in result[IN_PLACE_DATA]
    assert "compare with the version saved in forward" in result[IN_PLACE_DATA]


def test_refusing_every_batch_of_data_earns_nothing():
    """Review 18: exercise 1's function that raises for any input that does not require grad "caught" the data
    case in forward and earned 2 of 3 points; the gate now feeds the harmless network a batch of data too."""
    def refuse_data(blocks, x, segment_size):
        if not x.requires_grad:
            raise ValueError("I do not checkpoint batches of data")
        return checkpointed_saved_input(blocks, x, segment_size)

    result = verdicts(refuse_data)
    assert exercises.points(EXERCISE, result) == 0
    assert "harmless" in result[IN_PLACE_DATA] and "x.requires_grad=False" in result[IN_PLACE_DATA]
    assert "I do not checkpoint batches of data" in result[IN_PLACE_DATA]


# --- non-attempts earn 0 -----------------------------------------------------------------------------
@pytest.mark.parametrize("fn, message", [
    (lambda blocks, x, segment_size: blocks(x), "does not checkpoint"),  # plain forward: exact, but stores everything
    (lambda blocks, x, segment_size: x, "differ from plain backprop"),
    (lambda blocks, x, segment_size: torch.zeros(8, 16, dtype=torch.float64), "differ from plain backprop"),
])
def test_non_attempts_earn_nothing(fn, message):
    result = verdicts(fn)
    assert exercises.points(EXERCISE, result) == 0
    assert message in result[IN_PLACE_DATA]


def test_not_implemented_fails_every_part_with_the_usual_message():
    def todo(blocks, x, segment_size):
        raise NotImplementedError()
    result = verdicts(todo)
    assert failed(result) == ALL_PARTS
    assert "not implemented yet" in result[IN_PLACE_DATA]


def test_malformed_evidence_fails_parts_without_crashing():
    for evidence in (None, [], {"harmless": 3}, {"harmless": {}, "data": "x", "every": None}):
        result = exercises.judge(EXERCISE, evidence, seed=0)
        assert failed(result) == ALL_PARTS
