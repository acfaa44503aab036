"""Fréchet distance between Gaussians whose value is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from aebench.evaluation.frechet import feature_frechet_distance, feature_statistics, frechet_distance


def random_covariance(rng: np.random.Generator, size: int) -> np.ndarray:
    factor = rng.normal(size=(size, size))
    return factor @ factor.T + 0.1 * np.eye(size)


def test_diagonal_covariances_give_mean_gap_plus_std_gaps():
    # For commuting covariances d^2 = ||m1 - m2||^2 + sum_i (s1_i - s2_i)^2.
    m1, m2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 0.5, 0.5])
    expected = 1.0 + 0.0 + 6.25 + (4.0 + 2.25 + 0.0)
    assert frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_two_dimensional_non_commuting_covariances_match_the_closed_form(seed):
    # In 2-D, tr((S1 S2)^1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) (the eigenvalues of S1 S2 are >= 0).
    rng = np.random.default_rng(seed)
    cov1, cov2 = random_covariance(rng, 2), random_covariance(rng, 2)
    assert not np.allclose(cov1 @ cov2, cov2 @ cov1)
    m1, m2 = rng.normal(size=2), rng.normal(size=2)
    trace_sqrt = np.sqrt(np.trace(cov1 @ cov2) + 2 * np.sqrt(np.linalg.det(cov1) * np.linalg.det(cov2)))
    expected = np.sum((m1 - m2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt
    assert frechet_distance(m1, cov1, m2, cov2) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_is_symmetric_zero_on_identical_inputs_and_never_negative():
    rng = np.random.default_rng(0)
    cov1, cov2 = random_covariance(rng, 20), random_covariance(rng, 20)
    m1, m2 = rng.normal(size=20), rng.normal(size=20)
    assert frechet_distance(m1, cov1, m2, cov2) == pytest.approx(frechet_distance(m2, cov2, m1, cov1), rel=1e-9)
    assert frechet_distance(m1, cov1, m1, cov1) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(m1, cov1, m1, cov1) >= 0.0


def test_singular_covariances_are_handled():
    # Rank-deficient feature covariances (dead ReLU units) must not produce NaN or complex values.
    cov1 = np.diag([4.0, 0.0, 1.0])
    cov2 = np.diag([1.0, 0.0, 0.0])
    assert frechet_distance(np.zeros(3), cov1, np.zeros(3), cov2) == pytest.approx(1.0 + 0.0 + 1.0, abs=1e-9)


def test_feature_sets_drawn_from_two_gaussians_approach_their_distance():
    rng = np.random.default_rng(1)
    cov1, cov2 = random_covariance(rng, 4), random_covariance(rng, 4)
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    features1 = rng.multivariate_normal(m1, cov1, size=200_000)
    features2 = rng.multivariate_normal(m2, cov2, size=200_000)
    expected = frechet_distance(m1, cov1, m2, cov2)
    assert feature_frechet_distance(features1, features2) == pytest.approx(expected, rel=0.02)
    mean, cov = feature_statistics(features1)
    np.testing.assert_allclose(mean, m1, atol=0.05)
    np.testing.assert_allclose(cov, cov1, atol=0.1)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
