"""Latent and decoded-image geometry metrics on synthetic inputs whose verdict is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aebench.evaluation.activity import ACTIVITY_FLOOR, activity, activity_split
from aebench.evaluation.geometry import (
    aggregate_posterior_moments,
    grid_roughness,
    interpolation_classes,
    knn_accuracy,
    normalised_class_entropy,
    top_class_share,
)


def clustered_codes(count: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(count, 6) codes in 10 well-separated clusters, and their labels (count,)."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(10, 6)) * 5
    labels = rng.integers(0, 10, count)
    return centres[labels] + rng.normal(size=(count, 6)) * 0.3, labels


def test_knn_accuracy_finds_clusters_and_not_shuffled_labels():
    train_codes, train_labels = clustered_codes(1000, seed=1)
    test_codes, test_labels = clustered_codes(500, seed=2)
    assert knn_accuracy(train_codes, train_labels, test_codes, test_labels) > 0.98
    shuffled = np.random.default_rng(3).permutation(train_labels)
    chance = knn_accuracy(train_codes, shuffled, test_codes, test_labels)
    assert 0.05 < chance < 0.16  # chance is 0.1; over shuffles it spread 0.06-0.12 (a cluster's test codes vote alike)


def test_knn_accuracy_ignores_the_scale_of_each_dimension():
    train_codes, train_labels = clustered_codes(600, seed=1)
    test_codes, test_labels = clustered_codes(300, seed=2)
    scale = np.array([1e-3, 1.0, 1e3, 1.0, 0.05, 20.0])  # a shrunken dimension, a huge one
    plain = knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=3)
    assert knn_accuracy(train_codes * scale, train_labels, test_codes * scale, test_labels, k=3) == plain


def blob_grid(side: int) -> torch.Tensor:
    """(side, side, 28, 28): a Gaussian blob whose centre moves evenly across rows and columns."""
    centres = torch.linspace(6, 21, side, dtype=torch.float64)  # (S,)
    pixels = torch.arange(28, dtype=torch.float64)  # (28,)
    profile = torch.exp(-((pixels - centres[:, None]) ** 2) / (2 * 3.0**2))  # (S, 28)
    return profile[:, None, :, None] * profile[None, :, None, :]  # (S, S, 28, 28): row blob x column blob


def test_a_smooth_grid_is_far_less_rough_than_the_same_images_in_random_order():
    grid = blob_grid(10)
    flat = grid.reshape(100, 28, 28)
    smooth = grid_roughness(grid, flat, generator=torch.Generator().manual_seed(0))
    assert grid_roughness(flat, flat, generator=torch.Generator().manual_seed(0)) == smooth  # the two layouts agree
    shuffled = flat[torch.randperm(100, generator=torch.Generator().manual_seed(1))]
    rough = grid_roughness(shuffled, flat, generator=torch.Generator().manual_seed(0))
    # neighbours in a shuffled grid are random pairs of the reference set itself
    assert smooth < 0.4 and 0.9 < rough < 1.1


def test_grid_roughness_is_zero_for_a_constant_grid_and_deterministic():
    reference = torch.rand(20, 5, 5, generator=torch.Generator().manual_seed(0))
    assert grid_roughness(torch.ones(3, 3, 5, 5), reference, generator=torch.Generator().manual_seed(0)) == 0.0
    grid = torch.rand(16, 5, 5, generator=torch.Generator().manual_seed(1))
    first = grid_roughness(grid, reference, generator=torch.Generator().manual_seed(2), pairs=50)
    assert grid_roughness(grid, reference, generator=torch.Generator().manual_seed(2), pairs=50) == first


def test_grid_roughness_refuses_a_grid_that_is_not_square():
    with pytest.raises(ValueError, match="S\\*S images"):
        grid_roughness(torch.zeros(10, 5, 5), torch.zeros(4, 5, 5), generator=torch.Generator())
    with pytest.raises(ValueError, match="grid's pixels"):
        grid_roughness(torch.zeros(9, 5, 5), torch.zeros(4, 6, 6), generator=torch.Generator())


@pytest.mark.parametrize(
    "frames, count",
    [
        ([3, 3, 3, 8, 8, 8], 0),  # straight from a 3 to an 8
        ([3, 3, 5, 5, 8, 8], 1),  # through a 5
        ([3, 5, 9, 5, 2, 8], 3),  # through a 5, a 9 and a 2 (the 5 twice counts once)
        ([3, 8, 3, 8], 0),
    ],
)
def test_interpolation_classes_counts_distinct_classes_between_the_endpoints(frames, count):
    assert interpolation_classes(np.array(frames), start_label=3, end_label=8) == count


def test_interpolation_within_one_class_counts_every_other_class():
    assert interpolation_classes(np.array([4, 4, 1, 7, 4]), start_label=4, end_label=4) == 2


def test_aggregate_moments_are_near_zero_for_the_prior_and_far_for_a_scaled_shifted_gaussian():
    samples = np.random.default_rng(0).normal(size=(4000, 8))
    prior = aggregate_posterior_moments(samples)
    # expected sizes sqrt(D / N) = 0.045 and sqrt((D + 1) / N) = 0.047
    assert prior.mean_norm < 0.1 and prior.covariance_error < 0.1
    assert prior.eigenvalues.shape == (8,) and np.all(np.diff(prior.eigenvalues) <= 0)
    np.testing.assert_allclose(prior.eigenvalues, 1.0, atol=0.15)

    shifted = aggregate_posterior_moments(3 * samples + 2)
    assert shifted.mean_norm == pytest.approx(2 * math.sqrt(8), rel=0.02)
    assert shifted.covariance_error == pytest.approx(8.0, rel=0.1)  # Cov = 9 I: ||8 I||_F / ||I||_F
    np.testing.assert_allclose(shifted.eigenvalues, 9 * prior.eigenvalues, rtol=1e-10)


def test_the_covariance_diagonal_is_the_activity():
    codes = np.random.default_rng(0).normal(size=(50, 3)) * [0.1, 1.0, 5.0]
    moments = aggregate_posterior_moments(codes)
    np.testing.assert_allclose(moments.eigenvalues.sum(), activity(codes).sum(), rtol=1e-12)  # trace


def test_activity_split_finds_a_vae_like_gap_and_none_in_a_uniform_shrink():
    vae = activity_split(np.array([1.0, 1e-3, 1.0, 1e-3, 1.0]))
    assert (vae.low_dims, vae.gap_index) == (2, 3)
    assert vae.largest_log_gap == pytest.approx(3.0, abs=1e-12)
    emae = activity_split(np.full(30, 0.05))
    assert (emae.low_dims, emae.largest_log_gap, emae.gap_index) == (0, 0.0, 1)


def test_activity_split_floors_zero_activities_instead_of_returning_infinity():
    split = activity_split(np.array([2.0, 0.0, 0.0]))
    assert (split.low_dims, split.gap_index) == (2, 1)
    assert split.largest_log_gap == pytest.approx(math.log10(2.0 / ACTIVITY_FLOOR), abs=1e-9)


def test_activity_split_reads_the_relative_threshold():
    activities = np.array([1.0, 0.05, 0.005])
    assert activity_split(activities).low_dims == 1
    assert activity_split(activities, relative=0.1).low_dims == 2


def test_class_histogram_of_one_class_and_of_ten_equal_classes():
    one = [0, 0, 0, 120, 0, 0, 0, 0, 0, 0]
    assert top_class_share(one) == 1.0 and normalised_class_entropy(one) == 0.0
    equal = [12] * 10
    assert top_class_share(equal) == pytest.approx(0.1)
    assert normalised_class_entropy(equal) == pytest.approx(1.0, rel=1e-12)
    half = [50, 50, 0, 0]  # two classes of four: log 2 / log 4
    assert top_class_share(half) == 0.5 and normalised_class_entropy(half) == pytest.approx(0.5, rel=1e-12)
    with pytest.raises(ValueError, match="not all zero"):
        normalised_class_entropy([0, 0, 0])
