"""Encoder and decoder networks, one pair per architecture, shared by AE, VAE and EM-AE.

A backbone maps images to a feature vector and latent codes back to images; the
model adds its mean (and log-variance) heads on top of the features. Because
all three models use the same backbone, only the objective differs between them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

IMAGE_SHAPE = (1, 28, 28)
PIXELS = 28 * 28


@dataclass(frozen=True)
class Backbone:
    encoder: nn.Module  # (B, 1, 28, 28) -> (B, features)
    features: int
    decoder: nn.Module  # (N, latent_dim) -> (N, 1, 28, 28), unbounded (logits or Gaussian means)


def mlp_backbone(*, latent_dim: int, hidden: Sequence[int]) -> Backbone:
    """784 -> hidden[0] -> ... -> hidden[-1] (ReLU), and the mirror image back to 784."""
    encoder_layers: list[nn.Module] = [nn.Flatten()]
    width = PIXELS
    for size in hidden:
        encoder_layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    decoder_layers: list[nn.Module] = []
    width = latent_dim
    for size in reversed(hidden):
        decoder_layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    decoder_layers += [nn.Linear(width, PIXELS), nn.Unflatten(1, IMAGE_SHAPE)]
    return Backbone(encoder=nn.Sequential(*encoder_layers), features=hidden[-1], decoder=nn.Sequential(*decoder_layers))


# Seed 004's encoder: two 3x3 convolutions and a 2x2 max-pool leave 64 maps of 12x12.
_CONV_MAPS = (64, 12, 12)
_CONV_FEATURES = 128


def conv_backbone(*, latent_dim: int, hidden: Sequence[int]) -> Backbone:
    """Seed 004's small CNN encoder; its decoder retraces the shapes with transposed convolutions.

    `hidden` is not used: the convolutional layout is fixed.
    """
    del hidden
    flat = _CONV_MAPS[0] * _CONV_MAPS[1] * _CONV_MAPS[2]
    encoder = nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3),  # (B, 32, 26, 26)
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=3),  # (B, 64, 24, 24)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 64, 12, 12)
        nn.Flatten(),  # (B, 9216)
        nn.Linear(flat, _CONV_FEATURES),
        nn.ReLU(),
    )
    decoder = nn.Sequential(
        nn.Linear(latent_dim, _CONV_FEATURES),
        nn.ReLU(),
        nn.Linear(_CONV_FEATURES, flat),
        nn.ReLU(),
        nn.Unflatten(1, _CONV_MAPS),  # (N, 64, 12, 12)
        nn.ConvTranspose2d(64, 64, kernel_size=2, stride=2),  # (N, 64, 24, 24): undoes the max-pool
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, kernel_size=3),  # (N, 32, 26, 26)
        nn.ReLU(),
        nn.ConvTranspose2d(32, 1, kernel_size=3),  # (N, 1, 28, 28)
    )
    return Backbone(encoder=encoder, features=_CONV_FEATURES, decoder=decoder)


BACKBONES: dict[str, Callable[..., Backbone]] = {"mlp": mlp_backbone, "conv": conv_backbone}
