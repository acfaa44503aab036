"""The three objectives and their per-image pieces, checked against torch.distributions."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from aebench.common.config import load_params
from aebench.models import build_model, resolved_config
from aebench.models.objectives import (
    gaussian_kl,
    gaussian_log_density,
    reconstruction_nll,
    reparameterize,
)


def tiny_model(kind: str, **model_overrides):
    config = resolved_config(load_params("params.yaml"), dataset="mnist", model=kind, latent_dim=4)
    config["model"].update(hidden=[32], **model_overrides)
    torch.manual_seed(0)
    return build_model(config)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))  # (B, 1, 28, 28)


def test_gaussian_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(16, 5, generator=generator) * 2
    logvar = torch.randn(16, 5, generator=generator)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(5), torch.ones(5)))  # (B, D)
    assert gaussian_kl(mu, logvar).shape == (16, 5)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_gaussian_log_density_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    z, mu, logvar = (torch.randn(3, 7, 5, generator=generator) for _ in range(3))
    expected = Independent(Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z)  # (3, 7)
    torch.testing.assert_close(gaussian_log_density(z, mu, logvar), expected)


def test_bernoulli_reconstruction_nll_is_the_summed_negative_log_likelihood(images):
    binary = torch.bernoulli(images, generator=torch.Generator().manual_seed(2))
    logits = torch.randn_like(images)
    expected = -Bernoulli(logits=logits).log_prob(binary).sum(dim=(1, 2, 3))  # (B,) nats
    nll = reconstruction_nll(logits, binary, "bernoulli", 0.1)
    assert nll.shape == (8,)
    torch.testing.assert_close(nll, expected)


def test_gaussian_reconstruction_nll_is_a_normalised_density(images):
    means = torch.rand_like(images)
    expected = -Normal(means, 0.1).log_prob(images).sum(dim=(1, 2, 3))
    torch.testing.assert_close(reconstruction_nll(means, images, "gaussian", 0.1), expected)


def test_reparameterized_samples_follow_q():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, 2.0 * torch.log(torch.tensor(3.0))]])  # sigma = 1 and 3
    z = reparameterize(mu, logvar, 20000, generator=torch.Generator().manual_seed(0))  # (k, B, D)
    assert z.shape == (20000, 1, 2)
    torch.testing.assert_close(z.mean(0), mu, atol=0.1, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([[1.0, 3.0]]), atol=0.1, rtol=0)


def test_ae_objective_is_reconstruction_only(images):
    model = tiny_model("ae")
    terms = model.loss_terms(images)
    assert set(terms) == {"loss", "recon"}
    mu, logvar = model.encode(images)
    assert logvar is None
    expected = reconstruction_nll(model.decode(mu), images, "bernoulli", model.gaussian_std).mean()
    torch.testing.assert_close(terms["recon"], expected)
    assert torch.equal(terms["loss"], terms["recon"])


@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_vae_objective_is_recon_plus_beta_kl(images, beta):
    model = tiny_model("vae", beta=beta, mc_samples=3)
    terms = model.loss_terms(images, generator=torch.Generator().manual_seed(5))
    assert set(terms) == {"loss", "recon", "kl"}
    mu, logvar = model.encode(images)
    q = Normal(mu, (0.5 * logvar).exp())
    expected_kl = kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1).mean()
    torch.testing.assert_close(terms["kl"], expected_kl)
    # The reconstruction averages k = 3 reparameterized samples drawn from the same generator.
    z = mu + (0.5 * logvar).exp() * torch.randn((3, *mu.shape), generator=torch.Generator().manual_seed(5))
    expected_recon = reconstruction_nll(model.decode(z), images, "bernoulli", 0.1).mean()
    torch.testing.assert_close(terms["recon"], expected_recon)
    torch.testing.assert_close(terms["loss"], terms["recon"] + beta * terms["kl"])


def test_emae_regulariser_is_half_squared_mean_norm_and_ignores_sigma(images):
    model = tiny_model("emae", beta=5.0)  # beta weighs only the VAE's KL
    terms = model.loss_terms(images, generator=torch.Generator().manual_seed(5))
    assert set(terms) == {"loss", "recon", "mu_penalty"}
    mu, _ = model.encode(images)
    torch.testing.assert_close(terms["mu_penalty"], 0.5 * (mu**2).sum(-1).mean())
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["mu_penalty"])
    # No entropy term: the regulariser gives the log-variance head no gradient at all.
    terms["mu_penalty"].backward()
    assert model.logvar_head.weight.grad is None or not model.logvar_head.weight.grad.any()
    assert model.mean_head.weight.grad.abs().sum() > 0


def test_vae_and_emae_share_reconstruction_given_the_same_weights_and_noise(images):
    vae, emae = tiny_model("vae"), tiny_model("emae")
    emae.load_state_dict(vae.state_dict())  # same backbone and heads: the parameter names line up
    recon_vae = vae.loss_terms(images, generator=torch.Generator().manual_seed(9))["recon"]
    recon_emae = emae.loss_terms(images, generator=torch.Generator().manual_seed(9))["recon"]
    assert torch.equal(recon_vae, recon_emae)


def test_gaussian_likelihood_objective_uses_the_fixed_std(images):
    model = tiny_model("ae", likelihood="gaussian", gaussian_std=0.2)
    terms = model.loss_terms(images)
    means = model.decode(model.encode(images)[0])
    expected = -Normal(means, 0.2).log_prob(images).sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(terms["recon"], expected)
