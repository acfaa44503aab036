"""Improved precision and recall (Kynkäänniemi et al. 2019), on feature vectors of samples.

Each real feature r_i gets a ball whose radius rho_i is the distance to its k-th
nearest *other* real feature; the union of the balls estimates where real data
lives. The generated features get balls the same way, from their own set. Then

    precision = share of generated features inside at least one real ball   (are the samples realistic?)
    recall    = share of real features inside at least one generated ball   (is all of the data produced?)

x is inside ball i when ||x - r_i|| <= rho_i. The boundary counts, so a generated
feature equal to a real one is inside that one's ball even when rho_i = 0 (r_i
has k duplicates). "Other" is by index: a duplicate is a neighbour at distance 0.

Speed and exactness. Distances come a block of rows at a time as
||x||^2 + ||y||^2 - 2 x.y, one matrix product per block: what makes 5 000 x 5 000
features fast. That expansion has round-off, bounded by `_slack`; every decision
it could get wrong is taken again on the direct sum of squared differences: a
distance within the bound of a radius, and the k-th smallest distance (measured
among the k expanded-nearest and any other feature that could be nearer). The
results are therefore exactly those of brute force on float64 squared
differences, whatever `batch` is, and ties are decided as brute force decides
them. Features are centred first, so that the round-off scales with their spread
rather than with their offset from the origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_K = 3  # the paper's choice: larger k inflates the balls and lets outliers cover empty space
DEFAULT_BATCH = 1024  # rows per block; a block holds (batch, N) float64 distances: 80 MiB at N = 10 000
EXACT_CHUNK = 1 << 15  # pairs per chunk of direct distances: (32 768, F) differences, 32 MiB at F = 128


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float  # share of generated features inside the real balls, in [0, 1]
    recall: float  # share of real features inside the generated balls, in [0, 1]


def _checked_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[1] == 0:
        raise ValueError(f"{name}: need features of shape (N, F >= 1), got {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError(f"{name}: features contain NaN or infinity")
    return features


def _check_k(k: int, count: int, name: str) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if count <= k:
        raise ValueError(f"{name} has {count} features, but a k-th nearest other feature needs more than k={k}")


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be an integer >= 1, got {batch!r}")


def _squared_norms(features: np.ndarray) -> np.ndarray:
    return np.einsum("nf,nf->n", features, features)  # (N,)


def _expanded_sq_distances(x: np.ndarray, y: np.ndarray, x_sq: np.ndarray, y_sq: np.ndarray) -> np.ndarray:
    """Squared distances (B, M) between centred x (B, F) and y (M, F), up to `_slack`."""
    distances = x @ y.T
    distances *= -2.0
    distances += x_sq[:, None]
    distances += y_sq[None, :]
    return np.maximum(distances, 0.0, out=distances)  # clipping only moves towards the true value


def _slack(x_sq: np.ndarray, y_sq: np.ndarray, dim: int) -> float:
    """A bound on |expanded - direct| squared distance for any pair from these centred blocks.

    With S = ||x||^2 + ||y||^2 the dot products and norms are off by at most
    gamma_F S (gamma_F ~ F eps, Higham's bound, whatever the summation order),
    the additions and the centring by a few eps S, and the direct sum of squared
    differences by about 2 gamma_F S: (4F + 14) eps S in all. Twice that is used.
    """
    return 8.0 * (dim + 4) * np.finfo(np.float64).eps * float(x_sq.max() + y_sq.max())


def _direct_sq_distances(x: np.ndarray, y: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Squared distances between x[rows] and y[cols] (P,) as sums of squared differences, chunked."""
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), EXACT_CHUNK):
        part = slice(start, start + EXACT_CHUNK)
        difference = x[rows[part]] - y[cols[part]]  # (P', F)
        out[part] = np.square(difference).sum(axis=1)
    return out


