"""The ELBO and importance-weighted estimators on a linear-Gaussian model, where log p(x) is exact.

Model: z ~ N(0, I_D), x | z ~ N(W z + b, s^2 I_P), so p(x) = N(b, W W^T + s^2 I).
W has orthogonal columns, which makes the true posterior diagonal: a Gaussian
q(z|x) of the kind the VAE uses can then be exact (IW = ELBO = log p(x)) or
deliberately wrong (shifted and widened), where the bounds are strict.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli, MultivariateNormal, Normal, kl_divergence

from aebench.evaluation.likelihood import chunk_plan, estimate_likelihood, pixel_log_likelihood
from aebench.models.objectives import reconstruction_nll

LATENT, PIXELS, NOISE_STD = 2, 6, 0.5


class LinearGaussian(nn.Module):
    """encode/decode like an aebench model; q(z|x) = true posterior, shifted by `shift`, variance times `widen`."""

    def __init__(self, *, shift: float = 0.0, widen: float = 1.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        basis, _ = torch.linalg.qr(torch.randn(PIXELS, LATENT, generator=generator, dtype=torch.float64))
        self.weight = basis * torch.tensor([1.5, 0.8], dtype=torch.float64)  # (P, D), orthogonal columns
        self.bias = torch.randn(PIXELS, generator=generator, dtype=torch.float64) * 0.3  # (P,)
        self.shift, self.widen = shift, widen
        self.latent_dim = LATENT

    def true_posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (B, D) and (diagonal) variance (D,) of p(z | x)."""
        precision = 1 + (self.weight**2).sum(0) / NOISE_STD**2  # (D,): W^T W is diagonal
        variance = 1 / precision
        mean = (x.double() - self.bias) @ self.weight / NOISE_STD**2 * variance  # (B, D)
        return mean, variance

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, variance = self.true_posterior(x)
        logvar = (variance * self.widen).log().expand_as(mean)
        return (mean + self.shift).float(), logvar.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return (z.double() @ self.weight.T + self.bias).float()  # (..., P): the Gaussian mean

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        covariance = self.weight @ self.weight.T + NOISE_STD**2 * torch.eye(PIXELS, dtype=torch.float64)
        return MultivariateNormal(self.bias, covariance).log_prob(x.double())  # (B,)

    def elbo(self, x: torch.Tensor) -> torch.Tensor:
        """Closed form: E_q[log p(x|z)] - KL(q || N(0, I)) per image (B,)."""
        mu, logvar = (t.double() for t in self.encode(x))
        variance = logvar.exp()
        residual = ((x.double() - mu @ self.weight.T - self.bias) ** 2).sum(-1)
        spread = (variance * (self.weight**2).sum(0)).sum(-1)  # tr(W diag(var) W^T)
        expected_log_lik = -0.5 * PIXELS * math.log(2 * math.pi * NOISE_STD**2) - (residual + spread) / (2 * NOISE_STD**2)
        kl = 0.5 * (mu**2 + variance - logvar - 1).sum(-1)
        return expected_log_lik - kl


