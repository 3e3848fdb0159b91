"""Lab 3 — Optimizers on ravine landscapes: everything the notebook ``lab3_optimizers.ipynb`` needs, in one import.

    from labs_utils import lab3_optimizers as lab3

- ``base``: ``StudentOptimizer``, the scaffold of the optimizer exercises after SGD
- ``mnist``: the small MNIST classifier trained with the student's optimizers
- ``noise``: gradient noise on a landscape with a sharp and a flat minimum, and real mini-batch noise
- ``tuning``: learning-rate sweeps on validation, good ranges, paired comparisons on the same test digits
- ``landscapes``: test functions and optimizer runs
- ``convergence``: convergence theory and measured rates
- ``figures``: the lab's figures
- ``checks``: the exercise checks and the lab's ``GRADING`` table

Names load lazily: importing the checks does not import the figures.
"""
from .._lazy import lazy_module

_EXPORTS = {
    "StudentOptimizer": "base",
    "noise_sweep": "noise",
    "sharp_flat_loss": "noise",
    "descend": "noise",
    "curvature": "noise",
    "minibatch_gradient_noise": "noise",
    "lr_sweep": "tuning",
    "good_range": "tuning",
    "format_good_ranges": "tuning",
    "grid_sweep": "tuning",
    "correct_digits": "tuning",
    "paired_difference": "tuning",
    "plot_noise_sweep": "figures",
    "check_fit_rate": "checks",
    "check_stability": "checks",
    "check_hyperparameter": "base",
    "make_classifier": "mnist",
    "train_classifier": "mnist",
    "compare_with_torch": "mnist",
    "with_step_factor": "mnist",
    "split_training_digits": "mnist",
    "fast_note": "mnist",
    "accuracy_summary": "mnist",
    "plot_yours_vs_torch": "figures",
    "MakeOptimizer": "landscapes",
    "MakeScheduler": "landscapes",
    "Point": "landscapes",
    "Landscape": "landscapes",
    "quadratic": "landscapes",
    "ravine": "landscapes",
    "scale_problem": "landscapes",
    "rosenbrock": "landscapes",
    "Run": "landscapes",
    "run_optimizer": "landscapes",
    "run_all": "landscapes",
    "is_diverging": "landscapes",
    "sweep_learning_rates": "landscapes",
    "weight_shrinkage_under_noise": "landscapes",
    "gd_optimal_lr": "convergence",
    "gd_rate": "convergence",
    "heavy_ball_optimal": "convergence",
    "heavy_ball_rate": "convergence",
    "heavy_ball_radius": "convergence",
    "heavy_ball_errors": "convergence",
    "quadratic_gaps": "convergence",
    "steps_to_tolerance": "convergence",
    "steps_to_reach": "convergence",
    "predicted_steps": "convergence",
    "ConvergenceRow": "convergence",
    "convergence_study": "convergence",
    "format_convergence_table": "convergence",
    "check_study": "convergence",
    "draw_landscape": "figures",
    "draw_trajectories": "figures",
    "plot_trajectories": "figures",
    "plot_losses": "figures",
    "plot_comparison": "figures",
    "plot_lr_sweep": "figures",
    "plot_rate_map": "figures",
    "plot_steps_vs_kappa": "figures",
    "plot_heavy_ball_decay": "figures",
}
_SUBMODULES = ('base', 'mnist', 'noise', 'tuning', 'landscapes', 'convergence', 'figures', 'checks')
__getattr__, __dir__, __all__ = lazy_module(__name__, _SUBMODULES, _EXPORTS)
