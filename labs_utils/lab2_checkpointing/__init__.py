"""Lab 2 — Gradient checkpointing and memory: everything the notebook ``lab2_checkpointing.ipynb`` needs, in one import.

    from labs_utils import lab2_checkpointing as lab2

- ``tracker``: the memory tracker (what is alive during a step)
- ``model``: the time model of a checkpointed step
- ``memory_model``: section 4's memory model (its answer: read it after your prediction)
- ``experiments``: networks, timing, sweeps and budgets
- ``figures``: the lab's figures
- ``checks``: the exercise checks and the lab's ``GRADING`` table

Names load lazily: importing the checks does not import the figures.
"""
from .._lazy import lazy_module

_EXPORTS = {
    "MiB": "tracker",
    "PHASES": "tracker",
    "MemoryReport": "tracker",
    "MemoryTracker": "tracker",
    "track_memory": "tracker",
    "measure_step": "tracker",
    "StepTime": "model",
    "predicted_peak_bytes": "memory_model",
    "predicted_time_ratio": "model",
    "Forward": "experiments",
    "CheckpointedForward": "experiments",
    "linear_blocks": "experiments",
    "BlockNet": "experiments",
    "deep_cnn": "experiments",
    "blocks_work_share": "experiments",
    "downsampling_cnn": "experiments",
    "mnist_like_batch": "experiments",
    "classification_step_memory": "experiments",
    "clock_for": "experiments",
    "time_steps": "experiments",
    "RepeatedRatios": "experiments",
    "time_in_rounds": "experiments",
    "SweepResult": "experiments",
    "segment_sweep": "experiments",
    "BudgetResult": "experiments",
    "largest_batch": "experiments",
    "stored_bytes_per_block": "experiments",
    "count_calls": "experiments",
    "gradient_error": "experiments",
    "fast_note": "experiments",
    "raised_at": "pitfalls",
    "first_checkpoint_cost": "experiments",
    "segment_annotation": "figures",
    "plot_memory_timeline": "figures",
    "plot_segment_sweep": "figures",
    "plot_budget": "figures",
    "plot_block_memory": "figures",
}
__getattr__, __dir__, __all__ = lazy_module(
    __name__, ("tracker", "model", "memory_model", "experiments", "pitfalls", "figures", "checks"), _EXPORTS)
