"""The first graded exercise, ``checkpointed_forward``: its probe (student's kernel) and judge (grader's process).

The probe runs the student's function on small double-precision networks whose blocks note every call
(segment sizes that divide the depth, that do not, that exceed it, and 1; inputs with and without
``requires_grad``), forward and backward inside the memory tracker, and once through ``torch.autograd.grad``
(:mod:`.checkpoint_case`), on the inputs :func:`inputs_checkpointing` draws from the seed where the seed is (the
probe is sent the inputs, never the seed). The judge draws the same inputs, runs plain backprop itself and
compares, part by part: an implementation that gets the gradients right but stores every activation, keeps its
replays alive during backward, or recomputes a segment twice earns some of the points; one whose own
``torch.autograd.Function`` never ran (a plain forward, an identity, a constant) earns none.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..budget import one_thread
from ..checking import describe, fail, require_parameters, with_hint
from ..exercises import Exercise, Part
from .checkpoint_case import (
    SIGNATURE,
    difference,
    measured,
    probe_case,
    ran_in_your_function,
    replayed_in_your_backward,
    run_backward,
    run_forward,
    where,
)
from .checkpoint_judges import judge_gradients, judge_memory, judge_peak, judge_recomputation, reference
from .probe_inputs import Budget, Watch, custom_functions, draw_case, fresh_input, make_blocks

# (blocks, segment_size, x.requires_grad): divisors, non-divisors, a size beyond the depth, size 1, a data batch
CASES = ((12, 4, True), (12, 5, True), (7, 3, True), (5, 8, True), (6, 1, True), (6, 2, False))
GRAD_CASE = (12, 4)  # the case run through torch.autograd.grad

GRADIENTS = "output and gradients equal plain backprop"
MEMORY = "memory after forward (only segment inputs kept)"
PEAK = "peak during backward (one segment replayed at a time)"
RECOMPUTATION = "each segment recomputed once, last segment first"
NO_INPUT_GRAD = "parameters get gradients when the input does not require grad"
AUTOGRAD_GRAD = "one gradient per argument (works with torch.autograd.grad)"


# ----------------------------------------------------------------------------- inputs (where the seed is)

def inputs_checkpointing(*, seed: int) -> dict:
    """The inputs of every case of ``CASES`` and of the torch.autograd.grad case (about 80 KB of JSON)."""
    return {"cases": [draw_case(seed, f"checkpointing case {i}") for i in range(len(CASES))],
            "autograd_grad": draw_case(seed, "checkpointing autograd.grad")}


# ----------------------------------------------------------------------------- probe (student's kernel)

def _probe_autograd_grad(fn: Callable, budget: Budget, case: dict) -> dict:
    n_blocks, segment_size = GRAD_CASE
    watch = Watch()
    blocks, x = make_blocks(n_blocks, case["init"], watch.note), fresh_input(case, True)
    record: dict[str, Any] = {"log": watch.log}
    try:
        with torch.enable_grad():
            out = run_forward(fn, budget, blocks, x, segment_size)
            record.update(functions=custom_functions(out), output_requires_grad=bool(out.requires_grad))
            if out.requires_grad:
                watch.phase = "backward"
                grads = run_backward(fn, budget, lambda: torch.autograd.grad(
                    out.pow(2).sum(), [x, *blocks.parameters()], allow_unused=True))
                record.update(grads=list(grads), filled=sum(t.grad is not None for t in [x, *blocks.parameters()]))
    except AssertionError as error:
        record["error"] = str(error)
    except Exception as error:  # what the function returned broke the measurement
        record["error"] = f"The check could not use what {describe(fn)} returned ({type(error).__name__}: {error})."
    return record


def probe_checkpointing(fn: Callable, *, inputs: dict) -> dict:
    """Evidence of ``checkpointed_forward`` on every case of ``CASES`` and one torch.autograd.grad call."""
    require_parameters(fn, ["blocks", "x", "segment_size"], SIGNATURE)
    budget = Budget()
    with one_thread():
        cases = [probe_case(fn, budget, n, k, grad, case) for (n, k, grad), case in zip(CASES, inputs["cases"])]
        if all("error" in case for case in cases):
            fail(cases[0]["error"])  # nothing measured at all (e.g. not implemented yet)
        return {"cases": cases, "autograd_grad": _probe_autograd_grad(fn, budget, inputs["autograd_grad"])}


# ----------------------------------------------------------------------------- judge (grader's process)

def _judge_autograd_grad(evidence: dict, inputs: dict) -> str | None:
    n_blocks, segment_size = GRAD_CASE
    place = where(n_blocks, segment_size)
    problem = (measured(evidence) or ran_in_your_function(evidence, place)
               or replayed_in_your_backward(evidence, place))
    if problem:
        return f"torch.autograd.grad(loss, [x, *parameters]) through your function: {problem}"
    _, grads, x_grad = reference(n_blocks, True, inputs)
    found = evidence.get("grads")
    if not isinstance(found, list) or len(found) != len(grads) + 1:
        return "The check could not read the gradients torch.autograd.grad returned."
    none = sum(grad is None for grad in found[1:])
    bad = [i for i, (grad, expected) in enumerate(zip(found, [x_grad, *grads]))
           if grad is not None and difference(grad, expected) > 1e-10]
    if not (none or found[0] is None or bad):
        return None
    filled = evidence.get("filled")
    side_effect = isinstance(filled, int) and not isinstance(filled, bool) and filled > 0
    return with_hint(
        f"torch.autograd.grad(loss, [x, *parameters]) through your function returned None for {none} of "
        f"{len(grads)} parameters" + (" and for x" if found[0] is None else "")
        + (f", and {len(bad)} gradient(s) that differ from plain backprop's" if bad else "")
        + (f"; instead, {filled} .grad attribute(s) were filled, which torch.autograd.grad never does"
           if side_effect else "") + ".",
        ("Return the gradient with respect to the segment input x from backward (not None): autograd passes it "
         "on to the segment before, and torch.autograd.grad returns it for x." if found[0] is None and not none
         else "") or
        "torch.autograd.grad only sees what backward returns: return one gradient per argument of forward "
        "(None for the non-tensor ones), the input's and every parameter's"
        + ("; a parameter gets one only if it is an argument of apply (Exercise 1's Hint 3, the parameter trap)."
           if none else ".")
        + (" Calling backward() inside backward fills .grad as a side effect instead, which loss.backward() hides."
           if side_effect else ""))


def judge_checkpointing(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part from the probe's evidence, with plain backprop recomputed here on the inputs drawn from
    ``seed``."""
    cases = evidence.get("cases") if isinstance(evidence, dict) else None
    if not isinstance(cases, list) or len(cases) != len(CASES) or not all(isinstance(c, dict) for c in cases):
        raise AssertionError("The check's evidence is malformed (it does not list every case).")
    inputs = inputs_checkpointing(seed=seed)
    with_grad = [(n, k, s, case) for (n, k, grad), s, case in zip(CASES, inputs["cases"], cases) if grad]
    without = [(n, k, s, case) for (n, k, grad), s, case in zip(CASES, inputs["cases"], cases) if not grad]
    autograd_grad = evidence.get("autograd_grad")
    with one_thread():
        return _verdicts(with_grad, without, autograd_grad, inputs["autograd_grad"])


