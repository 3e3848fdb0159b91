"""The second graded exercise, ``checkpointed_forward_rng``: checkpointing that replays dropout exactly.

A replay calls the random generator again, so unless the segment's random state is saved in forward and
restored for the replay, dropout draws other masks and the gradients belong to another network. The probe
runs the student's function on blocks with dropout from a seeded random state and records the output, the
gradients and the next random numbers the caller gets; the judge runs plain backprop from the same state
(what ``torch.utils.checkpoint`` with ``preserve_rng_state=True`` reproduces) and compares. Only the CPU
generator is used (a GPU has its own, ``torch.cuda.get_rng_state``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..checking import fail, require_parameters, with_hint
from ..exercises import Exercise, Part
from ..runtime import seeded
from .exercise_checkpointing import (
    _WIDTH,
    _backward,
    _case_seed,
    _close,
    _difference,
    _input,
    _judge_gradients,
    _judge_memory,
    _judge_recomputation,
    _probe_case,
    _run,
)

_SIGNATURE = "checkpointed_forward_rng(blocks, x, segment_size) -> Tensor"
RNG_CASES = ((6, 2), (7, 3))  # (blocks with dropout, segment_size)
STILL_CASE = (12, 5)  # logged blocks without dropout: memory and recomputation as in the first exercise

DROPOUT_GRADIENTS = "dropout gradients equal plain backprop"
RNG_LEFT_ALONE = "the caller's random numbers continue as after plain backprop"
STILL_CHECKPOINTING = "still checkpoints (gradients, memory, recomputation)"


def _dropout_blocks(n_blocks: int, seed: int) -> nn.Sequential:
    with seeded(seed):
        return nn.Sequential(*(nn.Sequential(nn.Linear(_WIDTH, _WIDTH, dtype=torch.float64), nn.Tanh(),
                                             nn.Dropout(0.5)) for _ in range(n_blocks)))


def probe_dropout(fn: Callable, *, seed: int) -> dict:
    """Evidence of ``checkpointed_forward_rng`` on blocks with dropout, from a seeded random state."""
    require_parameters(fn, ["blocks", "x", "segment_size"], _SIGNATURE)
    cases = []
    for i, (n_blocks, segment_size) in enumerate(RNG_CASES):
        case_seed = _case_seed(seed, 100 + i)
        blocks, x = _dropout_blocks(n_blocks, case_seed), _input(case_seed, True)
        record: dict[str, Any] = {}
        try:
            with seeded(case_seed):  # the student's own random state is given back afterwards
                out = _run(fn, blocks, x, segment_size)
                record.update(output=out.detach().clone(), output_requires_grad=bool(out.requires_grad))
                if out.requires_grad:
                    _backward(fn, lambda out=out: out.pow(2).sum().backward())
                record["next_random"] = torch.rand(4, dtype=torch.float64)
            record.update(x_grad=x.grad, param_grads=[p.grad for p in blocks.parameters()])
        except AssertionError as error:
            record["error"] = str(error)
        cases.append(record)
    if all("error" in case for case in cases):
        fail(cases[0]["error"])
    n_blocks, segment_size = STILL_CASE
    return {"cases": cases, "still": _probe_case(fn, n_blocks, segment_size, True, _case_seed(seed, 200))}


def _reference(n_blocks: int, seed: int) -> tuple[torch.Tensor, list, torch.Tensor, torch.Tensor]:
    """Plain backprop from the probe's random state: output, parameter gradients, input gradient, next randoms."""
    blocks, x = _dropout_blocks(n_blocks, seed), _input(seed, True)
    with seeded(seed):
        h = blocks(x)
        h.pow(2).sum().backward()
        next_random = torch.rand(4, dtype=torch.float64)
    return h.detach(), [p.grad for p in blocks.parameters()], x.grad, next_random


def _judge_dropout_case(case: dict, n_blocks: int, segment_size: int, seed: int) -> tuple[str | None, str | None]:
    """(gradient verdict, random-state verdict) of one case."""
    where = f"(n={n_blocks} blocks with dropout, segment_size={segment_size})"
    if "error" in case:
        return str(case["error"]), str(case["error"])
    out, grads, x_grad, next_random = _reference(n_blocks, seed)
    gradients = None
    diff = _close(case.get("output"), out)
    found = case.get("param_grads")
    if diff is None or diff > 1e-10:
        gradients = with_hint(f"The output {where} differs from plain backprop's from the same random state.",
                             "The forward pass must draw the random numbers plain backprop draws: run every block "
                             "once, in order, and do not draw random numbers yourself.")
    elif not case.get("output_requires_grad") or not isinstance(found, list) or len(found) != len(grads) \
            or any(g is None for g in found):
        gradients = with_hint(f"Some parameters got no gradient {where}.",
                             "Start from your checkpointed_forward of exercise 1, which passes check_checkpointing.")
    else:
        worst = max(_difference(g, e) for g, e in zip([case.get("x_grad"), *found], [x_grad, *grads]))
        if worst > 1e-10:
            gradients = with_hint(
                f"The gradients {where} differ from plain backprop's by up to {worst:.3g} (should be below 1e-10): "
                "the replay drew other dropout masks than the forward pass.",
                "In forward, save the random state before running the segment (torch.get_rng_state()); in "
                "backward, set it (torch.set_rng_state) before the replay, so dropout draws the same masks.")
    state = _close(case.get("next_random"), next_random)
    rng = None if state is not None and state == 0.0 else with_hint(
        f"After backward {where}, the next random numbers differ from those after plain backprop: your replay "
        "moved the caller's random generator.",
        "Restore the segment's random state for the replay only: run it inside `with torch.random.fork_rng("
        "devices=[]):` (or keep torch.get_rng_state() before setting the saved one, and set it back after the "
        "replay). Otherwise the generator ends where an early segment's forward left it, and later dropout masks "
        "repeat earlier ones.")
    return gradients, rng


def judge_dropout(evidence: Any, *, seed: int) -> dict[str, str | None]:
    """Verdict per part, with plain backprop from the same random state recomputed here."""
    cases = evidence.get("cases") if isinstance(evidence, dict) else None
    still = evidence.get("still") if isinstance(evidence, dict) else None
    if not isinstance(cases, list) or len(cases) != len(RNG_CASES) or not all(isinstance(c, dict) for c in cases) \
            or not isinstance(still, dict):
        raise AssertionError("The check's evidence is malformed (it does not list every case).")
    verdicts = [_judge_dropout_case(case, n, k, _case_seed(seed, 100 + i))
                for i, ((n, k), case) in enumerate(zip(RNG_CASES, cases))]
    n_blocks, segment_size = STILL_CASE
    still_seed = _case_seed(seed, 200)
    still_messages = [_judge_gradients(still, n_blocks, segment_size, True, still_seed),
                      _judge_memory(still, n_blocks, segment_size),
                      _judge_recomputation(still, n_blocks, segment_size)]
    return {
        DROPOUT_GRADIENTS: next((g for g, _ in verdicts if g is not None), None),
        RNG_LEFT_ALONE: next((r for _, r in verdicts if r is not None), None),
        STILL_CHECKPOINTING: next((m for m in still_messages if m is not None), None),
    }


DROPOUT = Exercise(
    "checkpointed_forward_rng: dropout replayed exactly", needs=("checkpointed_forward_rng",),
    parts=(Part(DROPOUT_GRADIENTS, 2), Part(RNG_LEFT_ALONE, 1), Part(STILL_CHECKPOINTING, 1)),
    probe=probe_dropout, judge=judge_dropout, forbidden=("torch.utils.checkpoint",))
