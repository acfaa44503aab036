"""Density and coverage against brute force, and on sets whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from aebench.evaluation.density_coverage import density_coverage
from aebench.evaluation.precision_recall import knn_squared_radii, precision_recall, real_ball_hits


def brute_force(real: np.ndarray, generated: np.ndarray, k: int) -> tuple[float, float]:
    """(density, coverage) from every pairwise squared difference, as Naeem et al. write them."""
    real_real = np.square(real[:, None, :] - real[None, :, :]).sum(-1)  # (N, N)
    np.fill_diagonal(real_real, np.inf)
    radii = np.sort(real_real, axis=1)[:, k - 1]  # (N,) squared
    inside = np.square(generated[:, None, :] - real[None, :, :]).sum(-1) <= radii[None, :]  # (M, N)
    return inside.sum() / (k * len(generated)), inside.any(axis=0).mean()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 5])
def test_equals_brute_force_for_every_block_size(seed, k):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(70, 6)) + 1e3  # the offset: centring inside changes no decision
    generated = 1.3 * rng.normal(size=(40, 6)) + 1e3 + 0.2
    real[10:13] = real[9]  # exact ties that round-off in the expanded distances would break
    generated[:5] = real[6:11]
    density, coverage = brute_force(real, generated, k)
    for batch in (1, 9, 1000):
        result = density_coverage(real, generated, k=k, batch=batch)
        assert result.density == pytest.approx(density, rel=1e-15) and result.coverage == coverage


def test_the_real_set_against_itself_has_density_one_plus_one_over_k_and_full_coverage():
    # Each real feature lies in its own ball and, with no ties, in exactly the k balls whose k-NN it is:
    # sum of counts = N + N k, so density = (1 + k) / k.
    real = np.random.default_rng(1).normal(size=(200, 8))
    result = density_coverage(real, real, k=5)
    assert result.density == pytest.approx(6 / 5, rel=1e-12) and result.coverage == 1.0


def test_a_generated_set_far_away_scores_zero():
    real = np.random.default_rng(2).normal(size=(100, 4))
    result = density_coverage(real, real + 100.0, k=5)
    assert (result.density, result.coverage) == (0.0, 0.0)


def test_junk_in_an_outliers_ball_has_full_precision_but_density_one_over_k():
    rng = np.random.default_rng(3)
    real = np.concatenate([rng.normal(size=(99, 2)), [[50.0, 0.0]]])  # the outlier's 5-NN ball reaches ~50
    junk = np.array([[85.0, 0.0]]) + rng.normal(size=(30, 2))  # ~35 from the outlier, ~85 from the rest
    assert precision_recall(real, junk, k=5).precision == 1.0  # the failure density fixes
    result = density_coverage(real, junk, k=5)
    assert result.density == pytest.approx(1 / 5) and result.coverage == pytest.approx(1 / 100)


def test_dropping_one_of_two_modes_halves_coverage():
    rng = np.random.default_rng(4)
    real = np.concatenate([rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 40.0])
    result = density_coverage(real, real[:60], k=5)  # one mode reproduced exactly, the other missed
    assert result.coverage == 0.5 and result.density == pytest.approx(6 / 5, rel=1e-12)


def test_real_balls_computed_once_give_the_same_answer_and_must_fit_the_real_set():
    rng = np.random.default_rng(5)
    real, generated = rng.normal(size=(50, 3)), rng.normal(size=(30, 3))
    radii = knn_squared_radii(real, k=5)
    assert density_coverage(real, generated, k=5, real_sq_radii=radii) == density_coverage(real, generated, k=5)
    hits = real_ball_hits(real, generated, k=5, real_sq_radii=radii)
    assert hits.per_generated.sum() == hits.per_real.sum()  # the same pairs counted from both sides
    assert float((hits.per_generated > 0).mean()) == precision_recall(real, generated, k=5).precision
    with pytest.raises(ValueError, match="one radius per real feature"):
        density_coverage(real, generated, k=5, real_sq_radii=radii[:-1])


def test_bad_inputs_are_refused():
    real = np.zeros((10, 3))
    with pytest.raises(ValueError, match="mismatched feature sizes"):
        density_coverage(real, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="real has 5 features"):
        density_coverage(real[:5], np.zeros((5, 3)), k=5)
    with pytest.raises(ValueError, match="NaN"):
        density_coverage(real, np.full((5, 3), np.nan))
