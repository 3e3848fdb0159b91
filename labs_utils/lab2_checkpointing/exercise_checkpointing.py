"""The first graded exercise, ``checkpointed_forward``: its probe (student's kernel) and judge (grader's process).

The probe runs the student's function on small double-precision
networks whose blocks log every call (segment sizes that divide the depth, that do not, that exceed it,
and 1; inputs with and without ``requires_grad``). The probe records what it measured: outputs and
gradients, the bytes still alive after the forward pass (live tensor storages, so activations hidden on
``ctx`` attributes count too), the order of the block calls, and what ``torch.autograd.grad`` returns.
The judge rebuilds the same blocks and inputs from the seed, runs plain backprop itself and compares,
part by part, so an implementation that gets the gradients right but stores every activation, or
recomputes a segment twice, earns some of the points.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from ..checking import call_student, describe, fail, max_abs_diff, require_parameters, with_hint
from ..exercises import Exercise, Part
from ..runtime import seeded
from .tracker import track_memory

_WIDTH = 16
_BATCH = 8
_SIGNATURE = "checkpointed_forward(blocks, x, segment_size) -> Tensor"
_ACTIVATION = _BATCH * _WIDTH * 8  # bytes of one float64 (batch, width) activation
# (blocks, segment_size, x.requires_grad): divisors, non-divisors, a size beyond the depth, size 1, a data batch
CASES = ((12, 4, True), (12, 5, True), (7, 3, True), (5, 8, True), (6, 1, True), (6, 2, False))
GRAD_CASE = (12, 4)  # the case run through torch.autograd.grad

GRADIENTS = "output and gradients equal plain backprop"
MEMORY = "memory after forward (only segment inputs kept)"
RECOMPUTATION = "each segment recomputed once, last segment first"
NO_INPUT_GRAD = "parameters get gradients when the input does not require grad"
AUTOGRAD_GRAD = "one gradient per argument (works with torch.autograd.grad)"


class _LoggedBlock(nn.Module):
    """Linear + tanh that appends [phase, index, grad enabled] to a shared log on every call."""

    def __init__(self, index: int, log: list, phase: list) -> None:
        super().__init__()
        self.index, self.log, self.phase = index, log, phase
        self.linear = nn.Linear(_WIDTH, _WIDTH, dtype=torch.float64)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        self.log.append([self.phase[0], self.index, torch.is_grad_enabled()])
        return torch.tanh(self.linear(h))


def _case_seed(seed: int, index: int) -> int:
    return (seed * 7919 + 104_729 * (index + 1)) % 2**31


def _logged_blocks(n_blocks: int, seed: int) -> tuple[nn.Sequential, list, list]:
    log: list = []
    phase = ["forward"]
    with seeded(seed):  # the student's random numbers stay as they were
        blocks = nn.Sequential(*(_LoggedBlock(i, log, phase) for i in range(n_blocks)))
    return blocks, log, phase


def _input(seed: int, requires_grad: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(_BATCH, _WIDTH, dtype=torch.float64, generator=generator).requires_grad_(requires_grad)


def _custom_functions(out: torch.Tensor) -> list[str]:
    """Names of the torch.autograd.Function classes whose backward nodes are in the graph of ``out``."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack and len(seen) < 10_000:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, torch.autograd.function.BackwardCFunction):  # the node class is "<Function>Backward"
            found.append(type(node).__name__.removesuffix("Backward"))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


def _run(fn: Callable, blocks: nn.Sequential, x: torch.Tensor, segment_size: int) -> torch.Tensor:
    out = call_student(fn, blocks, x, segment_size, what=f"{describe(fn)}(blocks, x, segment_size={segment_size})")
    if not isinstance(out, torch.Tensor):
        fail(f"{describe(fn)} returned {type(out).__name__}, expected the output tensor of the last block.",
             f"The exercise asks for {_SIGNATURE}.")
    return out


def _backward(fn: Callable, run: Callable[[], Any]) -> Any:
    """Run a backward pass through the student's Function; name the likely cause of the usual error."""
    try:
        return call_student(run, what=f"backward through {describe(fn)}")
    except AssertionError as error:
        if "does not require grad" not in str(error):
            raise
        raise AssertionError(f"{error}\nLikely cause: backward runs with grad disabled, so the recomputed "
                             "segment built no graph. Recompute it under torch.enable_grad(), from "
                             "x.detach().requires_grad_(True).") from None


# ----------------------------------------------------------------------------- probe (student's kernel)

