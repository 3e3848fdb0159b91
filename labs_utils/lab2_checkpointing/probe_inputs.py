"""What both Lab 2 probes give a student's checkpointing, and how they watch it run (in the student's kernel).

- :func:`draw_case` (where the seed is: the judge, the notebook's check): a case's inputs, the seed of its blocks'
  initialisation (a one-way :func:`~labs_utils.exercises.sub_seed`) and its input batch; the probe is sent these,
  never the seed, and hands the student a copy of the batch (:func:`fresh_input`), so code that modifies its input
  in place cannot change what the probe's later parts, or the check's snapshot, see.
- :func:`make_blocks`: float64 blocks Linear + tanh (+ dropout) built from a case's ``init``. Every call of a block
  notes, for the judge: the probe's phase (its forward or its backward), whether grad was enabled, and where
  the block ran: inside the forward of which ``torch.autograd.Function`` of the student's (found from the code
  on the call stack), inside the backward of which of its nodes (the autograd engine calls a node's backward
  through ``BackwardCFunction.apply``, whose frame holds the node), how many such backward calls deep, and at
  which event of the memory tracker's timeline.
- :class:`Snapshot`: whether the student's code changed the inputs.
- :class:`Budget`: how long the student's calls may run; past it, a call fails with a message.
- (torch on one CPU thread while a probe or judge runs: :func:`labs_utils.budget.one_thread`.)
"""
from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.autograd.function import BackwardCFunction

from ..budget import OverBudget, time_budget
from ..checking import call_student, fail
from ..exercises import sub_seed
from ..runtime import seeded

WIDTH = 16
BATCH = 64  # an activation (BATCH x WIDTH) is 4 weights (WIDTH x WIDTH): kept weight gradients weigh little
ACTIVATION = BATCH * WIDTH * 8  # bytes of one float64 activation
CALL_S, AFTER_HANG_S, TOTAL_S = 4.0, 1.0, 20.0  # time limits of the student's calls (Budget)

_NODE_APPLY = BackwardCFunction.apply.__code__  # the engine runs a custom Function's backward through it


def draw_case(seed: int, name: str) -> dict:
    """The inputs of the case ``name`` of a probe drawn with ``seed`` (judge side): ``init``, the seed of its blocks'
    initialisation, derived one way from ``seed``, and ``x``, its float64 input batch (about 8 KB)."""
    generator = torch.Generator().manual_seed(sub_seed(seed, f"{name}: x"))
    return {"init": sub_seed(seed, f"{name}: init"),
            "x": torch.randn(BATCH, WIDTH, dtype=torch.float64, generator=generator)}


def fresh_input(case: dict, requires_grad: bool) -> torch.Tensor:
    """A copy of the case's input batch for one call of the student's code (the case's own stays as drawn)."""
    return case["x"].detach().clone().requires_grad_(requires_grad)


def logged_block_type(note: Callable[[int], None]) -> type:
    """A block class whose forward calls ``note(index)`` first. ``note`` lives in the class's closure, not on the
    blocks: the student's code, which gets the blocks, finds no attribute that leads to the probe's log (reaching
    it takes ``__closure__``, ``gc`` or frames, which the grader's screen flags)."""

    class LoggedBlock(nn.Module):
        def __init__(self, index: int, layers: nn.Module) -> None:
            super().__init__()
            self.layers, self.index = layers, index

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            note(self.index)
            return self.layers(h)

    return LoggedBlock


LOGGED_FORWARD = logged_block_type(lambda index: None).forward.__code__  # the code of every LoggedBlock's forward


def called_by(code: Any) -> bool:
    """Whether the caller of the function that calls this one runs ``code`` (a note taken by a block's forward,
    not by the student's code calling the note it found)."""
    return sys._getframe(2).f_code is code


def make_blocks(n_blocks: int, init: int, note: Callable[[int], None] = lambda index: None,
                dropout: bool = False) -> nn.Sequential:
    """n blocks Linear + tanh (+ Dropout(0.5)), their weights drawn with torch seeded with ``init``."""
    block = logged_block_type(note)
    with seeded(init):  # the student's random numbers stay as they were
        return nn.Sequential(*(block(i, nn.Sequential(
            nn.Linear(WIDTH, WIDTH, dtype=torch.float64), nn.Tanh(), *([nn.Dropout(0.5)] if dropout else [])))
            for i in range(n_blocks)))


# ----------------------------------------------------------------------------- where a block runs

def _students(cls: Any) -> bool:
    """A Function class of the student's (torch's own, e.g. its checkpoint, do not count)."""
    return isinstance(cls, type) and not str(getattr(cls, "__module__", "")).startswith("torch")


def _forward_codes() -> dict:
    """Code object -> class name, for the forward of every torch.autograd.Function subclass outside torch."""
    codes, stack, seen = {}, [torch.autograd.Function], set()
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            method = sub.__dict__.get("forward")
            function = getattr(method, "__func__", method)
            try:
                code = getattr(inspect.unwrap(function), "__code__", None) if callable(function) else None
            except ValueError:  # a cycle of __wrapped__
                code = None
            if code is not None and _students(sub):
                codes[code] = sub.__name__
    return codes


