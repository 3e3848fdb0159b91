"""check_checkpointing accepts correct checkpointing written in several ways and rejects the usual mistakes, each
with a message naming it (mutation tests). Non-attempts and bad input: test_lab2_non_attempts.py."""
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
    segments,
)

from labs_utils import checks, exercises
from labs_utils.lab2_checkpointing.checks import GRADING, check_checkpointing
from labs_utils.lab2_checkpointing.exercise_checkpointing import (
    AUTOGRAD_GRAD,
    GRADIENTS,
    MEMORY,
    NO_INPUT_GRAD,
    PEAK,
    RECOMPUTATION,
)

EXERCISE = exercises.exercise_named(GRADING, "checkpointed_forward: checkpointing from scratch")
ALL_PARTS = {GRADIENTS, MEMORY, PEAK, RECOMPUTATION, NO_INPUT_GRAD, AUTOGRAD_GRAD}


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


class InputOnCtxAttribute(torch.autograd.Function):
    """Keeps the (detached) input and the parameters on ctx attributes instead of ctx.save_for_backward."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.x, ctx.params = segment, x.detach(), params
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x = ctx.x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *ctx.params), grad_output))


def input_on_ctx_attribute(blocks, x, segment_size):
    return apply_all(InputOnCtxAttribute, blocks, x, segment_size)


def recursive(blocks, x, segment_size):
    """One segment, then the rest by recursion instead of a loop."""
    blocks = list(blocks)
    if not blocks:
        return x
    segment = blocks[:segment_size]
    return recursive(blocks[segment_size:], SavedInputSegment.apply(segment, x, *segment_params(segment)),
                     segment_size)


class BackwardAndRestore(SavedInputSegment):
    """torch.autograd.backward inside backward: reads the parameters' fresh .grad, then puts the old ones back."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        before = [p.grad for p in params]
        for p in params:
            p.grad = None
        with torch.enable_grad():
            torch.autograd.backward(run_blocks(ctx.segment, x), grad_output)
        grads = [p.grad for p in params]
        for p, grad in zip(params, before):
            p.grad = grad
        return (None, x.grad, *grads)


def autograd_backward_inside(blocks, x, segment_size):
    return apply_all(BackwardAndRestore, blocks, x, segment_size)


class SetupContextSegment(torch.autograd.Function):
    """The newer style: forward without ctx, setup_context saves what backward needs."""

    @staticmethod
    def forward(segment, x, *params):
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        segment, x, *params = inputs
        ctx.segment = segment
        ctx.save_for_backward(x, *params)

    @staticmethod
    def backward(ctx, grad_output):
        return SavedInputSegment.backward(ctx, grad_output)


def setup_context_style(blocks, x, segment_size):
    return apply_all(SetupContextSegment, blocks, x, segment_size)


class NoGradDecorator(SavedInputSegment):
    @staticmethod
    @torch.no_grad()
    def forward(ctx, segment, x, *params):
        ctx.segment = segment
        ctx.save_for_backward(x, *params)
        return run_blocks(segment, x)


def no_grad_decorator(blocks, x, segment_size):
    return apply_all(NoGradDecorator, blocks, x, segment_size)


def sequential_segments(blocks, x, segment_size):
    """The solution's loop: nn.Sequential segments, their .parameters()."""
    for start in range(0, len(blocks), segment_size):
        segment = torch.nn.Sequential(*blocks[start:start + segment_size])
        x = SavedInputSegment.apply(segment, x, *segment.parameters())
    return x


CORRECT = [checkpointed_saved_input, checkpointed_whole_network, checkpointed_input_grad_when_needed,
           input_on_ctx_attribute, recursive, autograd_backward_inside, setup_context_style, no_grad_decorator,
           sequential_segments]


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


class RetainGraph(SavedInputSegment):
    """Keeps the replayed graph on ctx with retain_graph=True: peak 19 activations during backward, plain's 16."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            ctx.replayed = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(ctx.replayed, (x, *params), grad_output, retain_graph=True))


def retain_graph_on_ctx(blocks, x, segment_size):
    return apply_all(RetainGraph, blocks, x, segment_size)


REPLAYS = []


class KeepReplays(SavedInputSegment):
    """Keeps every replayed activation in a list (to look at them later): no segment is ever freed."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            outputs = [x]
            for block in ctx.segment:
                outputs.append(block(outputs[-1]))
        REPLAYS.append(outputs)
        return (None, *torch.autograd.grad(outputs[-1], (x, *params), grad_output))


