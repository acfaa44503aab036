"""Encoder and decoder networks, one pair per architecture, shared by every variant.

A backbone maps images to a feature vector and latent codes back to images; the
model adds its mean (and log-variance) heads on top of the features. Because
every variant of a study uses the same backbone, only the objective differs
between them. `network.arch` in params picks one of `BACKBONES`:

- `mlp`: 784 -> hidden... (mirrored back), `network.activation` between layers;
- `conv`: a small CNN encoder (two 3x3 convolutions, max-pool) and a decoder
  retracing its shapes with transposed convolutions;
- `emae_conv`: the emae article's networks, as its R code writes them;
- `gdl_conv`: the Generative Deep Learning book's MNIST AE and VAE (ae-vs-vae-2d).

The convolutional layouts are fixed: `network.hidden` and `network.activation`
apply to `mlp` only. Decoders output one unbounded number per pixel (logits or
Gaussian means; `aebench.models.likelihood` interprets them), except those in
`PIXEL_MEAN_DECODERS`, which end in a sigmoid as their source does: their
outputs are pixel means in (0, 1), a Gaussian likelihood's means, never logits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

IMAGE_SHAPE = (1, 28, 28)
PIXELS = 28 * 28
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class Backbone:
    encoder: nn.Module  # (B, 1, 28, 28) -> (B, features)
    features: int
    decoder: nn.Module  # (N, latent_dim) -> (N, 1, 28, 28): logits or Gaussian means (pixel means: PIXEL_MEAN_DECODERS)


def mlp_backbone(*, latent_dim: int, hidden: Sequence[int], activation: str) -> Backbone:
    """784 -> hidden[0] -> ... -> hidden[-1], and the mirror image back to 784.

    With no hidden layers the encoder is the flattened image itself (plain-ae's 784-36-784).
    """
    act = ACTIVATIONS[activation]
    encoder_layers: list[nn.Module] = [nn.Flatten()]
    width = PIXELS
    for size in hidden:
        encoder_layers += [nn.Linear(width, size), act()]
        width = size
    features = width
    decoder_layers: list[nn.Module] = []
    width = latent_dim
    for size in reversed(hidden):
        decoder_layers += [nn.Linear(width, size), act()]
        width = size
    decoder_layers += [nn.Linear(width, PIXELS), nn.Unflatten(1, IMAGE_SHAPE)]
    return Backbone(encoder=nn.Sequential(*encoder_layers), features=features, decoder=nn.Sequential(*decoder_layers))


# The small CNN: two 3x3 convolutions and a 2x2 max-pool leave 64 maps of 12x12.
_CONV_MAPS = (64, 12, 12)
_CONV_FLAT = 64 * 12 * 12  # 9216
_CONV_FEATURES = 128


def _conv_encoder(*, dropout: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(1, 32, kernel_size=3),  # (B, 32, 26, 26)
        nn.ReLU(),
        nn.Conv2d(32, 64, kernel_size=3),  # (B, 64, 24, 24)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (B, 64, 12, 12)
    ]
    layers += [nn.Dropout(0.25)] if dropout else []
    layers += [nn.Flatten(), nn.Linear(_CONV_FLAT, _CONV_FEATURES), nn.ReLU()]  # (B, 128)
    layers += [nn.Dropout(0.5)] if dropout else []
    return nn.Sequential(*layers)


def conv_backbone(*, latent_dim: int, **_: Any) -> Backbone:
    """The small CNN encoder; its decoder retraces the shapes with transposed convolutions."""
    decoder = nn.Sequential(
        nn.Linear(latent_dim, _CONV_FEATURES),
        nn.ReLU(),
        nn.Linear(_CONV_FEATURES, _CONV_FLAT),
        nn.ReLU(),
        nn.Unflatten(1, _CONV_MAPS),  # (N, 64, 12, 12)
        nn.ConvTranspose2d(64, 64, kernel_size=2, stride=2),  # (N, 64, 24, 24): undoes the max-pool
        nn.ReLU(),
        nn.ConvTranspose2d(64, 32, kernel_size=3),  # (N, 32, 26, 26)
        nn.ReLU(),
        nn.ConvTranspose2d(32, 1, kernel_size=3),  # (N, 1, 28, 28)
    )
    return Backbone(encoder=_conv_encoder(dropout=False), features=_CONV_FEATURES, decoder=decoder)


def emae_conv_backbone(*, latent_dim: int, **_: Any) -> Backbone:
    """The emae article's networks (its R code, from schmons/torch_R_examples).

    Encoder: conv 3x3 to 32, ReLU, conv 3x3 to 64, ReLU, max-pool 2, dropout 0.25,
    fc 9216 -> 128, ReLU, dropout 0.5 (the heads follow). Decoder: fc D -> 128,
    ReLU, fc 128 -> 128, ReLU, then two 1x1 transposed convolutions 128 -> 256
    (ReLU) -> 784 on a 1x1 map: an MLP written with convolutions, kept as
    convolutions so that their initialisation is the article's. Its sigmoid is
    the Bernoulli likelihood's.
    """
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 128),
        nn.ReLU(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Unflatten(1, (128, 1, 1)),  # (N, 128, 1, 1)
        nn.ConvTranspose2d(128, 256, kernel_size=1),
        nn.ReLU(),
        nn.ConvTranspose2d(256, PIXELS, kernel_size=1),  # (N, 784, 1, 1)
        nn.Flatten(),
        nn.Unflatten(1, IMAGE_SHAPE),  # (N, 1, 28, 28)
    )
    return Backbone(encoder=_conv_encoder(dropout=True), features=_CONV_FEATURES, decoder=decoder)


# The book's layers (GDL_code, models/AE.py and models/VAE.py, as notebooks 03_01 and 03_03 build them:
# no batch norm, no dropout). Every convolution has a 3x3 kernel and Keras' "same" padding.
GDL_FILTERS = (32, 64, 64, 64)  # encoder convolutions
GDL_STRIDES = (1, 2, 2, 1)  # 28 -> 28 -> 14 -> 7 -> 7, and back up in the decoder
GDL_TRANSPOSED_FILTERS = (64, 64, 32, 1)  # decoder transposed convolutions
GDL_MAPS = (64, 7, 7)  # what the encoder flattens, and the decoder's dense layer un-flattens
# Keras' LeakyReLU() leaks 0.3 of a negative input; PyTorch's default (0.01) would be a different network.
KERAS_LEAKY_SLOPE = 0.3


def _same_conv(kind: type[nn.Conv2d] | type[nn.ConvTranspose2d], width: int, size: int, stride: int) -> nn.Module:
    """A 3x3 (transposed) convolution whose output is the input size divided (multiplied) by its stride.

    PyTorch pads symmetrically; for stride 2 Keras puts the odd padding row and column at the end
    instead: the same shapes and weights, the kernel read half a pixel apart.
    """
    if kind is nn.Conv2d:
        return nn.Conv2d(width, size, kernel_size=3, stride=stride, padding=1)
    return nn.ConvTranspose2d(width, size, kernel_size=3, stride=stride, padding=1, output_padding=stride - 1)


def gdl_conv_backbone(*, latent_dim: int, **_: Any) -> Backbone:
    """The Generative Deep Learning book's (1st ed., ch. 3) MNIST autoencoder networks.

    Encoder: four 3x3 convolutions 32-64-64-64 with strides 1-2-2-1, each followed by a
    LeakyReLU, flattened to 7 x 7 x 64 = 3136 features (the mean and log-variance heads are
    the book's dense layers to the latent). Decoder: dense latent -> 3136 (no activation),
    reshaped to 64 x 7 x 7, four 3x3 transposed convolutions 64-64-32-1 with strides 1-2-2-1,
    LeakyReLU between them and a sigmoid at the end: the pixel means its MSE compares with x.
    """
    encoder_layers: list[nn.Module] = []
    width = IMAGE_SHAPE[0]
    for size, stride in zip(GDL_FILTERS, GDL_STRIDES):
        encoder_layers += [_same_conv(nn.Conv2d, width, size, stride), nn.LeakyReLU(KERAS_LEAKY_SLOPE)]
        width = size
    encoder_layers.append(nn.Flatten())  # (B, 3136)
    features = GDL_MAPS[0] * GDL_MAPS[1] * GDL_MAPS[2]

    decoder_layers: list[nn.Module] = [nn.Linear(latent_dim, features), nn.Unflatten(1, GDL_MAPS)]  # (N, 64, 7, 7)
    width = GDL_MAPS[0]
    for size, stride in zip(GDL_TRANSPOSED_FILTERS, GDL_STRIDES):
        decoder_layers += [_same_conv(nn.ConvTranspose2d, width, size, stride), nn.LeakyReLU(KERAS_LEAKY_SLOPE)]
        width = size
    decoder_layers[-1] = nn.Sigmoid()  # the last layer's activation: (N, 1, 28, 28) in (0, 1)
    return Backbone(encoder=nn.Sequential(*encoder_layers), features=features,
                    decoder=nn.Sequential(*decoder_layers))


BACKBONES: dict[str, Callable[..., Backbone]] = {
    "mlp": mlp_backbone,
    "conv": conv_backbone,
    "emae_conv": emae_conv_backbone,
    "gdl_conv": gdl_conv_backbone,
}
# Backbones whose decoder ends in a sigmoid: their outputs are pixel means, which only a Gaussian likelihood reads.
PIXEL_MEAN_DECODERS = frozenset({"gdl_conv"})


def build_backbone(*, latent_dim: int, network: Mapping[str, Any]) -> Backbone:
    return BACKBONES[network["arch"]](
        latent_dim=latent_dim, hidden=network["hidden"], activation=network["activation"]
    )


def xavier_uniform_(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases in every linear and convolutional layer (vae-explained's Chainer code)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


# network.init -> what to do after PyTorch's own initialisation.
INITIALISERS: dict[str, Callable[[nn.Module], None]] = {"default": lambda module: None, "xavier_uniform": xavier_uniform_}
