"""The spread over seeds and the paired t-interval, against scipy and against a simulation whose truth is known."""

from __future__ import annotations

import math
import statistics as stdlib

import numpy as np
import pytest
from scipy import stats

from aebench.reporting.statistics import (
    CONFIDENCE,
    PairedDifference,
    Summary,
    paired_difference,
    seeds_needed,
    summarize,
)


# --- summarize ----------------------------------------------------------------------------------


def test_summary_is_the_mean_and_the_sample_standard_deviation():
    summary = summarize([1.0, 2.0, 3.0, 4.0])
    assert summary.mean == 2.5 and summary.n == 4
    assert summary.sd == pytest.approx(math.sqrt(5 / 3), rel=1e-12)  # n - 1 in the denominator
    assert summary.sd == pytest.approx(stdlib.stdev([1, 2, 3, 4]), rel=1e-12)
    assert summary.sd != pytest.approx(float(np.std([1, 2, 3, 4])), rel=1e-3)  # not the population sd (1.118)


def test_summary_of_one_value_has_no_spread_and_of_none_is_refused():
    assert summarize([7.25]) == Summary(mean=7.25, sd=None, n=1)
    assert summarize([7.25]).format(2) == "7.25"
    with pytest.raises(ValueError, match="no values"):
        summarize([])


def test_summary_prints_mean_plus_minus_sd_with_the_digits_asked():
    assert summarize([1000.0, 1001.0]).format(2) == "1,000.50 ± 0.71"
    assert summarize([0.25, 0.75, 0.5]).format(3) == "0.500 ± 0.250"


# --- paired_difference --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [2, 3, 10])
def test_paired_interval_is_scipys_interval_of_the_mean_paired_difference(n, seed):
    rng = np.random.default_rng([n, seed])
    a = rng.normal(100, 20, n)
    b = a + rng.normal(1.5, 2.0, n)  # shares each seed's level with a, as two variants trained with one seed do
    found = paired_difference(a.tolist(), b.tolist())
    expected = stats.ttest_rel(b, a).confidence_interval(CONFIDENCE)
    assert found.n == n
    assert found.mean == pytest.approx(float(np.mean(b - a)), rel=1e-12)
    assert found.low == pytest.approx(expected.low, rel=1e-10)
    assert found.high == pytest.approx(expected.high, rel=1e-10)


def test_the_interval_is_of_the_differences_not_of_the_two_spreads():
    # Seeds move both models by hundreds; their differences are 1 +- 0.1: a clear ordering only pairing sees.
    a = [100.0, 200.0, 300.0]
    b = [101.0, 201.1, 300.9]
    difference = paired_difference(a, b)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert (difference.low, difference.high) == pytest.approx((1.0 - half, 1.0 + half), rel=1e-9)
    assert difference.excludes_zero
    unpaired = stats.ttest_ind(b, a).confidence_interval(CONFIDENCE)
    assert unpaired.low < 0 < unpaired.high  # the same numbers, unpaired, could not tell the two apart


def test_interval_covers_the_true_mean_difference_in_95_percent_of_simulated_studies():
    # 2000 simulated 3-seed studies: a seed effect shared by both variants (sd 20), a true difference of 1.5,
    # and independent noise (sd 2). Coverage is binomial: sd sqrt(0.95 * 0.05 / 2000) = 0.0049, so 0.95 +- 0.015
    # is three standard deviations; the draw is seeded, so the test is deterministic.
    rng = np.random.default_rng(2024)
    trials, seeds, true_difference = 2000, 3, 1.5
    level = rng.normal(100, 20, (trials, seeds))
    a = level + rng.normal(0, 2, (trials, seeds))
    b = level + true_difference + rng.normal(0, 2, (trials, seeds))
    intervals = [paired_difference(x.tolist(), y.tolist()) for x, y in zip(a, b)]
    covered = np.mean([d.low <= true_difference <= d.high for d in intervals])
    assert abs(covered - 0.95) < 0.015, covered
    # With no true difference, an ordering is claimed in ~5% of studies (the same coverage, seen from zero).
    null = [paired_difference(x.tolist(), (x + rng.normal(0, 2, seeds)).tolist()) for x in a]
    false_orderings = np.mean([d.excludes_zero for d in null])
    assert abs(false_orderings - 0.05) < 0.015, false_orderings


def test_one_seed_gives_the_difference_and_no_interval():
    difference = paired_difference([10.0], [12.5])
    assert difference == PairedDifference(mean=2.5, low=None, high=None, n=1)
    assert not difference.excludes_zero
    assert difference.interval(2) == "+2.50 (one seed: no interval)"


def test_unpaired_or_empty_seeds_are_refused():
    with pytest.raises(ValueError, match="got 2 and 3"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="got 0 and 0"):
        paired_difference([], [])


@pytest.mark.parametrize(("low", "high", "excludes"), [
    (0.5, 1.5, True), (-1.5, -0.5, True), (-0.1, 1.0, False), (-1.0, 0.0, False), (0.0, 1.0, False),
])
def test_an_interval_excludes_zero_only_when_zero_lies_outside_it(low, high, excludes):
    assert PairedDifference(mean=(low + high) / 2, low=low, high=high, n=3).excludes_zero is excludes


def test_interval_text_gives_signed_mean_and_bounds():
    difference = paired_difference([1.0, 2.0, 3.0], [2.0, 3.5, 3.5])  # differences 1, 1.5, 0.5
    half = stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3)
    assert difference.interval(2) == f"+1.00 [{1 - half:+.2f}, {1 + half:+.2f}]" == "+1.00 [-0.24, +2.24]"


def test_seeds_needed_is_the_first_n_whose_interval_at_the_observed_spread_clears_zero():
    differences = [1.0, 3.0, -0.5]  # mean 1.17, sd 1.76: the interval at n = 3 holds zero
    mean, sd = np.mean(differences), np.std(differences, ddof=1)
    needed = seeds_needed(differences, cap=50)
    half = [stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) for n in range(2, 51)]
    assert needed == 2 + next(i for i, h in enumerate(half) if h < mean)
    assert half[needed - 3] >= mean  # one seed fewer is not enough
    assert seeds_needed(differences, cap=needed - 1) is None  # beyond the cap: said, not guessed


def test_seeds_needed_has_no_answer_without_a_spread_or_a_difference():
    assert seeds_needed([2.0], cap=10) is None  # one seed: no sd
    assert seeds_needed([1.0, -1.0], cap=10) is None  # a mean of 0 never clears 0
    assert seeds_needed([1.0, 1.0], cap=10) == 2  # no spread: two seeds already clear it
