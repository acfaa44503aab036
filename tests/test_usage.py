"""Scale-free latent usage: AU(delta) curves, decoder usage on decoders whose answer is known, shares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aebench.evaluation.activity import active_units_curve, activity, default_thresholds
from aebench.evaluation.usage import decoder_usage
from aebench.evaluation.usage_split import effective_dimensions, usage_shares, used_units


def linear_decoder(weights: torch.Tensor, bias: torch.Tensor):
    """f(z) = W z + b: codes (M, D) -> images (M, P), with W (P, D)."""
    return lambda z: z @ weights.T + bias


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def orthogonal_columns(pixels: int, norms: list[float], *, seed: int) -> torch.Tensor:
    """(pixels, D) with orthogonal columns of the given norms (a zero norm gives a zero column)."""
    basis, _ = torch.linalg.qr(torch.randn(pixels, len(norms), generator=seeded(seed), dtype=torch.float64))
    return basis * torch.tensor(norms, dtype=torch.float64)


def gaussian_codes(count: int, stds: list[float], *, seed: int) -> torch.Tensor:
    """(count, D) float64 independent normal codes with the given standard deviations."""
    unit = torch.randn(count, len(stds), generator=seeded(seed), dtype=torch.float64)  # (count, D)
    return unit * torch.tensor(stds, dtype=torch.float64)


def test_default_thresholds_are_a_log_grid_from_1e_4_to_1_through_0_01():
    grid = default_thresholds()
    assert len(grid) == 25 and grid[0] == 1e-4 and grid[-1] == 1.0 and 0.01 in grid.tolist()
    np.testing.assert_allclose(np.diff(np.log10(grid)), 1 / 6, rtol=1e-12)


def test_active_units_curve_counts_dimensions_above_each_threshold():
    activities = np.array([0.0, 2e-4, 0.005, 0.04, 4.0])
    assert active_units_curve(activities, np.array([1e-4, 1e-3, 0.01, 0.1, 10.0])).tolist() == [4, 3, 2, 1, 0]


def test_a_dimension_the_decoder_ignores_has_usage_exactly_zero():
    weights = orthogonal_columns(12, [1.0, 0.0, 2.0, 0.0], seed=0)
    codes = torch.randn(300, 4, generator=seeded(1), dtype=torch.float64) * 3
    decode = linear_decoder(weights, torch.full((12,), 0.5, dtype=torch.float64))
    usage = decoder_usage(decode, codes, generator=seeded(2), batch=64)
    assert usage.shape == (4,) and usage.dtype == np.float64
    assert usage[1] == 0.0 and usage[3] == 0.0 and usage[0] > 1 and usage[2] > 1


def test_the_pairing_never_pairs_an_image_with_itself():
    # f(z) = z on three images 0, 1, 2: any pairing without a self-pair is a 3-cycle, whose
    # squared differences are 1, 1 and 4 (mean 2); a self-pair would give a smaller mean.
    codes = torch.tensor([[0.0], [1.0], [2.0]], dtype=torch.float64)
    for seed in range(10):
        assert decoder_usage(lambda z: z, codes, generator=seeded(seed)).tolist() == [2.0]


def test_linear_decoder_usage_is_twice_the_column_norm_times_the_variance():
    norms, stds = [1.0, 0.5, 2.0], [1.0, 3.0, 0.2]
    weights = orthogonal_columns(10, norms, seed=0)
    codes = gaussian_codes(20_000, stds, seed=1)
    decode = linear_decoder(weights, torch.zeros(10, dtype=torch.float64))
    usage = decoder_usage(decode, codes, generator=seeded(2), batch=5000)
    expected = 2 * np.square(norms) * np.square(stds)  # [2, 4.5, 0.32]
    # Over 30 seeds the relative error had sd 0.013 at N = 20 000 (largest 0.039): 5% is ~4 sd.
    np.testing.assert_allclose(usage, expected, rtol=0.05)


def test_rescaling_a_latent_and_its_decoder_column_leaves_usage_unchanged_but_not_activity():
    weights = orthogonal_columns(16, [1.0, 1.5, 0.7], seed=0)
    codes = torch.randn(500, 3, generator=seeded(1), dtype=torch.float64)
    bias = torch.full((16,), 0.3, dtype=torch.float64)
    scale = torch.tensor([1.0, 100.0, 1.0], dtype=torch.float64)
    before = decoder_usage(linear_decoder(weights, bias), codes, generator=seeded(3))
    after = decoder_usage(linear_decoder(weights / scale, bias), codes * scale, generator=seeded(3))
    np.testing.assert_allclose(after, before, rtol=1e-10)
    np.testing.assert_allclose(activity(codes * scale) / activity(codes), [1.0, 1e4, 1.0], rtol=1e-10)


def test_a_saturating_decoder_still_ranks_a_used_dimension_above_an_unused_one():
    # Dimension 0 flips the image through a sigmoid of 50 z_0 (saturated for almost every code);
    # dimension 1 varies widely (A_u = 100) but the decoder ignores it;
    # dimension 2 varies widely but always sits where the sigmoid is flat, so it is barely used.
    pattern = torch.rand(20, generator=seeded(0), dtype=torch.float64)  # (P,)
    codes = gaussian_codes(400, [1.0, 10.0, 3.0], seed=1)
    codes[:, 2] = codes[:, 2].abs() + 5.0

    def decode(z):  # (M, 3) -> (M, 20) in [0, 1]
        return 0.5 * torch.sigmoid(50 * z[:, :1]) * pattern + 0.5 * torch.sigmoid(50 * z[:, 2:3]) * (1 - pattern)

    usage = decoder_usage(decode, codes, generator=seeded(2))
    activities = activity(codes)
    assert activities[1] > activities[2] > activities[0]
    # a pair changes the image by 0.5 * pattern when z_0 changes sign, which about half the pairs do
    # (sd of that fraction 0.025 at 400 images: 15% is 3 sd)
    assert usage[0] == pytest.approx(0.5 * 0.25 * pattern.square().sum().item(), rel=0.15)
    assert usage[1] == 0.0 and usage[2] < 1e-50


def test_decoder_usage_is_determined_by_the_generator():
    weights = orthogonal_columns(8, [1.0, 2.0], seed=0)
    codes = torch.randn(50, 2, generator=seeded(1), dtype=torch.float64)
    decode = linear_decoder(weights, torch.zeros(8, dtype=torch.float64))
    first = decoder_usage(decode, codes, generator=seeded(7), batch=16)
    again = decoder_usage(decode, codes, generator=seeded(7), batch=50)
    other = decoder_usage(decode, codes, generator=seeded(8), batch=16)
    np.testing.assert_allclose(again, first, rtol=1e-13)  # batching changes nothing
    assert not np.allclose(other, first, rtol=1e-6)


def test_decoder_usage_flattens_image_shaped_outputs():
    codes = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    decode = lambda z: z[:, :1, None, None].expand(-1, 1, 2, 3)  # (M, 1, 2, 3): six pixels equal to z_0
    assert decoder_usage(decode, codes, generator=seeded(0)).tolist() == [6.0, 0.0]


def test_decoder_usage_needs_two_codes():
    with pytest.raises(ValueError, match="N >= 2"):
        decoder_usage(lambda z: z, torch.zeros(1, 3), generator=torch.Generator())


def test_shares_effective_dimensions_and_used_units_on_hand_built_vectors():
    np.testing.assert_array_equal(usage_shares(np.array([3.0, 1.0, 0.0, 0.0])), [0.75, 0.25, 0.0, 0.0])
    assert usage_shares(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    assert effective_dimensions(np.array([1.0, 0.0, 0.0])) == 1.0
    assert effective_dimensions(np.full(8, 1 / 8)) == pytest.approx(8.0, rel=1e-12)
    assert effective_dimensions(np.array([0.5, 0.5, 0.0, 0.0])) == pytest.approx(2.0, rel=1e-12)
    shares = np.array([0.75, 0.25, 0.0, 0.0])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert effective_dimensions(shares) == pytest.approx(math.exp(entropy), rel=1e-12)
    assert effective_dimensions(np.zeros(4)) == 0.0
    assert used_units(np.array([0.6, 0.3, 0.05, 0.05, 0.0]), threshold=0.05) == 2
    assert used_units(np.array([0.6, 0.3, 0.05, 0.05, 0.0]), threshold=0.01) == 4
    with pytest.raises(ValueError, match="sum to 1"):
        effective_dimensions(np.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="non-negative"):
        usage_shares(np.array([1.0, -0.1]))


def test_usage_ranks_models_by_used_dimensions_where_activity_ranks_them_by_scale():
    # Three models with 8 latent dimensions, every one varying with the input, of which the decoder
    # reads 1, 3 and 5. The 1-dimension model has AE-scale codes (A_u ~ 9); the 5-dimension model
    # has EM-AE-scale codes (A_u ~ 0.06) and a decoder scaled up to match.
    results = []
    for used, code_scale in [(1, 3.0), (3, 1.0), (5, 0.25)]:
        codes = code_scale * torch.randn(600, 8, generator=seeded(used), dtype=torch.float64)
        weights = orthogonal_columns(30, [1.0 / code_scale] * used + [0.0] * (8 - used), seed=10 + used)
        usage = decoder_usage(linear_decoder(weights, torch.zeros(30, dtype=torch.float64)), codes, generator=seeded(0))
        shares = usage_shares(usage)
        results.append((effective_dimensions(shares), used_units(shares, threshold=0.05), activity(codes)))
    (eff1, units1, act1), (eff3, units3, act3), (eff5, units5, act5) = results
    assert (units1, units3, units5) == (1, 3, 5)
    assert eff1 == pytest.approx(1.0) and 2.7 < eff3 <= 3.0 and 4.5 < eff5 <= 5.0 and eff1 < eff3 < eff5
    # A fixed activity threshold sees the scale instead: every dimension of the first model is
    # "active", none of the last.
    assert [int((a > 0.1).sum()) for a in (act1, act3, act5)] == [8, 8, 0]
