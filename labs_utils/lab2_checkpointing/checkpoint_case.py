"""One case of a checkpointing probe, and how the judges read its evidence (both exercises use them).

:func:`probe_case` (student's kernel) runs the student's function on blocks that note every call
(:mod:`.probe_inputs`), then backpropagates, all inside the memory tracker: the evidence holds the output,
the gradients, the timeline of live activations with the event at which the forward pass returned, the log
of block calls, the student's Functions in the output's graph and what the code changed among the inputs.
The readers below turn that untrusted evidence into facts for the judges (:mod:`.checkpoint_judges`), and
the gates say whether the student's own Function ran (:func:`ran_in_your_function`) and replayed the blocks
in its backward (:func:`replayed_in_your_backward`): a plain forward, an identity or a constant earns nothing.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..checking import describe, fail, tensor_difference, with_hint
from .probe_inputs import Budget, Snapshot, Watch, custom_functions, fresh_input, make_blocks
from .tracker import track_memory

SIGNATURE = "checkpointed_forward(blocks, x, segment_size) -> Tensor"
RUN_IN_FUNCTION = ("Run each segment inside your Function: YourFunction.apply(segment, x, *parameters), whose "
                    "forward runs the segment's blocks under torch.no_grad() and whose backward recomputes them.")


def where(n_blocks: int, segment_size: int, requires_grad: bool | None = None) -> str:
    return f"(n={n_blocks} blocks, segment_size={segment_size}" + (
        f", x.requires_grad={requires_grad})" if requires_grad is not None else ")")


# ----------------------------------------------------------------------------- probe (student's kernel)

def run_forward(fn: Callable, budget: Budget, blocks: Any, x: torch.Tensor, segment_size: int) -> torch.Tensor:
    out = budget.call(fn, blocks, x, segment_size, what=f"{describe(fn)}(blocks, x, segment_size={segment_size})")
    if not isinstance(out, torch.Tensor):
        fail(f"{describe(fn)} returned {type(out).__name__}, expected the output tensor of the last block.",
             f"The exercise asks for {SIGNATURE.replace('checkpointed_forward', describe(fn))}.")
    return out


_BACKWARD_ERRORS = (  # (words of torch's message, the likely cause)
    ("does not have a grad_fn", "backward runs with grad disabled, so the recomputed segment built no graph. "
     "The replay must run under torch.enable_grad()."),
    ("differentiated tensors does not require grad", "backward differentiates with respect to a tensor that "
     "does not require grad: the saved input of the first segment is a batch of data. Differentiate with respect "
     "to a tensor that does, and recompute the segment from that very tensor."),
    ("appears to not have been used in the graph", "backward differentiates with respect to a tensor the "
     "recomputed segment did not use: recompute from the very tensor you differentiate with respect to."),
    ("incorrect number of gradients", "backward must return one gradient per argument of forward, in the order "
     "forward received them (whatever order you chose): None for an argument that is not a tensor needing one "
     "(the segment), the gradient of x, and one per parameter passed."),
    ("invalid gradient at index", "backward returns the gradients in another order than forward's arguments: "
     "return them in the order forward received them (None where an argument, like the segment, needs none)."),
    ("backward through the graph a second time", "the graph backward goes through was already used: recompute "
     "the segment inside backward, every time, instead of keeping a graph from the forward pass."),
)


def run_backward(fn: Callable, budget: Budget, run: Callable[[], Any]) -> Any:
    """Run a backward pass through the student's Function; name the likely cause of torch's usual errors."""
    try:
        return budget.call(run, what=f"backward through {describe(fn)}")
    except AssertionError as error:
        cause = next((c for words, c in _BACKWARD_ERRORS if words in str(error).lower()), None)
        if cause is None:
            raise
        raise AssertionError(f"{error}\nLikely cause: {cause}") from None


def _output(out: torch.Tensor) -> torch.Tensor:
    return out.detach().to("cpu", torch.float64).clone()


def probe_case(fn: Callable, budget: Budget, n_blocks: int, segment_size: int, requires_grad: bool, case: dict,
               dropout: bool = False) -> dict:
    """Forward and backward of one case (its inputs: :func:`.probe_inputs.draw_case`) inside the memory tracker:
    the evidence the judges below read."""
    watch = Watch()
    blocks = make_blocks(n_blocks, case["init"], watch.note, dropout)
    snapshot = Snapshot(blocks, case["x"], requires_grad)
    record: dict[str, Any] = {"log": watch.log}
    try:
        with torch.enable_grad(), track_memory("cpu", blocks.parameters()) as tracker:
            watch.tracker = tracker
            x = fresh_input(case, requires_grad)  # made inside the tracker: the input counts, like a checkpoint
            out = run_forward(fn, budget, blocks, x, segment_size)
            record["forward_end"] = tracker.events
            if out.requires_grad:
                watch.phase = "backward"
                try:
                    run_backward(fn, budget, lambda: out.pow(2).sum().backward())
                except AssertionError as error:  # the memory after forward was measured all the same
                    record["backward_error"] = str(error)
        watch.tracker = None
        record.update(output=_output(out), output_requires_grad=bool(out.requires_grad),
                      functions=custom_functions(out), activations=tracker.report().activation_timeline.tolist(),
                      x_grad=x.grad, param_grads=[p.grad for p in blocks.parameters()],
                      changed=snapshot.changes(blocks, x))
    except AssertionError as error:
        record["error"] = str(error)
    except Exception as error:  # what the function returned broke the measurement
        record["error"] = (f"The check could not measure what {describe(fn)} returned "
                           f"({type(error).__name__}: {error}).")
    return record


# ----------------------------------------------------------------------------- reading the evidence

def runs(indices: list) -> list:
    """Block indices (from 0) as runs of consecutive blocks (first, last)."""
    found: list = []
    for i in indices:
        if found and i == found[-1][1] + 1:
            found[-1][1] = i
        else:
            found.append([i, i])
    return [(a, b) for a, b in found]


def segments_text(indices: list) -> str:
    """Block indices (from 0) as runs of blocks counted from 1, e.g. '[9–12], [5–8]'."""
    return ", ".join(f"[{a + 1}\u2013{b + 1}]" if a != b else f"[{a + 1}]" for a, b in runs(indices)) or "none"


close = tensor_difference  # max |difference|, or None for no finite tensor of the expected shape


def difference(actual: Any, expected: torch.Tensor) -> float:
    diff = close(actual, expected)
    return float("inf") if diff is None else diff


def calls(case: dict, phase: str) -> list:
    """The log's entries of one phase (entries that are not well-formed dicts are dropped)."""
    log = case.get("log")
    keys = {"phase", "block", "grad", "forward", "backward", "node", "depth", "inputs_grad", "event"}
    return [e for e in log if isinstance(e, dict) and keys <= set(e) and e["phase"] == phase
            and isinstance(e["block"], int)] if isinstance(log, list) else []


