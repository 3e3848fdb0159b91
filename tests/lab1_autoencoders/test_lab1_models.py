"""Lab 1's two autoencoder checks: correct models written in several ways pass; the mistakes classmates make are
rejected with a message that names them, and cost only their own part."""
from __future__ import annotations

import functools

import pytest
import torch
from lab1_references import (
    Autoencoder,
    DenseAutoencoder,
    FunctionalConvAutoencoder,
    FunctionalDenseAutoencoder,
    conv_layers,
    conv_variant,
    dense_layers,
    dense_variant,
)
from torch import nn

from labs_utils import exercises
from labs_utils.checks import check_dense_autoencoder
from labs_utils.lab1_autoencoders import _measures as measure
from labs_utils.lab1_autoencoders import exercise_autoencoders as ae
from labs_utils.lab1_autoencoders import exercise_conv as cv
from labs_utils.lab1_autoencoders import model_size
from labs_utils.lab1_autoencoders._calls import StudentCalls
from labs_utils.runtime import seeded

ALL_PASSED = "all 4 part(s) passed (2/2 points)"

# The mistakes are made in the narrow design (channels 8, 16, 32), which test_conv_check_accepts_other_designs_
# within_the_contract shows passing every part: the check trains each model, and the narrow one trains in a third
# of the table's time. The budget mistake needs the table's width and more; without BatchNorm the narrow design
# also misses the validation target, and with a linear output it still reaches it: those two keep the table's width.
NARROW = (8, 16, 32)


def narrow(**layer_options):
    return conv_variant(channels=NARROW, **layer_options)


def verdicts(exercise, model, seed=5):
    return exercises.grade_here(exercise, (model,), seed)


def failed(exercise, model, seed=5):
    return [name for name, message in verdicts(exercise, model, seed).items() if message is not None]


@functools.cache
def conv_verdicts(model) -> dict:
    """The convolutional check's verdicts (it trains each design for a few seconds: once per test run)."""
    return verdicts(cv.CONV, model)


