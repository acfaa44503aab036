"""Spread over seeds, and whether two models differ: the paired t-interval.

Every model of the study is trained once per seed, and two variants with the
same seed share their data order, binary pixels and evaluation draws, so a
comparison of A and B is made on the per-seed differences d_s = B_s - A_s.
The 95% interval of their mean is the Student t-interval

    mean(d) +- t_{0.975, n-1} * sd(d) / sqrt(n)

(n seeds, sd with n - 1 in the denominator). A finding states that B is above
or below A only when this interval excludes zero; otherwise the two are not
distinguishable with n seeds. With a single seed there is no interval, and no
ordering is claimed.

The seed rule for a difference that is not decisive: taking the observed mean
and sd as the truth, `seeds_needed` is the smallest n whose interval half-width
t_{0.975, n-1} * sd / sqrt(n) falls below |mean|, i.e. the seeds to train
before the interval can clear zero; above a stated cap it says so instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    mean: float
    sd: float | None  # None with a single value
    n: int

    def format(self, digits: int) -> str:
        if self.sd is None:
            return f"{self.mean:,.{digits}f}"
        return f"{self.mean:,.{digits}f} ± {self.sd:,.{digits}f}"


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample standard deviation (n - 1) of the per-seed values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("no values to summarize")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return Summary(mean=mean, sd=sd, n=n)


@dataclass(frozen=True)
class PairedDifference:
    mean: float  # mean over seeds of (b - a)
    low: float | None  # the 95% t-interval of that mean; None with a single seed
    high: float | None
    n: int

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    def interval(self, digits: int) -> str:
        if self.low is None:
            return f"{self.mean:+,.{digits}f} (one seed: no interval)"
        return f"{self.mean:+,.{digits}f} [{self.low:+,.{digits}f}, {self.high:+,.{digits}f}]"


def _half_width(sd: float, n: int) -> float:
    """Half the width of the 95% Student t-interval of a mean of n values with sample sd `sd`."""
    from scipy import stats  # here, not at the top: scipy.stats takes about 1 s to load, and stages check first

    return stats.t.ppf(0.5 + CONFIDENCE / 2, df=n - 1) * sd / math.sqrt(n)


def paired_difference(a: Sequence[float], b: Sequence[float]) -> PairedDifference:
    """The mean of b - a over paired seeds, with its 95% Student t-interval."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired values need the same, non-zero number of seeds, got {len(a)} and {len(b)}")
    differences = [float(y) - float(x) for x, y in zip(a, b)]
    summary = summarize(differences)
    if summary.n < 2:
        return PairedDifference(mean=summary.mean, low=None, high=None, n=summary.n)
    half = _half_width(summary.sd, summary.n)
    return PairedDifference(mean=summary.mean, low=summary.mean - half, high=summary.mean + half, n=summary.n)


def seeds_needed(differences: Sequence[float], *, cap: int) -> int | None:
    """The seeds at which the observed spread of `differences` would give an interval clearing zero.

    The smallest n in 2..cap with t_{0.975, n-1} * sd / sqrt(n) < |mean|, from the observed mean and sd
    (n - 1); None when no n up to `cap` is enough (or the mean is 0, or a single difference gives no sd).
    """
    summary = summarize(differences)
    if summary.sd is None or summary.mean == 0:
        return None
    for n in range(2, cap + 1):
        if _half_width(summary.sd, n) < abs(summary.mean):
            return n
    return None
