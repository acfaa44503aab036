"""Pixel likelihoods against torch.distributions, and the ELBO / importance-weighted estimators on a
linear-Gaussian model, where log p(x) is exact.

Model: z ~ N(0, I_D), x | z ~ N(W z + b, s^2 I_P), so p(x) = N(b, W W^T + s^2 I).
W has orthogonal columns, which makes the true posterior diagonal: a Gaussian
q(z|x) of the kind the VAE uses can then be exact (IW = ELBO = log p(x)) or
deliberately wrong (shifted and widened), where the bounds are strict.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn
from torch.distributions import Bernoulli as TorchBernoulli
from torch.distributions import MultivariateNormal, Normal, kl_divergence
from torch.nn import functional as F

from aebench.evaluation.likelihood import chunk_plan, estimate_likelihood, standard_normal_log_density
from aebench.models.likelihood import Bernoulli, Gaussian, pixel_likelihood

LATENT, PIXELS, NOISE_STD = 2, 6, 0.5


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the pixel likelihoods --------------------------------------------------------


def test_registry_gives_each_likelihood_its_parameters():
    assert isinstance(pixel_likelihood("bernoulli", 0.3), Bernoulli)
    gaussian = pixel_likelihood("gaussian", 0.3)
    assert isinstance(gaussian, Gaussian) and gaussian.std == 0.3
    assert (Bernoulli.name, Gaussian.name) == ("bernoulli", "gaussian")


def test_bernoulli_nll_is_the_summed_negative_log_likelihood():
    binary = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=seeded(1)), generator=seeded(2))
    logits = torch.randn(8, 1, 28, 28, generator=seeded(3)) * 3
    expected = -TorchBernoulli(logits=logits).log_prob(binary).sum(dim=(1, 2, 3))  # (B,) nats
    nll = Bernoulli().nll(logits, binary)
    assert nll.shape == (8,)
    torch.testing.assert_close(nll, expected)


def test_nll_broadcasts_targets_over_samples():
    binary = torch.bernoulli(torch.rand(4, 1, 28, 28, generator=seeded(1)), generator=seeded(2))
    logits = torch.randn(3, 4, 1, 28, 28, generator=seeded(3))  # (k, B, ...)
    nll = Bernoulli().nll(logits, binary)
    assert nll.shape == (3, 4)
    torch.testing.assert_close(nll[1], Bernoulli().nll(logits[1], binary))


def test_gaussian_nll_is_a_normalised_density():
    x = torch.rand(8, 1, 28, 28, generator=seeded(1))
    means = torch.rand(8, 1, 28, 28, generator=seeded(2))
    expected = -Normal(means, 0.1).log_prob(x).sum(dim=(1, 2, 3))
    torch.testing.assert_close(Gaussian(0.1).nll(means, x), expected)


def test_bernoulli_rows_match_torch_distributions_at_saturated_logits():
    target = torch.bernoulli(torch.full((4, 784), 0.3), generator=seeded(0))  # (B, P)
    logits = torch.randn(4, 3, 784, generator=seeded(1)) * 8  # (B, K, P)
    logits[0, 0, :10] = 120.0  # exp(120) overflows float32: the estimator must not
    logits[1, 0, :10] = -120.0
    expected = TorchBernoulli(logits=logits.double()).log_prob(target.double().unsqueeze(1)).sum(-1)  # (B, K)
    got = Bernoulli().log_prob_rows(logits, target)
    assert got.shape == (4, 3) and torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), expected, atol=2e-3, rtol=1e-6)


def test_gaussian_rows_are_the_normalised_density():
    target, means = torch.rand(4, 784, generator=seeded(0)), torch.rand(4, 3, 784, generator=seeded(1))
    expected = Normal(means.double(), 0.1).log_prob(target.double().unsqueeze(1)).sum(-1)
    torch.testing.assert_close(Gaussian(0.1).log_prob_rows(means, target).double(), expected, atol=1e-2, rtol=1e-6)


@pytest.mark.parametrize("likelihood", [Bernoulli(), Gaussian(0.1)], ids=["bernoulli", "gaussian"])
def test_rows_are_the_negated_nll_row_by_row(likelihood):
    target = torch.bernoulli(torch.full((5, 1, 28, 28), 0.2), generator=seeded(0))  # (B, 1, 28, 28)
    output = torch.randn(5, 2, 1, 28, 28, generator=seeded(1)) * 3  # (B, K, 1, 28, 28)
    per_image = -likelihood.nll(output, target.unsqueeze(1))  # (B, K)
    rows = likelihood.log_prob_rows(output.flatten(2), target.flatten(1))  # (B, K)
    torch.testing.assert_close(rows, per_image, atol=5e-3, rtol=1e-5)


def test_pixel_means_are_images_in_the_unit_interval():
    output = torch.tensor([[-200.0, -1.0, 0.0, 0.5, 3.0, 200.0]])
    torch.testing.assert_close(Bernoulli().pixel_means(output), torch.sigmoid(output))
    assert Gaussian(0.1).pixel_means(output).tolist() == [[0.0, 0.0, 0.0, 0.5, 1.0, 1.0]]


def test_bce_is_the_cross_entropy_of_the_pixel_means_whatever_the_likelihood():
    x = torch.rand(6, 1, 28, 28, generator=seeded(0))
    logits = torch.randn(6, 1, 28, 28, generator=seeded(1)) * 20  # many saturated pixels
    expected = F.binary_cross_entropy_with_logits(logits.double(), x.double(), reduction="none").sum(dim=(1, 2, 3))
    torch.testing.assert_close(Bernoulli().bce(logits, x).double(), expected, rtol=1e-5, atol=1e-3)
    means = torch.rand(6, 1, 28, 28, generator=seeded(2)) * 1.4 - 0.2  # some outside [0, 1]: clipped
    clipped = means.clamp(0, 1)
    expected = F.binary_cross_entropy(clipped, x, reduction="none").sum(dim=(1, 2, 3))
    got = Gaussian(0.1).bce(means, x)
    assert torch.isfinite(got).all()  # a clipped mean of exactly 0 or 1 stays finite
    torch.testing.assert_close(got, expected)


# --- the estimators on a linear-Gaussian model ---------------------------------------


class LinearGaussian(nn.Module):
    """encode/decode like an aebench model; q(z|x) = true posterior, shifted by `shift`, variance times `widen`."""

    likelihood = Gaussian(NOISE_STD)

    def __init__(self, *, shift: float = 0.0, widen: float = 1.0) -> None:
        super().__init__()
        generator = seeded(0)
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
        log_normaliser = -0.5 * PIXELS * math.log(2 * math.pi * NOISE_STD**2)
        expected_log_lik = log_normaliser - (residual + spread) / (2 * NOISE_STD**2)
        kl = 0.5 * (mu**2 + variance - logvar - 1).sum(-1)
        return expected_log_lik - kl


def data_from(model: LinearGaussian, images: int, seed: int = 1) -> torch.Tensor:
    generator = seeded(seed)
    z = torch.randn(images, LATENT, generator=generator, dtype=torch.float64)
    noise = torch.randn(images, PIXELS, generator=generator, dtype=torch.float64) * NOISE_STD
    return (z @ model.weight.T + model.bias + noise).float()  # (N, P)


def estimate(model, x, samples, *, seed=0, batch_images=64, max_rows=4096):
    return estimate_likelihood(
        model, x, samples=samples, batch_images=batch_images, max_rows=max_rows, generator=seeded(seed)
    )


def test_standard_normal_log_density_matches_torch_distributions():
    z = torch.randn(4, 3, 5, generator=seeded(0))
    torch.testing.assert_close(standard_normal_log_density(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


@pytest.mark.parametrize("samples", [1, 7, 100])
def test_with_the_true_posterior_every_estimate_is_exactly_log_px(samples):
    model = LinearGaussian()
    x = data_from(model, 50)
    estimates = estimate(model, x, samples)
    exact = model.log_marginal(x)
    assert estimates.nll_iw.shape == estimates.kl.shape == estimates.expected_nll.shape == (50,)
    assert estimates.samples == samples
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


def test_the_monte_carlo_standard_error_predicts_the_spread_of_repeated_estimates():
    model = LinearGaussian(shift=0.4, widen=1.8)  # a wrong q: the weights vary
    x = data_from(model, 200)
    repeats = [estimate(model, x, 50, seed=seed) for seed in range(40)]
    spread = statistics.stdev(float(r.nll_iw.mean()) for r in repeats)
    predicted = statistics.mean(r.nll_iw_mc_se() for r in repeats)
    assert 0.7 * spread < predicted < 1.4 * spread  # 40 repeats: the spread itself is known to about +-11%
    # Over images, the error also holds how the images differ: far larger than the Monte-Carlo part here.
    first = repeats[0]
    assert first.nll_iw_se() == pytest.approx(float(first.nll_iw.std()) / math.sqrt(200))
    assert first.nll_iw_se() > 5 * predicted


def test_with_the_true_posterior_the_monte_carlo_error_is_zero_and_one_sample_has_none():
    model = LinearGaussian()
    x = data_from(model, 30)
    assert estimate(model, x, 20).nll_iw_mc_se() == pytest.approx(0.0, abs=1e-3)
    single = estimate(model, x, 1)
    assert single.nll_iw_mc_se() is None and single.nll_iw_se() > 0
    assert estimate(model, x[:1], 20).nll_iw_se() is None


def test_the_same_generator_seed_gives_the_same_estimate():
    model = LinearGaussian(shift=0.4, widen=1.8)
    x = data_from(model, 40)
    first, again, other = estimate(model, x, 20, seed=4), estimate(model, x, 20, seed=4), estimate(model, x, 20, seed=5)
    assert torch.equal(first.nll_iw, again.nll_iw) and torch.equal(first.expected_nll, again.expected_nll)
    assert not torch.equal(first.nll_iw, other.nll_iw)


def test_a_model_without_variance_is_refused():
    class CodeOnly(LinearGaussian):
        def encode(self, x):
            return super().encode(x)[0], None

    with pytest.raises(ValueError, match="no q"):
        estimate(CodeOnly(), torch.zeros(3, PIXELS), 5)
    with pytest.raises(ValueError, match="samples must be >= 1, got 0"):
        estimate(LinearGaussian(), torch.zeros(3, PIXELS), 0)


def test_chunk_plan_bounds_the_rows_per_decoder_pass():
    assert chunk_plan(1000, 100, 4096) == (100, 40)
    assert chunk_plan(5, 100, 4096) == (100, 5)
    assert chunk_plan(1000, 100, 10) == (10, 1)
