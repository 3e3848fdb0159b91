"""The third graded exercise, ``checkpointed_forward_inplace``: checkpointing that survives a segment which
modifies its own input in place.

A pre-activation block (``LeakyReLU(inplace=True)`` then ``Linear``) sits at the start of a segment (what that
does to a checkpointing function, and why, is the notebook's question). A correct function either gives plain
backprop's gradients or raises *before* replaying a segment whose checkpoint changed; which of the two it does
is the student's design.

The probe runs the student's function on small double-precision pre-activation networks whose blocks log
every call, and records the output, the gradients, the bytes alive after forward, the call log and any
error (with the phase it happened in), on the inputs :func:`inputs_inplace` draws from the seed where the seed is
(the probe is sent the inputs, never the seed). The judge draws the same inputs, rebuilds the networks, runs
plain backprop and compares. Both parts require that the function still checkpoints on a network whose in-place
operations are harmless (inside segments), fed an input that requires grad and a batch of data, both modified in
place before the call (``_version`` 1), so a plain forward, the identity, the unfixed function, one that refuses
every batch of data or one that raises whenever ``x._version > 0`` earn nothing.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..checking import describe, fail, max_abs_diff, require_parameters, with_hint
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from .probe_inputs import Budget
from .tracker import track_memory

_WIDTH, _BATCH = 16, 8
_ACTIVATION = _BATCH * _WIDTH * 8  # bytes of one float64 (batch, width) activation
_SIGNATURE = "checkpointed_forward_inplace(blocks, x, segment_size) -> Tensor"
# name -> (blocks, segment_size, blocks that start with an in-place LeakyReLU, input requires grad)
CASES = {
    "harmless": (8, 3, (1, 4, 7), True),  # in place inside segments only: must checkpoint as in exercise 1
    "harmless data": (8, 3, (1, 4, 7), False),  # the same fed a batch of data: refusing every data batch fails
    "data": (8, 3, (0,), False),  # the first segment's input, a data batch, overwritten
    "every": (8, 3, (0, 3, 6), True),  # every segment's input overwritten, the input requires grad
}
GATE = ("harmless", "harmless data")  # both parts need these to pass first

IN_PLACE_DATA = "first segment overwrites its data batch: exact gradients or an error before its replay"
IN_PLACE_EVERY = "every segment overwrites its input: exact gradients or an error before the replay"


def _block_type(log: list, phase: list) -> type:
    """[LeakyReLU(0.1) in place, or tanh] then Linear; appends [phase, index] to ``log`` on every call. The log and
    the phase live in the class's closure, out of reach of the student's code (see logged_block_type)."""

    class PreActivationBlock(nn.Module):
        def __init__(self, index: int, in_place: bool) -> None:
            super().__init__()
            self.index, self.in_place = index, in_place
            self.linear = nn.Linear(_WIDTH, _WIDTH, dtype=torch.float64)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            log.append([phase[0], self.index])
            return self.linear(nn.functional.leaky_relu_(h, 0.1) if self.in_place else torch.tanh(h))

    return PreActivationBlock


def _network(name: str, init: int) -> tuple[nn.Sequential, list, list]:
    n_blocks, _, in_place, _ = CASES[name]
    log: list = []
    phase = ["forward"]
    with seeded(init):
        block = _block_type(log, phase)
        blocks = nn.Sequential(*(block(i, i in in_place) for i in range(n_blocks)))
    return blocks, log, phase


def _leaf(inputs: dict, requires_grad: bool) -> torch.Tensor:
    """A copy of the case's input batch (the case's own stays as drawn, whatever the student's code does)."""
    return inputs["x"].detach().clone().requires_grad_(requires_grad)


# ----------------------------------------------------------------------------- inputs (where the seed is)

def inputs_inplace(*, seed: int) -> dict:
    """Per case of ``CASES``: ``init``, the seed of its network's initialisation (derived one way from ``seed``), and
    ``x``, its float64 input batch (about 5 KB of JSON in all)."""
    def batch(name: str) -> torch.Tensor:
        generator = torch.Generator().manual_seed(sub_seed(seed, f"in-place {name}: x"))
        return torch.randn(_BATCH, _WIDTH, dtype=torch.float64, generator=generator)

    return {name: {"init": sub_seed(seed, f"in-place {name}: init"), "x": batch(name)} for name in CASES}


# ----------------------------------------------------------------------------- probe (student's kernel)

