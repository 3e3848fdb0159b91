"""Lab 1 checks: correct implementations (written in several ways) pass, typical mistakes are rejected
with a message that names the mistake. The reference implementations live here, never in labs_utils."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_lab1_new_exercises import Small, interpolate_batched
from torch import nn

from labs_utils import exercises
from labs_utils.checks import (
    check_conv_autoencoder,
    check_denoising_batch,
    check_dense_autoencoder,
    check_noise,
)
from labs_utils.lab1_autoencoders import checks

# ----------------------------------------------------------------------------------------------- autoencoders


def dense_layers(code_dim: int, *, code_activation: nn.Module | None = None, hidden=nn.ReLU,
                 output: nn.Module | None = None, widths=(256, 64)) -> tuple[nn.Sequential, nn.Sequential]:
    first, second = widths
    encoder = [nn.Flatten(), nn.Linear(784, first), hidden(), nn.Linear(first, second), hidden(),
               nn.Linear(second, code_dim)]
    if code_activation is not None:
        encoder.append(code_activation)
    decoder = [nn.Linear(code_dim, second), hidden(), nn.Linear(second, first), hidden(), nn.Linear(first, 784),
               output if output is not None else nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28))]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


class Autoencoder(nn.Module):
    """The forward pass the notebook gives; subclasses build .encoder and .decoder."""

    def forward(self, x):
        return self.decoder(self.encoder(x))


class DenseAutoencoder(Autoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = dense_layers(code_dim)


class Encoder(nn.Module):
    def __init__(self, code_dim):
        super().__init__()
        self.hidden1, self.hidden2, self.code = nn.Linear(784, 256), nn.Linear(256, 64), nn.Linear(64, code_dim)

    def forward(self, x):
        return self.code(F.relu(self.hidden2(F.relu(self.hidden1(x.reshape(len(x), -1))))))


class Decoder(nn.Module):
    def __init__(self, code_dim):
        super().__init__()
        self.hidden1, self.hidden2, self.pixels = nn.Linear(code_dim, 64), nn.Linear(64, 256), nn.Linear(256, 784)

    def forward(self, z):
        return torch.sigmoid(self.pixels(F.relu(self.hidden2(F.relu(self.hidden1(z)))))).view(-1, 1, 28, 28)


class FunctionalDenseAutoencoder(Autoencoder):
    """Written with submodules and torch functions instead of nn.Sequential: equally correct."""

    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = Encoder(code_dim), Decoder(code_dim)


def dense_variant(**layer_options):
    class Variant(Autoencoder):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.encoder, self.decoder = dense_layers(code_dim, **layer_options)

    Variant.__name__ = "DenseAutoencoder"
    return Variant


def test_dense_check_accepts_the_class(capsys):
    check_dense_autoencoder(DenseAutoencoder)
    assert capsys.readouterr().out == "\u2714 Dense autoencoder: all 3 part(s) passed (2/2 points)\n"


def test_dense_check_accepts_an_instance_too():
    check_dense_autoencoder(DenseAutoencoder(code_dim=5))


def test_dense_check_accepts_submodules_written_with_torch_functions():
    check_dense_autoencoder(FunctionalDenseAutoencoder)


def test_dense_parameter_count_follows_the_layer_sizes():
    assert checks.dense_parameter_count(2) == sum(p.numel() for p in DenseAutoencoder(2).parameters()) == 435_858


@pytest.mark.parametrize("wrong, message", [
    (dense_variant(code_activation=nn.ReLU()), "code layer should be linear"),
    (dense_variant(code_activation=nn.Sigmoid()), "code layer should be linear"),
    (dense_variant(output=nn.Identity()), "nn.Sigmoid"),
    (dense_variant(hidden=nn.Identity), "affine map"),
    (dense_variant(widths=(128, 64)), "784-256-64-2-64-256-784"),
], ids=["relu-on-code", "sigmoid-on-code", "no-sigmoid-output", "no-hidden-relu", "wrong-widths"])
def test_dense_check_rejects_wrong_architectures(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_dense_autoencoder(wrong)


def test_dense_check_rejects_a_hard_coded_code_size():
    class IgnoresCodeDim(Autoencoder):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.encoder, self.decoder = dense_layers(2)

    with pytest.raises(AssertionError, match=r"code_dim=8\).encoder maps images .* expected codes shaped \(16, 8\)"):
        check_dense_autoencoder(IgnoresCodeDim)


def test_dense_check_rejects_a_flat_decoder_output():
    class FlatOutput(Autoencoder):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.encoder, decoder = dense_layers(code_dim)
            self.decoder = decoder[:-1]

    with pytest.raises(AssertionError, match=r"(?s)to \(16, 784\); expected \(16, 1, 28, 28\).*nn.Unflatten"):
        check_dense_autoencoder(FlatOutput)


def test_dense_check_rejects_a_single_network_without_encoder_and_decoder():
    class OneNetwork(nn.Module):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.net = nn.Sequential(*dense_layers(code_dim))

    with pytest.raises(AssertionError, match=r"(?s)has no submodule `.encoder`.*self.encoder = nn.Sequential"):
        check_dense_autoencoder(OneNetwork)


def test_dense_check_rejects_a_model_without_forward():
    class NoForward(nn.Module):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.encoder, self.decoder = dense_layers(code_dim)

    with pytest.raises(AssertionError, match="has no forward method"):
        check_dense_autoencoder(NoForward)


def test_dense_check_rejects_frozen_parameters():
    class Frozen(DenseAutoencoder):
        def __init__(self, code_dim: int = 2):
            super().__init__(code_dim)
            self.encoder.requires_grad_(False)

    with pytest.raises(AssertionError, match="cannot train"):
        check_dense_autoencoder(Frozen)


def test_dense_check_rejects_a_detached_code():
    class Detached(DenseAutoencoder):
        def forward(self, x):
            return self.decoder(self.encoder(x).detach())

    with pytest.raises(AssertionError, match=r"(?s)No gradient reaches encoder.*\.detach\(\)"):
        check_dense_autoencoder(Detached)


def test_dense_check_reports_an_unimplemented_exercise():
    class Blank(nn.Module):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check_dense_autoencoder(Blank)


def test_checks_do_not_change_the_notebooks_random_numbers():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check_dense_autoencoder(DenseAutoencoder)
    check_noise(add_gaussian_noise, "gaussian")
    assert torch.equal(torch.rand(3), expected)


def conv_layers(code_dim: int, channels=(32, 64, 128), *, norm: bool = True, last_output_padding: int = 1,
                code_activation: nn.Module | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    c1, c2, c3 = channels

    def block(layer, width):
        return [layer, nn.BatchNorm2d(width), nn.ReLU()] if norm else [layer, nn.ReLU()]

    encoder = [*block(nn.Conv2d(1, c1, 3, 2, 1), c1), *block(nn.Conv2d(c1, c2, 3, 2, 1), c2),
               *block(nn.Conv2d(c2, c3, 3, 2, 1), c3), nn.Flatten(), nn.Linear(c3 * 16, code_dim)]
    if code_activation is not None:
        encoder.append(code_activation)
    decoder = [nn.Linear(code_dim, c3 * 16), nn.ReLU(), nn.Unflatten(1, (c3, 4, 4)),
               *block(nn.ConvTranspose2d(c3, c2, 3, 2, 1), c2),
               *block(nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1), c1),
               nn.ConvTranspose2d(c1, 1, 3, 2, 1, output_padding=last_output_padding), nn.Sigmoid()]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


def conv_variant(**layer_options):
    class ConvAutoencoder(Autoencoder):
        def __init__(self, code_dim: int = 32):
            super().__init__()
            self.encoder, self.decoder = conv_layers(code_dim, **layer_options)

    return ConvAutoencoder


class UpsamplingConvAutoencoder(Autoencoder):
    """Upsampling + convolution instead of transposed convolutions, 4 -> 8 -> 16 -> 32 cropped: also correct."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten(), nn.Linear(32 * 7 * 7, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                                     nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
                                     nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid())


