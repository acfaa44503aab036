"""One autoencoder class for all three models; the registry says what differs.

A model is a backbone (encoder features + decoder), a mean head and, for the
VAE and EM-AE, a log-variance head. Which objective trains it comes from
`MODELS`, so AE, VAE and EM-AE built on the same backbone differ only there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from aebench.common.errors import ConfigError
from aebench.models import objectives
from aebench.models.backbones import BACKBONES, Backbone


@dataclass(frozen=True)
class ModelSpec:
    objective: Callable[..., dict[str, torch.Tensor]]
    stochastic: bool  # has q(z|x) = N(mu, diag(exp(logvar))), i.e. a log-variance head
    terms: tuple[str, ...]  # the objective's terms, in the order the history lists them


MODELS: dict[str, ModelSpec] = {
    "ae": ModelSpec(objective=objectives.ae_objective, stochastic=False, terms=("loss", "recon")),
    "vae": ModelSpec(objective=objectives.vae_objective, stochastic=True, terms=("loss", "recon", "kl")),
    "emae": ModelSpec(objective=objectives.emae_objective, stochastic=True, terms=("loss", "recon", "mu_penalty")),
}


class Autoencoder(nn.Module):
    def __init__(
        self,
        *,
        kind: str,
        latent_dim: int,
        backbone: Backbone,
        likelihood: str,
        gaussian_std: float,
        beta: float,
        mc_samples: int,
        config: dict[str, Any],
    ) -> None:
        super().__init__()
        self.kind = kind
        self.latent_dim = latent_dim
        self.likelihood = likelihood
        self.gaussian_std = gaussian_std
        self.beta = beta
        self.mc_samples = mc_samples
        self.config = config
        self.mlflow_run_id: str | None = None
        self.spec = MODELS[kind]
        self.encoder = backbone.encoder
        self.mean_head = nn.Linear(backbone.features, latent_dim)
        self.logvar_head = nn.Linear(backbone.features, latent_dim) if self.spec.stochastic else None
        self.decoder = backbone.decoder

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, 1, 28, 28) in [0, 1] -> mu (B, D), logvar (B, D) or None for the AE."""
        features = self.encoder(x)  # (B, F)
        logvar = self.logvar_head(features) if self.logvar_head is not None else None
        return self.mean_head(features), logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) -> (..., 1, 28, 28): Bernoulli logits, or the Gaussian mean."""
        lead = z.shape[:-1]
        output = self.decoder(z.reshape(-1, self.latent_dim))  # (N, 1, 28, 28)
        return output.reshape(*lead, *output.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction from the posterior mean (no sampling): (B, 1, 28, 28) -> logits or means."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def loss_terms(self, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """This model's objective on target images x (B, 1, 28, 28): {term: scalar}, nats per image."""
        return self.spec.objective(self, x, generator=generator)


def resolved_config(params, *, dataset: str, model: str, latent_dim: int) -> dict[str, Any]:
    """The one dict that defines a trained model: stored in its checkpoint and logged to MLflow.

    Top level: `dataset`, `latent_dim`, `seed`, and the params sections `data`,
    `model`, `train`; the model's name (ae, vae, emae) is `config["model"]["name"]`,
    beside the architecture, so that `model` stays one section (MLflow: `model.name`).
    """
    sections = params.to_dict()
    return {
        "dataset": dataset,
        "latent_dim": latent_dim,
        "seed": sections["seed"],
        "data": sections["data"],
        "model": {"name": model, **sections["model"]},
        "train": sections["train"],
    }


def build_model(config: dict[str, Any]) -> Autoencoder:
    """A freshly initialised model from a resolved config (see `resolved_config`).

    Initialisation draws from torch's global RNG: seed it first for reproducible weights.
    """
    section = _required(config, "model")
    kind = _required(section, "name", "model.name")
    if kind not in MODELS:
        raise ConfigError(f"model.name: unknown model {kind!r} (expected one of {', '.join(MODELS)})")
    latent_dim = _required(config, "latent_dim")
    if not isinstance(latent_dim, int) or isinstance(latent_dim, bool) or latent_dim < 1:
        raise ConfigError(f"latent_dim: must be an integer >= 1, got {latent_dim!r}")
    arch = _required(section, "arch", "model.arch")
    if arch not in BACKBONES:
        raise ConfigError(f"model.arch: unknown backbone {arch!r} (expected one of {', '.join(BACKBONES)})")
    likelihood = _required(section, "likelihood", "model.likelihood")
    if likelihood not in objectives.LIKELIHOODS:
        raise ConfigError(
            f"model.likelihood: unknown likelihood {likelihood!r} (expected one of {', '.join(objectives.LIKELIHOODS)})"
        )
    hidden = list(_required(section, "hidden", "model.hidden"))
    if not hidden or any(not isinstance(h, int) or h < 1 for h in hidden):
        raise ConfigError(f"model.hidden: expected a non-empty list of sizes >= 1, got {hidden!r}")
    backbone = BACKBONES[arch](latent_dim=latent_dim, hidden=hidden)
    return Autoencoder(
        kind=kind,
        latent_dim=latent_dim,
        backbone=backbone,
        likelihood=likelihood,
        gaussian_std=float(_required(section, "gaussian_std", "model.gaussian_std")),
        beta=float(_required(section, "beta", "model.beta")),
        mc_samples=int(_required(section, "mc_samples", "model.mc_samples")),
        config=config,
    )


def _required(mapping: Any, key: str, name: str | None = None) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise ConfigError(f"{name or key}: missing from the model config")
    return mapping[key]