class TwoLevels(nn.Module):
    """Another design within the contract: kernels of 4 (padding 1, no output_padding), two levels down to
    48 x 7 x 7, a 5 x 5 transposed convolution (padding 2, output_padding 1) last."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 24, 4, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
            nn.Conv2d(24, 48, 4, stride=2, padding=1), nn.BatchNorm2d(48), nn.ReLU(),
            nn.Flatten(), nn.Linear(48 * 49, code_dim))
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 48 * 49), nn.ReLU(), nn.Unflatten(1, (48, 7, 7)),
            nn.ConvTranspose2d(48, 24, 4, stride=2, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
            nn.ConvTranspose2d(24, 1, 5, stride=2, padding=2, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


# ----------------------------------------------------------------------------------------------- correct models


@pytest.mark.parametrize("model", [DenseAutoencoder, DenseAutoencoder(code_dim=5), FunctionalDenseAutoencoder,
                                   dense_variant(output=nn.Hardsigmoid())],
                         ids=["class", "instance", "explicit-forward", "hardsigmoid-output"])
def test_dense_check_accepts_correct_models(model, capsys):
    check_dense_autoencoder(model)
    assert f"\u2714 Dense autoencoder: {ALL_PASSED}" in capsys.readouterr().out


@pytest.mark.slow  # the conv check trains the model (seconds)
@pytest.mark.parametrize("model", [
    narrow(), narrow(norm_after_relu=True), narrow(activation=nn.LeakyReLU),
    FunctionalConvAutoencoder, TwoLevels,
], ids=["narrow-channels", "batchnorm-after-relu", "leaky-relu", "explicit-forward-other-channels", "two-levels"])
def test_conv_check_accepts_other_designs_within_the_contract(model):
    assert all(message is None for message in conv_verdicts(model).values()), conv_verdicts(model)


def test_dense_parameter_count_follows_the_layer_sizes():
    assert ae.dense_parameter_count(2) == sum(p.numel() for p in DenseAutoencoder(2).parameters()) == 435_858


def test_model_size_counts_buffers_and_plain_tensors_once_each():
    model = conv_variant()()
    parameters = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    assert buffers > 0 and model_size(model) == parameters + buffers
    model.hidden = torch.zeros(7, requires_grad=True)
    model.encoder[0].table = [torch.ones(3)]
    model.tied = model.encoder[0].weight  # the same storage: counted once
    assert model_size(model) == parameters + buffers + 10


@pytest.mark.slow  # the conv check trains the model (seconds)
@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_models_pass_with_the_graders_fresh_seeds(seed):
    for exercise, model in ((ae.DENSE, DenseAutoencoder), (cv.CONV, narrow())):
        assert failed(exercise, model, seed) == []


# ----------------------------------------------------------------------------------------------- wrong models


class RoundedOutput(DenseAutoencoder):
    def forward(self, x):
        return torch.round(self.decoder(self.encoder(x)) * 4) / 4


class DetachedCode(DenseAutoencoder):
    def forward(self, x):
        return self.decoder(self.encoder(x).detach())


class FrozenEncoder(DenseAutoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__(code_dim)
        self.encoder.requires_grad_(False)


class ExtraBuffer(DenseAutoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__(code_dim)
        self.register_buffer("scale", torch.ones(784))


class HiddenWeights(DenseAutoencoder):
    """Weights kept as a plain tensor that requires grad: not in parameters(), but the model holds them."""

    def __init__(self, code_dim: int = 2):
        super().__init__(code_dim)
        self.gain = torch.ones(784, requires_grad=True)

    def forward(self, x):
        return self.decoder(self.encoder(x * self.gain.view(1, 1, 28, 28)))


class IgnoresCodeDim(Autoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = dense_layers(2)


class FlatOutput(Autoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, decoder = dense_layers(code_dim)
        self.decoder = decoder[:-1]


class OneNetwork(nn.Module):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.net = nn.Sequential(*dense_layers(code_dim))


class NoForward(nn.Module):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = dense_layers(code_dim)


class ChangesItsInput(DenseAutoencoder):
    def forward(self, x):
        return self.decoder(self.encoder(x.clamp_(0, 0.5)))


class PoolingAndUpsampling(Autoencoder):
    """Stride-1 convolutions with max pooling down and nearest upsampling up: not what the text asks for."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 49, code_dim))
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 32 * 49), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 1, 3, padding=1), nn.Sigmoid())


