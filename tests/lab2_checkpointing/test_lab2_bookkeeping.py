"""The probes' bookkeeping is out of reach of the code it watches: the blocks a student's function receives lead,
through their attributes, to no part of the call log, and a note not taken by a block's own forward is ignored
(issue 20: the log was reachable as ``blocks[i]._note.__self__.log`` and could be written directly)."""
from __future__ import annotations

import torch

from labs_utils.lab2_checkpointing import exercise_inplace
from labs_utils.lab2_checkpointing.probe_inputs import Watch, draw_case, fresh_input, make_blocks


def reachable(root, depth: int = 4) -> set:
    """ids of the objects reachable from ``root`` through attributes and containers, dunder names aside (the
    grader's screen flags those)."""
    seen, frontier = set(), [root]
    for _ in range(depth):
        following = []
        for obj in frontier:
            if id(obj) in seen or isinstance(obj, (str, bytes, int, float, bool, type(None), torch.Tensor)):
                continue
            seen.add(id(obj))
            if isinstance(obj, dict):
                following += list(obj.values())
            elif isinstance(obj, (list, tuple, set)):
                following += list(obj)
            if hasattr(obj, "__dict__"):
                following += [v for k, v in vars(obj).items() if not k.startswith("__")]
            following += [getattr(obj, k, None) for k in dir(type(obj)) if not k.startswith("__")
                          and k in getattr(obj, "__dict__", {})]
        frontier = following
    return seen


def test_the_blocks_lead_to_no_part_of_the_call_log():
    watch = Watch()
    blocks = make_blocks(3, 0, watch.note)
    found = reachable(blocks)
    assert found & {id(watch), id(watch.log)} == set()
    assert not any(getattr(getattr(m, name, None), "__self__", None) is watch
                   for m in blocks.modules() for name in vars(m))


def test_a_note_not_taken_by_a_blocks_forward_is_ignored():
    watch = Watch()
    blocks = make_blocks(3, 0, watch.note)
    watch.note(1)  # the student's code calling the note it found
    assert watch.log == []
    blocks(fresh_input(draw_case(0, "a case"), False))
    assert [entry["block"] for entry in watch.log] == [0, 1, 2]


def test_the_in_place_probes_blocks_lead_to_no_part_of_its_log():
    name = next(iter(exercise_inplace.CASES))
    blocks, log, phase = exercise_inplace._network(name, 0)
    assert reachable(blocks) & {id(log), id(phase)} == set()
    blocks(torch.zeros(2, blocks[0].linear.in_features, dtype=torch.float64))
    assert [entry[1] for entry in log] == list(range(len(blocks)))
