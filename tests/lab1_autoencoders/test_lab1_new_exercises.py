"""Lab 1's thinking exercises: the latent interpolation and the open challenge. Correct implementations in
several styles pass; each typical mistake is rejected with a message naming it. References live here."""
from __future__ import annotations

import dataclasses
import re

import pytest
import torch
from torch import nn

from labs_utils import exercises, runtime
from labs_utils.checks import check_challenge, check_interpolate
from labs_utils.lab1_autoencoders import checks
from labs_utils.lab1_autoencoders import experiments as ex

# ----------------------------------------------------------------------------------------------- interpolation


def interpolate_batched(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return model.decoder((1 - t) * z[:1] + t * z[1:])


def interpolate_loop(model, x_a, x_b, steps=8):
    """One code at a time with torch.lerp, stacked: equally correct."""
    with torch.no_grad():
        z_a, z_b = model.encoder(x_a.unsqueeze(0)), model.encoder(x_b.unsqueeze(0))
        return torch.cat([model.decoder(torch.lerp(z_a, z_b, k / (steps - 1))) for k in range(steps)])


def interpolate_float64(model, x_a, x_b, steps=8):
    """Codes blended in float64 and cast back: equally correct."""
    z_a, z_b = (model.encoder(x[None]).double() for x in (x_a, x_b))
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    return model.decoder(((1 - t) * z_a + t * z_b).float()).detach()


def pixel_blend(model, x_a, x_b, steps=8):
    ends = model(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    return (1 - t) * ends[:1] + t * ends[1:]


def image_blend(model, x_a, x_b, steps=8):
    t = torch.linspace(0, 1, steps)[:, None, None, None]
    return (1 - t) * x_a + t * x_b


def end_left_out(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = (torch.arange(steps) / steps)[:, None]
    return model.decoder((1 - t) * z[:1] + t * z[1:])


def reversed_path(model, x_a, x_b, steps=8):
    return interpolate_batched(model, x_b, x_a, steps)


def fixed_steps(model, x_a, x_b, steps=8):
    return interpolate_batched(model, x_a, x_b, 8)


def a_list(model, x_a, x_b, steps=8):
    return list(interpolate_batched(model, x_a, x_b, steps))


def changes_inputs(model, x_a, x_b, steps=8):
    x_a.clamp_(0, 0.5)
    return interpolate_batched(model, x_a, x_b, steps)


def codes_only(model, x_a, x_b, steps=8):
    z = model.encoder(torch.stack([x_a, x_b]))
    t = torch.linspace(0, 1, steps)[:, None]
    return (1 - t) * z[:1] + t * z[1:]


@pytest.mark.parametrize("fn", [interpolate_batched, interpolate_loop, interpolate_float64])
def test_interpolation_check_accepts_correct_styles(fn, capsys):
    check_interpolate(fn)
    assert "Latent interpolation: all 2 part(s) passed (1.5/1.5 points)" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (pixel_blend, "blends the two reconstructions pixel by pixel"),
    (image_blend, "starts with x_a itself"),
    (end_left_out, "the last image is not x_b's reconstruction"),
    (reversed_path, "goes from x_b to x_a"),
    (fixed_steps, "returned shape (8, 1, 28, 28); expected (5, 1, 28, 28). Hint: one image per step"),
    (a_list, "returned list, not a tensor"),
    (changes_inputs, "changed x_a or x_b in place"),
    (codes_only, "returned shape (5, 3); expected (5, 1, 28, 28)"),
], ids=lambda v: v.__name__ if callable(v) else "")
def test_interpolation_check_rejects_mistakes(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as info:
        check_interpolate(wrong)
    assert message in str(info.value)


@pytest.mark.parametrize("wrong, earned", [(pixel_blend, 0.5), (end_left_out, 0.0), (image_blend, 0.0)],
                         ids=lambda v: v.__name__ if callable(v) else str(v))
def test_interpolation_mistakes_lose_the_right_parts(wrong, earned):
    exercise = exercises.exercise_named(checks.GRADING, "Latent interpolation")
    assert exercises.points(exercise, exercises.grade_here(exercise, (wrong,), seed=7)) == earned


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_interpolation_passes_with_the_graders_fresh_seeds(seed):
    exercise = exercises.exercise_named(checks.GRADING, "Latent interpolation")
    assert exercises.points(exercise, exercises.grade_here(exercise, (interpolate_loop,), seed)) == 1.5


def test_the_probe_decoder_is_far_from_linear_between_the_two_codes():
    """Otherwise the pixel blend would pass: the midpoint images must differ clearly."""
    model, x_a, x_b = ex_inputs(3)
    with torch.no_grad():
        z = model.encoder(torch.stack([x_a, x_b]))
        ends = model.decoder(z)
        middle = model.decoder(z.mean(0, keepdim=True))
    assert (middle - ends.mean(0, keepdim=True)).abs().max() > 0.05


def ex_inputs(seed):
    from labs_utils.lab1_autoencoders._interpolation_probes import _inputs

    return _inputs(seed)


# ----------------------------------------------------------------------------------------------- challenge


class Small(nn.Module):
    """A conv autoencoder of about 36,000 parameters with a code of 32 numbers (untrained here)."""

    def __init__(self, code_dim=32, channels=(16, 32, 16), sigmoid=True):
        super().__init__()
        a, b, c = channels
        self.encoder = nn.Sequential(
            nn.Conv2d(1, a, 3, 2, 1), nn.BatchNorm2d(a), nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(b, c, 3, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(c * 16, code_dim))
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, c * 16), nn.ReLU(), nn.Unflatten(1, (c, 4, 4)),
            nn.ConvTranspose2d(c, b, 3, 2, 1), nn.ReLU(), nn.ConvTranspose2d(b, a, 3, 2, 1, 1), nn.ReLU(),
            nn.ConvTranspose2d(a, 1, 3, 2, 1, 1), nn.Sigmoid() if sigmoid else nn.Identity())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class PCAAutoencoder(nn.Module):
    """PCA with 32 components as a linear autoencoder (clipped to [0, 1]): a known test MSE, no training."""

    def __init__(self):
        super().__init__()
        from labs_utils import data
        from labs_utils.lab1_autoencoders import fit_pca

        images, _ = data.load_mnist("train", limit=4000)
        pca = fit_pca(images, max_components=32)
        components, mean = pca.components[:32].float(), pca.mean.flatten().float()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 32))
        self.decoder = nn.Sequential(nn.Linear(32, 784), nn.Hardtanh(0, 1), nn.Unflatten(1, (1, 28, 28)))
        with torch.no_grad():
            self.encoder[1].weight.copy_(components)
            self.encoder[1].bias.copy_(-components @ mean)
            self.decoder[0].weight.copy_(components.T)
            self.decoder[0].bias.copy_(mean)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def shifted_without_sigmoid() -> Small:
    """No sigmoid at the end, and a last bias that puts the pixels below 0."""
    model = Small(sigmoid=False)
    with torch.no_grad():
        model.decoder[-2].bias.fill_(-1.0)
    return model


