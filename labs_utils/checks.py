"""Every lab's exercise checks under one name: ``from labs_utils.checks import check_noise``.

A lazy façade over the wings' ``checks`` modules: importing a Lab 1 check loads Lab 1's checks
(and the core check machinery) and nothing of Lab 2 or Lab 3. Each wing keeps its own ``LAB`` and
``GRADING`` table; the grader finds them through :func:`labs_utils.exercises.discover_labs`.
"""
from ._lazy import lazy_module

# check name -> the wing module that defines it (relative to labs_utils)
_EXPORTS = {
    "check_dense_autoencoder": "lab1_autoencoders.checks",
    "check_interpolate": "lab1_autoencoders.checks",
    "check_conv_autoencoder": "lab1_autoencoders.checks",
    "check_noise": "lab1_autoencoders.checks",
    "check_denoising_batch": "lab1_autoencoders.checks",
    "check_challenge": "lab1_autoencoders.checks",
    "check_checkpointing": "lab2_checkpointing.checks",
    "check_dropout_checkpointing": "lab2_checkpointing.checks",
    "check_optimizer": "lab3_optimizers.checks",
    "check_fit_rate": "lab3_optimizers.checks",
    "OPTIMIZER_NAMES": "lab3_optimizers.checks",
    "Exercise": "checking",
    "LabInfo": "checking",
}

__getattr__, __dir__, __all__ = lazy_module(__name__, (), _EXPORTS, base="labs_utils")
