"""A reference checkpointing solution, kept in the tests only (students import labs_utils, never this).

Shared by the Lab 2 check tests (a correct implementation the check must accept) and the tracker tests
(the memory a correct implementation uses).
"""
from __future__ import annotations

import torch


def run_blocks(blocks, h):
    for block in blocks:
        h = block(h)
    return h



def segments(blocks, segment_size):
    blocks = list(blocks)
    return [blocks[start:start + segment_size] for start in range(0, len(blocks), segment_size)]



def segment_params(segment):
    return tuple(p for block in segment for p in block.parameters())



# --- correct implementations, written differently -------------------------------------------------
class SavedInputSegment(torch.autograd.Function):
    """The textbook version: ctx.save_for_backward, torch.autograd.grad in backward."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        ctx.segment = segment
        ctx.save_for_backward(x, *params)
        with torch.no_grad():
            return run_blocks(segment, x)

    @staticmethod
    def backward(ctx, grad_output):
        x, *params = ctx.saved_tensors
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = run_blocks(ctx.segment, x)
        return (None, *torch.autograd.grad(out, (x, *params), grad_output))



def checkpointed_saved_input(blocks, x, segment_size):
    for segment in segments(blocks, segment_size):
        x = SavedInputSegment.apply(segment, x, *segment_params(segment))
    return x


def apply_all(function, blocks, x, segment_size):
    """``function.apply(segment, x, *its parameters)`` segment after segment: a Function used as checkpointing."""
    for segment in segments(blocks, segment_size):
        x = function.apply(segment, x, *segment_params(segment))
    return x


# --- a wrong implementation several checks must reject --------------------------------------------
class KeepsTheGraph(torch.autograd.Function):
    """Plain backprop wrapped in a Function: forward builds the graph and keeps it, backward never replays (so
    nothing is recomputed, no dropout mask is drawn again, and no memory is saved)."""

    @staticmethod
    def forward(ctx, segment, x, *params):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            ctx.out = run_blocks(segment, x)
        ctx.x, ctx.params = x, params
        return ctx.out.detach()

    @staticmethod
    def backward(ctx, grad_output):
        return (None, *torch.autograd.grad(ctx.out, (ctx.x, *ctx.params), grad_output))


def function_without_replay(blocks, x, segment_size):
    return apply_all(KeepsTheGraph, blocks, x, segment_size)
