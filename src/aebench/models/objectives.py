"""The objectives the study compares, side by side.

Each objective is a pure function of a model, a batch of target images
x (B, 1, 28, 28) and its keyword-only weights, and returns its terms as
scalars in nats per image (summed over the 784 pixels, averaged over the
batch); `loss` is what is minimised. A params variant names one of them and
gives its weights (`vae: {objective: kl_split, beta: 1.0, gamma: 1.0}`):

    deterministic  loss = recon(x | f(x))                      (the AE)
    kl_split       loss = E_q[recon(x | z)]
                          + beta * sum_u [ 0.5 mu_u^2 + gamma * 0.5 (sigma_u^2 - log sigma_u^2 - 1) ]

The Gaussian KL to N(0, I) splits per dimension into 0.5 mu^2 and
0.5 (sigma^2 - log sigma^2 - 1); the second part holds the entropy of q. So
(beta, gamma) = (1, 1) is the VAE's negative ELBO, other betas at gamma = 1
are beta-VAEs, and gamma = 0 drops the entropy of q: the EM-AE, whose
0.5 ||mu||^2 lets sigma shrink freely (close to Ghosh et al.'s RAE with an L2
code penalty). Whatever the weights, `kl_split` reports the full KL as `kl`
(the rate of Alemi et al. 2018) beside the two parts it weighs.

Adding an objective is one function here, one entry in `OBJECTIVES`, and a
params variant that names it; its keyword-only parameters are the weights the
variant must give (checked by `check_variant` before any work).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from aebench.common.errors import ConfigError
from aebench.models.likelihood import LOG_2PI


def gaussian_kl_parts(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, split: (mean part, variance part), each (B, D).

    The mean part is 0.5 mu^2; the variance part 0.5 (sigma^2 - log sigma^2 - 1) >= 0 holds the entropy of q.
    """
    return 0.5 * mu.pow(2), 0.5 * (logvar.exp() - logvar - 1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension: (B, D) -> (B, D). Sum over D for the total."""
    mean_part, variance_part = gaussian_kl_parts(mu, logvar)
    return mean_part + variance_part


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension: (..., D) -> (...,).

    With mu = 0 and logvar = 0 it is log p(z) under the standard normal prior.
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def standard_noise(
    samples: int, shape: torch.Size, *, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """eps ~ N(0, I) of shape (samples, *shape): the draw `reparameterize` makes for mu of that shape."""
    return torch.randn((samples, *shape), generator=generator, device=device, dtype=dtype)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    samples: int,
    *,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): (B, D) -> (samples, B, D).

    An explicit generator (on the tensors' device) makes the noise reproducible
    without touching the global RNG. Given `noise` (samples, B, D), eps is that
    instead of a draw: under `torch.func.vmap` (models trained stacked,
    `aebench.training.stacked`) a per-model generator cannot draw, so each
    model's eps is drawn outside, with `standard_noise`, and passed in.
    """
    eps = noise if noise is not None else standard_noise(
        samples, mu.shape, generator=generator, device=mu.device, dtype=mu.dtype
    )
    return mu + (0.5 * logvar).exp() * eps


def deterministic(
    model, x: torch.Tensor, *, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The AE: a deterministic code z = f(x); reconstruction only, no regulariser (it draws no noise)."""
    mu, _ = model.encode(x)
    recon = model.likelihood.nll(model.decode(mu), x).mean()
    return {"loss": recon, "recon": recon}


def kl_split(
    model,
    x: torch.Tensor,
    *,
    beta: float,
    gamma: float,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Sampled reconstruction plus beta * (mean part + gamma * variance part) of the KL to N(0, I).

    `noise`, when given, is the eps (k, B, D) of the k samples (see `reparameterize`).
    """
    mu, logvar = model.encode(x)  # (B, D) each
    z = reparameterize(mu, logvar, model.mc_samples, generator=generator, noise=noise)  # (k, B, D)
    recon = model.likelihood.nll(model.decode(z), x).mean()  # over the k samples and the batch
    mean_part, variance_part = gaussian_kl_parts(mu, logvar)
    mu_penalty, variance_penalty = mean_part.sum(-1).mean(), variance_part.sum(-1).mean()
    loss = recon + beta * (mu_penalty + gamma * variance_penalty)
    return {
        "loss": loss,
        "recon": recon,
        "kl": mu_penalty + variance_penalty,
        "mu_penalty": mu_penalty,
        "variance_penalty": variance_penalty,
    }


NOT_WEIGHTS = ("generator", "noise")  # keyword-only parameters every objective takes, that a variant does not give


@dataclass(frozen=True)
class Objective:
    function: Callable[..., dict[str, torch.Tensor]]
    stochastic: bool  # has q(z|x) = N(mu, diag(exp(logvar))), i.e. the model needs a log-variance head

    @property
    def weights(self) -> tuple[str, ...]:
        """The keyword-only parameters a variant must give (the noise and its generator are not weights)."""
        parameters = inspect.signature(self.function).parameters.values()
        return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in NOT_WEIGHTS)


OBJECTIVES: dict[str, Objective] = {
    "deterministic": Objective(deterministic, stochastic=False),
    "kl_split": Objective(kl_split, stochastic=True),
}


def check_variant(name: str, objective: str, weights: Mapping[str, float]) -> Objective:
    """The variant's objective, once its weights are exactly that objective's; ConfigError naming the key otherwise."""
    where = f"variants.{name}"
    if objective not in OBJECTIVES:
        raise ConfigError(f"{where}.objective: unknown objective {objective!r} (expected one of {', '.join(OBJECTIVES)})")
    spec = OBJECTIVES[objective]
    missing = [w for w in spec.weights if w not in weights]
    if missing:
        raise ConfigError(f"{where}.{missing[0]}: missing (objective {objective} takes {', '.join(spec.weights)})")
    unknown = [w for w in weights if w not in spec.weights]
    if unknown:
        takes = ", ".join(spec.weights) or "no weights"
        raise ConfigError(f"{where}.{unknown[0]}: not a weight of objective {objective} (it takes {takes})")
    return spec
