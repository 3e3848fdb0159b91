"""check_checkpointing accepts correct checkpointing written in several ways and rejects the usual mistakes."""
from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint_sequential

from labs_utils import checks
from labs_utils.checks.checkpointing import GRADING, check_checkpointing


def _run_blocks(blocks, h):
    for block in blocks:
        h = block(h)
    return h


def _segments(blocks, segment_size):
    blocks = list(blocks)
    return [blocks[start:start + segment_size] for start in range(0, len(blocks), segment_size)]


def _params(segment):
    return tuple(p for block in segment for p in block.parameters())


# --- correct implementations, written differently -------------------------------------------------
class SavedInputSegment(torch.autograd.Function):
    """The textbook version: ctx.save_for_backward, torch.autograd.grad in backward."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment = segment
        ctx.save_for_backward(x, *params)
        with torch.no_grad():
            return _run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = _run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def checkpointed_saved_input(blocks, x, segment_size):
    for segment in _segments(blocks, segment_size):
        x = SavedInputSegment.apply(segment, x, *_params(segment))
    return x


class CtxAttributeSegment(torch.autograd.Function):
    """Keeps the input on a ctx attribute and lets the inner backward accumulate parameter gradients."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.x, ctx.n_params = segment, x.detach(), len(params)
        with torch.no_grad():
            return _run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.x.requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.backward(_run_blocks(ctx.segment, x), grad_output)
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
        ctx.segments = _segments(blocks, segment_size)
        inputs = []
        with torch.no_grad():
            for segment in ctx.segments:
                inputs.append(x)
                x = _run_blocks(segment, x)
        ctx.save_for_backward(*inputs)
        ctx.n_params = len(params)
        return x

    @staticmethod
    def backward(ctx, grad):
        param_grads = []
        for segment, x in zip(reversed(ctx.segments), reversed(ctx.saved_tensors)):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                grad, *grads = torch.autograd.grad(_run_blocks(segment, x), (x, *_params(segment)), grad)
            param_grads = grads + param_grads
        return (None, None, grad, *param_grads)


def checkpointed_whole_network(blocks, x, segment_size):
    return WholeNetwork.apply(blocks, segment_size, x, *_params(blocks))


class InputGradOnlyWhenNeeded(SavedInputSegment):
    """Skips the gradient of a segment input that needs none (the first segment's, for a batch of data)."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = _run_blocks(ctx.segment, x)
        if not ctx.needs_input_grad[1]:
            return (None, None, *torch.autograd.grad(out, params, grad_output))
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def checkpointed_input_grad_when_needed(blocks, x, segment_size):
    for segment in _segments(blocks, segment_size):
        x = InputGradOnlyWhenNeeded.apply(segment, x, *_params(segment))
    return x


CORRECT = [checkpointed_saved_input, checkpointed_ctx_attribute, checkpointed_whole_network,
           checkpointed_input_grad_when_needed]


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
    for segment in _segments(blocks, segment_size):
        x = StoreEverything.apply(segment, x, *_params(segment))
    return x


def plain_backprop(blocks, x, segment_size):
    return _run_blocks(blocks, x)


def no_grad_without_function(blocks, x, segment_size):
    with torch.no_grad():
        return _run_blocks(blocks, x)


def torch_checkpoint(blocks, x, segment_size):
    n_segments = -(-len(blocks) // segment_size)
    return checkpoint_sequential(torch.nn.Sequential(*blocks), n_segments, x, use_reentrant=False)


def detached_segment_inputs(blocks, x, segment_size):
    for segment in _segments(blocks, segment_size):
        x = SavedInputSegment.apply(segment, x.detach(), *_params(segment))
    return x


def segments_one_too_long(blocks, x, segment_size):
    """Segments of segment_size + 1 blocks: right outputs, wrong segments."""
    for segment in _segments(blocks, segment_size + 1):
        x = SavedInputSegment.apply(segment, x, *_params(segment))
    return x


def overlapping_segments(blocks, x, segment_size):
    """Slices one block too far: the first block of each segment also ends the previous one."""
    blocks = list(blocks)
    for start in range(0, len(blocks), segment_size):
        segment = blocks[start:start + segment_size + 1]
        x = SavedInputSegment.apply(segment, x, *_params(segment))
    return x


def segments_off_by_one(blocks, x, segment_size):
    """Starts segments at 0, k-1, 2(k-1), ...: right outputs, wrong segments."""
    blocks = list(blocks)
    step = max(segment_size - 1, 1)
    for start in range(0, len(blocks), step):
        segment = blocks[start:start + step]
        x = SavedInputSegment.apply(segment, x, *_params(segment))
    return x


class RecomputeTwice(SavedInputSegment):
    @staticmethod
    def backward(ctx, grad_output):
        x, *_ = ctx.saved_tensors
        with torch.no_grad():
            _run_blocks(ctx.segment, x)  # a wasted replay, e.g. to "check" the output
        return SavedInputSegment.backward(ctx, grad_output)


def recomputes_twice(blocks, x, segment_size):
    for segment in _segments(blocks, segment_size):
        x = RecomputeTwice.apply(segment, x, *_params(segment))
    return x


def only_x_as_input(blocks, x, segment_size):
    """Like torch's reentrant checkpoint: no gradient at all when x does not require grad."""
    for segment in _segments(blocks, segment_size):
        x = CtxAttributeSegment.apply(segment, x)
    return x


class NoGradRecompute(SavedInputSegment):
    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        out = _run_blocks(ctx.segment, x.detach())
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def recompute_without_grad(blocks, x, segment_size):
    for segment in _segments(blocks, segment_size):
        x = NoGradRecompute.apply(segment, x, *_params(segment))
    return x


def not_implemented(blocks, x, segment_size):
    raise NotImplementedError()


@pytest.mark.parametrize("implementation", CORRECT, ids=lambda f: f.__name__)
def test_correct_implementations_pass(implementation, capsys):
    check_checkpointing(implementation)
    out = capsys.readouterr().out
    assert "\u2714 check_checkpointing passed" in out
    assert "3 activations kept after forward vs 12" in out


@pytest.mark.parametrize("implementation, message", [
    (stores_every_activation, "activations of the blocks are still alive"),
    (plain_backprop, "contains no torch.autograd.Function"),
    (no_grad_without_function, "does not require grad"),
    (torch_checkpoint, "contains no torch.autograd.Function"),
    (detached_segment_inputs, "got no gradient"),
    (segments_one_too_long, "were recomputed as"),
    (overlapping_segments, "Output"),
    (segments_off_by_one, "expected each segment once, the last first"),
    (recomputes_twice, "recomputed more than once"),
    (only_x_as_input, "Pass the parameters of each segment"),
    (recompute_without_grad, "Recompute it under torch.enable_grad"),
    (not_implemented, "not implemented yet"),
], ids=lambda v: getattr(v, "__name__", "message"))
def test_wrong_implementations_are_rejected(implementation, message):
    with pytest.raises(AssertionError, match=message):
        check_checkpointing(implementation)


def test_check_leaves_the_random_state_unchanged(capsys):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_checkpointing(checkpointed_saved_input)
    assert torch.equal(torch.get_rng_state(), before), "the check changed the student's random numbers"


def test_wrong_signature_is_rejected():
    with pytest.raises(AssertionError, match="no parameter"):
        check_checkpointing(lambda blocks, x: x)


def test_grading_table_names_the_exercise_and_its_check():
    (exercise,) = GRADING
    assert exercise.needs == ("checkpointed_forward",)
    assert exercise.check == "check_checkpointing(checkpointed_forward)"
    assert checks.check_checkpointing is check_checkpointing  # re-exported for the grader