def segments_not_freed(blocks, x, segment_size):
    return apply_all(KeepReplays, blocks, x, segment_size)


class NoneForX(SavedInputSegment):
    """Returns None for the segment input: autograd hands the segments before it zeros."""

    @staticmethod
    def backward(ctx, grad_output):
        _, _, *param_grads = SavedInputSegment.backward(ctx, grad_output)
        return (None, None, *param_grads)


def none_for_the_input(blocks, x, segment_size):
    return apply_all(NoneForX, blocks, x, segment_size)


def no_grad_around_apply(blocks, x, segment_size):
    with torch.no_grad():
        return checkpointed_saved_input(blocks, x, segment_size)


class RequiresGradOnTheCheckpoint(SavedInputSegment):
    """Makes the saved input itself require grad (no detach): changes the caller's batch of data."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x.requires_grad_(True)
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def checkpoint_not_detached(blocks, x, segment_size):
    return apply_all(RequiresGradOnTheCheckpoint, blocks, x, segment_size)


class ReplayFromTheCheckpoint(SavedInputSegment):
    """Neither detaches the saved input nor makes it require grad: fails for a batch of data."""

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))


def replay_from_the_checkpoint_itself(blocks, x, segment_size):
    return apply_all(ReplayFromTheCheckpoint, blocks, x, segment_size)


class NestedReplay(CtxAttributeSegment):
    """Reentrant style without detach: backward() through the replay runs the segments before it, nested."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment, ctx.x, ctx.n_params = segment, x, len(params)
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        with torch.enable_grad():
            torch.autograd.backward(run_blocks(ctx.segment, ctx.x), grad_output)
        return (None, ctx.x.grad if ctx.x.is_leaf else None, *([None] * ctx.n_params))


def checkpoint_not_detached_nested(blocks, x, segment_size):
    return apply_all(NestedReplay, blocks, x, segment_size)


class FirstToLast(WholeNetwork):
    """One Function for all segments whose backward forgot reversed(): replays them first to last."""

    @staticmethod
    def backward(ctx, grad):
        param_grads = []
        for segment, x in zip(ctx.segments, ctx.saved_tensors):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                grad, *grads = torch.autograd.grad(run_blocks(segment, x), (x, *segment_params(segment)), grad)
            param_grads = param_grads + grads
        return (None, None, grad, *param_grads)


def wrong_segment_order(blocks, x, segment_size):
    return FirstToLast.apply(blocks, segment_size, x, *segment_params(blocks))


def no_grad_without_function(blocks, x, segment_size):
    with torch.no_grad():
        return run_blocks(blocks, x)


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
    assert "\u2714 checkpointed_forward: checkpointing from scratch: all 6 part(s) passed (10/10 points)" in out


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_implementation_passes_with_the_graders_fresh_seeds(seed):
    assert failed(verdicts(checkpointed_saved_input, seed)) == set()


