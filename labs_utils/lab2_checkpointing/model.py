"""The analytic models of Lab 2: predicted peak memory and predicted step time of checkpointing."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..validation import finite_float, positive_int


@dataclass(frozen=True)
class StepTime:
    """Seconds of the forward pass (loss included) and of the backward pass of one training step."""

    forward_s: float
    backward_s: float

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


def predicted_peak_bytes(n_layers: int, segment_size: int | None, activation_bytes: int,
                         in_flight: int = 3) -> int:
    """Predicted peak activation bytes of n equal layers, checkpointed every ``segment_size`` (plain backprop for
    ``None``), each layer storing one activation of ``activation_bytes``: the memory model of the notebook's
    section 4 (Chen et al., 2016). ``in_flight``: the activations alive besides the stored ones.
    """
    n_layers = positive_int("n_layers", n_layers)
    activation_bytes = positive_int("activation_bytes", activation_bytes)
    in_flight = positive_int("in_flight", in_flight, minimum=0)
    if segment_size is None:
        return (n_layers + in_flight) * activation_bytes
    segment_size = positive_int("segment_size (or None for plain backprop)", segment_size)
    slots = math.ceil(n_layers / segment_size) + min(segment_size, n_layers) + in_flight
    return slots * activation_bytes


def predicted_time_ratio(plain: StepTime, recomputed_fraction: float = 1.0) -> float:
    """Time of a checkpointed step over a plain one if recomputation costs one extra forward.

    ``recomputed_fraction``: the share of the forward pass that is replayed (1 when every segment is).
    """
    recomputed_fraction = finite_float("recomputed_fraction", recomputed_fraction, minimum=0.0)
    return (plain.total_s + recomputed_fraction * plain.forward_s) / plain.total_s