@pytest.fixture
def full_mode(monkeypatch):
    monkeypatch.setenv("LABS_FAST", "0")
    monkeypatch.delenv("CI", raising=False)
    assert not runtime.fast_mode()


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("LABS_FAST", "1")
    assert runtime.fast_mode()


@pytest.mark.parametrize("model", [Small, Small(), Small(channels=(8, 16, 32))], ids=["class", "instance", "other"])
def test_challenge_check_accepts_models_within_the_rules(model, capsys):
    check_challenge(model)
    assert "Open challenge: all 1 part(s) passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, message", [
    (Small(channels=(32, 64, 128)), "parameters, over the budget of 50,000"),
    (Small(code_dim=16), "shape [8, 16]; the challenge's code is 32 numbers"),
    (shifted_without_sigmoid(), "outside [0, 1]"),
    (nn.Sequential(nn.Identity()), "needs the two halves self.encoder and self.decoder"),
], ids=["over budget", "code 16", "no sigmoid", "no halves"])
def test_challenge_check_rejects_models_outside_the_rules(wrong, message):
    with pytest.raises(AssertionError, match="Hint") as info:
        check_challenge(wrong)
    assert message in str(info.value)


@pytest.fixture(scope="module")
def pca_model_and_test_digits():
    from labs_utils import data

    return PCAAutoencoder(), data.load_mnist("test", limit=1000)[0]


