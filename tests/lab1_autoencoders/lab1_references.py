"""Reference implementations of Lab 1's exercises, for the tests (they live here, never in labs_utils), and
builders for the variants the mutation tests derive from them."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------- autoencoders


class Autoencoder(nn.Module):
    """The forward pass the notebook gives; subclasses build .encoder and .decoder."""

    def forward(self, x):
        return self.decoder(self.encoder(x))


def dense_layers(code_dim: int, *, code_activation: nn.Module | None = None, hidden=nn.ReLU,
                 output: nn.Module | None = None, widths=(256, 64),
                 before_output: nn.Module | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    first, second = widths
    encoder = [nn.Flatten(), nn.Linear(784, first), hidden(), nn.Linear(first, second), hidden(),
               nn.Linear(second, code_dim)]
    if code_activation is not None:
        encoder.append(code_activation)
    decoder = [nn.Linear(code_dim, second), hidden(), nn.Linear(second, first), hidden(), nn.Linear(first, 784),
               *([before_output] if before_output is not None else []),
               output if output is not None else nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28))]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


class DenseAutoencoder(Autoencoder):
    def __init__(self, code_dim: int = 2):
        super().__init__()
        self.encoder, self.decoder = dense_layers(code_dim)


@functools.cache  # one class per set of options: the tests' caches of a design's verdicts then serve every test
def dense_variant(**layer_options):
    class DenseAutoencoder(Autoencoder):
        def __init__(self, code_dim: int = 2):
            super().__init__()
            self.encoder, self.decoder = dense_layers(code_dim, **layer_options)

    return DenseAutoencoder


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


def conv_layers(code_dim: int, channels=(32, 64, 128), *, norm: bool = True, norm_after_relu: bool = False,
                last_output_padding: int = 1, code_activation: nn.Module | None = None, activation=nn.ReLU,
                before_output: nn.Module | None = None, skip_norm: tuple = (),
                output: nn.Module | None = None) -> tuple[nn.Sequential, nn.Sequential]:
    """The table's layers; ``skip_norm`` lists the (transposed) convolutions, counted from 0 over both halves,
    that get no BatchNorm."""
    c1, c2, c3 = channels
    count = iter(range(6))

    def block(layer, width):
        if not norm or next(count) in skip_norm:
            return [layer, activation()]
        return [layer, activation(), nn.BatchNorm2d(width)] if norm_after_relu else [
            layer, nn.BatchNorm2d(width), activation()]

    encoder = [*block(nn.Conv2d(1, c1, 3, 2, 1), c1), *block(nn.Conv2d(c1, c2, 3, 2, 1), c2),
               *block(nn.Conv2d(c2, c3, 3, 2, 1), c3), nn.Flatten(), nn.Linear(c3 * 16, code_dim)]
    if code_activation is not None:
        encoder.append(code_activation)
    decoder = [nn.Linear(code_dim, c3 * 16), nn.ReLU(), nn.Unflatten(1, (c3, 4, 4)),
               *block(nn.ConvTranspose2d(c3, c2, 3, 2, 1), c2),
               *block(nn.ConvTranspose2d(c2, c1, 3, 2, 1, output_padding=1), c1),
               nn.ConvTranspose2d(c1, 1, 3, 2, 1, output_padding=last_output_padding),
               *([before_output] if before_output is not None else []),
               output if output is not None else nn.Sigmoid()]
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


@functools.cache  # (as dense_variant)
def conv_variant(**layer_options):
    class ConvAutoencoder(Autoencoder):
        def __init__(self, code_dim: int = 32):
            super().__init__()
            self.encoder, self.decoder = conv_layers(code_dim, **layer_options)

    return ConvAutoencoder


class ConvEncoder(nn.Module):
    """The table's encoder with torch functions in an explicit forward, and other channel counts."""

    def __init__(self, code_dim):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 16, 3, 2, 1), nn.Conv2d(16, 32, 3, 2, 1), nn.Conv2d(32, 48, 3, 2, 1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(16), nn.BatchNorm2d(32), nn.BatchNorm2d(48)])
        self.code = nn.Linear(48 * 16, code_dim)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
        return self.code(x.flatten(1))


class ConvDecoder(nn.Module):
    def __init__(self, code_dim):
        super().__init__()
        self.hidden = nn.Linear(code_dim, 48 * 16)
        self.up = nn.ModuleList([nn.ConvTranspose2d(48, 32, 3, 2, 1), nn.ConvTranspose2d(32, 16, 3, 2, 1, 1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(32), nn.BatchNorm2d(16)])
        self.pixels = nn.ConvTranspose2d(16, 1, 3, 2, 1, 1)

    def forward(self, z):
        x = F.relu(self.hidden(z)).view(-1, 48, 4, 4)
        for up, norm in zip(self.up, self.norms):
            x = F.leaky_relu(norm(up(x)), 0.1)
        return torch.sigmoid(self.pixels(x))


class FunctionalConvAutoencoder(Autoencoder):
    """Submodules with an explicit forward, LeakyReLU in the decoder, channels 16-32-48: equally correct."""

    def __init__(self, code_dim: int = 32):
        super().__init__()
        self.encoder, self.decoder = ConvEncoder(code_dim), ConvDecoder(code_dim)


# ----------------------------------------------------------------------------------------------- other exercises


def interpolate(model, x_a, x_b, steps=8):
    with torch.no_grad():
        z = model.encoder(torch.stack([x_a, x_b]))
        t = torch.linspace(0, 1, steps)[:, None]
        return model.decoder((1 - t) * z[:1] + t * z[1:])


def add_gaussian_noise(x, level, generator=None):
    return (x + level * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def add_salt_and_pepper(x, level, generator=None):
    hit = torch.rand(x.shape, generator=generator) < level
    salt = torch.rand(x.shape, generator=generator) < 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def mask_pixels(x, level, generator=None):
    return torch.where(torch.rand(x.shape, generator=generator) < level, torch.zeros_like(x), x)


class ChallengeAutoencoder(nn.Module):
    """The notebook's design for the open challenge: about 36,000 numbers, a code of 32."""

    def __init__(self, code_dim: int = 32, channels=(16, 32, 16), norm: bool = True):
        super().__init__()
        a, b, c = channels

        def bn(width):
            return nn.BatchNorm2d(width) if norm else nn.Identity()

        self.encoder = nn.Sequential(
            nn.Conv2d(1, a, 3, 2, 1), bn(a), nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1), bn(b), nn.ReLU(),
            nn.Conv2d(b, c, 3, 2, 1), bn(c), nn.ReLU(), nn.Flatten(), nn.Linear(c * 16, code_dim))
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, c * 16), nn.ReLU(), nn.Unflatten(1, (c, 4, 4)),
            nn.ConvTranspose2d(c, b, 3, 2, 1), bn(b), nn.ReLU(), nn.ConvTranspose2d(b, a, 3, 2, 1, 1), bn(a), nn.ReLU(),
            nn.ConvTranspose2d(a, 1, 3, 2, 1, 1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


SOLUTIONS = {"DenseAutoencoder": DenseAutoencoder, "ConvAutoencoder": conv_variant(),
             "add_gaussian_noise": add_gaussian_noise, "add_salt_and_pepper": add_salt_and_pepper,
             "mask_pixels": mask_pixels, "interpolate": interpolate,
             "ChallengeAutoencoder": ChallengeAutoencoder}
