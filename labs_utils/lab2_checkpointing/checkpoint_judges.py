"""The judges of one checkpointing case (grader's process): each recomputes plain backprop on the case's inputs,
drawn from the seed here as for the probe (:func:`.probe_inputs.draw_case`).

- :func:`judge_gradients`: output, parameter and input gradients against plain backprop's;
- :func:`judge_memory`: activations alive when the forward pass returned (the segment inputs and the output);
- :func:`judge_peak`: how far live activations rise during backward above that: one replayed segment and the
  gradients in flight, so a replay kept alive (``retain_graph=True`` on ctx, a list of replays) fails;
- :func:`judge_recomputation`: every block once in forward, then each segment once, last first, with grad.

Each first asks the gates of :mod:`.checkpoint_case` whether the student's own Function ran.
"""
from __future__ import annotations

import math

import torch

from ..checking import with_hint
from .checkpoint_case import (
    RUN_IN_FUNCTION,
    calls,
    close,
    difference,
    measured,
    nested_replays,
    ran_in_your_function,
    replayed_in_your_backward,
    runs,
    segments_text,
    where,
)
from .probe_inputs import ACTIVATION, fresh_input, make_blocks
from .tracker import track_memory


def reference(n_blocks: int, requires_grad: bool, inputs: dict) -> tuple[torch.Tensor, list, torch.Tensor | None]:
    """Plain backprop on the probe's blocks and input (a case's ``inputs``): output, parameter and input gradients."""
    blocks = make_blocks(n_blocks, inputs["init"])
    x = fresh_input(inputs, requires_grad)
    out = blocks(x)
    out.pow(2).sum().backward()
    return out.detach(), [p.grad for p in blocks.parameters()], x.grad


def plain_peak(n_blocks: int, inputs: dict) -> float:
    """Plain backprop's peak of live activations during a step, in activations (measured here)."""
    blocks = make_blocks(n_blocks, inputs["init"])
    with track_memory("cpu", blocks.parameters()) as tracker:
        blocks(fresh_input(inputs, True)).pow(2).sum().backward()
    return tracker.report().peak_activation_bytes / ACTIVATION