def _kth_smallest_per_row(values: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The k-th smallest of `values` within each group of equal `rows` (0..B-1, each with >= k members)."""
    order = np.lexsort((values, rows))  # by row, then by value
    counts = np.bincount(rows)
    starts = np.cumsum(counts) - counts
    return values[order][starts + k - 1]


def knn_radii(features: np.ndarray, *, k: int, batch: int = DEFAULT_BATCH) -> np.ndarray:
    """Distance from each feature (N, F) to its k-th nearest other feature: float64 (N,).

    Other by index, so duplicates are neighbours at distance 0; ties count once each
    (the k-th smallest of the N - 1 distances, as a sort would give it).
    """
    features = _checked_features(features, "features")
    _check_k(k, len(features), "features")
    _check_batch(batch)
    return np.sqrt(_knn_sq_radii(features, k=k, batch=batch))


def knn_squared_radii(features: np.ndarray, *, k: int, batch: int = DEFAULT_BATCH) -> np.ndarray:
    """`knn_radii` squared, exactly as `precision_recall` uses them: computed once, they can be passed
    to it as `real_sq_radii` for every set of samples judged against the same real features."""
    features = _checked_features(features, "features")
    _check_k(k, len(features), "features")
    _check_batch(batch)
    return _knn_sq_radii(features, k=k, batch=batch)


def _knn_sq_radii(features: np.ndarray, *, k: int, batch: int) -> np.ndarray:
    count, dim = features.shape
    centred = features - features.mean(axis=0)
    norms = _squared_norms(centred)
    radii = np.empty(count, dtype=np.float64)
    for start in range(0, count, batch):
        stop = min(start + batch, count)
        block = np.arange(stop - start)
        distances = _expanded_sq_distances(centred[start:stop], centred, norms[start:stop], norms)  # (B, N)
        distances[block, start + block] = np.inf  # not its own neighbour
        slack = _slack(norms[start:stop], norms, dim)
        # k features whose expanded distance is at most the expanded k-th smallest, measured
        # directly, bound the k-th distance from above by `bound`. A feature whose direct
        # distance can only be >= bound (expanded >= bound + slack) cannot lower it, so only
        # the others are measured as well: near-ties, and none when bound is 0 (a collapsed
        # set of identical features, where every expanded distance is round-off near 0).
        kth = np.partition(distances, k - 1, axis=1)[:, k - 1]  # (B,)
        below_rows, below_cols = np.nonzero(distances <= kth[:, None])  # >= k per row, row-major
        counts = np.bincount(below_rows, minlength=len(block))
        first = np.arange(len(below_rows)) - np.repeat(np.cumsum(counts) - counts, counts) < k  # k per row
        first_rows, first_cols = below_rows[first], below_cols[first]
        first_values = _direct_sq_distances(features, features, start + first_rows, first_cols)
        bound = first_values.reshape(-1, k).max(axis=1)  # (B,)
        distances[first_rows, first_cols] = np.inf  # measured already
        rows, values = first_rows, first_values
        more = (distances < (bound + slack)[:, None]) & (bound > 0)[:, None]
        if more.any():  # rarely: ties and near-ties
            more_rows, more_cols = np.nonzero(more)
            more_values = _direct_sq_distances(features, features, start + more_rows, more_cols)
            rows, values = np.append(rows, more_rows), np.append(values, more_values)
        radii[start:stop] = _kth_smallest_per_row(values, rows, k)
    return radii


def _inside(distances: np.ndarray, sq_radii: np.ndarray, *, slack: float, measure: Callable) -> np.ndarray:
    """(B, M) booleans: row i lies in ball j, i.e. squared distance <= sq_radii[j] (M,).

    `distances` (B, M) are expanded; pairs within `slack` of the radius are decided
    on `measure(rows, cols)`, their direct squared distances.
    """
    inside = distances <= sq_radii[None, :]  # (B, M)
    near = np.abs(distances - sq_radii[None, :]) <= slack
    if near.any():  # rarely: ties and near-ties
        rows, cols = np.nonzero(near)
        inside[rows, cols] = measure(rows, cols) <= sq_radii[cols]
    return inside


def _covered(distances: np.ndarray, sq_radii: np.ndarray, *, slack: float, measure: Callable) -> np.ndarray:
    """(B,) booleans: row i lies in at least one ball j (`_inside`)."""
    return _inside(distances, sq_radii, slack=slack, measure=measure).any(axis=1)


@dataclass(frozen=True)
class RealBallHits:
    per_generated: np.ndarray  # (M,) int: how many real balls contain each generated feature
    per_real: np.ndarray  # (N,) int: how many generated features each real ball contains


def real_ball_hits(
    real: np.ndarray, generated: np.ndarray, *, k: int = DEFAULT_K, batch: int = DEFAULT_BATCH,
    real_sq_radii: np.ndarray | None = None,
) -> RealBallHits:
    """Which generated features (M, F) lie in which real k-NN balls (N, F), counted both ways.

    The same balls and the same exact decisions as `precision_recall` (precision is the share of
    `per_generated > 0`); density and coverage (`density_coverage`) are read from these counts.
    """
    real, generated, real_sq_radii = _real_balls(real, generated, k=k, batch=batch, real_sq_radii=real_sq_radii)
    mean = real.mean(axis=0)
    real_centred, generated_centred = real - mean, generated - mean
    real_norms, generated_norms = _squared_norms(real_centred), _squared_norms(generated_centred)
    per_generated = np.zeros(len(generated), dtype=np.int64)
    per_real = np.zeros(len(real), dtype=np.int64)
    for start in range(0, len(generated), batch):
        stop = min(start + batch, len(generated))
        distances = _expanded_sq_distances(
            generated_centred[start:stop], real_centred, generated_norms[start:stop], real_norms
        )  # (B, N): generated rows, real columns
        inside = _inside(
            distances, real_sq_radii, slack=_slack(generated_norms[start:stop], real_norms, real.shape[1]),
            measure=lambda rows, cols: _direct_sq_distances(generated, real, start + rows, cols),
        )
        per_generated[start:stop] = inside.sum(axis=1)
        per_real += inside.sum(axis=0)
    return RealBallHits(per_generated=per_generated, per_real=per_real)


def _real_balls(
    real: np.ndarray, generated: np.ndarray, *, k: int, batch: int, real_sq_radii: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The checked features of both sets and the real k-NN balls' squared radii (computed unless given)."""
    real = _checked_features(real, "real")
    generated = _checked_features(generated, "generated")
    if real.shape[1] != generated.shape[1]:
        raise ValueError(f"mismatched feature sizes: real {real.shape}, generated {generated.shape}")
    _check_k(k, len(real), "real")
    _check_batch(batch)
    if real_sq_radii is None:
        real_sq_radii = _knn_sq_radii(real, k=k, batch=batch)  # (N,)
    elif np.shape(real_sq_radii) != (len(real),):
        raise ValueError(f"real_sq_radii: need one radius per real feature ({len(real)}), got {np.shape(real_sq_radii)}")
    return real, generated, real_sq_radii


def precision_recall(
    real: np.ndarray, generated: np.ndarray, *, k: int = DEFAULT_K, batch: int = DEFAULT_BATCH,
    real_sq_radii: np.ndarray | None = None,
) -> PrecisionRecall:
    """Improved precision and recall of `generated` (M, F) against `real` (N, F) features.

    real_sq_radii: `knn_squared_radii(real, k=k)` when it is already known (the real balls do not
    depend on the samples); computed here otherwise.
    """
    _check_k(k, len(_checked_features(generated, "generated")), "generated")
    real, generated, real_sq_radii = _real_balls(real, generated, k=k, batch=batch, real_sq_radii=real_sq_radii)
    generated_sq_radii = _knn_sq_radii(generated, k=k, batch=batch)  # (M,)

    mean = real.mean(axis=0)
    real_centred, generated_centred = real - mean, generated - mean
    real_norms, generated_norms = _squared_norms(real_centred), _squared_norms(generated_centred)
    generated_covered = np.zeros(len(generated), dtype=bool)  # (M,) inside some real ball
    real_covered = np.zeros(len(real), dtype=bool)  # (N,) inside some generated ball
    for start in range(0, len(generated), batch):
        stop = min(start + batch, len(generated))
        distances = _expanded_sq_distances(
            generated_centred[start:stop], real_centred, generated_norms[start:stop], real_norms
        )  # (B, N): generated rows, real columns
        slack = _slack(generated_norms[start:stop], real_norms, real.shape[1])
        generated_covered[start:stop] = _covered(
            distances,
            real_sq_radii,
            slack=slack,
            measure=lambda rows, cols: _direct_sq_distances(generated, real, start + rows, cols),
        )
        # The same distances read the other way round: real rows against this block's generated balls.
        real_covered |= _covered(
            distances.T,
            generated_sq_radii[start:stop],
            slack=slack,
            measure=lambda rows, cols: _direct_sq_distances(real, generated, rows, start + cols),
        )
    return PrecisionRecall(
        precision=int(generated_covered.sum()) / len(generated),
        recall=int(real_covered.sum()) / len(real),
    )
