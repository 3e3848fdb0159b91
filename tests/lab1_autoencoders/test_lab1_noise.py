"""Lab 1's corruption checks: correct implementations in several styles pass; the mistakes
classmates make are rejected with a message that names them, and cost only their own part."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lab1_references import add_gaussian_noise, add_salt_and_pepper, mask_pixels

from labs_utils import exercises
from labs_utils.checks import check_noise
from labs_utils.lab1_autoencoders import exercise_noise as noise_checks
from labs_utils.lab1_autoencoders._inputs import generator

# ----------------------------------------------------------------------------------------------- corruptions


def add_gaussian_noise_with_normal(x, level, generator=None):
    noise = torch.normal(0.0, 1.0, size=x.shape, generator=generator, dtype=x.dtype)
    return torch.clip(x + noise * level, min=0.0, max=1.0)


def add_salt_and_pepper_one_draw(x, level, generator=None):
    u = torch.rand(x.shape, generator=generator)
    out = x.clone()
    out[u < level / 2] = 0.0
    out[(u >= level / 2) & (u < level)] = 1.0
    return out


def add_salt_and_pepper_exact_count(x, level, generator=None):
    flat = x.flatten().clone()
    chosen = torch.randperm(flat.numel(), generator=generator)[: round(level * flat.numel())]
    flat[chosen] = torch.randint(0, 2, (len(chosen),), generator=generator).to(x.dtype)
    return flat.view_as(x)


def mask_pixels_with_bernoulli(x, level, generator=None):
    keep = torch.bernoulli(torch.full(x.shape, 1.0 - level), generator=generator)
    return x * keep


@pytest.mark.parametrize("fn, kind", [
    (add_gaussian_noise, "gaussian"), (add_gaussian_noise_with_normal, "gaussian"),
    (add_salt_and_pepper, "salt_and_pepper"), (add_salt_and_pepper_one_draw, "salt_and_pepper"),
    (add_salt_and_pepper_exact_count, "salt_and_pepper"),
    (mask_pixels, "mask"), (mask_pixels_with_bernoulli, "mask"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_accepts_correct_implementations(fn, kind, capsys):
    check_noise(fn, kind)
    assert capsys.readouterr().out.startswith(f"\u2714 {noise_checks.NOISE_EXERCISES[kind].name}: all 3 part(s) passed")


def test_noise_check_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="use one of gaussian, salt_and_pepper, mask"):
        check_noise(add_gaussian_noise, "speckle")


def test_noise_check_needs_the_generator_parameter():
    def add_noise(x, level):
        return x

    with pytest.raises(AssertionError, match=r"no parameter\(s\) generator"):
        check_noise(add_noise, "gaussian")


def test_noise_check_reports_an_unimplemented_exercise():
    def add_gaussian_noise(x, level, generator=None):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check_noise(add_gaussian_noise, "gaussian")


def gaussian_variance_as_std(x, level, generator=None):
    return (x + level ** 2 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_unclamped(x, level, generator=None):
    return x + level * torch.randn(x.shape, generator=generator)


def gaussian_in_place(x, level, generator=None):
    return x.add_(level * torch.randn(x.shape, generator=generator)).clamp_(0, 1)


def gaussian_uniform(x, level, generator=None):
    return (x + level * torch.rand(x.shape, generator=generator)).clamp(0, 1)


def gaussian_global_rng(x, level, generator=None):
    return (x + level * torch.randn(x.shape)).clamp(0, 1)


def gaussian_one_value_per_image(x, level, generator=None):
    return (x + level * torch.randn(len(x), 1, 1, 1, generator=generator)).clamp(0, 1)


def gaussian_same_noise_for_the_batch(x, level, generator=None):
    return (x + level * torch.randn(1, *x.shape[1:], generator=generator)).clamp(0, 1)


def gaussian_fixed_std(x, level, generator=None):
    return (x + 0.1 * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_float64(x, level, generator=None):
    return (x + level * torch.randn(x.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)


@pytest.mark.parametrize("wrong, message", [
    (gaussian_variance_as_std, "looks like level\\*\\*2"),
    (gaussian_unclamped, "clamp"),
    (gaussian_in_place, "in place"),
    (gaussian_uniform, "mean 0"),
    (gaussian_global_rng, "generators seeded alike gave different images"),
    (gaussian_one_value_per_image, "each pixel needs its own noise value"),
    (gaussian_same_noise_for_the_batch, "images 1 and 2 of the batch got exactly the same noise"),
    (gaussian_fixed_std, "expected 0.05 \\(level is the standard deviation\\)"),
    (gaussian_float64, "dtype float64 for x of dtype float32"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_rejects_wrong_gaussian_noise(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_noise(wrong, "gaussian")


def salt_only(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, torch.ones_like(x), x)


def salt_and_pepper_twice_the_level(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    salt = torch.rand(x.shape, generator=generator) < level
    out = torch.where(hit, torch.zeros_like(x), x)
    return torch.where(salt, torch.ones_like(x), out)


def salt_and_pepper_grey_values(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    return torch.where(hit, torch.rand(x.shape, generator=generator), x)


def salt_and_pepper_in_place(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    x[hit] = (torch.rand(x.shape, generator=generator) < 0.5).to(x.dtype)[hit]
    return x


def salt_and_pepper_whole_images(x, level, generator=None):
    hit = torch.rand(len(x), 1, 1, 1, generator=generator) < level
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


@pytest.mark.parametrize("wrong, message", [
    (salt_only, "needs both"),
    (salt_and_pepper_twice_the_level, r"changed 9\.\d% of the pixels \(between \d+% and \d+% per image\); expected 5%"),
    (salt_and_pepper_grey_values, "exactly 1 \\(salt\\) or 0 \\(pepper\\)"),
    (salt_and_pepper_in_place, "in place"),
    (salt_and_pepper_whole_images, "per image"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_rejects_wrong_salt_and_pepper(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_noise(wrong, "salt_and_pepper")


def mask_with_dropout(x, level, generator=None):
    return F.dropout(x, p=level)


def mask_keeps_level(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, x, torch.zeros_like(x))


def mask_to_white(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, torch.ones_like(x), x)


def mask_in_place(x, level, generator=None):
    x[torch.rand(x.shape, generator=generator) < level] = 0
    return x


@pytest.mark.parametrize("wrong, message", [
    (mask_with_dropout, "F.dropout"),
    (mask_keeps_level, r"masked 9\d\.\d% of the pixels"),
    (mask_to_white, "masked pixels become 0"),
    (mask_in_place, "in place"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_rejects_wrong_masking(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_noise(wrong, "mask")


def test_noise_check_rejects_the_wrong_fraction_of_masked_pixels():
    def mask_half_the_level(x, level, generator=None):
        return torch.where(torch.rand(x.shape, generator=generator) < level / 2, torch.zeros_like(x), x)

    with pytest.raises(AssertionError, match=r"masked 2\.\d% of the pixels .* expected 5%"):
        check_noise(mask_half_the_level, "mask")


def gaussian_reseeds_the_global_generator(x, level, generator=None):
    torch.manual_seed(0)
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_own_generator_when_none(x, level, generator=None):
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_reseeds_its_generator(x, level, generator=None):
    if generator is not None:
        generator.manual_seed(1234)
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_always_float32(x, level, generator=None):
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1).float()


def salt_and_pepper_coin_per_image(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    salt = torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def salt_and_pepper_mask_shared_by_the_batch(x, level, generator=None):
    hit = torch.rand(x.shape[1:], generator=generator) < level
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def salt_and_pepper_always_float32(x, level, generator=None):
    return add_salt_and_pepper(x, level, generator).float()


def mask_shared_by_the_batch(x, level, generator=None):
    return torch.where(torch.rand(x.shape[1:], generator=generator) < level, torch.zeros_like(x), x)


def mask_always_float32(x, level, generator=None):
    return mask_pixels(x, level, generator).float()


def mask_reseeds_the_global_generator(x, level, generator=None):
    torch.manual_seed(42)
    return mask_pixels(x, level, generator)


NEW_MISTAKES = [
    (gaussian_reseeds_the_global_generator, "gaussian", "without a generator gave identical images"),
    (gaussian_own_generator_when_none, "gaussian", "without a generator gave identical images"),
    (gaussian_reseeds_its_generator, "gaussian", "same images for generators with different seeds"),
    (mask_reseeds_the_global_generator, "mask", "reseeds torch's random numbers"),
    (gaussian_always_float32, "gaussian", r"dtype float32 for x of dtype float64(?s:.*)no \.float\(\)"),
    (salt_and_pepper_always_float32, "salt_and_pepper", "dtype float32 for x of dtype float64"),
    (mask_always_float32, "mask", "dtype float32 for x of dtype float64"),
    (salt_and_pepper_coin_per_image, "salt_and_pepper", "chosen once per image, not per pixel"),
    (salt_and_pepper_mask_shared_by_the_batch, "salt_and_pepper", "exactly the same pixels changed"),
    (mask_shared_by_the_batch, "mask", "exactly the same pixels masked"),
]


@pytest.mark.parametrize("wrong, kind, message", NEW_MISTAKES, ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_rejects_reseeding_shared_masks_and_lost_dtypes(wrong, kind, message):
    with pytest.raises(AssertionError, match=message):
        check_noise(wrong, kind)


@pytest.mark.parametrize("wrong, kind, earned, failed_part", [
    (gaussian_reseeds_the_global_generator, "gaussian", 0.75, "reproducible with a generator"),
    (gaussian_global_rng, "gaussian", 0.75, "reproducible with a generator"),
    (gaussian_always_float32, "gaussian", 0.75, "range and identity at level 0"),
    (gaussian_unclamped, "gaussian", 0.75, "range and identity at level 0"),
    (gaussian_in_place, "gaussian", 0.75, "range and identity at level 0"),  # each call has its own copy of x
    (salt_and_pepper_coin_per_image, "salt_and_pepper", 0.5, "statistics"),
    (mask_shared_by_the_batch, "mask", 0.5, "statistics"),
], ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", str(v)))
def test_noise_mistakes_lose_only_their_part(wrong, kind, earned, failed_part):
    exercise = noise_checks.NOISE_EXERCISES[kind]
    verdicts = exercises.judge(exercise, exercises.probe(exercise, [wrong], exercises.draw_inputs(exercise, 3)), seed=3)
    assert exercises.points(exercise, verdicts) == earned
    assert [name for name, message in verdicts.items() if message is not None] == [
        part.name for part in exercise.parts if part.name.startswith(failed_part)]


def salt_and_pepper_with_bernoulli(x, level, generator=None):
    hit = torch.bernoulli(torch.full_like(x, level), generator=generator).bool()
    salt = torch.bernoulli(torch.full_like(x, 0.5), generator=generator)
    return torch.where(hit, salt, x)


def mask_with_masked_fill(x, level, generator=None):
    return x.masked_fill(torch.rand(x.shape, generator=generator, dtype=x.dtype) < level, 0.0)


def mask_by_multiplying(x, level, generator=None):
    return x * (torch.rand(x.shape, generator=generator) >= level)


def gaussian_in_the_input_dtype(x, level, generator=None):
    return torch.clamp(x + level * torch.randn(x.shape, generator=generator, dtype=x.dtype), 0.0, 1.0)


@pytest.mark.parametrize("fn, kind", [
    (salt_and_pepper_with_bernoulli, "salt_and_pepper"), (mask_with_masked_fill, "mask"),
    (mask_by_multiplying, "mask"), (gaussian_in_the_input_dtype, "gaussian"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_noise_check_accepts_other_correct_styles(fn, kind, capsys):
    check_noise(fn, kind)
    assert "all 3 part(s) passed" in capsys.readouterr().out


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 - 1])
def test_correct_corruptions_pass_with_the_graders_fresh_seeds(seed):
    for fn, kind in [(add_gaussian_noise, "gaussian"), (add_salt_and_pepper_one_draw, "salt_and_pepper"),
                     (add_salt_and_pepper_exact_count, "salt_and_pepper"), (mask_pixels_with_bernoulli, "mask")]:
        exercise = noise_checks.NOISE_EXERCISES[kind]
        verdicts = exercises.grade_here(exercise, [fn], seed)
        assert all(message is None for message in verdicts.values()), (fn.__name__, verdicts)


def gaussian_multiplicative(x, level, generator=None):
    return (x * (1 + level * torch.randn(x.shape, generator=generator))).clamp(0, 1)


def gaussian_scaled_by_the_pixel(x, level, generator=None):
    return (x + level * x * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_uniform_with_the_right_std(x, level, generator=None):
    uniform = 2 * torch.rand(x.shape, generator=generator) - 1  # std 1 / sqrt(3)
    return (x + level * math.sqrt(3) * uniform).clamp(0, 1)


def gaussian_clamped_noise(x, level, generator=None):
    return x + (level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def gaussian_clamped_noise_then_result(x, level, generator=None):
    return (x + (level * torch.randn(x.shape, generator=generator)).clamp(0, 1)).clamp(0, 1)


def gaussian_noise_clamped_both_ways(x, level, generator=None):
    return x + (level * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def gaussian_noise_only_down(x, level, generator=None):
    return (x - level * torch.rand(x.shape, generator=generator)).clamp(0, 1)


def mask_to_grey(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, torch.full_like(x, 0.5), x)


def mask_proportional_to_the_pixel(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level * x, torch.zeros_like(x), x)


def mask_by_dimming(x, level, generator=None):
    return x * (1 - level * torch.rand(x.shape, generator=generator))


def salt_and_pepper_coin_from_the_pixel(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    return torch.where(hit, (torch.rand(x.shape, generator=generator) < x).to(x.dtype), x)


def salt_and_pepper_bright_pixels_more_often(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level * 2 * x
    return torch.where(hit, (torch.rand(x.shape, generator=generator) < 0.5).to(x.dtype), x)


DATA_LIKE_MISTAKES = [
    (gaussian_multiplicative, "gaussian", "statistics", "left the black background (pixels at 0) black"),
    (gaussian_scaled_by_the_pixel, "gaussian", "statistics", "the noise is multiplied by the pixel's value"),
    (gaussian_uniform_with_the_right_std, "gaussian", "statistics", "is not Gaussian with std 0.05"),
    (gaussian_clamped_noise, "gaussian", "statistics", "the noise was clamped, not the result"),
    (gaussian_clamped_noise, "gaussian", "range", "it looks like the noise was clamped, not the result"),
    (gaussian_clamped_noise_then_result, "gaussian", "statistics", "the noise was clamped, not the result"),
    (gaussian_noise_clamped_both_ways, "gaussian", "range", "clamping the noise alone does not keep x + noise"),
    (gaussian_noise_only_down, "gaussian", "statistics", "the noise never goes up; Gaussian noise has mean 0"),
    (mask_to_grey, "mask", "statistics", "changed pixels to values such as [0.5, 0.5, 0.5]; masked pixels become 0"),
    (mask_proportional_to_the_pixel, "mask", "statistics", "the chance depends on the pixel's value"),
    (mask_by_dimming, "mask", "statistics", "masked pixels become 0 and every other pixel keeps its value"),
    (salt_and_pepper_coin_from_the_pixel, "salt_and_pepper", "statistics", "black pixels turned white"),
    (salt_and_pepper_bright_pixels_more_often, "salt_and_pepper", "statistics", "depends on the pixel's value"),
]


@pytest.mark.parametrize("wrong, kind, part, message", DATA_LIKE_MISTAKES,
                         ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_corruptions_are_judged_on_images_like_digits(wrong, kind, part, message):
    exercise = noise_checks.NOISE_EXERCISES[kind]
    verdicts = exercises.grade_here(exercise, (wrong,), seed=3)
    found = next(m for name, m in verdicts.items() if name.startswith(part))
    assert found is not None and message in found, verdicts
    assert "use randn" not in found and "masked 0.0%" not in found


def test_masking_to_grey_is_not_reported_as_masking_nothing():
    with pytest.raises(AssertionError) as info:
        check_noise(mask_to_grey, "mask")
    assert "masked pixels become 0" in str(info.value) and "0.0%" not in str(info.value)


def test_the_gaussian_shape_test_has_its_tolerance_far_from_both_sides():
    """The normality gap of correct noise stays below KS_LIMIT over seeds; uniform noise of the right std is
    far above it (the module's comment gives the measurement over 400 seeds)."""
    right, uniform = [], []
    for seed in range(25):
        x = noise_checks.inputs_noise("gaussian", seed=seed)["stat_images"][1].double()
        level = noise_checks.STAT_LEVELS[1]
        out = add_gaussian_noise(x.float(), level, generator(seed)).double()
        right.append(noise_checks.normality_gap(noise_checks.gaussian_scores(x, out, level, seed)))
        out = gaussian_uniform_with_the_right_std(x.float(), level, generator(seed)).double()
        uniform.append(noise_checks.normality_gap(noise_checks.gaussian_scores(x, out, level, seed)))
    assert max(right) < noise_checks.KS_LIMIT < 3 * noise_checks.KS_LIMIT < min(uniform)