def _probe_case(fn: Callable, budget: Budget, name: str, inputs: dict) -> dict:
    _, segment_size, _, requires_grad = CASES[name]
    blocks, log, phase = _network(name, inputs["init"])
    leaf = _leaf(inputs, requires_grad)
    record: dict[str, Any] = {"log": log}
    try:
        with track_memory("cpu") as tracker:
            x = leaf * 1.0 if requires_grad else leaf.clone()  # made here, so it counts; not a leaf that
            # requires grad, so plain backprop may modify it in place
            if name in GATE:
                x.mul_(1.0)  # modified in place before the call (x._version 1), which must be accepted
            out = budget.call(fn, blocks, x, segment_size,
                              what=f"{describe(fn)}(blocks, x, segment_size={segment_size})")
        if not isinstance(out, torch.Tensor):
            fail(f"{describe(fn)} returned {type(out).__name__}, expected the output tensor of the last block.",
                 f"The exercise asks for {_SIGNATURE}.")
        record.update(held_bytes=int(tracker.report().timeline[-1]), output=out.detach().to("cpu").clone(),
                      output_requires_grad=bool(out.requires_grad))
        if out.requires_grad:
            phase[0] = "backward"
            budget.call(lambda: out.pow(2).sum().backward(), what=f"backward through {describe(fn)}")
        record.update(leaf_grad=leaf.grad, param_grads=[p.grad for p in blocks.parameters()])
    except AssertionError as error:
        record.update(error=str(error), error_phase=phase[0])
    except Exception as error:  # what the function returned broke the measurement (e.g. a meta tensor)
        record.update(error=f"The check could not measure what {describe(fn)} returned ({type(error).__name__}: "
                      f"{error}).", error_phase=phase[0])
    return record


def probe_inplace(fn: Callable, *, inputs: dict) -> dict:
    """Evidence of ``checkpointed_forward_inplace`` on every network of ``CASES``."""
    require_parameters(fn, ["blocks", "x", "segment_size"], _SIGNATURE)
    budget = Budget()  # a function that hangs fails with a message
    evidence = {name: _probe_case(fn, budget, name, inputs[name]) for name in CASES}
    if all(record.get("error_phase") == "forward" for record in evidence.values()):
        fail(evidence["harmless"]["error"])  # nothing measured at all (e.g. not implemented yet)
    return evidence


# ----------------------------------------------------------------------------- judge (grader's process)

def _reference(name: str, inputs: dict) -> tuple[torch.Tensor, list, torch.Tensor | None]:
    """Plain backprop on the probe's network and input: output, parameter gradients, input gradient."""
    blocks, _, _ = _network(name, inputs["init"])
    leaf = _leaf(inputs, CASES[name][3])
    out = blocks(leaf * 1.0 if leaf.requires_grad else leaf)
    out.pow(2).sum().backward()
    return out.detach(), [p.grad for p in blocks.parameters()], leaf.grad


def _first_part(message: Any) -> str:
    """A student's error without the generic hint call_student appends (the judge adds its own)."""
    return str(message).partition("\nHint: the traceback")[0]


def _where(name: str) -> str:
    n_blocks, segment_size, in_place, requires_grad = CASES[name]
    return (f"(n={n_blocks} blocks, segment_size={segment_size}, in-place LeakyReLU at the start of block(s) "
            f"{', '.join(str(i + 1) for i in in_place)}, x.requires_grad={requires_grad})")


def _relative_error(record: dict, name: str, inputs: dict) -> float | None:
    """Relative error of the output and gradients against plain backprop; None if they cannot be read."""
    out, grads, leaf_grad = _reference(name, inputs)
    found = record.get("param_grads")
    expected = [out, *grads, *([leaf_grad] if leaf_grad is not None else [])]
    actual = [record.get("output"), *(found if isinstance(found, list) else []),
              *([record.get("leaf_grad")] if leaf_grad is not None else [])]
    if len(actual) != len(expected) or not all(isinstance(a, torch.Tensor) and a.shape == e.shape
                                               and bool(torch.isfinite(a).all()) for a, e in zip(actual, expected)):
        return None
    return max(max_abs_diff(a, e) / max(e.abs().max().item(), 1e-12) for a, e in zip(actual, expected))


def _checkpoints(record: dict, name: str) -> str | None:
    """None if the run kept little memory after forward and replayed every block once in backward."""
    n_blocks, segment_size, _, _ = CASES[name]
    held = record.get("held_bytes")
    allowed = math.ceil(n_blocks / segment_size) + 2  # the segment inputs (or copies), the input, the output
    if isinstance(held, bool) or not isinstance(held, (int, float)) or held > allowed * _ACTIVATION:
        return with_hint(f"After the forward pass {_where(name)} more than {allowed} activations are alive "
                         "(the segment inputs or one copy of each, the input and the output), so your function "
                         "does not checkpoint.", "Start from your checkpointed_forward of exercise 1.")
    log = record.get("log")
    replayed = sorted(e[1] for e in log if isinstance(e, list) and len(e) == 2 and e[0] == "backward") \
        if isinstance(log, list) else None
    if replayed != list(range(n_blocks)):
        return with_hint(f"During backward {_where(name)} the blocks were not each recomputed once, so your "
                         "function does not checkpoint like exercise 1.",
                         "Every segment runs under torch.no_grad() in forward and is recomputed once in backward.")
    return None