@pytest.mark.parametrize("correct", [conv_variant(), conv_variant(norm=False), conv_variant(channels=(8, 16, 32)),
                                     UpsamplingConvAutoencoder],
                         ids=["batchnorm", "no-batchnorm", "narrow", "upsampling"])
def test_conv_check_accepts_correct_variants(correct, capsys):
    check_conv_autoencoder(correct)
    assert "\u2714 Convolutional autoencoder: all 3 part(s) passed (2/2 points)" in capsys.readouterr().out


def test_conv_check_explains_transposed_convolution_sizes():
    with pytest.raises(AssertionError, match=r"(?s)\(16, 1, 27, 27\); expected \(16, 1, 28, 28\).*output_padding=1"):
        check_conv_autoencoder(conv_variant(last_output_padding=0))


def test_conv_check_rejects_a_relu_on_the_code():
    with pytest.raises(AssertionError, match="code layer should be linear"):
        check_conv_autoencoder(conv_variant(code_activation=nn.ReLU()))


def test_conv_check_rejects_feature_maps_as_code():
    class MapsAsCode(Autoencoder):
        def __init__(self, code_dim: int = 32):
            super().__init__()
            encoder, decoder = conv_layers(code_dim)
            self.encoder, self.decoder = encoder[:-2], decoder[3:]

    with pytest.raises(AssertionError, match=r"(?s)to \(16, 128, 4, 4\); expected codes shaped \(16, 32\).*flatten"):
        check_conv_autoencoder(MapsAsCode)


