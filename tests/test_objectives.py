"""The objectives and their Gaussian pieces, checked against torch.distributions and against each other."""

from __future__ import annotations

import pytest
import torch
from helpers import images as random_images
from helpers import make_model, tiny_config
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

from aebench.common.errors import ConfigError
from aebench.models.objectives import (
    OBJECTIVES,
    check_variant,
    deterministic,
    gaussian_kl,
    gaussian_kl_parts,
    gaussian_log_density,
    kl_split,
    reparameterize,
)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.bernoulli(random_images(8, seed=1), generator=seeded(2))  # (B, 1, 28, 28) binary


@pytest.fixture
def vae():
    return make_model(tiny_config("vae", latent_dim=4, train__mc_samples=3))


def prior_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q || N(0, I)) per image (B,), from torch.distributions."""
    q = Normal(mu, (0.5 * logvar).exp())
    return kl_divergence(q, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)


# --- the Gaussian pieces ------------------------------------------------------------


def test_gaussian_kl_matches_torch_distributions():
    mu = torch.randn(16, 5, generator=seeded(0)) * 2
    logvar = torch.randn(16, 5, generator=seeded(1))
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros(5), torch.ones(5)))  # (B, D)
    assert gaussian_kl(mu, logvar).shape == (16, 5)
    torch.testing.assert_close(gaussian_kl(mu, logvar), expected)


def test_kl_parts_are_the_mean_and_the_variance_terms_and_sum_to_the_kl():
    mu = torch.randn(16, 5, generator=seeded(0)) * 2
    logvar = torch.randn(16, 5, generator=seeded(1))
    mean_part, variance_part = gaussian_kl_parts(mu, logvar)
    torch.testing.assert_close(mean_part, 0.5 * mu**2, rtol=0, atol=0)
    torch.testing.assert_close(mean_part + variance_part, gaussian_kl(mu, logvar))
    # The variance part is the KL of a zero-mean q: it ignores mu, is >= 0, and 0 only at sigma = 1.
    zero_mean = kl_divergence(Normal(0.0, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(variance_part, zero_mean)
    assert (variance_part >= 0).all()
    assert gaussian_kl_parts(mu, torch.zeros_like(logvar))[1].abs().max() == 0


def test_gaussian_log_density_matches_torch_distributions():
    z, mu, logvar = (torch.randn(3, 7, 5, generator=seeded(s)) for s in range(3))
    expected = Independent(Normal(mu, (0.5 * logvar).exp()), 1).log_prob(z)  # (3, 7)
    torch.testing.assert_close(gaussian_log_density(z, mu, logvar), expected)


def test_reparameterized_samples_follow_q():
    mu = torch.tensor([[1.0, -2.0]])
    logvar = torch.tensor([[0.0, 2.0 * torch.log(torch.tensor(3.0))]])  # sigma = 1 and 3
    z = reparameterize(mu, logvar, 20000, generator=seeded(0))  # (k, B, D)
    assert z.shape == (20000, 1, 2)
    torch.testing.assert_close(z.mean(0), mu, atol=0.1, rtol=0)
    torch.testing.assert_close(z.std(0), torch.tensor([[1.0, 3.0]]), atol=0.1, rtol=0)


# --- the registry ------------------------------------------------------------------


def test_the_registry_names_each_objective_with_its_weights():
    assert list(OBJECTIVES) == ["deterministic", "kl_split"]
    assert OBJECTIVES["deterministic"].function is deterministic and OBJECTIVES["kl_split"].function is kl_split
    assert OBJECTIVES["deterministic"].weights == () and OBJECTIVES["kl_split"].weights == ("beta", "gamma")
    assert (OBJECTIVES["deterministic"].stochastic, OBJECTIVES["kl_split"].stochastic) == (False, True)


def test_check_variant_accepts_exactly_the_objectives_weights():
    assert check_variant("vae", "kl_split", {"beta": 1.0, "gamma": 1.0}) is OBJECTIVES["kl_split"]
    assert check_variant("ae", "deterministic", {}) is OBJECTIVES["deterministic"]


@pytest.mark.parametrize(
    ("name", "objective", "weights", "expected"),
    [
        ("gan", "adversarial", {}, "variants.gan.objective: unknown objective 'adversarial' (expected one of "
                                   "deterministic, kl_split)"),
        ("vae", "kl_split", {"beta": 1.0}, "variants.vae.gamma: missing (objective kl_split takes beta, gamma)"),
        ("vae", "kl_split", {}, "variants.vae.beta: missing (objective kl_split takes beta, gamma)"),
        ("vae", "kl_split", {"beta": 1.0, "gamma": 1.0, "alpha": 2.0},
         "variants.vae.alpha: not a weight of objective kl_split (it takes beta, gamma)"),
        ("ae", "deterministic", {"beta": 1.0}, "variants.ae.beta: not a weight of objective deterministic "
                                               "(it takes no weights)"),
    ],
)
def test_check_variant_refuses_naming_the_key(name, objective, weights, expected):
    with pytest.raises(ConfigError) as caught:
        check_variant(name, objective, weights)
    assert str(caught.value) == expected


# --- deterministic -------------------------------------------------------------------


def test_deterministic_objective_is_reconstruction_only(images):
    model = make_model(tiny_config("ae", latent_dim=4))
    terms = model.loss_terms(images)
    assert list(terms) == ["loss", "recon"]
    mu, logvar = model.encode(images)
    assert logvar is None
    expected = -Bernoulli(logits=model.decode(mu)).log_prob(images).sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(terms["recon"], expected)
    assert terms["loss"] is terms["recon"]


def test_gaussian_likelihood_objective_uses_the_fixed_std():
    x = random_images(8, seed=3)
    model = make_model(tiny_config("ae", likelihood__name="gaussian", likelihood__gaussian_std=0.2))
    terms = model.loss_terms(x)
    means = model.decode(model.encode(x)[0])
    expected = -Normal(means, 0.2).log_prob(x).sum(dim=(1, 2, 3)).mean()
    torch.testing.assert_close(terms["recon"], expected)


# --- kl_split ---------------------------------------------------------------------------


def test_kl_split_at_beta_1_gamma_1_is_the_negative_elbo(vae, images):
    terms = kl_split(vae, images, beta=1.0, gamma=1.0, generator=seeded(5))
    assert list(terms) == ["loss", "recon", "kl", "mu_penalty", "variance_penalty"]
    mu, logvar = vae.encode(images)
    torch.testing.assert_close(terms["kl"], prior_kl(mu, logvar).mean())
    # -ELBO = E_q[-log p(x|z)] + KL, the expectation over k = 3 samples drawn from the same generator.
    eps = torch.randn((3, *mu.shape), generator=seeded(5))
    z = mu + (0.5 * logvar).exp() * eps  # (k, B, D)
    expected_nll = -Bernoulli(logits=vae.decode(z)).log_prob(images).sum(dim=(-3, -2, -1)).mean()
    torch.testing.assert_close(terms["recon"], expected_nll)
    torch.testing.assert_close(terms["loss"], expected_nll + prior_kl(mu, logvar).mean())


def test_the_model_trains_its_variants_objective_with_its_weights(images):
    model = make_model(tiny_config("emae", latent_dim=4))
    via_model = model.loss_terms(images, generator=seeded(5))
    direct = kl_split(model, images, beta=1.0, gamma=0.0, generator=seeded(5))
    assert via_model.keys() == direct.keys()
    for name in direct:
        assert torch.equal(via_model[name], direct[name]), name


def test_given_the_noise_its_generator_would_draw_kl_split_returns_the_same_terms_bit_for_bit(vae, images):
    """What stacked training relies on: eps drawn outside (`draw_noise`) and passed in changes no bit."""
    drawn = kl_split(vae, images, beta=1.0, gamma=1.0, generator=seeded(5))
    noise = vae.draw_noise(len(images), generator=seeded(5))
    assert noise.shape == (3, 8, 4)  # (mc_samples, B, D)
    given = kl_split(vae, images, beta=1.0, gamma=1.0, noise=noise)
    via_model = vae.loss_terms(images, noise=noise)
    assert drawn.keys() == given.keys() == via_model.keys()
    for name in drawn:
        assert torch.equal(given[name], drawn[name]), name
        assert torch.equal(via_model[name], drawn[name]), name
    other = kl_split(vae, images, beta=1.0, gamma=1.0, noise=vae.draw_noise(len(images), generator=seeded(6)))
    assert not torch.equal(other["recon"], drawn["recon"])  # the noise given is the noise used


def test_a_deterministic_objective_draws_no_noise(images):
    ae = make_model(tiny_config("ae", latent_dim=4))
    assert ae.draw_noise(len(images), generator=seeded(5)) is None
    assert torch.equal(ae.loss_terms(images, noise=None)["loss"], deterministic(ae, images)["loss"])


def test_mean_and_variance_penalties_sum_to_the_kl(vae, images):
    terms = kl_split(vae, images, beta=0.3, gamma=0.7, generator=seeded(5))
    mu, logvar = vae.encode(images)
    torch.testing.assert_close(terms["mu_penalty"], 0.5 * (mu**2).sum(-1).mean())
    torch.testing.assert_close(terms["mu_penalty"] + terms["variance_penalty"], terms["kl"])
    torch.testing.assert_close(terms["kl"], prior_kl(mu, logvar).mean())


@pytest.mark.parametrize("beta", [0.0, 0.25, 4.0])
def test_beta_scales_only_the_regulariser(vae, images, beta):
    reference = kl_split(vae, images, beta=1.0, gamma=1.0, generator=seeded(5))
    scaled = kl_split(vae, images, beta=beta, gamma=1.0, generator=seeded(5))
    for name in ("recon", "kl", "mu_penalty", "variance_penalty"):  # what is measured does not move
        assert torch.equal(scaled[name], reference[name]), name
    torch.testing.assert_close(scaled["loss"], reference["recon"] + beta * reference["kl"])


def test_gamma_zero_is_the_em_ae_half_squared_mean_norm(vae, images):
    terms = kl_split(vae, images, beta=1.0, gamma=0.0, generator=seeded(5))
    mu, _ = vae.encode(images)
    torch.testing.assert_close(terms["loss"], terms["recon"] + 0.5 * (mu**2).sum(-1).mean())
    assert terms["kl"] > terms["mu_penalty"]  # the full KL is still reported beside what is weighed


def test_gamma_zero_regulariser_ignores_the_variance(vae, images):
    def regulariser() -> torch.Tensor:
        terms = kl_split(vae, images, beta=1.0, gamma=0.0, generator=seeded(5))
        return terms["loss"] - terms["recon"]

    before = regulariser()
    with torch.no_grad():
        vae.logvar_head.bias += 3.0  # every sigma^2 times e^3
    after = regulariser()
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    # At gamma = 1 the same change costs KL.
    with torch.no_grad():
        vae.logvar_head.bias -= 3.0
    base = kl_split(vae, images, beta=1.0, gamma=1.0, generator=seeded(5))
    with torch.no_grad():
        vae.logvar_head.bias += 3.0
    widened = kl_split(vae, images, beta=1.0, gamma=1.0, generator=seeded(5))
    assert (widened["loss"] - widened["recon"]) > (base["loss"] - base["recon"]) + 1.0


def test_gamma_zero_gives_the_log_variance_head_gradient_through_the_reconstruction_only(images):
    model = make_model(tiny_config("emae", latent_dim=4))
    terms = model.loss_terms(images, generator=seeded(5))
    head = list(model.logvar_head.parameters())
    from_loss = torch.autograd.grad(terms["loss"], head, retain_graph=True)
    from_recon = torch.autograd.grad(terms["recon"], head, retain_graph=True)
    for loss_grad, recon_grad in zip(from_loss, from_recon, strict=True):
        torch.testing.assert_close(loss_grad, recon_grad)
        assert recon_grad.abs().sum() > 0  # the sampled reconstruction does depend on sigma
    regulariser = terms["loss"] - terms["recon"]
    grads = torch.autograd.grad(regulariser, head, allow_unused=True, retain_graph=True)
    assert all(g is None or not g.any() for g in grads)
    assert torch.autograd.grad(regulariser, model.mean_head.weight)[0].abs().sum() > 0


def test_vae_and_emae_share_reconstruction_given_the_same_weights_and_noise(images):
    vae, emae = make_model(tiny_config("vae")), make_model(tiny_config("emae", seed=1))
    emae.load_state_dict(vae.state_dict())  # same backbone and heads: the parameter names line up
    recon_vae = vae.loss_terms(images, generator=seeded(9))["recon"]
    recon_emae = emae.loss_terms(images, generator=seeded(9))["recon"]
    assert torch.equal(recon_vae, recon_emae)