class StridedButUpsampling(Autoencoder):
    """Strided convolutions down, but upsampling + convolution up instead of transposed convolutions."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder = conv_layers(code_dim, NARROW)[0]
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 64 * 49), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())


class MapsAsCode(Autoencoder):
    def __init__(self, code_dim: int = 32):
        super().__init__()
        encoder, decoder = conv_layers(code_dim, NARROW)
        self.encoder, self.decoder = encoder[:-2], decoder[3:]


DENSE_MISTAKES = [
    (dense_variant(code_activation=nn.ReLU()), [ae.LAYERS], "after the code layer cuts off negative values"),
    (dense_variant(code_activation=nn.Sigmoid()), [ae.LAYERS], "after the code layer cuts off negative values"),
    (dense_variant(hidden=nn.Identity), [ae.LAYERS], "is an affine map"),
    (dense_variant(widths=(128, 64)), [ae.LAYERS], "holds 218,514 numbers"),
    (ExtraBuffer, [ae.LAYERS], "holds 436,642 numbers (parameters, buffers and other tensors)"),
    (HiddenWeights, [ae.LAYERS], "holds 436,642 numbers"),
    (dense_variant(output=nn.Identity()), [ae.RANGE], "end the decoder with nn.Sigmoid()"),
    (dense_variant(before_output=nn.ReLU()), [ae.RANGE], "a ReLU (or anything >= 0) before the sigmoid"),
    (dense_variant(before_output=nn.Sigmoid()), [ae.RANGE], "can never draw a black pixel"),
    (RoundedOutput, [ae.TRAINS], "no .round()"),
    (DetachedCode, [ae.TRAINS], "No gradient reaches encoder.1.weight"),
    (FrozenEncoder, [ae.TRAINS], "cannot train (requires_grad=False)"),
    (IgnoresCodeDim, [ae.SHAPES], "code_dim=8).encoder maps images (16, 1, 28, 28) to (16, 2)"),
    (FlatOutput, [ae.SHAPES], "to (16, 784); expected (16, 1, 28, 28).\nHint: the decoder must give the 784 numbers"),
    (NoForward, [ae.SHAPES, ae.TRAINS], "has no forward method"),
    (ChangesItsInput, [ae.SHAPES], "changed its input images in place"),
]


@pytest.mark.parametrize("wrong, lost, message", DENSE_MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_dense_check_rejects_each_mistake_in_its_part_only(wrong, lost, message):
    found = verdicts(ae.DENSE, wrong)
    assert [name for name, m in found.items() if m is not None] == lost
    assert message in found[lost[0]]


def test_a_relu_on_the_code_costs_only_the_layers_also_where_it_is_dead_on_every_image():
    """With some initialisations both ReLU'd code numbers are 0 for all 16 images; the encoder still depends on
    its input (far from the digits), so the shapes part must not blame it."""
    relu_code = dense_variant(code_activation=nn.ReLU())

    def dead(seed):
        inputs = exercises.draw_inputs(ae.DENSE, seed)
        with seeded(inputs["init"]), torch.no_grad():
            codes = relu_code().encoder(inputs["images"])
        return not (codes != codes[:1]).any()

    seeds = [seed for seed in range(60) if dead(seed)][:2]
    assert seeds  # the case arises (about one seed in eight)
    for seed in seeds:
        found = verdicts(ae.DENSE, relu_code, seed)
        assert [name for name, m in found.items() if m is not None] == [ae.LAYERS], seed
        assert "after the code layer cuts off negative values" in found[ae.LAYERS]


def test_the_affine_test_looks_further_out_where_a_relu_is_dead_near_zero():
    """A half whose ReLU is dead on every input near 0 gives four equal outputs, which any map would: the test
    then measures at ten times the inputs, where it is not affine; an affine half stays affine. Outputs outside
    [0, 1] are no sigmoid's: the decoder's test takes them as they are, not through the logit (which would clamp
    them all to the same value)."""
    dead = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        dead[0].weight.copy_(torch.eye(6))
        dead[0].bias.fill_(-4.0)
        dead[2].weight.fill_(0.5)
        dead[2].bias.fill_(-1.0)
    g = torch.Generator().manual_seed(0)
    u, v = 0.5 * torch.randn(8, 6, generator=g), 0.5 * torch.randn(8, 6, generator=g)
    assert (u + v).abs().max() < 4  # dead near 0
    with torch.no_grad():
        outputs = measure.affine_outputs(StudentCalls(), dead, u, v, "dead(...)")
        assert ae._affine_gap(outputs, logit=True) == ae._affine_gap(outputs) > 1e-2
        assert ae._affine_gap(measure.affine_outputs(StudentCalls(), dead[2], u, v, "linear(...)")) < 1e-5


class SkipAroundTheCode(Autoencoder):
    """forward mixes the input into the output: the images need not pass through the code."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder, self.decoder = conv_layers(code_dim, NARROW)

    def forward(self, x):
        return 0.5 * (self.decoder(self.encoder(x)) + x)


