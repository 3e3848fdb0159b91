"""The Lab 3 wing (labs_utils.lab3_optimizers): landscapes, optimizer runs, convergence theory and figures."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from labs_utils import lab3_optimizers as lab3
from labs_utils.lab3_optimizers import figures
from labs_utils.lab3_optimizers.convergence import _tail_rate


def sgd(lr):
    return lambda params: torch.optim.SGD(params, lr=lr)


# ------------------------------------------------------------------ landscapes


def test_ravine_has_the_asked_condition_number_and_its_minimum_at_the_origin():
    land = lab3.ravine(kappa=250, lam_max=2.0)
    assert land.kappa == pytest.approx(250)
    assert land.eigenvalues[1] == pytest.approx(2.0)
    assert land.min_value == 0.0
    assert land(torch.zeros(2, dtype=torch.float64)).item() == 0.0


def test_ravine_start_puts_the_same_loss_in_both_directions():
    land = lab3.ravine(kappa=100)
    assert land.start == pytest.approx((-10.0, 1.0))
    assert land(torch.tensor(land.start)).item() == pytest.approx(1.0)


def test_rotated_ravine_has_the_same_spectrum_and_a_rotated_start():
    plain, turned = lab3.ravine(kappa=50), lab3.ravine(kappa=50, angle=30)
    assert turned.eigenvalues == pytest.approx(plain.eigenvalues)
    assert np.hypot(*turned.start) == pytest.approx(np.hypot(*plain.start))
    assert turned(torch.tensor(turned.start)).item() == pytest.approx(plain(torch.tensor(plain.start)).item())


def test_landscapes_evaluate_batches_of_points():
    for land in (lab3.ravine(10), lab3.scale_problem(), lab3.rosenbrock()):
        grid = torch.rand(4, 5, 2, dtype=torch.float64)
        values = land(grid)
        assert values.shape == (4, 5)
        assert values[2, 3].item() == pytest.approx(land(grid[2, 3]).item())


def test_scale_problem_gradients_differ_by_scale_squared_at_the_start():
    land = lab3.scale_problem(scale=100.0)
    point = torch.tensor(land.start, dtype=torch.float64, requires_grad=True)
    land(point).backward()
    gx, gy = point.grad.abs().tolist()
    assert gx / gy == pytest.approx(1e4)


def test_rosenbrock_minimum_is_zero_at_one_one():
    land = lab3.rosenbrock()
    assert land.minimum == (1.0, 1.0)
    assert land.min_value == 0.0
    with pytest.raises(ValueError, match="not a quadratic"):
        land.eigenvalues  # noqa: B018


@pytest.mark.parametrize("kappa", [0.5, 0.0, -3.0, float("nan"), float("inf")])
def test_kappa_below_one_or_not_finite_is_rejected(kappa):
    with pytest.raises(ValueError, match="kappa"):
        lab3.ravine(kappa)


def test_kappa_below_one_explains_what_kappa_means():
    with pytest.raises(ValueError, match="at least 1|finite number"):
        lab3.ravine(0.5)


# ------------------------------------------------------------------ runs


def test_run_records_start_and_every_step():
    land = lab3.ravine(10)
    run = lab3.run_optimizer(sgd(0.5), land, steps=20, label="sgd")
    assert run.label == "sgd" and not run.diverged
    assert run.trajectory.shape == (21, 2) and run.losses.shape == (21,)
    assert run.trajectory[0] == pytest.approx(land.start)
    assert run.losses[0] == pytest.approx(1.0)
    assert run.gaps[-1] < run.gaps[0]


def test_run_matches_gradient_descent_by_hand():
    land = lab3.ravine(4)
    run = lab3.run_optimizer(sgd(0.3), land, steps=5)
    factors = 1 - 0.3 * land.eigenvalues  # along x (λ_min) and y (λ_max)
    expected = np.array(land.start) * factors ** 5
    assert run.trajectory[-1] == pytest.approx(expected, rel=1e-12)


def test_diverging_run_is_reported_not_raised():
    run = lab3.run_optimizer(sgd(2.5), lab3.ravine(10), steps=500)
    assert run.diverged
    assert 1 <= run.diverged_at < 500
    assert len(run.trajectory) == run.diverged_at
    assert np.isfinite(run.losses).all()
    assert run.status.startswith("diverged at step")


def test_non_finite_loss_counts_as_divergence():
    run = lab3.run_optimizer(sgd(5.0), lambda p: p[0].sqrt() + p[1] ** 2, start=(1.0, 1.0), steps=5)
    assert run.diverged_at == 1  # the first step lands at x < 0, where sqrt is nan
    assert len(run.losses) == 1


def test_non_finite_loss_at_the_start_is_rejected():
    with pytest.raises(ValueError, match="loss at the start"):
        lab3.run_optimizer(sgd(0.1), lambda p: p[0].log(), start=(-1.0, 0.0), steps=3)


@pytest.mark.parametrize("start", [(float("nan"), 0.0), (0.0, float("inf"))])
def test_non_finite_start_is_rejected(start):
    with pytest.raises(ValueError, match="start must be finite"):
        lab3.run_optimizer(sgd(0.1), lab3.ravine(10), start=start, steps=3)


def test_start_must_be_a_2d_point():
    with pytest.raises(ValueError, match=r"point \(x, y\)"):
        lab3.run_optimizer(sgd(0.1), lab3.ravine(10), start=(1.0, 2.0, 3.0), steps=3)


def test_plain_function_needs_a_start():
    with pytest.raises(ValueError, match="start is needed"):
        lab3.run_optimizer(sgd(0.1), lambda p: (p ** 2).sum(), steps=3)


def test_make_optimizer_must_return_an_optimizer():
    with pytest.raises(TypeError, match="torch.optim.Optimizer"):
        lab3.run_optimizer(lambda params: None, lab3.ravine(10), steps=3)


@pytest.mark.parametrize("steps", [-1, 2.5, True])
def test_steps_must_be_a_non_negative_int(steps):
    with pytest.raises(ValueError, match="steps"):
        lab3.run_optimizer(sgd(0.1), lab3.ravine(10), steps=steps)


def test_scheduler_is_stepped_after_every_step():
    land = lab3.ravine(10)
    halving = lab3.run_optimizer(sgd(0.5), land, steps=3,
                               make_scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 1, gamma=0.5))
    factors = [(1 - lr * land.eigenvalues) for lr in (0.5, 0.25, 0.125)]
    assert halving.trajectory[-1] == pytest.approx(np.array(land.start) * np.prod(factors, axis=0), rel=1e-12)


@pytest.mark.slow  # runs a learning-rate sweep (seconds)
def test_sweep_finds_the_edge_of_divergence_at_two_over_lambda_max():
    land = lab3.ravine(10, lam_max=4.0)
    gaps, diverging = lab3.sweep_learning_rates(lambda p, lr: torch.optim.SGD(p, lr=lr), land, [0.1, 0.45, 0.55], 200)
    assert diverging.tolist() == [False, False, True]
    assert gaps[0] > gaps[1]
    assert "divergence_threshold" not in dir(lab3)  # section 1 reads the edge off this sweep; no search to copy


def test_decoupled_decay_shrinks_weights_evenly_whatever_the_noise():
    means = lab3.weight_shrinkage_under_noise(lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1),
                                            (0.01, 100.0), steps=300, per_sigma=512)
    assert means.shape == (301, 2)
    assert means[-1] == pytest.approx([(1 - 1e-3) ** 300] * 2, abs=0.05)


def test_l2_decay_in_adam_spares_weights_with_noisy_gradients():
    means = lab3.weight_shrinkage_under_noise(lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1),
                                            (0.01, 100.0), steps=300, per_sigma=512)
    quiet, noisy = means[-1]
    assert quiet < 0.1 < 0.9 < noisy


# ------------------------------------------------------------------ figures


def test_comparison_figure_has_paths_losses_and_one_legend_entry_per_run():
    land = lab3.ravine(30)
    runs = lab3.run_all(land, {"slow": sgd(0.3), "bouncy": sgd(1.9), "exploding": sgd(2.3)}, steps=40)
    fig = lab3.plot_comparison(land, runs)
    assert isinstance(fig, Figure)
    paths, losses = fig.axes[0], fig.axes[1]
    assert losses.get_yscale() == "log"
    assert paths.get_xlabel() == "x" and losses.get_xlabel() == "step"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("exploding (diverged at step") for label in labels)
    assert sum(label.startswith(("slow", "bouncy", "exploding")) for label in labels) == 3


def test_paths_are_drawn_until_they_leave_the_window():
    land = lab3.ravine(30)
    runs = {"exploding": lab3.run_optimizer(sgd(2.3), land, steps=40)}
    fig = lab3.plot_trajectories(land, runs)
    line = next(ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("exploding"))
    ys = line.get_ydata()
    assert len(ys) < len(runs["exploding"].trajectory)
    assert np.all(np.abs(ys[:-1]) <= land.bounds[3])


def test_contour_levels_are_log_spaced():
    levels = figures._log_levels(np.logspace(-6, 2, 1000), 9)
    ratios = levels[1:] / levels[:-1]
    assert ratios == pytest.approx(np.full(8, ratios[0]))


def test_lr_sweep_plot_marks_diverging_runs():
    fig = lab3.plot_lr_sweep([0.1, 1.0, 2.5], [0.5, 1e-3, math.inf], [False, False, True], threshold=2.0)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "diverging (gap still growing;\nblown-up runs on the top edge)" in labels and "2/λ_max = 2" in labels


# ------------------------------------------------------------------ convergence theory


def test_rates_at_kappa_100():
    assert lab3.gd_rate(100) == pytest.approx(99 / 101)
    assert lab3.heavy_ball_rate(100) == pytest.approx(9 / 11)
    lr, beta = lab3.heavy_ball_optimal(0.01, 1.0)
    assert lr == pytest.approx(4 / 1.1 ** 2) and beta == pytest.approx((9 / 11) ** 2)
    assert lab3.gd_optimal_lr(0.01, 1.0) == pytest.approx(2 / 1.01)


@pytest.mark.parametrize("bad", [0.5, float("nan")])
def test_rate_helpers_reject_kappa_below_one(bad):
    with pytest.raises(ValueError, match="at least 1|finite number"):
        lab3.gd_rate(bad)
    with pytest.raises(ValueError, match="at least 1|finite number"):
        lab3.heavy_ball_rate(bad)


def test_eigenvalue_helpers_reject_an_empty_or_negative_spectrum():
    with pytest.raises(ValueError, match="lam_min|lam_max"):
        lab3.heavy_ball_optimal(2.0, 1.0)
    with pytest.raises(ValueError, match="lam_min must be a positive"):
        lab3.gd_optimal_lr(0.0, 1.0)


def test_radius_is_polyaks_rate_at_the_optimum_and_one_on_the_edge():
    lr, beta = lab3.heavy_ball_optimal(0.01, 1.0)
    assert lab3.heavy_ball_radius(lr, beta, 0.01, 1.0) == pytest.approx(9 / 11)
    edge = lab3.heavy_ball_radius(2 * (1 + 0.5), 0.5, 0.01, 1.0)  # α·λ_max = 2 + 2β
    assert edge == pytest.approx(1.0)
    assert lab3.heavy_ball_radius(np.array([1.0, 3.5]), np.array([0.0, 0.5]), 0.01, 1.0).shape == (2,)


def test_exact_heavy_ball_error_has_the_repeated_root_form():
    lr, beta = lab3.heavy_ball_optimal(0.01, 1.0)
    r = 9 / 11
    errors = lab3.heavy_ball_errors(lr, beta, (0.01, 1.0), steps=50)
    k = np.arange(51)
    assert errors[:, 0] == pytest.approx((1 + (1 - r) * k) * r ** k, rel=1e-6)
    assert errors[:, 1] == pytest.approx((1 + (1 + r) * k) * (-r) ** k, rel=1e-6)


def test_exact_heavy_ball_error_matches_torch_momentum_for_distinct_roots():
    land = lab3.ravine(20)
    lr, beta = 0.8, 0.5
    run = lab3.run_optimizer(lambda p: torch.optim.SGD(p, lr=lr, momentum=beta), land, steps=60)
    exact = lab3.quadratic_gaps(land, lab3.heavy_ball_errors(lr, beta, land.eigenvalues, 60))
    assert run.gaps == pytest.approx(exact, rel=1e-9)


def test_steps_and_rates_from_a_geometric_sequence():
    gaps = 0.5 ** (2 * np.arange(40))  # error rate 0.5 per step
    assert lab3.steps_to_tolerance(gaps, 1e-6) == 10
    assert lab3.steps_to_tolerance(gaps, 1e-300) is None
    assert lab3.predicted_steps(0.5, 1e-6) == pytest.approx(math.log(1e-6) / (2 * math.log(0.5)))
    assert _tail_rate(gaps, 20, 39) == pytest.approx(0.5)


def test_convergence_study_meets_the_lab_numbers_with_torch_optimizers():
    rows = lab3.convergence_study(torch.optim.SGD, torch.optim.SGD, kappas=(10, 100))
    for row in rows:
        assert abs(row.gd_ratio - 1) <= 0.05
        assert 1.3 <= row.hb_ratio <= 2.0
        assert row.hb_log_rate_error <= 0.10
        assert row.hb_exact == row.hb_measured and row.hb_formula_error < 1e-8
    table = lab3.format_convergence_table(rows)
    assert table.count("\n") == 3 and "HB rate" in table


def test_rate_map_marks_the_edge_and_the_optimum():
    fig = lab3.plot_rate_map(0.01, 1.0, resolution=40)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("edge") and labels[1].startswith("Polyak")
    assert fig.axes[0].get_xlabel() == "learning rate α"


def test_runs_that_end_inside_the_window_get_an_end_dot_in_their_colour():
    land = lab3.ravine(30)
    runs = lab3.run_all(land, {"slow": sgd(0.3), "exploding": sgd(2.3)}, steps=40)
    fig = lab3.plot_trajectories(land, runs)
    ax = fig.axes[0]
    slow = next(ln for ln in ax.get_lines() if ln.get_label().startswith("slow"))
    dots = [ln for ln in ax.get_lines() if ln.get_marker() == "o" and ln.get_markersize() == 7 and len(ln.get_xdata())]
    assert len(dots) == 1  # the diverging run ends in a cross instead
    assert dots[0].get_color() == slow.get_color()
    assert tuple(dots[0].get_xydata()[0]) == pytest.approx(tuple(runs["slow"].trajectory[-1]))
    assert "end of a run (its colour)" in [t.get_text() for t in ax.get_legend().get_texts()]
