"""The optional (ungraded) exercise, ``checkpointed_forward_rng``: checkpointing that replays dropout exactly.

The gradients must be those of the network that produced the output, dropout masks included (the notebook asks
what a replay does to them, and why). The probe runs the student's function on blocks with dropout from a seeded
random state and records the output, the gradients, the next random numbers the caller gets and where the blocks
ran; the judge runs plain backprop from the same state and compares. Both parts ask first whether the student's
own Function ran (and, for the random numbers, replayed the blocks in its backward): a plain forward keeps the
masks and the generator as they are, without any checkpointing. Only the CPU generator is used (a GPU has its own,
``torch.cuda.get_rng_state``).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..budget import one_thread
from ..checking import describe, fail, require_parameters, with_hint
from ..exercises import Exercise, Part, sub_seed
from ..runtime import seeded
from .checkpoint_case import (
    close,
    difference,
    measured,
    probe_case,
    ran_in_your_function,
    replayed_in_your_backward,
    run_backward,
    run_forward,
)
from .checkpoint_judges import judge_gradients, judge_memory, judge_peak, judge_recomputation
from .probe_inputs import Budget, Watch, custom_functions, draw_case, fresh_input, make_blocks

_SIGNATURE = "checkpointed_forward_rng(blocks, x, segment_size) -> Tensor"
RNG_CASES = ((6, 2), (7, 3))  # (blocks with dropout, segment_size)
STILL_CASE = (12, 5)  # blocks without dropout: gradients, memory and recomputation as in the first exercise

DROPOUT_GRADIENTS = "dropout gradients equal plain backprop"
RNG_LEFT_ALONE = "the caller's random numbers continue as after plain backprop"
STILL_CHECKPOINTING = "still checkpoints (gradients, memory, recomputation)"


def inputs_dropout(*, seed: int) -> dict:
    """Each case's blocks and input (:func:`.probe_inputs.draw_case`); a dropout case's ``rng`` also seeds the random
    state its forward pass starts from. About 40 KB of JSON."""
    return {"cases": [{**draw_case(seed, f"dropout case {i}"), "rng": sub_seed(seed, f"dropout case {i}: rng")}
                      for i in range(len(RNG_CASES))],
            "still": draw_case(seed, "dropout still")}


def _probe_rng_case(fn: Callable, budget: Budget, n_blocks: int, segment_size: int, case: dict) -> dict:
    watch = Watch()
    blocks, x = make_blocks(n_blocks, case["init"], watch.note, dropout=True), fresh_input(case, True)
    record: dict[str, Any] = {"log": watch.log}
    try:
        with torch.enable_grad(), seeded(case["rng"]):  # the student's own random state is given back afterwards
            out = run_forward(fn, budget, blocks, x, segment_size)
            record.update(output=out.detach().to("cpu", torch.float64).clone(), functions=custom_functions(out),
                          output_requires_grad=bool(out.requires_grad))
            if out.requires_grad:
                watch.phase = "backward"
                run_backward(fn, budget, lambda: out.pow(2).sum().backward())
            record["next_random"] = torch.rand(4, dtype=torch.float64)
        record.update(x_grad=x.grad, param_grads=[p.grad for p in blocks.parameters()])
    except AssertionError as error:
        record["error"] = str(error)
    except Exception as error:  # what the function returned broke the measurement
        record["error"] = f"The check could not use what {describe(fn)} returned ({type(error).__name__}: {error})."
    return record


def probe_dropout(fn: Callable, *, inputs: dict) -> dict:
    """Evidence of ``checkpointed_forward_rng`` on blocks with dropout, from a seeded random state."""
    require_parameters(fn, ["blocks", "x", "segment_size"], _SIGNATURE)
    budget = Budget()
    n_blocks, segment_size = STILL_CASE
    with one_thread():
        cases = [_probe_rng_case(fn, budget, n, k, case) for (n, k), case in zip(RNG_CASES, inputs["cases"])]
        if all("error" in case for case in cases):
            fail(cases[0]["error"])
        return {"cases": cases, "still": probe_case(fn, budget, n_blocks, segment_size, True, inputs["still"])}


def _reference(n_blocks: int, inputs: dict) -> tuple[torch.Tensor, list, torch.Tensor, torch.Tensor]:
    """Plain backprop from the probe's random state: output, parameter gradients, input gradient, next randoms."""
    blocks, x = make_blocks(n_blocks, inputs["init"], dropout=True), fresh_input(inputs, True)
    with seeded(inputs["rng"]):
        h = blocks(x)
        h.pow(2).sum().backward()
        next_random = torch.rand(4, dtype=torch.float64)
    return h.detach(), [p.grad for p in blocks.parameters()], x.grad, next_random


