"""Lab 1's two autoencoder checks: correct models written in several ways pass; the mistakes classmates make are
rejected with a message that names them, and cost only their own part."""
from __future__ import annotations

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
from labs_utils.checks import check_conv_autoencoder, check_dense_autoencoder
from labs_utils.lab1_autoencoders import exercise_autoencoders as ae
from labs_utils.lab1_autoencoders import model_size

ALL_PASSED = "all 4 part(s) passed (2/2 points)"


def verdicts(exercise, model, seed=5):
    return exercises.grade_here(exercise, (model,), seed)


def failed(exercise, model, seed=5):
    return [name for name, message in verdicts(exercise, model, seed).items() if message is not None]


# ----------------------------------------------------------------------------------------------- correct models


@pytest.mark.parametrize("model", [DenseAutoencoder, DenseAutoencoder(code_dim=5), FunctionalDenseAutoencoder],
                         ids=["class", "instance", "explicit-forward"])
def test_dense_check_accepts_correct_models(model, capsys):
    check_dense_autoencoder(model)
    assert f"\u2714 Dense autoencoder: {ALL_PASSED}" in capsys.readouterr().out


@pytest.mark.parametrize("model", [
    conv_variant(), conv_variant(channels=(8, 16, 32)), conv_variant(norm_after_relu=True),
    conv_variant(activation=nn.LeakyReLU), FunctionalConvAutoencoder,
], ids=["table", "narrow-channels", "batchnorm-after-relu", "leaky-relu", "explicit-forward-other-channels"])
def test_conv_check_accepts_correct_models(model, capsys):
    check_conv_autoencoder(model)
    assert f"\u2714 Convolutional autoencoder: {ALL_PASSED}" in capsys.readouterr().out


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


@pytest.mark.parametrize("seed", [0, 1, 2**31 - 1])
def test_correct_models_pass_with_the_graders_fresh_seeds(seed):
    for exercise, model in ((ae.DENSE, DenseAutoencoder), (ae.CONV, conv_variant(channels=(8, 16, 32)))):
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
        self.encoder = conv_layers(code_dim)[0]
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 64 * 49), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid())


class MapsAsCode(Autoencoder):
    def __init__(self, code_dim: int = 32):
        super().__init__()
        encoder, decoder = conv_layers(code_dim)
        self.encoder, self.decoder = encoder[:-2], decoder[3:]


DENSE_MISTAKES = [
    (dense_variant(code_activation=nn.ReLU()), [ae.LAYERS], "code layer should be linear"),
    (dense_variant(code_activation=nn.Sigmoid()), [ae.LAYERS], "code layer should be linear"),
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
    (FlatOutput, [ae.SHAPES], "to (16, 784); expected (16, 1, 28, 28).\nHint: the decoder must give images shaped"),
    (NoForward, [ae.SHAPES, ae.TRAINS], "has no forward method"),
    (ChangesItsInput, [ae.SHAPES], "changed its input images in place"),
]


@pytest.mark.parametrize("wrong, lost, message", DENSE_MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_dense_check_rejects_each_mistake_in_its_part_only(wrong, lost, message):
    found = verdicts(ae.DENSE, wrong)
    assert [name for name, m in found.items() if m is not None] == lost
    assert message in found[lost[0]]


CONV_MISTAKES = [
    (conv_variant(last_output_padding=0), [ae.SHAPES], "(16, 1, 27, 27); expected (16, 1, 28, 28)"),
    (conv_variant(norm=False), [ae.LAYERS], "no BatchNorm after the 1st convolution of the encoder (1 -> 32"),
    (conv_variant(skip_norm=(4,)), [ae.LAYERS], "no BatchNorm after the 2nd convolution of the decoder (64 -> 32"),
    (PoolingAndUpsampling, [ae.LAYERS], "from 28x28 to 14x14 in max_pool2d (pooling)"),
    (StridedButUpsampling, [ae.LAYERS], "from 7x7 to 14x14 in interpolate (upsampling)"),
    (conv_variant(code_activation=nn.ReLU()), [ae.LAYERS], "code layer should be linear"),
    (conv_variant(before_output=nn.ReLU()), [ae.RANGE], "can never draw a black pixel"),
    (MapsAsCode, [ae.SHAPES], "to (16, 128, 4, 4); expected codes shaped (16, 32)"),
    (dense_variant(), [ae.SHAPES, ae.LAYERS], "to (16, 2); expected codes shaped (16, 32)"),
]


@pytest.mark.parametrize("wrong, lost, message", CONV_MISTAKES, ids=lambda v: getattr(v, "__name__", None))
def test_conv_check_rejects_each_mistake_in_its_part_only(wrong, lost, message):
    found = verdicts(ae.CONV, wrong)
    assert [name for name, m in found.items() if m is not None] == lost
    assert message in found[lost[0]]


def test_a_dense_network_is_told_to_use_strided_convolutions():
    assert "encoder runs 0 strided convolution(s)" in verdicts(ae.CONV, dense_variant())[ae.LAYERS]


def test_a_decoder_a_pixel_short_is_not_told_about_detach():
    """27 x 27 images: only the shapes are wrong; the model still trains, and no message blames .detach()."""
    found = verdicts(ae.CONV, conv_variant(last_output_padding=0))
    assert found[ae.TRAINS] is None and "output_padding=1" in found[ae.SHAPES]
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