# --- wrong ones: the parts they fail, the message naming the mistake -------------------------------------
WRONG = [
    # implementation, the parts it fails, words of the message of one of them
    (stores_every_activation, {MEMORY, RECOMPUTATION}, "activations are still alive"),
    (retain_graph_on_ctx, {PEAK}, "the segments replayed before were not freed"),
    (segments_not_freed, {PEAK}, "the segments replayed before were not freed"),
    (no_grad_without_function, ALL_PARTS, "ran outside any torch.autograd.Function of yours"),
    (function_without_replay, ALL_PARTS, "its backward recomputed none of them"),
    (detached_segment_inputs, ALL_PARTS - {MEMORY, PEAK}, "gradient stops at a segment boundary"),
    (none_for_the_input, {GRADIENTS, NO_INPUT_GRAD, AUTOGRAD_GRAD}, "returns None (or zeros) for the segment input"),
    (no_grad_around_apply, ALL_PARTS, "apply() was called with grad disabled"),
    (checkpoint_not_detached, {NO_INPUT_GRAD}, "x.requires_grad (it was False, it is now True)"),
    (replay_from_the_checkpoint_itself, {NO_INPUT_GRAD}, "the saved input of the first segment is a batch of data"),
    (checkpoint_not_detached_nested, ALL_PARTS - {MEMORY}, "replayed inside the backward of another segment"),
    (wrong_segment_order, ALL_PARTS - {MEMORY, PEAK}, "replayed first to last"),
    (segments_one_too_long, {RECOMPUTATION}, "were recomputed as"),
    (overlapping_segments, ALL_PARTS - {MEMORY, PEAK}, "output"),
    (segments_off_by_one, {MEMORY, RECOMPUTATION}, "expected each segment once, the last first"),
    (recomputes_twice, {RECOMPUTATION}, "recomputed more than once"),
    (only_x_as_input, {PEAK, NO_INPUT_GRAD, AUTOGRAD_GRAD}, "none of its tensor inputs requires grad"),
    (recompute_without_grad, ALL_PARTS - {MEMORY}, "The replay must run under torch.enable_grad()"),
    (no_checkpointing_for_non_divisors, ALL_PARTS - {NO_INPUT_GRAD, AUTOGRAD_GRAD}, "segment_size=5"),
    (floor_many_uneven_segments, {RECOMPUTATION}, "2 segment(s) of 6, 6 blocks"),
    (plain_when_segment_size_is_one, ALL_PARTS - {NO_INPUT_GRAD, AUTOGRAD_GRAD}, "segment_size=1"),
    (drops_blocks_beyond_last_full_segment, ALL_PARTS - {NO_INPUT_GRAD, AUTOGRAD_GRAD}, "output"),
    (checkpointed_ctx_attribute, {PEAK, AUTOGRAD_GRAD}, "returned None for 24 of 24 parameters"),
]


@pytest.mark.parametrize("implementation, parts, message", WRONG, ids=lambda v: getattr(v, "__name__", ""))
def test_wrong_implementations_fail_the_parts_they_get_wrong(implementation, parts, message):
    result = verdicts(implementation)
    assert failed(result) == parts, {p: m for p, m in result.items() if m}
    assert any(message.lower() in result[part].lower() for part in parts), result


@pytest.mark.parametrize("implementation", [stores_every_activation, retain_graph_on_ctx, recomputes_twice,
                                            checkpointed_ctx_attribute, no_checkpointing_for_non_divisors,
                                            floor_many_uneven_segments, checkpoint_not_detached],
                         ids=lambda f: f.__name__)
def test_right_gradients_with_a_flaw_earn_part_of_the_points(implementation):
    earned = exercises.points(EXERCISE, verdicts(implementation))
    assert 0 < earned < EXERCISE.points


def test_each_part_is_judged_on_its_own():
    """Saving every activation costs the memory after forward, not the peak during backward (it frees as it goes);
    keeping the replays costs the peak, not the memory after forward."""
    assert MEMORY in failed(verdicts(stores_every_activation)) and PEAK not in failed(verdicts(stores_every_activation))
    assert failed(verdicts(retain_graph_on_ctx)) == {PEAK}


def test_the_peak_message_compares_with_plain_backprop():
    message = verdicts(retain_graph_on_ctx)[PEAK]
    assert "rose from 4, what the forward pass kept, to 19" in message and "Plain backprop peaks at 16" in message
    assert "retain_graph=True" in message


@pytest.mark.parametrize("implementation, message", [
    (no_checkpointing_for_non_divisors, "segment_size=5"),
    (floor_many_uneven_segments, "were recomputed as"),
    (stores_every_activation, "activations are still alive"),
    (retain_graph_on_ctx, "not freed"),
    (not_implemented, "not implemented yet"),
], ids=lambda v: getattr(v, "__name__", "message"))
def test_the_notebook_check_raises_with_the_message(implementation, message):
    with pytest.raises(AssertionError, match=message):
        check_checkpointing(implementation)


# --- hints that name the mistake, not another one ---------------------------------------------------------
def hint(message):
    return message.split("Hint:")[-1]