def _probe_case(fn: Callable, n_blocks: int, segment_size: int, requires_grad: bool, seed: int) -> dict:
    blocks, log, phase = _logged_blocks(n_blocks, seed)
    record: dict[str, Any] = {"log": log}
    try:
        with track_memory("cpu") as tracker:
            x = _input(seed, requires_grad)  # made inside the tracker: the input counts, like a checkpoint
            out = _run(fn, blocks, x, segment_size)
        record.update(held_bytes=int(tracker.report().timeline[-1]), output=out.detach().clone(),
                      output_requires_grad=bool(out.requires_grad), functions=_custom_functions(out))
    except AssertionError as error:
        record["error"] = str(error)
        return record
    try:
        if out.requires_grad:
            phase[0] = "backward"
            _backward(fn, lambda: out.pow(2).sum().backward())
        record.update(x_grad=x.grad, param_grads=[p.grad for p in blocks.parameters()])
    except AssertionError as error:
        record["backward_error"] = str(error)  # the memory after forward was measured all the same
    return record


def _probe_autograd_grad(fn: Callable, seed: int) -> dict:
    n_blocks, segment_size = GRAD_CASE
    blocks, _, _ = _logged_blocks(n_blocks, seed)
    x = _input(seed, True)
    try:
        out = _run(fn, blocks, x, segment_size)
        if not out.requires_grad:
            return {"error": "the output does not require grad."}
        grads = _backward(fn, lambda: torch.autograd.grad(out.pow(2).sum(), [x, *blocks.parameters()],
                                                          allow_unused=True))
        return {"grads": list(grads)}
    except AssertionError as error:
        return {"error": str(error)}


def probe_checkpointing(fn: Callable, *, seed: int) -> dict:
    """Evidence of ``checkpointed_forward`` on every case of ``CASES`` and one torch.autograd.grad call."""
    require_parameters(fn, ["blocks", "x", "segment_size"], _SIGNATURE)
    cases = [_probe_case(fn, n, k, grad, _case_seed(seed, i)) for i, (n, k, grad) in enumerate(CASES)]
    if all("error" in case for case in cases):
        fail(cases[0]["error"])  # nothing measured at all (e.g. not implemented yet)
    return {"cases": cases, "autograd_grad": _probe_autograd_grad(fn, _case_seed(seed, len(CASES)))}


# ----------------------------------------------------------------------------- judge (grader's process)

def _reference(n_blocks: int, requires_grad: bool, seed: int) -> tuple[torch.Tensor, list, torch.Tensor | None]:
    """Plain backprop on the probe's blocks and input: output, parameter gradients, input gradient."""
    blocks, _, _ = _logged_blocks(n_blocks, seed)
    x = _input(seed, requires_grad)
    h = x
    for block in blocks:
        h = block(h)
    h.pow(2).sum().backward()
    return h.detach(), [p.grad for p in blocks.parameters()], x.grad


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Block indices (from 0) as runs of consecutive blocks (first, last)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(a, b) for a, b in runs]


def _segments_text(indices: list[int]) -> str:
    """Block indices (from 0) as runs of blocks counted from 1, e.g. '[9–12], [5–8]'."""
    return ", ".join(f"[{a + 1}\u2013{b + 1}]" if a != b else f"[{a + 1}]" for a, b in _runs(indices)) or "none"


def _close(actual: Any, expected: torch.Tensor) -> float | None:
    """Max |difference|, or None when ``actual`` is no finite tensor of the expected shape."""
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape or not torch.isfinite(actual).all():
        return None
    return max_abs_diff(actual, expected)


def _difference(actual: Any, expected: torch.Tensor) -> float:
    """Max |difference|, infinite when ``actual`` is no finite tensor of the expected shape."""
    diff = _close(actual, expected)
    return float("inf") if diff is None else diff


