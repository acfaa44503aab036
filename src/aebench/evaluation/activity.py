"""How many latent dimensions a model's posterior means move: activity and active units.

Activity (Burda et al. 2015): A_u = Var_x(E_q[z_u | x]), the variance over the
test set of dimension u's posterior mean (for the AE, of its code). A dimension
whose mean ignores the input carries no information about it, whatever its
sampled noise does; it is counted active when A_u exceeds a threshold (0.01).
A_u scales with the latent, so a fixed threshold compares scales across
objectives: AU(delta), the count as a function of the threshold on a log grid,
shows where each model's dimensions sit (`usage` has the scale-free measure).

NumPy only: the report stage draws AU(delta) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# AU(delta) grid: 1e-4 (below any activity worth the name) to 1 (a prior-scale
# dimension), 6 points a decade, so that Burda et al.'s 0.01 is a grid point.
_THRESHOLD_EXPONENTS = np.arange(-24, 1) / 6  # (25,): -4, -23/6, ..., -2, ..., 0
ACTIVITY_FLOOR = 1e-12


def activity(mu: np.ndarray) -> np.ndarray:
    """A_u per dimension: mu (N, D) -> float64 (D,), the unbiased variance over the N images."""
    means = np.asarray(mu, dtype=np.float64)
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(f"activity needs posterior means of shape (N >= 2, D), got {means.shape}")
    return means.var(axis=0, ddof=1)


def active_units(activities: np.ndarray, threshold: float) -> int:
    """How many dimensions have A_u > threshold."""
    return int(np.count_nonzero(np.asarray(activities) > threshold))


def default_thresholds() -> np.ndarray:
    """(25,) float64: the log grid 1e-4 .. 1, ascending; 1e-4, 0.01 and 1 are exact grid points."""
    return 10.0**_THRESHOLD_EXPONENTS


def active_units_curve(activity: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """AU(delta) for each delta: activity (D,), thresholds (T,) -> int64 (T,), dimensions with A_u > delta."""
    return np.array([active_units(activity, float(delta)) for delta in np.asarray(thresholds)], dtype=np.int64)


@dataclass(frozen=True)
class ActivitySplit:
    """Whether a model splits its dimensions into used and unused ones, from its activities A_u."""

    low_dims: int  # dimensions with A_u < relative * max A_u
    largest_log_gap: float  # the largest step, in decades, between consecutive sorted activities
    gap_index: int  # the gap lies right after this many of the most active dimensions


def activity_split(activity: np.ndarray, *, relative: float = 0.01) -> ActivitySplit:
    """activity (D,) -> ActivitySplit.

    A VAE that switches dimensions off has a gap of several decades between its used and
    unused ones; an EM-AE that keeps a little activity on every dimension has none. Activities
    are floored at ACTIVITY_FLOOR before taking log10, so a constant dimension gives a large
    finite gap instead of -inf. With one dimension there is no gap: 0.0, after that dimension.
    """
    values = np.asarray(activity, dtype=np.float64)
    if values.ndim != 1 or len(values) < 1 or np.any(values < 0):
        raise ValueError(f"activity must be a non-negative vector (D >= 1,), got shape {values.shape}")
    low_dims = int(np.count_nonzero(values < relative * values.max()))
    decades = np.log10(np.maximum(np.sort(values)[::-1], ACTIVITY_FLOOR))  # (D,), most active first
    steps = decades[:-1] - decades[1:]  # (D-1,) non-negative
    if len(steps) == 0:
        return ActivitySplit(low_dims=low_dims, largest_log_gap=0.0, gap_index=1)
    where = int(np.argmax(steps))
    return ActivitySplit(low_dims=low_dims, largest_log_gap=float(steps[where]), gap_index=where + 1)