def _verdicts(with_grad: list, without: list, autograd_grad: Any, grad_inputs: dict) -> dict[str, str | None]:
    def first(messages: Any) -> str | None:
        return next((m for m in messages if m is not None), None)

    return {
        GRADIENTS: first(judge_gradients(case, n, k, True, s) for n, k, s, case in with_grad),
        MEMORY: first(judge_memory(case, n, k) for n, k, _, case in with_grad),
        PEAK: first(judge_peak(case, n, k, s) for n, k, s, case in with_grad),
        RECOMPUTATION: first(judge_recomputation(case, n, k) for n, k, _, case in with_grad),
        NO_INPUT_GRAD: first(judge_gradients(case, n, k, False, s) for n, k, s, case in without),
        AUTOGRAD_GRAD: (_judge_autograd_grad(autograd_grad, grad_inputs)
                        if isinstance(autograd_grad, dict) else "The check could not read the torch.autograd.grad "
                        "measurement."),
    }


CHECKPOINTING = Exercise(
    "checkpointed_forward: checkpointing from scratch", needs=("checkpointed_forward",),
    parts=(Part(GRADIENTS, 4), Part(MEMORY, 1), Part(PEAK, 1), Part(RECOMPUTATION, 2), Part(NO_INPUT_GRAD, 1),
           Part(AUTOGRAD_GRAD, 1)),
    probe=probe_checkpointing, judge=judge_checkpointing, forbidden=("torch.utils.checkpoint",),
    inputs=inputs_checkpointing)