def _missing_hint(missing: list[int], n_blocks: int, segment_size: int) -> str:
    last_segment = set(range(((n_blocks - 1) // segment_size) * segment_size, n_blocks))
    if missing and set(range(n_blocks)) - set(missing) == last_segment:
        return ("Only the last segment's parameters got gradients, so the gradient stops at a segment boundary: "
                "do not detach a segment's input before passing it to apply (detach it inside backward, before "
                "the recomputation), and return the gradient of the segment input from backward.")
    return ("Pass each segment's parameters to YourFunction.apply(segment, x, *parameters) and return their "
            "gradients from backward, one per argument of forward, e.g. from torch.autograd.grad(output, "
            "(x, *params), grad_output).")


def _judge_gradients(case: dict, n_blocks: int, segment_size: int, requires_grad: bool, seed: int) -> str | None:
    where = f"(n={n_blocks} blocks, segment_size={segment_size}, x.requires_grad={requires_grad})"
    if "error" in case or "backward_error" in case:
        return str(case.get("error", case.get("backward_error")))
    out, grads, x_grad = _reference(n_blocks, requires_grad, seed)
    diff = _close(case.get("output"), out)
    if diff is None or diff > 1e-10:
        return with_hint(f"The output {where} differs from plain backprop's"
                        + (f" by up to {diff:.3g} (should be below 1e-10)." if diff is not None else "."),
                        "The segments must run every block once, in order, and return the last block's output.")
    if not case.get("output_requires_grad"):
        hint = ("Pass the parameters of each segment to YourFunction.apply(...) as inputs too: a Function's output "
                "requires grad only if one of its tensor inputs does (torch's reentrant checkpoint has the same "
                "flaw)." if not requires_grad else
                "Run the segments inside a torch.autograd.Function whose inputs are the segment input x and the "
                "segment's parameters.")
        return with_hint(f"The output {where} does not require grad, so no gradient can reach the parameters.", hint)
    found = case.get("param_grads")
    if not isinstance(found, list) or len(found) != len(grads):
        return f"The check could not read the parameter gradients {where}."
    missing = sorted({i // 2 for i, grad in enumerate(found) if grad is None})
    if missing:
        return with_hint(f"Parameters of blocks {_segments_text(missing)} (counted from 1) got no gradient {where}.",
                        _missing_hint(missing, n_blocks, segment_size))
    for i, (grad, expected) in enumerate(zip(found, grads)):
        diff = _close(grad, expected)
        if diff is None or diff > 1e-10:
            what = "weight" if i % 2 == 0 else "bias"
            return with_hint(f"The gradient of the {what} of block {i // 2 + 1} {where} differs from plain "
                            "backprop's" + (f" by up to {diff:.3g} (should be below 1e-10)." if diff is not None
                                            else "."),
                            "Recompute the segment from its saved input with grad enabled, then backpropagate "
                            "grad_output through it.")
    if requires_grad:
        diff = _close(case.get("x_grad"), x_grad)
        if case.get("x_grad") is None:
            return with_hint(f"x.grad is None {where}: the input gets no gradient.",
                            "Return the gradient with respect to the segment input from backward.")
        if diff is None or diff > 1e-10:
            return f"The gradient of the input x {where} differs from plain backprop's."
    elif case.get("x_grad") is not None:
        return f"x.grad was set although x.requires_grad is False {where}."
    return None


def _judge_memory(case: dict, n_blocks: int, segment_size: int) -> str | None:
    where = f"(n={n_blocks} blocks, segment_size={segment_size})"
    if "error" in case:
        return str(case["error"])
    functions = case.get("functions")
    if not isinstance(functions, list) or not functions or not case.get("output_requires_grad"):
        return with_hint(f"The graph of the output {where} contains no torch.autograd.Function that could "
                        "backpropagate, so its memory does not count.",
                        "Wrap each segment in a torch.autograd.Function whose forward runs under torch.no_grad() "
                        "and whose backward recomputes it, for every segment_size (also one that does not divide "
                        "the number of blocks, or exceeds it), not with torch.utils.checkpoint: the exercise is to "
                        "write it.")
    if "CheckpointFunction" in functions:
        return with_hint("Your output was made by torch.utils.checkpoint.", "Write your own torch.autograd.Function.")
    held = case.get("held_bytes")
    if isinstance(held, bool) or not isinstance(held, (int, float)):
        return "The check could not read the memory measurement."
    n_segments = math.ceil(n_blocks / segment_size)
    if held > (n_segments + 1) * _ACTIVATION:
        graph_built = any(isinstance(e, list) and len(e) == 3 and e[0] == "forward" and e[2] is True
                          for e in case.get("log", []))
        return with_hint(
            f"After the forward pass {held / _ACTIVATION:.1f} activations are still alive {where}, the input "
            f"included; checkpointing keeps the {n_segments} segment input(s) (the input is the first) and the "
            f"output: at most {n_segments + 1} (plain backprop keeps {n_blocks + 1}: the input and every block's "
            "output).",
            "Run each segment under torch.no_grad() in forward " + ("(your blocks ran with grad enabled) "
            if graph_built else "") + "and keep only its input (ctx.save_for_backward(x)); do not keep "
            "intermediate activations, not even on ctx attributes.")
    return None


def _judge_recomputation(case: dict, n_blocks: int, segment_size: int) -> str | None:
    where = f"(n={n_blocks} blocks, segment_size={segment_size})"
    if "error" in case:
        return str(case["error"])
    if "backward_error" in case:
        return str(case["backward_error"])
    log = case.get("log")
    if not isinstance(log, list) or not all(isinstance(e, list) and len(e) == 3 for e in log):
        return "The check could not read the log of block calls."
    forward = [e[1] for e in log if e[0] == "forward"]
    backward = [e[1] for e in log if e[0] == "backward"]
    if forward != list(range(n_blocks)):
        return with_hint(f"In the forward pass the blocks ran as {_segments_text(forward)} (counted from 1) {where}; "
                        f"expected each block once, in order: [1\u2013{n_blocks}].",
                        "Loop over the segments once: blocks[start:start + segment_size] for start = 0, "
                        "segment_size, 2 * segment_size, ...")
    starts = range(0, n_blocks, segment_size)
    expected = [i for start in reversed(starts) for i in range(start, min(start + segment_size, n_blocks))]
    if backward != expected:
        if not backward:
            return with_hint(f"No block was recomputed during backward {where}.",
                            "Every segment, also when segment_size does not divide the number of blocks, must run "
                            "inside your Function, whose backward recomputes it.")
        found = [b - a + 1 for a, b in _runs(backward)]
        wanted = [b - a + 1 for a, b in _runs(expected)]
        twice = sorted({i + 1 for i in backward if backward.count(i) > 1})
        return with_hint(
            f"During backward the blocks were recomputed as {_segments_text(backward)} (counted from 1) {where}: "
            f"{len(found)} segment(s) of {', '.join(map(str, found))} blocks. Expected each segment once, the last "
            f"first: {_segments_text(expected)}, {len(wanted)} segment(s) of {', '.join(map(str, wanted))} blocks"
            + (f". Blocks {twice} were recomputed more than once." if twice else "."),
            "Segments are blocks[start:start + segment_size]: ceil(n / segment_size) of them, all of "
            "segment_size blocks but the last, which may be shorter. Backward recomputes only its own segment, "
            "once, from its saved input.")
    if not all(e[2] is True for e in log if e[0] == "backward"):
        return with_hint(f"Some blocks were recomputed with grad disabled {where}.",
                        "Recompute under torch.enable_grad().")
    return None


def _judge_autograd_grad(evidence: dict, seed: int) -> str | None:
    if "error" in evidence:
        return f"torch.autograd.grad(loss, [x, *parameters]) through your function failed: {evidence['error']}"
    n_blocks, _ = GRAD_CASE
    out, grads, x_grad = _reference(n_blocks, True, seed)
    found = evidence.get("grads")
    if not isinstance(found, list) or len(found) != len(grads) + 1:
        return "The check could not read the gradients torch.autograd.grad returned."
    none = sum(grad is None for grad in found[1:])
    bad = [i for i, (grad, expected) in enumerate(zip(found, [x_grad, *grads]))
           if grad is not None and _difference(grad, expected) > 1e-10]
    if none or found[0] is None or bad:
        return with_hint(
            f"torch.autograd.grad(loss, [x, *parameters]) through your function returned None for {none} of "
            f"{len(grads)} parameters" + (" and for x" if found[0] is None else "")
            + (f", and {len(bad)} gradient(s) that differ from plain backprop's" if bad else "") + ".",
            "torch.autograd.grad only sees what backward returns: return one gradient per argument of forward "
            "(None for the non-tensor ones), the input's and every parameter's, e.g. from torch.autograd.grad("
            "output, (x, *params), grad_output). Calling backward() inside backward fills .grad as a side effect "
            "instead, which loss.backward() hides and torch.autograd.grad does not see.")
    return None


def judge_checkpointing(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part from the probe's evidence, with plain backprop recomputed here from ``seed``."""
    cases = evidence["cases"] if isinstance(evidence, dict) else None
    if not isinstance(cases, list) or len(cases) != len(CASES) or not all(isinstance(c, dict) for c in cases):
        raise AssertionError("The check's evidence is malformed (it does not list every case).")
    seeds = [_case_seed(seed, i) for i in range(len(CASES))]

    def first(messages: list) -> str | None:
        return next((m for m in messages if m is not None), None)

    with_grad = [(c, s, case) for c, s, case in zip(CASES, seeds, cases) if c[2]]
    without = [(c, s, case) for c, s, case in zip(CASES, seeds, cases) if not c[2]]
    autograd_grad = evidence.get("autograd_grad")
    return {
        GRADIENTS: first([_judge_gradients(case, n, k, g, s) for (n, k, g), s, case in with_grad]),
        MEMORY: first([_judge_memory(case, n, k) for (n, k, _), _s, case in with_grad]),
        RECOMPUTATION: first([_judge_recomputation(case, n, k) for (n, k, _), _s, case in with_grad]),
        NO_INPUT_GRAD: first([_judge_gradients(case, n, k, g, s) for (n, k, g), s, case in without]),
        AUTOGRAD_GRAD: (_judge_autograd_grad(autograd_grad, _case_seed(seed, len(CASES)))
                        if isinstance(autograd_grad, dict) else "The check could not read the torch.autograd.grad "
                        "measurement."),
    }


CHECKPOINTING = Exercise(
    "checkpointed_forward: checkpointing from scratch", needs=("checkpointed_forward",),
    parts=(Part(GRADIENTS, 4), Part(MEMORY, 2), Part(RECOMPUTATION, 2), Part(NO_INPUT_GRAD, 1),
           Part(AUTOGRAD_GRAD, 1)),
    probe=probe_checkpointing, judge=judge_checkpointing, forbidden=("torch.utils.checkpoint",))
