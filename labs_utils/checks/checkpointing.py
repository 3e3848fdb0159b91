"""Checks of Lab 2 (gradient checkpointing from scratch).

``check_checkpointing(checkpointed_forward)`` runs the student's function on small double-precision
networks whose blocks log every call, and compares it with plain backprop (the reference): outputs
and gradients, the bytes still alive after the forward pass (measured as live tensor storages, so
activations hidden on ``ctx`` attributes count too), and the order in which blocks are recomputed.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..memory import track_memory
from ..runtime import seeded
from ._common import Exercise, assert_close, call_student, describe, fail, passed, require_parameters

__all__ = ["check_checkpointing"]

_WIDTH = 16
_BATCH = 32
_SIGNATURE = "checkpointed_forward(blocks, x, segment_size) -> Tensor"


class _LoggedBlock(nn.Module):
    """Linear + tanh that appends (phase, index, grad enabled) to a shared log on every call."""

    def __init__(self, index: int, log: list, phase: list) -> None:
        super().__init__()
        self.index, self.log, self.phase = index, log, phase
        self.linear = nn.Linear(_WIDTH, _WIDTH, dtype=torch.float64)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.log.append((self.phase[0], self.index, torch.is_grad_enabled()))
        return torch.tanh(self.linear(h))


def _logged_blocks(n_blocks: int, seed: int) -> tuple[nn.Sequential, list, list]:
    log: list = []
    phase = ["forward"]
    with seeded(seed):  # the student's random numbers stay as they were
        blocks = nn.Sequential(*(_LoggedBlock(i, log, phase) for i in range(n_blocks)))
    return blocks, log, phase


def _input(seed: int, requires_grad: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(_BATCH, _WIDTH, dtype=torch.float64, generator=generator).requires_grad_(requires_grad)


def _reference(blocks: nn.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, list, torch.Tensor | None]:
    """Plain backprop: the output, the parameter gradients and the input gradient."""
    x = x.detach().requires_grad_(x.requires_grad)
    h = x
    for block in blocks:
        h = block(h)
    h.pow(2).sum().backward()
    grads = [p.grad.clone() for p in blocks.parameters()]
    blocks.zero_grad(set_to_none=True)
    return h.detach(), grads, x.grad


def _segments_text(indices: list) -> str:
    """Block indices (from 0) as runs of consecutive layers counted from 1, e.g. '[9-12], [5-8]'."""
    runs: list = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"[{a + 1}\u2013{b + 1}]" if a != b else f"[{a + 1}]" for a, b in runs) or "none"


def _run(fn: Callable, blocks: nn.Sequential, x: torch.Tensor, segment_size: int) -> torch.Tensor:
    out = call_student(fn, blocks, x, segment_size, what=f"{describe(fn)}(blocks, x, segment_size={segment_size})")
    if not isinstance(out, torch.Tensor):
        fail(f"{describe(fn)} returned {type(out).__name__}, expected the output tensor of the last block.",
             f"The exercise asks for {_SIGNATURE}.")
    return out


def _backward(fn: Callable, out: torch.Tensor, x_requires_grad: bool) -> None:
    if not out.requires_grad:
        hint = ("Pass the parameters of each segment to YourFunction.apply(...) as inputs too: a Function's "
                "output requires grad only if one of its tensor inputs does (torch's reentrant checkpoint has "
                "the same flaw)." if not x_requires_grad else
                "Run the segments inside a torch.autograd.Function whose input is the segment input x.")
        fail(f"The output of {describe(fn)} does not require grad (x.requires_grad={x_requires_grad}), so no "
             "gradient can reach the parameters.", hint)
    try:
        call_student(lambda: out.pow(2).sum().backward(), what=f"backward through {describe(fn)}")
    except AssertionError as error:
        if "does not require grad" not in str(error):
            raise
        raise AssertionError(f"{error}\nLikely cause: backward runs with grad disabled, so the recomputed "
                             "segment built no graph. Recompute it under torch.enable_grad(), from "
                             "x.detach().requires_grad_(True).") from error.__cause__


def _check_gradients(fn: Callable, n_blocks: int, segment_size: int, x_requires_grad: bool) -> None:
    blocks, _, _ = _logged_blocks(n_blocks, seed=n_blocks)
    x = _input(seed=segment_size, requires_grad=x_requires_grad)
    expected_out, expected_grads, expected_x_grad = _reference(blocks, x)
    case = f"n={n_blocks} blocks, segment_size={segment_size}, x.requires_grad={x_requires_grad}"
    out = _run(fn, blocks, x, segment_size)
    assert_close(out, expected_out, what=f"Output ({case})", atol=1e-10,
                 hint="The segments must run every block once, in order, and return the last block's output.")
    _backward(fn, out, x_requires_grad)
    missing = [i for i, block in enumerate(blocks) if block.linear.weight.grad is None]
    if missing:
        fail(f"Parameters of blocks {_segments_text(missing)} (counted from 1) got no gradient ({case}).",
             "Gradient must flow from each segment into the one before: do not detach a segment input outside "
             "the Function (detach it inside backward, before the recomputation), and return gradients for "
             "the parameters (or let the recomputation's backward accumulate them).")
    for (name, param), grad in zip(blocks.named_parameters(), expected_grads):
        assert_close(param.grad, grad, what=f"Gradient of {name} ({case})", atol=1e-10,
                     hint="Recompute the segment from its saved input with grad enabled, then backpropagate "
                          "grad_output through it.")
    if x_requires_grad:
        if x.grad is None:
            fail(f"x.grad is None ({case}): the input gets no gradient.",
                 "Return the gradient with respect to the segment input from backward.")
        assert_close(x.grad, expected_x_grad, what=f"Gradient of the input x ({case})", atol=1e-10)
    elif x.grad is not None:
        fail(f"x.grad was set although x.requires_grad is False ({case}).")


def _custom_functions(out: torch.Tensor) -> list:
    """Names of the torch.autograd.Function classes whose backward nodes are in the graph of ``out``."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, torch.autograd.function.BackwardCFunction):  # the node class is "<Function>Backward"
            found.append(type(node).__name__.removesuffix("Backward"))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def _check_function_and_memory(fn: Callable, n_blocks: int, segment_size: int) -> str:
    blocks, log, _ = _logged_blocks(n_blocks, seed=1)
    x = _input(seed=2, requires_grad=True)
    activation = _BATCH * _WIDTH * x.element_size()
    with track_memory("cpu") as tracker:
        out = _run(fn, blocks, x, segment_size)
    held = tracker.report().timeline[-1]
    functions = _custom_functions(out)
    if "CheckpointFunction" in functions:
        fail("Your output was made by torch.utils.checkpoint.", "Write your own torch.autograd.Function.")
    if not functions:
        fail(f"The graph of the output of {describe(fn)} contains no torch.autograd.Function.",
             "Wrap each segment in a torch.autograd.Function whose forward runs under torch.no_grad() and whose "
             "backward recomputes it (not torch.utils.checkpoint: the exercise is to write it).")
    n_segments = math.ceil(n_blocks / segment_size)
    allowed = (n_segments + 1) * activation
    if held > allowed:
        graph_built = any(phase == "forward" and grad for phase, _, grad in log)
        fail(f"After the forward pass {held / activation:.1f} activations of the blocks are still alive "
             f"(n={n_blocks} blocks, segment_size={segment_size}); checkpointing keeps one input per segment "
             f"and the output: at most {n_segments + 1} (plain backprop keeps {n_blocks}).",
             "Run each segment under torch.no_grad() in forward " + ("(your blocks ran with grad enabled) "
             if graph_built else "") + "and keep only its input (ctx.save_for_backward(x)); do not keep "
             "intermediate activations, not even on ctx attributes.")
    return f"{held / activation:.0f} activations kept after forward vs {n_blocks} for plain backprop"


