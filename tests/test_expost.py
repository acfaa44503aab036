"""Ex-post densities: what they reproduce of known code distributions, and that sampling is repeatable."""

from __future__ import annotations

import numpy as np
import pytest

from aebench.evaluation.expost import EXPOST_DENSITIES, REG_COVAR, fit_expost

MEAN = np.array([1.0, -2.0, 0.5])
COVARIANCE = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])


def two_clusters(rng: np.random.Generator) -> np.ndarray:
    # 30% of the codes around (-5, 0), 70% around (5, 0), unit spread: nothing near x = 0.
    return np.concatenate([rng.normal(size=(3000, 2)) + [-5.0, 0.0], rng.normal(size=(7000, 2)) + [5.0, 0.0]])


def test_registry_holds_the_two_kinds():
    assert sorted(EXPOST_DENSITIES) == ["gaussian", "gmm"]


def test_gaussian_is_the_codes_mean_and_maximum_likelihood_covariance():
    codes = np.random.default_rng(0).multivariate_normal(MEAN, COVARIANCE, size=500)
    density = fit_expost(codes, kind="gaussian", seed=0)
    np.testing.assert_allclose(density.weights, [1.0])
    np.testing.assert_allclose(density.means[0], codes.mean(axis=0), rtol=1e-12)
    expected = np.cov(codes, rowvar=False, bias=True) + REG_COVAR * np.eye(3)
    np.testing.assert_allclose(density.covariances[0], expected, rtol=1e-10)


def test_gaussian_equals_a_one_component_mixture():
    codes = np.random.default_rng(1).multivariate_normal(MEAN, COVARIANCE, size=500)
    gaussian = fit_expost(codes, kind="gaussian", seed=0)
    mixture = fit_expost(codes, kind="gmm", components=1, seed=0)
    np.testing.assert_allclose(mixture.means, gaussian.means, rtol=1e-10)
    np.testing.assert_allclose(mixture.covariances, gaussian.covariances, rtol=1e-8)


@pytest.mark.parametrize("kind", ["gaussian", "gmm"])
def test_samples_reproduce_a_known_gaussian(kind):
    codes = np.random.default_rng(2).multivariate_normal(MEAN, COVARIANCE, size=20_000)
    samples = fit_expost(codes, kind=kind, components=3, seed=0).sample(20_000, seed=3)
    assert samples.shape == (20_000, 3) and samples.dtype == np.float32
    # The codes and the samples, 20 000 each, both add error: a mean's standard error is at most
    # sqrt(2 / 20 000) = 0.010 each, a covariance entry's sqrt(2 * 2^2 / 20 000) = 0.020 each. The
    # tolerances are about 3 standard errors of the difference (0.014 and 0.028).
    np.testing.assert_allclose(samples.mean(axis=0), MEAN, atol=0.04)
    np.testing.assert_allclose(np.cov(samples, rowvar=False), COVARIANCE, atol=0.1)


def test_the_mixture_keeps_two_clusters_apart_and_in_proportion():
    rng = np.random.default_rng(4)
    samples = fit_expost(two_clusters(rng), kind="gmm", components=2, seed=0).sample(20_000, seed=5)
    right = np.mean(samples[:, 0] > 0)
    assert right == pytest.approx(0.7, abs=0.015)  # 4.6 binomial standard errors (0.0032)
    # Within 2 of x = 0 is 3 standard deviations from either centre: 0.13% of the draws.
    assert np.mean(np.abs(samples[:, 0]) < 2.0) < 0.005


def test_a_single_gaussian_fills_the_gap_between_two_clusters():
    rng = np.random.default_rng(4)
    samples = fit_expost(two_clusters(rng), kind="gaussian", seed=0).sample(20_000, seed=5)
    # Its fit is N(x: mean 2, std 4.7): about 30% of its draws land within 2 of x = 0, where no code is.
    assert np.mean(np.abs(samples[:, 0]) < 2.0) > 0.2


@pytest.mark.parametrize("kind", ["gaussian", "gmm"])
def test_sampling_is_deterministic_given_the_seed(kind):
    codes = two_clusters(np.random.default_rng(6))
    density = fit_expost(codes, kind=kind, components=4, seed=7)
    refitted = fit_expost(codes, kind=kind, components=4, seed=7)
    assert density.sample(1000, seed=8).tobytes() == refitted.sample(1000, seed=8).tobytes()
    assert density.sample(1000, seed=8).tobytes() != density.sample(1000, seed=9).tobytes()


@pytest.mark.parametrize("kind", ["gaussian", "gmm"])
def test_a_constant_dimension_is_sampled_as_that_constant(kind):
    # A collapsed VAE unit: its posterior mean is the same for every input.
    rng = np.random.default_rng(10)
    codes = np.column_stack([rng.normal(size=2000), np.full(2000, 0.7), rng.normal(size=2000)])
    samples = fit_expost(codes, kind=kind, seed=0).sample(5000, seed=11)
    assert np.isfinite(samples).all()
    # REG_COVAR = 1e-6 is a standard deviation of 1e-3: 5000 draws stay within 5 of those.
    np.testing.assert_allclose(samples[:, 1], 0.7, atol=5e-3)
    assert samples[:, 0].std() == pytest.approx(1.0, abs=0.05)


def test_unknown_kind_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown ex-post density 'flow'"):
        fit_expost(np.zeros((10, 2)), kind="flow", seed=0)


def test_bad_codes_and_components_are_refused():
    with pytest.raises(ValueError, match=r"need codes of shape \(N >= 2, D >= 1\)"):
        fit_expost(np.zeros(10), kind="gaussian", seed=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_expost(np.full((10, 2), np.nan), kind="gaussian", seed=0)
    with pytest.raises(ValueError, match="components must be an integer >= 1"):
        fit_expost(np.zeros((10, 2)), kind="gmm", components=0, seed=0)
    with pytest.raises(ValueError, match="a 20-component mixture needs at least 20 codes"):
        fit_expost(np.random.default_rng(0).normal(size=(10, 2)), kind="gmm", components=20, seed=0)