def test_challenge_verdict_judges_target_and_time_in_full_mode(full_mode, monkeypatch, capsys,
                                                               pca_model_and_test_digits):
    model, images = pca_model_and_test_digits
    monkeypatch.setattr(ex, "CHALLENGE", dataclasses.replace(ex.CHALLENGE, target_mse=0.05))
    mse = ex.challenge_verdict(model, 0.0, images)
    out = capsys.readouterr().out
    assert 0.01 < mse < 0.03 and f"test MSE {mse:.4f}" in out and "\u2714 Open challenge met" in out  # PCA-32: ~0.018
    ex.challenge_verdict(model, 61, images)  # a missed budget or target is reported, never raised (Run All goes on)
    out = capsys.readouterr().out
    assert "\u2718 Open challenge not met yet" in out and "The training took 61 s, over the budget of 60 s" in out
    with pytest.raises(AssertionError, match="not a number of seconds"):
        ex.challenge_verdict(model, "fast", images)
    monkeypatch.setattr(ex, "CHALLENGE", ex.Challenge())
    ex.challenge_verdict(model, 1, images)
    out = capsys.readouterr().out
    assert re.search(r"The test MSE is 0\.0\d+, above the target of 0\.01", out) and "over the budget" not in out


def test_challenge_verdict_in_fast_mode_only_reports(fast, capsys, pca_model_and_test_digits):
    model, images = pca_model_and_test_digits
    ex.challenge_verdict(model, 1e9, images)
    assert "judged in full mode only" in capsys.readouterr().out


def test_the_budget_leaves_room_for_the_lab_design_at_a_fifth_of_its_size():
    assert sum(p.numel() for p in Small().parameters()) < ex.CHALLENGE.max_parameters < 319_009 / 5


# ----------------------------------------------------------------------------------------------- BatchNorm runs


def test_without_batchnorm_replaces_every_batchnorm_and_keeps_the_weights():
    model = Small()
    before = {n: p.clone() for n, p in model.named_parameters() if "encoder.1" not in n}
    ex.without_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_seed_runs_count_runs_that_learned_nothing_and_say_whether_the_ranges_separate():
    runs = ex.SeedRuns(baseline=0.06, mse={"with BatchNorm": {0: 0.018, 1: 0.019},
                                           "without BatchNorm": {0: 0.061, 1: 0.03}})
    assert runs.stuck("without BatchNorm") == [0] and runs.stuck("with BatchNorm") == []
    assert "1 of 2 runs learned next to nothing" in runs.verdict() and "below every run" in runs.verdict()
    assert "| learned next to nothing | 0 of 2 | 1 of 2 |" in runs.table()
    runs.mse["with BatchNorm"][1] = 0.04
    assert "overlap" in runs.verdict()


def test_batchnorm_seeds_trains_both_variants_from_the_same_draws_and_restores_the_rng():
    x = torch.rand(64, 1, 28, 28)
    seen = []

    def train(model, steps, desc, lr):
        seen.append((desc, model.encoder[0].weight.detach().clone(),
                     any(isinstance(m, nn.BatchNorm2d) for m in model.modules())))

    state = torch.get_rng_state()
    runs = ex.batchnorm_seeds(Small, train, seeds=(3, 4), steps=1, x_train=x, x_val=x[:8], lr=1e-3)
    assert torch.equal(torch.get_rng_state(), state)
    assert [d for d, _, _ in seen] == ["with BatchNorm, seed 3", "with BatchNorm, seed 4",
                                       "without BatchNorm, seed 3", "without BatchNorm, seed 4"]
    assert torch.equal(seen[0][1], seen[2][1]) and not torch.equal(seen[0][1], seen[1][1])
    assert [bn for _, _, bn in seen] == [True, True, False, False]
    assert set(runs.mse["without BatchNorm"]) == {3, 4}
    assert runs.black == pytest.approx(float((x[:8] ** 2).mean()))
    assert f"an all-black image (drawing nothing) scores {runs.black:.4f}" in runs.table()