class KeepsTheInput(Autoencoder):
    """The encoder keeps its input and the decoder adds it back: a path around the code between the halves."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        encoder, decoder = conv_layers(code_dim, NARROW)
        self.encoder, self.decoder = _Keeping(encoder, self), _Adding(decoder, self)


class _Keeping(nn.Module):
    def __init__(self, inner, owner):
        super().__init__()
        self.inner, self.owner = inner, [owner]

    def forward(self, x):
        self.owner[0].kept = x
        return self.inner(x)


class _Adding(nn.Module):
    def __init__(self, inner, owner):
        super().__init__()
        self.inner, self.owner = inner, [owner]

    def forward(self, z):
        kept = self.owner[0].kept
        return self.inner(z) if len(kept) != len(z) else 0.5 * (self.inner(z) + kept)


CONV_MISTAKES = [
    (narrow(last_output_padding=0), [cv.SHAPES], "(16, 1, 27, 27); expected (16, 1, 28, 28)"),
    (conv_variant(norm=False), [ae.LAYERS], "no BatchNorm after the 1st convolution of the encoder (1 -> 32"),
    (narrow(skip_norm=(4,)), [ae.LAYERS], "no BatchNorm after the 2nd convolution of the decoder (16 -> 8"),
    (PoolingAndUpsampling, [ae.LAYERS], "from 28x28 to 14x14 in max_pool2d (pooling)"),
    (StridedButUpsampling, [ae.LAYERS], "from 7x7 to 14x14 in interpolate (upsampling)"),
    (narrow(code_activation=nn.ReLU()), [ae.LAYERS], "after the code layer cuts off negative values"),
    (conv_variant(channels=(32, 64, 256)), [cv.BUDGET], "holds 600,870 numbers (parameters, buffers and other "
                                                        "tensors), over the budget of 350,000"),
    (narrow(before_output=nn.ReLU()), [ae.RANGE, cv.LEARNS], "can never draw a black pixel"),
    (conv_variant(output=nn.Identity()), [ae.RANGE, cv.LEARNS], "end the decoder with nn.Sigmoid()"),
    (conv_variant(output=nn.Hardtanh(0.0, 1.0)), [ae.RANGE, cv.LEARNS], "is not a sigmoid of the last layer's output"),
    (MapsAsCode, [cv.SHAPES, cv.BUDGET, cv.LEARNS], "to (16, 32, 4, 4); expected codes shaped (16, 32)"),
    (SkipAroundTheCode, [cv.SHAPES, cv.LEARNS], "forward takes a path around the code"),
    (KeepsTheInput, [cv.SHAPES, cv.LEARNS], "information reaches the decoder around the code"),
    (dense_variant(), [cv.SHAPES, ae.LAYERS, cv.BUDGET, cv.LEARNS], "to (16, 2); expected codes shaped (16, 32)"),
]


@pytest.mark.slow  # the conv check trains the model (seconds)
@pytest.mark.parametrize("wrong, lost, message", CONV_MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_conv_check_rejects_each_mistake_in_its_part_only(wrong, lost, message):
    found = conv_verdicts(wrong)
    assert [name for name, m in found.items() if m is not None] == lost
    assert message in found[lost[0]] and "Hint" in found[lost[0]]


@pytest.mark.slow  # the conv check trains the model (seconds)
def test_a_design_that_learns_too_slowly_misses_the_validation_target():
    found = conv_verdicts(conv_variant(channels=(1, 1, 1)))
    assert found[cv.LEARNS] is not None and f"the contract asks for at most {cv.TARGET_MSE}" in found[cv.LEARNS]
    assert float(found[cv.LEARNS].split("validation MSE of ")[1].split(" ")[0]) > cv.TARGET_MSE


def test_a_dense_network_is_told_to_use_strided_convolutions():
    assert "encoder runs 0 strided convolution(s)" in conv_verdicts(dense_variant())[ae.LAYERS]


@pytest.mark.slow  # the conv check trains the model (seconds)
def test_a_decoder_a_pixel_short_is_told_the_formula_not_the_numbers():
    """27 x 27 images: only the shapes are wrong; the hint gives the size formula, not the padding to use."""
    found = conv_verdicts(narrow(last_output_padding=0))
    assert found[cv.LEARNS] is None and "kernel_size + output_padding" in found[cv.SHAPES]
    assert "output_padding=1" not in found[cv.SHAPES]
    assert not any("detach" in message for message in found.values() if message)
def test_the_notebook_check_prints_the_first_failing_part_and_the_score():
    with pytest.raises(AssertionError, match=r"(?s)1\.5/2 points\..*Failed: pixels from black to white.*ReLU"):
        check_dense_autoencoder(dense_variant(before_output=nn.ReLU()))


def test_an_unimplemented_exercise_says_so():
    class Blank(nn.Module):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(AssertionError, match="not implemented yet"):
        check_dense_autoencoder(Blank)


def test_a_model_without_halves_is_told_to_define_them():
    with pytest.raises(AssertionError, match=r"(?s)has no submodule `.encoder`.*self.encoder = nn.Sequential"):
        check_dense_autoencoder(OneNetwork)