def _missing_hint(missing: list, n_blocks: int, segment_size: int, zeros: bool = False) -> str:
    last_segment = set(range(((n_blocks - 1) // segment_size) * segment_size, n_blocks))
    if missing and set(range(n_blocks)) - set(missing) == last_segment:
        if zeros:  # autograd hands a segment whose output got None a grad_output of zeros
            return ("Only the last segment's parameters got gradients: backward returns None (or zeros) for the "
                    "segment input x, so the segments before it get a grad_output of zeros: backward must return the "
                    "gradient with respect to x too.")
        return ("Only the last segment's parameters got gradients, so the gradient stops at a segment boundary: "
                "do not detach a segment's input before passing it to apply (detach it inside backward, before the "
                "recomputation), and return the gradient of the segment input from backward.")
    return ("The parameters got no gradients from your Function: autograd hands the gradients backward returns "
            "only to the tensors passed to apply, one per argument of forward.")


def judge_gradients(case: dict, n_blocks: int, segment_size: int, requires_grad: bool, inputs: dict) -> str | None:
    """The output, the parameter gradients and the input gradient of one case against plain backprop's."""
    place = where(n_blocks, segment_size, requires_grad)
    problem = measured(case) or ran_in_your_function(case, place)
    if problem:
        return problem
    changed = case.get("changed")
    if not isinstance(changed, list) or changed:
        flag = any("requires_grad" in str(change) for change in changed or [])
        return with_hint(f"Your function changed the probe's inputs {place}: "
                         f"{'; '.join(map(str, changed or ['(unreadable)']))}.",
                         "Your backward switched requires_grad on for the saved tensor itself, which is the caller's "
                         "x: the replay must not change the tensor it starts from."
                         if flag else "Leave the caller's x and the blocks' parameters as they are: never change "
                         "them in place; work on copies (x.detach(), new tensors) instead.")
    out, grads, x_grad = reference(n_blocks, requires_grad, inputs)
    problem = nested_replays(case, place)
    if problem:
        return problem
    diff = close(case.get("output"), out)
    if diff is None or diff > 1e-10:
        return with_hint(f"The output {place} differs from plain backprop's"
                         + (f" by up to {diff:.3g} (should be below 1e-10)." if diff is not None else "."),
                         "The segments must run every block once, in order, and return the last block's output.")
    problem = case.get("backward_error") or replayed_in_your_backward(case, place)
    if problem:
        return str(problem)
    found = case.get("param_grads")
    if not isinstance(found, list) or len(found) != len(grads):
        return f"The check could not read the parameter gradients {place}."
    diffs = [close(grad, expected) for grad, expected in zip(found, grads)]
    wrong = [i for i, diff in enumerate(diffs) if diff is None or diff > 1e-10]
    nothing = [i for i in wrong if found[i] is None or (isinstance(found[i], torch.Tensor) and not found[i].any())]
    if wrong and nothing == wrong:  # no gradient at all, or zeros: autograd turns a None gradient into zeros
        blocks = sorted({i // 2 for i in wrong})
        zeros = all(found[i] is not None for i in wrong)
        return with_hint(f"Parameters of blocks {segments_text(blocks)} (counted from 1) got "
                         + ("zero gradients " if zeros else "no gradient ") + place + ".",
                         _missing_hint(blocks, n_blocks, segment_size, zeros))
    if wrong:
        i = wrong[0]
        return with_hint(f"The gradient of the {'weight' if i % 2 == 0 else 'bias'} of block {i // 2 + 1} {place} "
                         "differs from plain backprop's" + (f" by up to {diffs[i]:.3g} (should be below 1e-10)."
                                                            if diffs[i] is not None else "."),
                         "Backpropagate grad_output through the recomputed segment, once, and return what you get "
                         "for each parameter, in the order of forward's arguments.")
    if not requires_grad:
        return f"x.grad was set although x.requires_grad is False {place}." if case.get("x_grad") is not None else None
    if case.get("x_grad") is None:
        return with_hint(f"x.grad is None {place}: the input gets no gradient.",
                         "Return the gradient with respect to the segment input from backward.")
    if difference(case.get("x_grad"), x_grad) > 1e-10:
        return f"The gradient of the input x {place} differs from plain backprop's."
    return None


def _timeline(case: dict) -> tuple[list, int] | None:
    """(activation bytes after each event, index of the first event after the forward pass), if readable."""
    timeline, end = case.get("activations"), case.get("forward_end")
    if not isinstance(timeline, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in timeline):
        return None
    if isinstance(end, bool) or not isinstance(end, int) or not 0 < end <= len(timeline):
        return None
    return timeline, end


def judge_memory(case: dict, n_blocks: int, segment_size: int) -> str | None:
    """Activations alive when the forward pass returned: the segment inputs and the output, no more."""
    place = where(n_blocks, segment_size)
    problem = measured(case) or ran_in_your_function(case, place)
    if problem:
        return problem
    found = _timeline(case)
    if found is None:
        return "The check could not read the memory measurement."
    held = found[0][found[1] - 1] / ACTIVATION
    n_segments = math.ceil(n_blocks / segment_size)
    if held <= n_segments + 1:
        return None
    graph_built = any(e["grad"] is True for e in calls(case, "forward"))
    return with_hint(
        f"After the forward pass {held:.1f} activations are still alive {place}, the input included; "
        f"checkpointing keeps the {n_segments} segment input(s) (the input is the first) and the output: at most "
        f"{n_segments + 1} (plain backprop keeps {n_blocks + 1}: the input and every block's output).",
        "Run each segment under torch.no_grad() in forward " + ("(your blocks ran with grad enabled) "
        if graph_built else "") + "and keep only its input (ctx.save_for_backward(x)); do not keep "
        "intermediate activations, not even on ctx attributes.")


def replays(case: dict) -> list:
    """The segments replayed in backward, in order: (block indices, event at which the replay began, node)."""
    found: list = []
    for entry in calls(case, "backward"):
        if found and entry["node"] == found[-1][2] and entry["block"] == found[-1][0][-1] + 1:
            found[-1][0].append(entry["block"])
        else:
            found.append(([entry["block"]], entry["event"], entry["node"]))
    return found


def judge_peak(case: dict, n_blocks: int, segment_size: int, inputs: dict) -> str | None:
    """How far live activations rise during backward above what the forward pass kept: one replayed segment."""
    place = where(n_blocks, segment_size)
    problem = measured(case) or ran_in_your_function(case, place) or case.get("backward_error")
    if problem:
        return str(problem)
    found = _timeline(case)
    if found is None:
        return "The check could not read the memory measurement."
    timeline, end = found
    if not calls(case, "backward"):
        return with_hint(f"No block was replayed during backward {place}, so there is no checkpointing to measure.",
                         RUN_IN_FUNCTION)
    problem = nested_replays(case, place)
    if problem:
        return problem
    longest = min(segment_size, n_blocks)
    held, peak = timeline[end - 1] / ACTIVATION, max(timeline[end - 1:]) / ACTIVATION
    if peak - held <= longest + 5:  # one replayed segment and the gradients in flight: longest + 3, 2 to spare
        return None
    segments = replays(case)
    starts = [(blocks, timeline[event - 1] / ACTIVATION) for blocks, event, _ in segments
              if isinstance(event, int) and 0 < event <= len(timeline)]
    blocks, extra = max(((b, s - starts[0][1]) for b, s in starts[1:]), key=lambda item: item[1], default=([], 0.0))
    told = (f"During backward {place} the live activations rose from {held:.0f}, what the forward pass kept, to "
            f"{peak:.0f}: {peak - held:.0f} more, where replaying one segment of {longest} block(s) at a time "
            f"needs about {longest + 3} more (its activations and the gradients in flight). Plain backprop "
            f"peaks at {plain_peak(n_blocks, inputs):.0f}.")
    if extra >= 0.75:
        return with_hint(told + f" When blocks {segments_text(blocks)} were replayed, {extra:.0f} more activations "
                         "were alive than when the first replay began: the segments replayed before were not freed.",
                         "Let each replay go once its gradients are computed: no retain_graph=True, and no replayed "
                         "tensor (output, graph, or a .grad) kept on ctx or anywhere else after backward returns.")
    return with_hint(told, "Replay one segment at a time, inside its own backward, and keep nothing of it once that "
                     "backward returns.")


def judge_recomputation(case: dict, n_blocks: int, segment_size: int) -> str | None:
    """Every block once in forward, then each segment replayed once, last first, with grad enabled."""
    place = where(n_blocks, segment_size)
    problem = measured(case) or ran_in_your_function(case, place) or case.get("backward_error")
    if problem:
        return str(problem)
    forward = [e["block"] for e in calls(case, "forward")]
    backward = calls(case, "backward")
    if forward != list(range(n_blocks)):
        return with_hint(f"In the forward pass the blocks ran as {segments_text(forward)} (counted from 1) {place}; "
                         f"expected each block once, in order: [1\u2013{n_blocks}].",
                         "Loop over the segments once: blocks[start:start + segment_size] for start = 0, "
                         "segment_size, 2 * segment_size, ...")
    starts = range(0, n_blocks, segment_size)
    expected = [i for start in reversed(starts) for i in range(start, min(start + segment_size, n_blocks))]
    indices = [e["block"] for e in backward]
    if not backward:
        return with_hint(f"No block was recomputed during backward {place}.",
                         "Every segment, also when segment_size does not divide the number of blocks, must run "
                         "inside your Function, whose backward recomputes it.")
    problem = nested_replays(case, place)
    if problem:
        return problem
    first_to_last = [i for start in starts for i in range(start, min(start + segment_size, n_blocks))]
    if indices == first_to_last != expected:
        return with_hint(f"During backward the segments were replayed first to last {place}. Backpropagation goes "
                         "from the output back to the input, so the last segment must be replayed first: "
                         + ", ".join(segments_text(list(range(a, min(a + segment_size, n_blocks))))
                                     for a in reversed(starts)) + ".",
                         "With one Function for all segments, loop over the segments and their saved inputs in "
                         "reverse in backward (reversed(...)), passing each segment's input gradient on to the "
                         "segment before it.")
    if indices != expected:
        found = [b - a + 1 for a, b in runs(indices)]
        wanted = [b - a + 1 for a, b in runs(expected)]
        twice = sorted({i + 1 for i in indices if indices.count(i) > 1})
        return with_hint(
            f"During backward the blocks were recomputed as {segments_text(indices)} (counted from 1) {place}: "
            f"{len(found)} segment(s) of {', '.join(map(str, found))} blocks. Expected each segment once, the last "
            f"first: {segments_text(expected)}, {len(wanted)} segment(s) of {', '.join(map(str, wanted))} blocks"
            + (f". Blocks {twice} were recomputed more than once." if twice else "."),
            "Segments are blocks[start:start + segment_size]: ceil(n / segment_size) of them, all of "
            "segment_size blocks but the last, which may be shorter. Backward recomputes only its own segment, "
            "once, from its saved input.")
    if not all(e["backward"] for e in backward):
        return with_hint(f"Blocks were recomputed during backward outside your Function's backward {place}.",
                         RUN_IN_FUNCTION)
    if not all(e["grad"] is True for e in backward):
        return with_hint(f"Some blocks were recomputed with grad disabled {place}.",
                         "Recompute under torch.enable_grad(): autograd runs backward with grad disabled.")
    return None
