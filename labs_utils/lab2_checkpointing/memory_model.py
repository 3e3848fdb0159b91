"""The memory model of Lab 2 (section 4's box): the count the notebook asks you to make first, worked out.

Open it after your prediction of section 4: it is that prediction's answer.
"""
from __future__ import annotations

import math

from ..validation import positive_int


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
