"""How a decoder's usage is split over the latent dimensions: shares, effective dimensions, used units.

From the per-dimension usage of `usage.decoder_usage`. NumPy only: the report
and the convergence test count used units without importing torch.
"""

from __future__ import annotations

import numpy as np


def usage_shares(usage: np.ndarray) -> np.ndarray:
    """usage (D,) -> float64 (D,) summing to 1; all zeros when no dimension is used (not NaN)."""
    values = np.asarray(usage, dtype=np.float64)
    if values.ndim != 1 or np.any(values < 0):
        raise ValueError(f"usage must be a non-negative vector (D,), got shape {values.shape}")
    total = values.sum()
    return values / total if total > 0 else np.zeros_like(values)


def effective_dimensions(shares: np.ndarray) -> float:
    """exp(entropy of the shares): 1 when one dimension carries everything, D when all carry equally.

    0 for all-zero shares (a decoder that ignores its whole latent uses no dimension).
    """
    values = np.asarray(shares, dtype=np.float64)
    total = values.sum()
    if total == 0:
        return 0.0
    if np.any(values < 0) or not np.isclose(total, 1.0):
        raise ValueError(f"shares must be non-negative and sum to 1 (or all be 0), got sum {total}")
    nonzero = values[values > 0]
    return float(np.exp(-(nonzero * np.log(nonzero)).sum()))


def used_units(shares: np.ndarray, *, threshold: float) -> int:
    """How many dimensions carry more than `threshold` of the decoder's usage."""
    return int(np.count_nonzero(np.asarray(shares) > threshold))
