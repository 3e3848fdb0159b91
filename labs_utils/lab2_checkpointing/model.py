"""The time model of Lab 2: the predicted step time of checkpointing (the memory model is in ``memory_model``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..validation import finite_float


@dataclass(frozen=True)
class StepTime:
    """Seconds of the forward pass (loss included) and of the backward pass of one training step."""

    forward_s: float
    backward_s: float

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


def predicted_time_ratio(plain: StepTime, recomputed_fraction: float = 1.0) -> float:
    """Time of a checkpointed step over a plain one if recomputation costs one extra forward.

    ``recomputed_fraction``: the share of the forward pass that is replayed (1 when every segment is).
    """
    recomputed_fraction = finite_float("recomputed_fraction", recomputed_fraction, minimum=0.0)
    return (plain.total_s + recomputed_fraction * plain.forward_s) / plain.total_s