def test_the_missing_gradient_hint_does_not_blame_detaching_when_parameters_are_not_passed():
    message = verdicts(only_x_as_input)[NO_INPUT_GRAD]
    assert "detach" not in hint(message)


def test_the_parameter_trap_is_named_and_points_to_the_hint_that_covers_it():
    """Review 23: most students fall into it (the parameters not passed to apply); the message names that mistake
    and sends them to Exercise 1's Hint 3."""
    result = verdicts(only_x_as_input)
    assert "parameters are not arguments of apply" in result[NO_INPUT_GRAD]
    for part in (NO_INPUT_GRAD, AUTOGRAD_GRAD):
        assert "Hint 3 (the parameter trap)" in result[part] or "Hint 3, the parameter trap" in result[part]


def test_none_for_the_input_is_told_to_return_the_input_gradient_not_to_recompute_with_grad():
    result = verdicts(none_for_the_input)
    for part in (GRADIENTS, NO_INPUT_GRAD, AUTOGRAD_GRAD):
        assert "enable_grad" not in result[part] and "grad enabled" not in result[part]
        assert "gradient with respect to" in hint(result[part]) and "segment input x" in result[part]
    assert "detach" not in hint(result[GRADIENTS])


def test_no_grad_around_apply_is_told_about_grad_mode_not_about_its_inputs():
    message = verdicts(no_grad_around_apply)[GRADIENTS]
    assert "torch.no_grad()" in message
    assert "none of its tensor inputs requires grad" not in message and "The parameters got no gradients" not in message


def test_a_batch_of_data_that_is_not_detached_is_told_the_mistake_not_the_line():
    assert "requires_grad on for the saved tensor itself" in verdicts(checkpoint_not_detached)[NO_INPUT_GRAD]
    for implementation in (checkpoint_not_detached, replay_from_the_checkpoint_itself, only_x_as_input,
                           none_for_the_input):
        for message in filter(None, verdicts(implementation).values()):
            assert "requires_grad_(True)" not in message and "autograd.grad(output" not in message


def test_recomputing_without_grad_is_told_to_enable_grad():
    assert "torch.enable_grad()" in verdicts(recompute_without_grad)[GRADIENTS]


# --- evidence --------------------------------------------------------------------------------------------
def test_malformed_evidence_fails_every_part_without_crashing():
    seed = exercises.default_seed(EXERCISE)
    good = exercises.probe(EXERCISE, [checkpointed_saved_input], exercises.draw_inputs(EXERCISE, seed))
    junk = [[1, 2], None, {"phase": "forward"}]
    broken_log = {"cases": [{**case, "log": junk} for case in good["cases"]],
                  "autograd_grad": {**good["autograd_grad"], "log": junk}}
    broken_timeline = {**good, "cases": [{**case, "activations": ["x"], "forward_end": 10**9}
                                         for case in good["cases"]]}
    for evidence in ({}, {"cases": "many"}, {"cases": [{}] * 6, "autograd_grad": 3}, None, [1, 2], broken_log):
        assert failed(exercises.judge(EXERCISE, evidence, seed)) == ALL_PARTS
    assert {MEMORY, PEAK} <= failed(exercises.judge(EXERCISE, broken_timeline, seed))


def test_forged_evidence_from_another_seed_fails():
    other = exercises.probe(EXERCISE, [checkpointed_saved_input], exercises.draw_inputs(EXERCISE, 99))
    seed = exercises.default_seed(EXERCISE)
    assert GRADIENTS in failed(exercises.judge(EXERCISE, other, seed))


def test_check_leaves_the_random_state_and_the_thread_count_unchanged(capsys):
    torch.manual_seed(123)
    before, threads = torch.get_rng_state(), torch.get_num_threads()
    check_checkpointing(checkpointed_saved_input)
    assert torch.equal(torch.get_rng_state(), before), "the check changed the student's random numbers"
    assert torch.get_num_threads() == threads


def test_wrong_signature_is_rejected():
    with pytest.raises(AssertionError, match="no parameter"):
        check_checkpointing(lambda blocks, x: x)


def test_the_facade_exports_the_check():
    assert checks.check_checkpointing is check_checkpointing  # re-exported for the notebooks