def measured(case: dict) -> str | None:
    """The error that kept the probe from measuring this case, if any."""
    return str(case["error"]) if "error" in case else None


def ran_in_your_function(case: dict, place: str) -> str | None:
    """None when the student's own Function ran the blocks and made the output; else what happened instead."""
    forward = calls(case, "forward")
    inside = [e for e in forward if e["forward"]]
    if not forward:
        return with_hint(f"Your function ran none of the blocks {place}, so nothing of it can be graded.",
                         "Run every block once, in order, segment by segment. " + RUN_IN_FUNCTION)
    if not inside:
        return with_hint(f"The blocks ran outside any torch.autograd.Function of yours {place} (a plain forward pass): "
                         "there is no checkpointing of yours to grade.", RUN_IN_FUNCTION)
    if case.get("functions"):
        return None
    if case.get("output_requires_grad"):
        return with_hint(f"The output {place} was not made by your Function, so its gradients are not yours.",
                         "Return the output of the last segment's YourFunction.apply(...) itself.")
    if any(e["inputs_grad"] for e in inside):
        return with_hint(f"Your Function {inside[0]['forward']} ran the blocks {place}, but its output does not "
                         "require grad although its inputs do: apply() was called with grad disabled (inside "
                         "torch.no_grad()?), so backward can never run.",
                         "Call YourFunction.apply(...) with grad enabled: forward already runs without grad by "
                         "itself, so no torch.no_grad() is needed around apply, only inside forward.")
    return with_hint(f"Your Function {inside[0]['forward']} ran the blocks {place}, but none of its tensor inputs "
                     "requires grad, so its output does not either and no gradient can reach the parameters: the "
                     "blocks' parameters are not arguments of apply.",
                     "A Function's output requires grad only if one of its tensor inputs does (torch's reentrant "
                     "checkpoint has the same flaw), and only its inputs receive the gradients backward returns: "
                     "Exercise 1's Hint 3 (the parameter trap) covers it.")


def replayed_in_your_backward(case: dict, place: str) -> str | None:
    """None when the backward of the student's Function recomputed blocks; else why its gradients are not graded."""
    if any(e["backward"] for e in calls(case, "backward")):
        return None
    name = next((e["forward"] for e in calls(case, "forward") if e["forward"]), "YourFunction")
    return with_hint(f"Your Function {name} ran the blocks in forward {place}, but its backward recomputed none of "
                     "them: without a replay there is no checkpointing, so its gradients are not graded.",
                     "In backward, recompute the segment from its saved input under torch.enable_grad() and "
                     "backpropagate grad_output through it; keep no graph from the forward pass.")


def nested_replays(case: dict, place: str) -> str | None:
    """A message when a segment was replayed inside the backward of another (its checkpoint not detached)."""
    nested = [e["block"] for e in calls(case, "backward") if isinstance(e["depth"], int) and e["depth"] > 1]
    if not nested:
        return None
    return with_hint(f"Blocks {segments_text(sorted(set(nested)))} (counted from 1) were replayed inside the backward "
                     f"of another segment {place}: the replay's graph reached back into the segment before it, "
                     "because the saved input was not detached.",
                     "Backpropagating through a replay must stop at the segment's input: the autograd engine "
                     "calls the earlier segments' backward itself, with the gradient you return for x.")