def _judge_harmless(record: Any, name: str, inputs: dict) -> str | None:
    if not isinstance(record, dict):
        return "The check's evidence is malformed."
    where = _where(name)
    if "error" in record:
        return with_hint(f"Your function failed {where}, where every in-place operation modifies a temporary "
                         f"inside a segment, which is harmless: {_first_part(record['error'])}",
                         "Raise only when a segment's input (its checkpoint) was modified, not for any in-place "
                         "operation or any batch of data, and replay each segment from an input it may modify. "
                         "If you read _version: this input was modified in place before your function was called "
                         "(its _version is 1), so compare with the version saved in forward, before the segment "
                         "ran, not with 0.")
    error = _relative_error(record, name, inputs)
    if error is None or error > 1e-10:
        return with_hint(f"The output or gradients {where} differ from plain backprop's"
                         + (f" (relative error {error:.2g})." if error is not None else "."),
                         "In-place operations inside a segment are harmless: the replay computes them again.")
    return _checkpoints(record, name)


def _judge_overwritten(record: Any, name: str, inputs: dict, gate: str | None) -> str | None:
    if gate is not None:
        return "Without in-place operations at the start of a segment: " + gate
    if not isinstance(record, dict):
        return "The check's evidence is malformed."
    n_blocks, segment_size, in_place, _ = CASES[name]
    where = _where(name)
    fix = ("The replay must start from the segment's input as it was *before* the segment ran, and from a "
           "tensor that the segment's in-place operations are allowed to modify; or detect the overwrite and "
           "raise in backward, before the replay.")
    if "error" in record:
        if record.get("error_phase") == "forward":
            return None  # caught when it happened
        overwritten = {i for start in range(0, n_blocks, segment_size) if start in in_place
                       for i in range(start, min(start + segment_size, n_blocks))}
        log = record.get("log") if isinstance(record.get("log"), list) else []
        if not any(isinstance(e, list) and len(e) == 2 and e[0] == "backward" and e[1] in overwritten for e in log):
            return None  # raised in backward before replaying an overwritten checkpoint
        return with_hint(f"Your function raised {where} while replaying a segment whose checkpoint had been "
                         f"overwritten: {_first_part(record['error'])}\nThat error does not come from a check "
                         "of yours: the replay started from a tensor the segment modifies in place (the overwritten "
                         "input itself, or a leaf that requires grad, which autograd forbids modifying in place) and "
                         "failed on autograd's leaf rule; a replay that starts from the overwritten input without "
                         "that rule (as with ctx.needs_input_grad) runs silently.", fix)
    error = _relative_error(record, name, inputs)
    if error is None or error > 1e-10:
        return with_hint(f"The output or gradients {where} differ from plain backprop's"
                         + (f" (relative error {error:.2g})" if error is not None else "")
                         + ": the replay started from the checkpoint after the in-place LeakyReLU had "
                         "overwritten it, so it applied LeakyReLU twice. A copy made after the segment ran, a "
                         "detach() (it shares memory) or a _version recorded after the segment ran does not "
                         "see it.", fix)
    return _checkpoints(record, name)


def judge_inplace(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part, with plain backprop recomputed here on the inputs drawn from ``seed``."""
    if not isinstance(evidence, dict) or set(evidence) != set(CASES):
        raise AssertionError("The check's evidence is malformed (it does not list every case).")
    inputs = inputs_inplace(seed=seed)
    gate = next((verdict for name in GATE
                 if (verdict := _judge_harmless(evidence[name], name, inputs[name])) is not None), None)
    return {IN_PLACE_DATA: _judge_overwritten(evidence["data"], "data", inputs["data"], gate),
            IN_PLACE_EVERY: _judge_overwritten(evidence["every"], "every", inputs["every"], gate)}


IN_PLACE = Exercise(
    "checkpointed_forward_inplace: an overwritten checkpoint", needs=("checkpointed_forward_inplace",),
    parts=(Part(IN_PLACE_DATA, 2), Part(IN_PLACE_EVERY, 1)),
    probe=probe_inplace, judge=judge_inplace, forbidden=("torch.utils.checkpoint",), inputs=inputs_inplace)