def _tensors(values: Any) -> list:
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


class Watch:
    """The notes of one case's blocks. The probe sets ``phase`` and ``tracker``; ``log`` is the evidence."""

    def __init__(self) -> None:
        self.log: list = []
        self.phase = "forward"
        self.tracker: Any = None
        self._nodes: dict = {}  # id of a backward node -> 1, 2, ... in the order they first ran a block
        self._codes: dict | None = None  # forward code objects of Functions written with setup_context

    def _forward_of(self, frame: Any) -> str | None:
        """The student's Function whose forward ``frame`` runs, if it does (``frame`` runs a ``forward``)."""
        code = frame.f_code
        first = frame.f_locals.get(code.co_varnames[0]) if code.co_argcount else None
        if isinstance(first, BackwardCFunction):  # forward(ctx, ...): ctx is the node of the Function
            return first._forward_cls.__name__ if _students(getattr(first, "_forward_cls", None)) else None
        if isinstance(first, nn.Module):  # a module's forward
            return None
        if self._codes is None or code not in self._codes:  # forward(...) without ctx, with setup_context
            self._codes = _forward_codes()
        return self._codes.get(code)

    def note(self, index: int) -> None:
        if not called_by(LOGGED_FORWARD):  # only a block's own forward takes notes
            return
        entry = {"phase": self.phase, "block": index, "grad": torch.is_grad_enabled(), "forward": None,
                 "backward": None, "node": None, "depth": 0, "inputs_grad": None,
                 "event": self.tracker.events if self.tracker is not None else None}
        frame = sys._getframe(2)
        for _ in range(5000):
            if frame is None:
                break
            if frame.f_code is _NODE_APPLY:
                node = frame.f_locals.get("self")
                if _students(getattr(node, "_forward_cls", None)):
                    entry["depth"] += 1
                    if entry["backward"] is None:
                        entry["backward"] = node._forward_cls.__name__
                        entry["node"] = self._nodes.setdefault(id(node), len(self._nodes) + 1)
            elif entry["forward"] is None and frame.f_code.co_name == "forward":
                entry["forward"] = self._forward_of(frame)
                if entry["forward"] is not None:
                    entry["inputs_grad"] = any(t.requires_grad for t in _tensors(frame.f_locals.values()))
            frame = frame.f_back
        self.log.append(entry)


def custom_functions(out: torch.Tensor) -> list:
    """Names of the student's torch.autograd.Function classes whose nodes are in the graph of ``out``."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack and len(seen) < 10_000:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node, BackwardCFunction) and _students(getattr(node, "_forward_cls", None)):
            found.append(node._forward_cls.__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found


# ----------------------------------------------------------------------------- what the student's code changed

class Snapshot:
    """The parameters of ``blocks`` and the values and flags of the input, taken before the student's code runs."""

    def __init__(self, blocks: nn.Module, x: torch.Tensor, requires_grad: bool) -> None:
        self.params = [p.detach().clone() for p in blocks.parameters()]
        self.n_blocks = len(blocks)
        self.x, self.requires_grad = x.detach().clone(), requires_grad

    def changes(self, blocks: nn.Module, x: torch.Tensor) -> list:
        """What the student's code changed among the probe's inputs, in words (empty: nothing)."""
        found = []
        if x.requires_grad != self.requires_grad:
            found.append(f"x.requires_grad (it was {self.requires_grad}, it is now {x.requires_grad})")
        if not torch.equal(x.detach(), self.x):
            found.append("the values of x")
        params = list(blocks.parameters())
        if len(blocks) != self.n_blocks or len(params) != len(self.params):
            found.append("the blocks (their number or their parameters)")
        elif any(not torch.equal(p.detach(), q) for p, q in zip(params, self.params)):
            found.append("the values of the blocks' parameters")
        return found


# ----------------------------------------------------------------------------- threads and time

class Budget:
    """How long the student's calls of one probe may run: ``CALL_S`` each, ``AFTER_HANG_S`` each once one has
    hung (a correct call takes milliseconds), ``TOTAL_S`` together. Past it a call fails with a message, so
    a function that hangs on one case fails the parts of that case only."""

    def __init__(self) -> None:
        self.limit, self.after_hang = float(CALL_S), float(AFTER_HANG_S)
        self.total = self.left = float(TOTAL_S)

    def call(self, fn: Callable, *args: Any, what: str) -> Any:
        """``call_student(fn, *args)`` under the time limit; AssertionError naming ``what`` when it runs out."""
        if self.left <= 0:
            fail(f"{what} was not run: your code had already used the check's {self.total:g} s.")
        limit = min(self.limit, self.left)
        start = time.monotonic()
        try:
            with time_budget(limit):
                return call_student(fn, *args, what=what)
        except OverBudget:
            self.limit = min(self.limit, self.after_hang)
            fail(f"{what} did not finish within {limit:g} s (a correct one takes a few milliseconds).",
                 "Look for a loop that never ends, e.g. a while loop whose index never reaches len(blocks), or a "
                 "function that keeps calling itself.")
        finally:
            self.left -= time.monotonic() - start