def test_conv_check_rejects_a_dense_network():
    class Dense(Autoencoder):
        def __init__(self, code_dim: int = 32):
            super().__init__()
            self.encoder, self.decoder = dense_layers(code_dim)

    with pytest.raises(AssertionError, match="encoder has no nn.Conv2d"):
        check_conv_autoencoder(Dense)


# ----------------------------------------------------------------------------------------------- corruptions


def add_gaussian_noise(x, level, generator=None):
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def add_gaussian_noise_with_normal(x, level, generator=None):
    noise = torch.normal(0.0, 1.0, size=x.shape, generator=generator, dtype=x.dtype)
    return torch.clip(x + noise * level, min=0.0, max=1.0)


def add_salt_and_pepper(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


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


def mask_pixels(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, torch.zeros_like(x), x)


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
    assert capsys.readouterr().out.startswith(f"\u2714 {checks._NOISE_EXERCISES[kind]}: all 3 part(s) passed")


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
    (salt_and_pepper_twice_the_level, r"changed .* of the pixels"),
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
    (salt_and_pepper_coin_per_image, "salt_and_pepper", 0.5, "statistics"),
    (mask_shared_by_the_batch, "mask", 0.5, "statistics"),
], ids=lambda v: v if isinstance(v, str) else getattr(v, "__name__", str(v)))
def test_noise_mistakes_lose_only_their_part(wrong, kind, earned, failed_part):
    exercise = exercises.exercise_named(checks.GRADING, checks._NOISE_EXERCISES[kind])
    verdicts = exercises.judge(exercise, exercises.probe(exercise, [wrong], seed=3), seed=3)
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
        exercise = exercises.exercise_named(checks.GRADING, checks._NOISE_EXERCISES[kind])
        verdicts = exercises.judge(exercise, exercises.probe(exercise, [fn], seed=seed), seed=seed)
        assert all(message is None for message in verdicts.values()), (fn.__name__, verdicts)


# ----------------------------------------------------------------------------------------------- denoising batch


def denoising_batch(x_clean, corrupt):
    return corrupt(x_clean), x_clean


def denoising_batch_with_copies(x_clean, corrupt):
    inputs = corrupt(x_clean.clone())
    return inputs, x_clean.clone()


def denoising_batch_with_a_spare_call(x_clean, corrupt):
    inputs = corrupt(x_clean)
    corrupt(x_clean)  # e.g. left over from looking at a second corruption: harmless
    return inputs, x_clean


def test_denoising_batch_check_accepts_correct_versions(capsys):
    for fn in (denoising_batch, denoising_batch_with_copies, denoising_batch_with_a_spare_call,
               lambda x, corrupt: [corrupt(x), x]):
        check_denoising_batch(fn)
    assert capsys.readouterr().out.count("\u2714 Denoising batch: all 2 part(s) passed (1/1 points)") == 4


@pytest.mark.parametrize("wrong, earned", [
    (lambda x, corrupt: (corrupt(corrupt(x)), x), 0.5),
    (lambda x, corrupt: (corrupt(x), x.add_(0.1)), 0.5),
    (lambda x, corrupt: (corrupt(x), corrupt(x)), 0.5),
    (lambda x, corrupt: (x, x), 0.5),
    (lambda x, corrupt: (x, corrupt(x)), 0.0),
], ids=["twice", "in-place", "noisy-targets", "no-corruption", "swapped"])
def test_denoising_batch_partial_credit(wrong, earned):
    exercise = exercises.exercise_named(checks.GRADING, "Denoising batch")
    verdicts = exercises.judge(exercise, exercises.probe(exercise, [wrong], seed=9), seed=9)
    assert exercises.points(exercise, verdicts) == earned


