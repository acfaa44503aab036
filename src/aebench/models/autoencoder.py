"""One autoencoder class for every variant; its config says what differs.

A model is a backbone (encoder features + decoder), a mean head and, when its
objective is stochastic, a log-variance head. Which objective trains it comes
from its variant, so models built on the same backbone differ only there.

`model_config` resolves the one dict that defines a trained model (stored in
its checkpoint, logged to MLflow); everything else about the model is derived
from it, never stored twice.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aebench.common.config import Params
from aebench.common.errors import ConfigError
from aebench.common.layout import Replicate
from aebench.models.backbones import INITIALISERS, PIXEL_MEAN_DECODERS, build_backbone
from aebench.models.likelihood import PixelLikelihood, pixel_likelihood
from aebench.models.objectives import OBJECTIVES, Objective, check_variant, standard_noise


def model_config(params: Params, replicate: Replicate) -> dict[str, Any]:
    """The config of one trained model: what it is, and every value its training reads.

    Top level: `dataset`, `latent_dim`, `seed`, and `variant` (its `name`,
    `objective` and weights), then the params sections `network`,
    `likelihood`, `train` and `data.binarize`. MLflow logs it flattened
    (`variant.beta`, `train.lr`), so the runs line up in the compare view.
    """
    key = replicate.key
    variant = params.variant(key.variant)
    check_variant(key.variant, variant.objective, variant.weights)
    sections = params.to_dict()
    check_network(sections["network"], sections["likelihood"])
    return {
        "dataset": key.dataset,
        "latent_dim": key.latent_dim,
        "seed": replicate.seed,
        "variant": {"name": key.variant, **variant.to_dict()},
        "network": sections["network"],
        "likelihood": sections["likelihood"],
        "train": sections["train"],
        "data": {"binarize": sections["data"]["binarize"]},
    }


def check_network(network: dict[str, Any], likelihood: dict[str, Any]) -> None:
    """The backbone's decoder and the likelihood must agree on what its outputs are (the params loader checked the names)."""
    if network["arch"] in PIXEL_MEAN_DECODERS and likelihood["name"] != "gaussian":
        raise ConfigError(f"network.arch: {network['arch']}'s decoder ends in a sigmoid (pixel means), which the "
                          f"{likelihood['name']} likelihood would read as logits: use likelihood.name gaussian")


class Autoencoder(nn.Module):
    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config
        backbone = build_backbone(latent_dim=self.latent_dim, network=config["network"])
        self.encoder = backbone.encoder
        self.mean_head = nn.Linear(backbone.features, self.latent_dim)
        self.logvar_head = nn.Linear(backbone.features, self.latent_dim) if self.objective.stochastic else None
        self.decoder = backbone.decoder
        self.likelihood: PixelLikelihood = pixel_likelihood(
            config["likelihood"]["name"], config["likelihood"]["gaussian_std"]
        )

    # What the model is, read from its config.
    @property
    def latent_dim(self) -> int:
        return int(self.config["latent_dim"])

    @property
    def variant(self) -> str:
        return self.config["variant"]["name"]

    @property
    def objective(self) -> Objective:
        return OBJECTIVES[self.config["variant"]["objective"]]

    @property
    def weights(self) -> dict[str, float]:
        return {k: v for k, v in self.config["variant"].items() if k not in ("name", "objective")}

    @property
    def stochastic(self) -> bool:
        return self.objective.stochastic

    @property
    def mc_samples(self) -> int:
        return int(self.config["train"]["mc_samples"])

    @property
    def code_activation(self) -> str:
        return self.config["network"]["code_activation"]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, 1, 28, 28) in [0, 1] -> mu (B, D), logvar (B, D) or None for a deterministic code."""
        features = self.encoder(x)  # (B, F)
        mu = self.mean_head(features)
        if self.code_activation == "relu":  # plain-ae's code is ReLU(W x + b)
            mu = torch.relu(mu)
        logvar = self.logvar_head(features) if self.logvar_head is not None else None
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> (..., 1, 28, 28): the likelihood's parameters (logits, or Gaussian means)."""
        lead = z.shape[:-1]
        output = self.decoder(z.reshape(-1, self.latent_dim))  # (N, 1, 28, 28)
        return output.reshape(*lead, *output.shape[1:])

    def decode_images(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> the images the decoder draws, pixel means in [0, 1]."""
        return self.likelihood.pixel_means(self.decode(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the posterior mean (no sampling): (B, 1, 28, 28) -> pixel means in [0, 1].

        What MLflow's pyfunc `predict` of a logged model returns (aebench.models.logged_model).
        """
        mu, _ = self.encode(x)
        return self.decode_images(mu)

    def loss_terms(
        self, x: torch.Tensor, *, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """This model's objective on target images x (B, 1, 28, 28): {term: scalar}, nats per image.

        A stochastic objective draws its noise from `generator`, or uses `noise`, what `draw_noise` drew.
        """
        return self.objective.function(self, x, generator=generator, noise=noise, **self.weights)

    def draw_noise(self, batch_size: int, *, generator: torch.Generator | None) -> torch.Tensor | None:
        """The eps (mc_samples, batch_size, D) that `loss_terms` draws from `generator` for a batch of that size,
        the same draw; None for a deterministic objective, which draws nothing."""
        if not self.stochastic:
            return None
        head = self.mean_head.weight  # mu's device and dtype
        shape = torch.Size((batch_size, self.latent_dim))
        return standard_noise(self.mc_samples, shape, generator=generator, device=head.device, dtype=head.dtype)


def build_model(config: dict[str, Any]) -> Autoencoder:
    """A freshly initialised model from a config (see `model_config`).

    Initialisation draws from torch's global RNG: seed it first for reproducible weights.
    """
    model = Autoencoder(config)
    INITIALISERS[config["network"]["init"]](model)
    return model
