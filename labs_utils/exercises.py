"""Graded exercises: the grading-table rows (``Exercise``, ``Part``), running them, and finding the labs.

An exercise's check is a *probe* (runs the student's code, returns evidence) and a *judge* (compares the
evidence with references, in the grader's own process). In a notebook the ``check_...`` functions run both
(:func:`run_exercise`); the grader runs the probe in a fresh sandboxed process that holds only the exercise's
definitions (:mod:`labs_utils.instructor.grading.probe_server`) and the judge outside it. :func:`summary` is
the last cell of every lab.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LabInfo:
    """Who a wing is: the lab's number, its title and its notebook's file name without ``.ipynb``.

    Each wing's ``checks.py`` defines ``LAB = LabInfo(...)`` next to its ``GRADING`` table; the grader
    finds the labs from these, so a new lab needs no entry anywhere else.
    """

    number: int
    title: str
    notebook: str


@dataclass(frozen=True)
class Part:
    """A separately graded behaviour of an exercise, e.g. ``Part("state across steps", 1.0)``."""

    name: str
    points: float


Verdicts = dict  # part name -> None (passed) or the message a student sees (what went wrong + hint)


@dataclass(frozen=True)
class Exercise:
    """One graded exercise of a lab (each wing's ``GRADING`` is a list of these).

    The check is split in two so that the grader can compute the verdict outside the student's kernel:

    - ``inputs(*args, seed=seed) -> plain evidence`` runs *where the seed is* (the grader's judge process; the
      notebook's own checks): it draws everything random the probe needs (tensors; :func:`sub_seed` ints for
      the student's model's initialisation or a generator the probe builds; never a torch.Generator's state
      unless it was seeded with a sub_seed: the state holds its seed) from ``seed``, as plain evidence (see
      :mod:`labs_utils.evidence`). The grader encodes it, caps and decodes it, and sends the probe process the
      inputs alone: the seed never enters a process that runs student code, so code that walks the stack to
      the probe's frame finds the inputs it is given anyway, and nothing to regenerate the judge's references
      from. ``None``: the probe takes no inputs (``inputs=None``).
    - ``probe(*objects, *args, inputs=inputs) -> evidence`` runs *beside the student's code* (their kernel for
      the ``check_...`` functions, a fresh probe process when grading): it calls the student's code
      (``objects``: the values of ``needs`` in the notebook, in order) on those inputs and returns what it
      measured as plain evidence: numbers, tensors, shapes, call orders, bytes. It never decides pass or fail
      itself; it raises AssertionError (via :func:`fail` / :func:`call_student`) only when it cannot measure
      at all (e.g. the student's code raises), and that message fails every part.
    - ``judge(evidence, *args, seed=seed) -> {part name: None | message}`` runs *in the grader's
      process*: it recomputes the references (torch.optim, plain backprop, properties) from ``seed`` (its inputs
      included: ``inputs`` is deterministic) and compares. It must treat evidence as untrusted: malformed
      evidence fails parts, never crashes.
    - ``forbidden``: reference implementations the student's code must not call while the probe runs
      (see :func:`labs_utils.tripwire.trip_wires`), e.g. ``("torch.optim",)``.

    The in-notebook ``check_...`` functions run the same probe and judge (:func:`run_exercise`), so
    students see the messages the grader writes.
    """

    name: str
    needs: tuple[str, ...]
    parts: tuple[Part, ...]
    probe: Callable[..., Any]
    judge: Callable[..., Verdicts]
    args: tuple = ()
    forbidden: tuple[str, ...] = ()
    inputs: Callable[..., Any] | None = None

    @property
    def points(self) -> float:
        return float(sum(part.points for part in self.parts))


# ----------------------------------------------------------------------------- running an exercise

ERROR_KEY = "__error__"  # evidence of a probe that could not measure: {"__error__": message}


def default_seed(exercise: Exercise) -> int:
    """The fixed seed of the in-notebook checks (the grader draws fresh seeds instead)."""
    return zlib.crc32(exercise.name.encode("utf-8")) % 2**31


def sub_seed(seed: int, name: str) -> int:
    """A seed for one named random input (e.g. the student's model's initialisation), derived one way from
    ``seed``: a probe that is sent it cannot get the seed back, nor the other inputs drawn from it."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "big") % 2**31


def encoded_inputs(exercise: Exercise, seed: int) -> str | None:
    """The exercise's inputs drawn from ``seed``, as evidence text: what the grader's judge worker sends the probe
    process. None for a probe without inputs."""
    from . import evidence as ev

    return None if exercise.inputs is None else ev.encode(exercise.inputs(*exercise.args, seed=seed))


def draw_inputs(exercise: Exercise, seed: int) -> Any:
    """The exercise's inputs drawn from ``seed`` (where the seed is: the grader's judge process, or the notebook's
    own check), after the JSON round trip the grader makes them take; None for a probe without inputs."""
    from . import evidence as ev

    text = encoded_inputs(exercise, seed)
    return None if text is None else ev.decode(text)


def probe(exercise: Exercise, objects: Sequence[Any], inputs: Any) -> Any:
    """Run the exercise's probe on the student's ``objects`` and the ``inputs`` drawn for it (:func:`draw_inputs`),
    trip-wires armed (in the student's kernel, or the grader's probe process).

    Returns the evidence, or ``{"__error__": message}`` when the probe could not measure or the
    student's code called a forbidden reference.
    """
    from .tripwire import delegation_message, trip_wires

    try:
        with trip_wires(exercise.forbidden) as calls:
            evidence = exercise.probe(*objects, *exercise.args, inputs=inputs)
    except AssertionError as exc:
        return {ERROR_KEY: str(exc) or "the check failed (no message)."}
    if calls:
        return {ERROR_KEY: delegation_message(exercise.forbidden, calls)}
    return evidence


def judge(exercise: Exercise, evidence: Any, seed: int) -> dict[str, str | None]:
    """Verdict per part (None: passed), computed from evidence alone (in the grader's process)."""
    if isinstance(evidence, dict) and ERROR_KEY in evidence:
        message = evidence[ERROR_KEY] if isinstance(evidence[ERROR_KEY], str) else "the probe failed."
        return {part.name: message for part in exercise.parts}
    try:
        verdicts = exercise.judge(evidence, *exercise.args, seed=seed)
    except AssertionError as exc:
        verdicts = {part.name: str(exc) for part in exercise.parts}
    except Exception as exc:  # malformed evidence must not crash the grader
        verdicts = {part.name: f"the evidence could not be judged ({type(exc).__name__}: {exc})."
                    for part in exercise.parts}
    if not isinstance(verdicts, dict):
        verdicts = {}

    def verdict(name: str) -> str | None:
        value = verdicts.get(name, "not judged")  # a part the judge left out, or answered with
        return value if value is None or isinstance(value, str) else "not judged"  # anything else, failed

    return {part.name: verdict(part.name) for part in exercise.parts}


def points(exercise: Exercise, verdicts: dict[str, str | None]) -> float:
    """Points earned: the sum over the parts that passed."""
    return float(sum(part.points for part in exercise.parts if verdicts.get(part.name, "") is None))


def grade_here(exercise: Exercise, objects: Sequence[Any], seed: int) -> dict[str, str | None]:
    """What the grader would decide, in one process: inputs, probe, the evidence's JSON round trip, judge."""
    from . import evidence as ev

    found = probe(exercise, objects, draw_inputs(exercise, seed))
    try:
        found = ev.decode(ev.encode(found))
    except ev.EvidenceError as exc:
        found = {ERROR_KEY: f"the check could not record what your code returned: {exc}"}
    return judge(exercise, found, seed)


def run_exercise(exercise: Exercise, objects: Sequence[Any], seed: int | None = None,
                 graded: bool = True) -> dict[str, str | None]:
    """What a ``check_...`` function does in the notebook: probe, then judge, then report.

    The evidence makes the same JSON round trip as in the grader. Prints one line per part; raises
    AssertionError with the first failing part's message (and the score) when a part failed. An optional
    exercise (``graded=False``) reports "ungraded" instead of points.
    """

    seed = default_seed(exercise) if seed is None else seed
    verdicts = grade_here(exercise, objects, seed)
    failed = [(part, verdicts[part.name]) for part in exercise.parts if verdicts[part.name] is not None]
    score = f"{points(exercise, verdicts):g}/{exercise.points:g} points" if graded else "ungraded"
    if failed:
        passed_parts = [part.name for part in exercise.parts if verdicts[part.name] is None]
        lines = [f"{exercise.name}: {score}."]
        if passed_parts:
            lines.append("Passed: " + ", ".join(passed_parts) + ".")
        part, message = failed[0]
        lines.append(f"Failed: {part.name}: {message}")
        if len(failed) > 1:
            lines.append("Also failed: " + ", ".join(p.name for p, _ in failed[1:]) + ".")
        raise AssertionError("\n".join(lines))
    print(f"\u2714 {exercise.name}: all {len(exercise.parts)} part(s) passed ({score})")
    return verdicts


def exercise_named(grading: Sequence[Exercise], name: str) -> Exercise:
    """The row of a grading table with this name (KeyError naming the choices otherwise)."""
    for exercise in grading:
        if exercise.name == name:
            return exercise
    raise KeyError(f"no exercise {name!r}; the lab has {', '.join(e.name for e in grading)}")


# ----------------------------------------------------------------------------- labs

def discover_labs(number: int | None = None) -> dict[int, Any]:
    """Lab number -> the wing's ``checks`` module, for every ``labs_utils.labN_*`` wing (imports them).

    With ``number``, only the wings named ``lab<number>_*`` are imported (a lab's summary cell loads no
    other lab)."""
    import importlib
    import pkgutil
    import re

    import labs_utils

    wanted = r"lab\d+_\w+" if number is None else rf"lab{int(number)}_\w+"
    labs = {}
    for info in pkgutil.iter_modules(labs_utils.__path__):
        if info.ispkg and re.fullmatch(wanted, info.name):
            checks = importlib.import_module(f"labs_utils.{info.name}.checks")
            labs[checks.LAB.number] = checks
    return dict(sorted(labs.items()))


def summary(lab: int, namespace: dict[str, Any]) -> float:
    """The last cell of a lab: run every graded check on what the notebook defines, print a ✔/✘ table.

    Never raises; returns the points the notebook earns here (the grader runs the same checks with
    fresh inputs, after Restart & Run All). In the grader's kernel (``LABS_GRADING`` set) it prints one line and
    returns 0.0 without checking: the grader's own probes give the verdicts, and a second run of every check there
    would only cost time (seconds per submission).
    """
    if os.environ.get("LABS_GRADING"):
        print("The grader checks every exercise itself, with fresh inputs: this table is left out here.")
        return 0.0
    checks = discover_labs(lab)[lab]
    total = 0.0
    for exercise in checks.GRADING:
        missing = [name for name in exercise.needs if name not in namespace]
        if missing:
            print(f"\u2718 {exercise.name}: 0/{exercise.points:g} (not defined: {', '.join(missing)})")
            continue
        verdicts = grade_here(exercise, [namespace[n] for n in exercise.needs], default_seed(exercise))
        earned = points(exercise, verdicts)
        total += earned
        mark = "\u2714" if earned == exercise.points else "\u2718"
        failed = [name for name, message in verdicts.items() if message is not None]
        print(f"{mark} {exercise.name}: {earned:g}/{exercise.points:g}"
              + (f" (failed: {', '.join(failed)})" if failed else ""))
    maximum = sum(e.points for e in checks.GRADING)
    print(f"Total: {total:g}/{maximum:g}. Before you submit: Kernel → Restart & Run All, then download the .ipynb.")
    return total
