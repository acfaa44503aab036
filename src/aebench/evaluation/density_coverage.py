"""Density and coverage (Naeem et al. 2020), on feature vectors of samples.

The real k-NN balls of improved precision and recall (`precision_recall`: ball i
around real feature r_i with radius rho_i, the distance to its k-th nearest other
real feature), read differently, so that outliers lose their pull:

    density  = 1 / (k M) * sum_j #{i : g_j in ball i}     (fidelity: how crowded with real balls the samples sit)
    coverage = share of real features whose ball holds at least one generated feature   (diversity)

Precision counts a sample once whatever ball holds it, so one real outlier with a huge
ball lets junk count as realistic; density counts balls, and junk sitting in one
outlier's ball scores 1/k of a sample in the thick of the data. Recall builds balls
around the samples, so a spread-out junk set covers everything; coverage keeps the
real balls. On samples drawn from the real distribution both have expectation about
1 (density can exceed 1 where samples crowd the real modes; coverage is at most 1).
The paper recommends k = 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aebench.evaluation.precision_recall import DEFAULT_BATCH, real_ball_hits

DEFAULT_K = 5  # Naeem et al.'s choice: an expected coverage of about 1 - 1/2^k on real data


@dataclass(frozen=True)
class DensityCoverage:
    density: float  # mean real balls per sample, over k: >= 0, about 1 for real data
    coverage: float  # share of real balls holding a sample, in [0, 1]


def density_coverage(
    real: np.ndarray, generated: np.ndarray, *, k: int = DEFAULT_K, batch: int = DEFAULT_BATCH,
    real_sq_radii: np.ndarray | None = None,
) -> DensityCoverage:
    """Density and coverage of `generated` (M, F) against `real` (N, F) features.

    real_sq_radii: `knn_squared_radii(real, k=k)` when already known (computed here otherwise).
    """
    hits = real_ball_hits(real, generated, k=k, batch=batch, real_sq_radii=real_sq_radii)
    return DensityCoverage(
        density=float(hits.per_generated.sum()) / (k * len(hits.per_generated)),
        coverage=float((hits.per_real > 0).mean()),
    )
