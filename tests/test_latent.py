"""Activity, active units and per-dimension KL on hand-built latents; reconstructions at z = mu; the probe."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from aebench.evaluation.activity import active_units, activity
from aebench.evaluation.latent import kl_per_dim
from aebench.evaluation.probe import linear_probe
from aebench.evaluation.reconstruction import decoded_images, posterior_means, posterior_pass
from aebench.models.likelihood import Bernoulli, Gaussian


def hand_built_means() -> np.ndarray:
    """(1000, 5): dimensions with known variances 0, 1e-4, 0.005, 0.04, 4."""
    rng = np.random.default_rng(0)
    signs = np.where(np.arange(1000) % 2 == 0, 1.0, -1.0)  # exactly mean 0, variance 1 (population)
    columns = [
        np.full(1000, 3.0),  # ignores the input entirely
        0.01 * rng.permutation(signs),
        np.sqrt(0.005) * rng.permutation(signs),
        0.2 * rng.permutation(signs),
        2.0 * rng.permutation(signs),
    ]
    return np.stack(columns, axis=1)


def test_activity_is_the_variance_of_each_dimensions_mean_over_images():
    means = hand_built_means()
    expected = np.array([0.0, 1e-4, 0.005, 0.04, 4.0]) * 1000 / 999  # unbiased (n - 1) variance
    np.testing.assert_allclose(activity(means), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(activity(torch.from_numpy(means).float()), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("threshold, count", [(0.01, 2), (0.001, 3), (0.05, 1), (10.0, 0), (0.0, 4)])
def test_active_units_counts_dimensions_above_the_threshold(threshold, count):
    assert active_units(activity(hand_built_means()), threshold) == count


@pytest.mark.parametrize("shape", [(1, 3), (5,), (2, 3, 4)])
def test_activity_needs_two_images_of_codes(shape):
    with pytest.raises(ValueError, match="N >= 2"):
        activity(np.zeros(shape))


def test_kl_per_dim_is_the_image_average_of_the_gaussian_kl():
    generator = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(50, 4, generator=generator), torch.randn(50, 4, generator=generator)
    expected = kl_divergence(Normal(mu.double(), (0.5 * logvar.double()).exp()), Normal(0.0, 1.0)).mean(0)
    np.testing.assert_allclose(kl_per_dim(mu, logvar), expected.numpy(), rtol=1e-10)
    # a dimension whose q is the prior costs nothing
    assert kl_per_dim(torch.zeros(3, 2), torch.zeros(3, 2)).tolist() == [0.0, 0.0]


class HalfUsedEncoder(nn.Module):
    """Latent 0 follows the image's mean brightness, latent 1 is constant; decodes to a flat image."""

    latent_dim = 2

    def __init__(self, likelihood=None) -> None:
        super().__init__()
        self.likelihood = likelihood or Bernoulli()

    def encode(self, x):
        brightness = x.flatten(1).mean(-1)  # (B,)
        mu = torch.stack([10 * brightness, torch.full_like(brightness, 0.5)], dim=-1)  # (B, 2)
        return mu, torch.zeros_like(mu)

    def decode(self, z):
        return z[..., :1, None, None].expand(*z.shape[:-1], 1, 28, 28)  # one number everywhere: z_0

    def decode_images(self, z):
        return self.likelihood.pixel_means(self.decode(z))


@pytest.fixture
def binary_images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    grey = torch.rand(64, 1, 1, 1, generator=generator).expand(64, 1, 28, 28).contiguous()
    return torch.bernoulli(grey, generator=generator)


def test_posterior_pass_reconstructs_at_the_mean_and_finds_the_unused_dimension(binary_images):
    x = binary_images
    result = posterior_pass(HalfUsedEncoder(), x, batch_size=10)
    assert result.mu.shape == (64, 2) and result.logvar.shape == (64, 2)
    assert active_units(activity(result.mu), 0.01) == 1
    logits = 10 * x.flatten(1).mean(-1, keepdim=True).expand(64, 784)
    probabilities = torch.sigmoid(logits)
    expected_bce = nn.functional.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(-1)
    torch.testing.assert_close(result.recon_bce, expected_bce.double(), rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(result.recon_nll, expected_bce.double(), rtol=1e-5, atol=1e-3)  # Bernoulli: the same
    expected_mse = ((probabilities - x.flatten(1)) ** 2).sum(-1).double()
    torch.testing.assert_close(result.recon_mse, expected_mse, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(posterior_means(HalfUsedEncoder(), x, batch_size=7), result.mu)


def test_posterior_pass_scores_each_likelihood_by_its_own_density(binary_images):
    x = binary_images
    result = posterior_pass(HalfUsedEncoder(Gaussian(0.5)), x, batch_size=16)
    means = 10 * x.flatten(1).mean(-1, keepdim=True).expand(64, 784)  # the Gaussian mean, clipped for images
    expected_nll = -Normal(means.double(), 0.5).log_prob(x.flatten(1).double()).sum(-1)
    torch.testing.assert_close(result.recon_nll, expected_nll, rtol=1e-5, atol=1e-2)
    clipped = means.clamp(0, 1)
    torch.testing.assert_close(result.recon_mse, ((clipped - x.flatten(1)) ** 2).sum(-1).double(), rtol=1e-5, atol=1e-3)


def test_a_deterministic_code_has_no_logvar():
    class CodeOnly(HalfUsedEncoder):
        def encode(self, x):
            return super().encode(x)[0], None

    result = posterior_pass(CodeOnly(), torch.rand(5, 1, 28, 28), batch_size=2)
    assert result.logvar is None and result.mu.shape == (5, 2)


def test_decoded_images_are_pixel_means_in_batches():
    z = torch.linspace(-6, 6, 25).reshape(25, 1).expand(25, 2).contiguous()
    images = decoded_images(HalfUsedEncoder(), z, batch_size=4)
    assert images.shape == (25, 1, 28, 28)
    torch.testing.assert_close(images[:, 0, 0, 0], torch.sigmoid(z[:, 0]))


def test_the_linear_probe_reads_labels_from_separable_means_and_not_from_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 3000)
    centres = rng.normal(size=(10, 4)) * 5  # one cluster per class: linearly separable
    means = centres[labels] + rng.normal(size=(3000, 4)) * 0.3
    separable = linear_probe(means[:2000], labels[:2000], means[2000:], labels[2000:])
    assert separable.method == "logistic_regression" and separable.accuracy > 0.97 and separable.train_images == 2000
    noise = rng.normal(size=(3000, 4))
    assert linear_probe(noise[:2000], labels[:2000], noise[2000:], labels[2000:]).accuracy < 0.2