@pytest.mark.parametrize("wrong, message", [
    (lambda x, corrupt: (x, corrupt(x)), "swapped"),
    (lambda x, corrupt: (corrupt(x), corrupt(x)), "targets are the corrupted images"),
    (lambda x, corrupt: (x, x), "never called corrupt"),
    (lambda x, corrupt: (corrupt(x), x.add_(0.1)), "changed x_clean in place"),
    (lambda x, corrupt: (corrupt(x * 0.5), x), "called corrupt on something other than x_clean"),
    (lambda x, corrupt: (corrupt(x) + 0.0 * corrupt(x) + 0.01, x), "not what corrupt\\(x_clean\\) returned"),
    (lambda x, corrupt: [corrupt(x), x, x], "expected a pair of tensors"),
    (lambda x, corrupt: corrupt(x), "expected a pair of tensors"),
    (lambda x, corrupt: (corrupt(corrupt(x)), x), "corruption was applied twice"),
], ids=["swapped", "noisy-targets", "no-corruption", "in-place", "corrupts-other", "changed-inputs",
        "triple", "single-tensor", "corrupted-twice"])
def test_denoising_batch_check_rejects_typical_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_denoising_batch(wrong)


# ----------------------------------------------------------------------------------------------- grading table


SOLUTIONS = {"DenseAutoencoder": DenseAutoencoder, "ConvAutoencoder": conv_variant(),
             "add_gaussian_noise": add_gaussian_noise, "add_salt_and_pepper": add_salt_and_pepper,
             "mask_pixels": mask_pixels, "denoising_batch": denoising_batch,
             "interpolate": interpolate_batched, "ChallengeAutoencoder": Small}


def test_grading_table_lists_every_exercise_with_a_check_that_passes_on_the_solutions(capsys):
    for exercise in checks.GRADING:
        assert set(exercise.needs) <= set(SOLUTIONS), exercise
        exercises.run_exercise(exercise, [SOLUTIONS[n] for n in exercise.needs])
    assert capsys.readouterr().out.count("\u2714") == len(checks.GRADING) == 8
    assert [exercise.points for exercise in checks.GRADING] == [2, 1.5, 2, 1, 1, 1, 1, 0.5]


def test_autoencoder_mistakes_lose_only_their_part():
    exercise = exercises.exercise_named(checks.GRADING, "Dense autoencoder")
    verdicts = exercises.judge(exercise, exercises.probe(exercise, [dense_variant(output=nn.Identity())], seed=4),
                               seed=4)
    assert [name for name, message in verdicts.items() if message] == ["output in [0, 1]"]
    assert exercises.points(exercise, verdicts) == 1.5
    verdicts = exercises.judge(exercise, exercises.probe(exercise, [dense_variant(hidden=nn.Identity)], seed=4),
                               seed=4)
    assert exercises.points(exercise, verdicts) == 1.5


@pytest.mark.parametrize("evidence", [None, "passed", [], {}, {"name": "x", "passed": True},
                                      {"__error__": 3}, {"name": 1, "pair": [1, 2], "length": 2}])
def test_judges_fail_malformed_evidence_without_crashing(evidence):
    for exercise in checks.GRADING:
        verdicts = exercises.judge(exercise, evidence, seed=0)
        assert set(verdicts) == {part.name for part in exercise.parts}
        assert all(isinstance(message, str) for message in verdicts.values()), (exercise.name, verdicts)


def test_judges_do_not_trust_evidence_from_another_seed():
    for exercise in checks.GRADING:
        if exercise.name in ("Dense autoencoder", "Convolutional autoencoder", "Open challenge"):
            continue  # their parts are properties of the model, whatever the inputs
        found = exercises.probe(exercise, [SOLUTIONS[exercise.needs[0]]], seed=1)
        verdicts = exercises.judge(exercise, found, seed=2)
        assert any(message is not None for message in verdicts.values()), exercise.name


def test_evidence_is_small_and_survives_the_json_round_trip():
    from labs_utils import evidence

    for exercise in checks.GRADING:
        found = exercises.probe(exercise, [SOLUTIONS[exercise.needs[0]]], seed=7)
        text = evidence.encode(found)
        assert len(text) < 2**20, (exercise.name, len(text))
        verdicts = exercises.judge(exercise, evidence.decode(text), seed=7)
        assert all(message is None for message in verdicts.values()), (exercise.name, verdicts)