def _check_recomputation(fn: Callable, n_blocks: int, segment_size: int) -> str:
    blocks, log, phase = _logged_blocks(n_blocks, seed=3)
    out = _run(fn, blocks, _input(seed=4, requires_grad=True), segment_size)
    phase[0] = "backward"
    _backward(fn, out, True)
    forward = [i for p, i, _ in log if p == "forward"]
    backward = [i for p, i, _ in log if p == "backward"]
    if forward != list(range(n_blocks)):
        fail(f"In the forward pass the blocks ran as {_segments_text(forward)} (counted from 1); expected each "
             f"block once, in order: [1\u2013{n_blocks}].",
             "Loop over the segments once: blocks[start:start + segment_size] for start = 0, segment_size, ...")
    starts = range(0, n_blocks, segment_size)
    expected = [i for start in reversed(starts) for i in range(start, min(start + segment_size, n_blocks))]
    if backward != expected:
        twice = sorted({i + 1 for i in backward if backward.count(i) > 1})
        fail(f"During backward the blocks were recomputed as {_segments_text(backward)} (counted from 1); "
             f"expected each segment once, the last first: {_segments_text(expected)}"
             + (f". Blocks {twice} were recomputed more than once." if twice else "."),
             "Segments are blocks[start:start + segment_size] (the last may be shorter); backward recomputes "
             "only its own segment, once, from its saved input.")
    if not all(grad for p, _, grad in log if p == "backward"):
        fail("Some blocks were recomputed with grad disabled.", "Recompute under torch.enable_grad().")
    return f"recomputed once each, segments {_segments_text(expected)}"


def check_checkpointing(fn: Callable) -> None:
    """Check ``checkpointed_forward(blocks, x, segment_size)`` against plain backprop (Lab 2)."""
    require_parameters(fn, ["blocks", "x", "segment_size"], _SIGNATURE)
    for n_blocks, segment_size, x_requires_grad in ((12, 4, True), (7, 3, True), (5, 8, True), (6, 2, False)):
        _check_gradients(fn, n_blocks, segment_size, x_requires_grad)
    memory = _check_function_and_memory(fn, 12, 4)
    order = _check_recomputation(fn, 12, 4)
    passed("check_checkpointing", f"gradients equal plain backprop; n=12, segment_size=4: {memory}; {order}")


GRADING = [
    Exercise("checkpointed_forward: checkpointing from scratch", 10, needs=("checkpointed_forward",),
             check="check_checkpointing(checkpointed_forward)"),
]
