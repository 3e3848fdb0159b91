"""The measurements behind Lab 3's tuning, noise and comparison cells: good ranges on an absolute bar, the paired
comparison over the same digits, the noise-free descent against section 1's 2/λ limit, and mini-batch noise."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labs_utils import lab3_optimizers as lab3
from labs_utils import training
from labs_utils.lab3_optimizers import tuning


def test_good_range_is_read_on_an_absolute_bar_and_per_seed():
    lrs = [1e-3, 1e-2, 1e-1, 1.0]
    accs = {"a": np.array([[70, 86, 90, 10], [85, 88, 91, 12]]), "b": np.array([[50, 60, 86, 20], [50, 60, 87, 30]])}
    assert tuning.good_range(lrs, accs["a"].min(axis=0), 85) == (1e-2, 1e-1)
    assert tuning.good_range(lrs, accs["b"].min(axis=0), 95) is None
    # a good lr cut off by a bad one does not widen the range: the widest unbroken run counts
    assert tuning.good_range(lrs, np.array([90, 50, 90, 90]), 85) == (1e-1, 1.0)
    assert tuning.good_range(lrs, np.array([90, 90, 50, 90]), 85) == (1e-3, 1e-2)
    assert tuning.width((1e-2, 1e-1)) == pytest.approx(10) and tuning.width(None) == 0
    table = tuning.format_good_ranges(lrs, accs, bars=(85,)).splitlines()
    assert "0.01 to 0.1" in table[1] and "10x–100x" in table[1]  # seed 0 good from 1e-2, seed 1 from 1e-3
    assert "0.1 to 0.1" in table[2] and "1x–1x" in table[2]


def test_paired_difference_of_the_same_digits():
    rng = np.random.default_rng(0)
    a = rng.random((3, 1000)) < 0.9
    same = tuning.paired_difference(a, a)
    assert same["mean"] == 0 and same["low"] == 0 and same["high"] == 0 and same["only_a"] == 0
    b = a.copy()
    b[:, :20] = False  # B misses 20 digits A gets right (where A was right), on every seed
    found = tuning.paired_difference(a, b)
    lost = a[:, :20].sum(axis=1).mean()
    assert found["mean"] == pytest.approx(lost / 10) and found["only_a"] == pytest.approx(lost)
    assert 0 < found["low"] < found["mean"] < found["high"] and found["only_b"] == 0
    assert found["seed_low"] <= found["mean"] <= found["seed_high"]
    assert found["p_high"] < 1e-4 and same["p_low"] == same["p_high"] == 1.0


def test_mcnemar_is_one_test_per_seed_never_pooled_over_seeds():
    a = np.ones((3, 100), dtype=bool)
    b = a.copy()
    b[:, :4] = False  # 4 discordant digits on each seed, the same 4 digits: p = 0.125 per seed (pooled: 12 vs 0)
    found = tuning.paired_difference(a, b)
    assert found["p_low"] == found["p_high"] == pytest.approx(0.125)
    b[0, 4:10] = False  # seed 0 has 10 against 0
    assert tuning.paired_difference(a, b)["p_low"] == pytest.approx(2 / 2 ** 10)


def test_mcnemar_exact_p_values():
    assert tuning.mcnemar_p(4, 0) == pytest.approx(0.125)  # 2 · (1/2)^4
    assert tuning.mcnemar_p(3, 3) == 1.0 and tuning.mcnemar_p(0, 0) == 1.0
    assert tuning.mcnemar_p(10, 2) == pytest.approx(2 * sum(math.comb(12, i) for i in range(3)) / 2 ** 12)


def test_noise_free_descent_settles_in_the_sharp_well_only_below_two_over_its_curvature():
    curvature = lab3.curvature(lab3.noise.SHARP)
    assert curvature == pytest.approx(400)
    stable = lab3.descend(lambda p: torch.optim.SGD(p, lr=1.6 / curvature), -1 + 1e-3, 2_000)
    unstable = lab3.descend(lambda p: torch.optim.SGD(p, lr=4.0 / curvature), -1 + 1e-3, 2_000)
    assert abs(stable + 1) < 1e-4 and abs(unstable + 1) > 1e-2


@pytest.mark.slow  # computes gradients of the MNIST network over many batches (seconds)
def test_minibatch_gradient_noise_shrinks_like_one_over_root_batch():
    found = lab3.minibatch_gradient_noise([4, 64], digits=1_000, draws=12)
    ratio = found[4] / found[64]
    assert 2.5 < ratio < 6.0  # √16 = 4, within the sampling error of 12 draws
    assert all(math.isfinite(v) and v > 0 for v in found.values())


def test_the_sweeps_leave_their_last_state_as_text_in_a_notebook(monkeypatch, capsys):
    """A saved notebook shows a tqdm widget as its first text ("0%"): each sweep prints how it ended."""
    pytest.importorskip("ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    monkeypatch.setattr(training, "tqdm", notebook_tqdm)
    monkeypatch.setattr(tuning, "train_classifier", lambda make, **kwargs: type("Run", (), {"eval_accuracy": 0.5}))
    found = tuning.lr_sweep({"a": lambda lr: None}, [0.1, 1.0], [0, 1], epochs=1, digits=10)
    assert found["a"].shape == (2, 2) and (found["a"] == 50).all()
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("4 training runs of 1 epochs: 100%")
    tuning.grid_sweep(lambda lr, decay: None, [0.1], [0.0, 0.1, 1.0], epochs=1, digits=10, desc="grid")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("grid: 100%") and "3/3" in last
