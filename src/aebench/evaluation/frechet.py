"""Fréchet distance between two Gaussians, as FID uses it on classifier features.

    d^2 = ||m1 - m2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

tr((S1 S2)^(1/2)) is computed from symmetric matrices only: with A = S1^(1/2),
S1 S2 is similar to A S2 A, which is symmetric positive semi-definite, so the
trace is the sum of the square roots of its eigenvalues. This avoids the
complex round-off that a general matrix square root (scipy.linalg.sqrtm of the
non-symmetric S1 S2) produces; eigenvalues that round-off makes slightly
negative are clipped to zero.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need features of shape (N >= 2, F), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mean1, cov1) and N(mean2, cov2)."""
    mean1, mean2 = np.atleast_1d(np.asarray(mean1, np.float64)), np.atleast_1d(np.asarray(mean2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mean1), len(mean1)):
        raise ValueError(f"mismatched shapes: means {mean1.shape}, {mean2.shape}; covariances {cov1.shape}, {cov2.shape}")
    root1 = _psd_sqrt((cov1 + cov1.T) / 2)
    middle = root1 @ ((cov2 + cov2.T) / 2) @ root1  # symmetric PSD, similar to cov1 @ cov2
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    distance = np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt
    return float(max(distance, 0.0))  # round-off can leave -1e-12 for identical inputs


def feature_frechet_distance(features1: np.ndarray, features2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (N1, F) and (N2, F)."""
    return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))