def data_from(model: LinearGaussian, images: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(images, LATENT, generator=generator, dtype=torch.float64)
    noise = torch.randn(images, PIXELS, generator=generator, dtype=torch.float64) * NOISE_STD
    return (z @ model.weight.T + model.bias + noise).float()  # (N, P)


def estimate(model, x, samples, *, seed=0, batch_images=64, max_rows=4096):
    return estimate_likelihood(
        model,
        x,
        log_likelihood=pixel_log_likelihood("gaussian", NOISE_STD),
        samples=samples,
        batch_images=batch_images,
        max_rows=max_rows,
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.mark.parametrize("samples", [1, 7, 100])
def test_with_the_true_posterior_every_estimate_is_exactly_log_px(samples):
    model = LinearGaussian()
    x = data_from(model, 50)
    estimates = estimate(model, x, samples)
    exact = model.log_marginal(x)
    # log w_k = log p(x) for every z_k: any error in log p(x|z), log p(z) or log q(z|x) shows here.
    torch.testing.assert_close(-estimates.nll_iw, exact, atol=2e-4, rtol=0)
    # The ELBO is tight too, but its E_q[log p(x|z)] is a Monte Carlo mean over K draws (sd ~2.5 nats each).
    standard_error = 2.5 / math.sqrt(len(x) * samples)
    assert float(-estimates.neg_elbo.mean()) == pytest.approx(float(exact.mean()), abs=4 * standard_error)


@pytest.mark.parametrize("batch_images, max_rows", [(1, 1), (7, 10), (50, 50), (64, 100000)])
def test_chunking_over_images_and_samples_keeps_each_image_its_own_estimate(batch_images, max_rows):
    model = LinearGaussian()
    x = data_from(model, 23)
    estimates = estimate(model, x, 30, batch_images=batch_images, max_rows=max_rows)
    torch.testing.assert_close(-estimates.nll_iw, model.log_marginal(x), atol=2e-4, rtol=0)


def test_neg_elbo_matches_the_closed_form_for_a_wrong_q():
    model = LinearGaussian(shift=0.4, widen=1.8)
    x = data_from(model, 200)
    estimates = estimate(model, x, 2000)
    exact_elbo = model.elbo(x)
    assert (model.log_marginal(x) - exact_elbo).mean() > 1.0  # the bound is far from tight
    torch.testing.assert_close(-estimates.neg_elbo.mean(), exact_elbo.mean(), atol=0.02, rtol=0)
    mu, logvar = model.encode(x)
    expected_kl = kl_divergence(Normal(mu.double(), (0.5 * logvar.double()).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(estimates.kl, expected_kl, atol=1e-5, rtol=1e-5)  # (N,), exact, not sampled


def test_iw_estimate_tightens_towards_log_px_as_k_grows_and_stays_above_the_elbo():
    model = LinearGaussian(shift=0.4, widen=1.8)
    x = data_from(model, 1000)
    exact = model.log_marginal(x).mean()
    elbo = model.elbo(x).mean()
    gaps = {k: float(exact + estimate(model, x, k, seed=k).nll_iw.mean()) for k in (1, 10, 100, 3000)}
    # K = 1 is the ELBO in expectation (one draw of log w has sd ~2.5 nats: 4 standard errors allowed) ...
    assert gaps[1] == pytest.approx(float(exact - elbo), abs=4 * 2.5 / math.sqrt(len(x)))
    # ... and each larger K is closer to log p(x) ...
    assert gaps[1] > gaps[10] > gaps[100] > gaps[3000]
    # ... and at K = 3000 within a few hundredths of a nat of it, still a lower bound on average.
    assert -0.02 < gaps[3000] < 0.05
    iw_10 = -estimate(model, x, 10, seed=3).nll_iw.mean()
    assert iw_10 >= elbo


def test_a_model_without_variance_is_refused():
    class CodeOnly(LinearGaussian):
        def encode(self, x):
            return super().encode(x)[0], None

    with pytest.raises(ValueError, match="no q"):
        estimate(CodeOnly(), torch.zeros(3, PIXELS), 5)


def test_chunk_plan_bounds_the_rows_per_decoder_pass():
    assert chunk_plan(1000, 100, 4096) == (100, 40)
    assert chunk_plan(5, 100, 4096) == (100, 5)
    assert chunk_plan(1000, 100, 10) == (10, 1)


def test_bernoulli_log_likelihood_matches_torch_distributions_at_saturated_logits():
    generator = torch.Generator().manual_seed(0)
    target = torch.bernoulli(torch.full((4, 784), 0.3), generator=generator)  # (B, P)
    logits = torch.randn(4, 3, 784, generator=generator) * 8  # (B, K, P)
    logits[0, 0, :10] = 120.0  # exp(120) overflows float32: the estimator must not
    logits[1, 0, :10] = -120.0
    expected = Bernoulli(logits=logits.double()).log_prob(target.double().unsqueeze(1)).sum(-1)  # (B, K)
    got = pixel_log_likelihood("bernoulli", 0.1)(logits, target)
    assert got.shape == (4, 3)
    torch.testing.assert_close(got.double(), expected, atol=2e-3, rtol=1e-6)


def test_gaussian_log_likelihood_is_the_normalised_density():
    generator = torch.Generator().manual_seed(0)
    target, means = torch.rand(4, 784, generator=generator), torch.rand(4, 3, 784, generator=generator)
    expected = Normal(means.double(), 0.1).log_prob(target.double().unsqueeze(1)).sum(-1)
    torch.testing.assert_close(pixel_log_likelihood("gaussian", 0.1)(means, target).double(), expected, atol=1e-2, rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_agrees_with_the_training_objectives_reconstruction_nll(likelihood):
    generator = torch.Generator().manual_seed(0)
    target = torch.bernoulli(torch.full((5, 1, 28, 28), 0.2), generator=generator)
    output = torch.randn(5, 2, 1, 28, 28, generator=generator) * 3
    training = -reconstruction_nll(output, target.unsqueeze(1), likelihood, 0.1)  # (B, K)
    evaluation = pixel_log_likelihood(likelihood, 0.1)(output.flatten(2), target.flatten(1))
    torch.testing.assert_close(evaluation, training, atol=5e-3, rtol=1e-5)