def _judge_dropout_case(case: dict, n_blocks: int, segment_size: int, inputs: dict) -> tuple[str | None, str | None]:
    """(gradient verdict, random-state verdict) of one case."""
    place = f"(n={n_blocks} blocks with dropout, segment_size={segment_size})"
    problem = measured(case) or ran_in_your_function(case, place) or replayed_in_your_backward(case, place)
    if problem:  # without a replay of the student's own, neither the masks nor the generator tell anything
        return problem, problem
    out, grads, x_grad, next_random = _reference(n_blocks, inputs)
    gradients = None
    diff = close(case.get("output"), out)
    found = case.get("param_grads")
    if diff is None or diff > 1e-10:
        gradients = with_hint(f"The output {place} differs from plain backprop's from the same random state.",
                              "The forward pass must draw the random numbers plain backprop draws: run every block "
                              "once, in order, and do not draw random numbers yourself.")
    elif not isinstance(found, list) or len(found) != len(grads) or any(g is None for g in found):
        gradients = with_hint(f"Some parameters got no gradient {place}.",
                              "Start from your checkpointed_forward of exercise 1, which passes check_checkpointing.")
    else:
        worst = max(difference(g, e) for g, e in zip([case.get("x_grad"), *found], [x_grad, *grads]))
        if worst > 1e-10:
            gradients = with_hint(
                f"The gradients {place} differ from plain backprop's by up to {worst:.3g} (should be below 1e-10): "
                "the replay drew other dropout masks than the forward pass.",
                "The replay must start from the random state the segment's forward pass started from, or "
                "dropout draws other masks.")
    state = close(case.get("next_random"), next_random)
    rng = None if state is not None and state == 0.0 else with_hint(
        f"After backward {place}, the next random numbers differ from those after plain backprop: your replay "
        "moved the caller's random generator.",
        "The segment's saved random state must be current during the replay only: when backward returns, "
        "the generator must be where it was when backward began. Otherwise it ends where an early segment's "
        "forward left it, and later dropout masks repeat earlier ones.")
    return gradients, rng


def judge_dropout(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part, with plain backprop from the same inputs and random state (drawn from ``seed``) recomputed
    here."""
    cases = evidence.get("cases") if isinstance(evidence, dict) else None
    still = evidence.get("still") if isinstance(evidence, dict) else None
    if not isinstance(cases, list) or len(cases) != len(RNG_CASES) or not all(isinstance(c, dict) for c in cases) \
            or not isinstance(still, dict):
        raise AssertionError("The check's evidence is malformed (it does not list every case).")
    with one_thread():
        return _verdicts(cases, still, inputs_dropout(seed=seed))


def _verdicts(cases: list, still: dict, inputs: dict) -> dict[str, str | None]:
    verdicts = [_judge_dropout_case(case, n, k, case_inputs)
                for (n, k), case, case_inputs in zip(RNG_CASES, cases, inputs["cases"])]
    n_blocks, segment_size = STILL_CASE
    still_inputs = inputs["still"]
    still_messages = (check() for check in (
        lambda: judge_gradients(still, n_blocks, segment_size, True, still_inputs),
        lambda: judge_memory(still, n_blocks, segment_size),
        lambda: judge_peak(still, n_blocks, segment_size, still_inputs),
        lambda: judge_recomputation(still, n_blocks, segment_size)))
    return {
        DROPOUT_GRADIENTS: next((g for g, _ in verdicts if g is not None), None),
        RNG_LEFT_ALONE: next((r for _, r in verdicts if r is not None), None),
        STILL_CHECKPOINTING: next((m for m in still_messages if m is not None), None),
    }


DROPOUT = Exercise(
    "checkpointed_forward_rng: dropout replayed exactly", needs=("checkpointed_forward_rng",),
    parts=(Part(DROPOUT_GRADIENTS, 2), Part(RNG_LEFT_ALONE, 1), Part(STILL_CHECKPOINTING, 1)),
    probe=probe_dropout, judge=judge_dropout, forbidden=("torch.utils.checkpoint",), inputs=inputs_dropout)
