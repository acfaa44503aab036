"""The three objectives the study compares, side by side.

Each objective is a pure function of a model and a batch of target images
x (B, 1, 28, 28) and returns its terms as scalars in nats per image (summed
over the 784 pixels, averaged over the batch); `loss` is what is minimised.

    AE    loss = recon(x | f(x))
    VAE   loss = E_q[recon(x | z)] + beta * KL(q(z|x) || N(0, I))
    EM-AE loss = E_q[recon(x | z)] + 0.5 * ||mu(x)||^2

The EM-AE keeps the VAE's encoder, decoder and reparameterized sample, but its
regulariser lacks the entropy of q, so nothing stops sigma from shrinking
(seed 004; close to Ghosh et al.'s RAE with an L2 code penalty). `beta` weighs
only the VAE's KL. The expectations over q use `model.mc_samples` samples.

The per-image pieces (`reconstruction_nll`, `gaussian_kl`,
`gaussian_log_density`) are exported for the evaluation code.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


def reconstruction_nll(output: torch.Tensor, x: torch.Tensor, likelihood: str, gaussian_std: float) -> torch.Tensor:
    """-log p(x | z) per image: output and x (..., 1, 28, 28) -> (...,), in nats.

    `output` is the decoder's Bernoulli logits, or the Gaussian mean for
    `gaussian` (a fixed pixel std, with the full normalised density: it is the
    MSE scaled by 1 / (2 std^2) plus a constant, so it stays in nats).
    """
    return _PIXEL_NLL[likelihood](output, x, gaussian_std).flatten(-3).sum(-1)


def _bernoulli_pixel_nll(logits: torch.Tensor, x: torch.Tensor, gaussian_std: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")


def _gaussian_pixel_nll(mean: torch.Tensor, x: torch.Tensor, gaussian_std: float) -> torch.Tensor:
    return 0.5 * ((x - mean) / gaussian_std) ** 2 + math.log(gaussian_std) + 0.5 * LOG_2PI


_PIXEL_NLL = {"bernoulli": _bernoulli_pixel_nll, "gaussian": _gaussian_pixel_nll}
LIKELIHOODS = tuple(_PIXEL_NLL)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension: (B, D) -> (B, D). Sum over D for the total."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension: (..., D) -> (...,).

    With mu = 0 and logvar = 0 it is log p(z) under the standard normal prior.
    """
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, samples: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): (B, D) -> (samples, B, D).

    An explicit generator (on the tensors' device) makes the noise reproducible
    without touching the global RNG.
    """
    eps = torch.randn((samples, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + (0.5 * logvar).exp() * eps


def _expected_recon(model, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Monte Carlo E_q[-log p(x|z)] averaged over the batch: z (k, B, D) -> scalar."""
    output = model.decode(z)  # (k, B, 1, 28, 28)
    return reconstruction_nll(output, x, model.likelihood, model.gaussian_std).mean()


def ae_objective(model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Deterministic code z = f(x); reconstruction only, no regulariser."""
    mu, _ = model.encode(x)
    recon = reconstruction_nll(model.decode(mu), x, model.likelihood, model.gaussian_std).mean()
    return {"loss": recon, "recon": recon}


def vae_objective(model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Negative ELBO (for beta = 1): reconstruction under q plus beta * KL(q || N(0, I))."""
    mu, logvar = model.encode(x)
    recon = _expected_recon(model, reparameterize(mu, logvar, model.mc_samples, generator=generator), x)
    kl = gaussian_kl(mu, logvar).sum(-1).mean()
    return {"loss": recon + model.beta * kl, "recon": recon, "kl": kl}


def emae_objective(model, x: torch.Tensor, *, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The VAE's sampled reconstruction, but 0.5 * ||mu||^2 in place of the KL (no entropy of q)."""
    mu, logvar = model.encode(x)
    recon = _expected_recon(model, reparameterize(mu, logvar, model.mc_samples, generator=generator), x)
    mu_penalty = 0.5 * mu.pow(2).sum(-1).mean()
    return {"loss": recon + mu_penalty, "recon": recon, "mu_penalty": mu_penalty}
