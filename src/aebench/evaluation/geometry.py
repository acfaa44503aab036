"""Measurable versions of the source articles' qualitative claims about latents and decoded images.

Each claim becomes one number:

- "classes form clusters in the latent": `knn_accuracy`, k-nearest-neighbour
  accuracy on standardised posterior means (local, where the linear probe in
  `probe` asks for linear separability);
- "the latent grid decodes smoothly": `grid_roughness`, neighbouring images of
  a decoded S x S grid compared with random pairs of real images;
- "an interpolation passes through other digits": `interpolation_classes`;
- "the aggregate posterior matches the prior": `aggregate_posterior_moments`;
- "the VAE switches dimensions off, the EM-AE shrinks them all": `activity_split`;
- "samples collapse onto a few classes": `top_class_share`, `normalised_class_entropy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

# Random pairs of reference images for grid_roughness's yardstick: its relative sd is ~1-2% at 2000.
DEFAULT_PAIRS = 2000
# Floor for activities before log10: a dimension with exactly zero variance (a constant mean) would
# give -inf. 1e-12 is far below any activity that float32 posterior means can resolve as "used".


def knn_accuracy(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    *,
    k: int = 5,
) -> float:
    """Fraction of test codes (M, D) whose k nearest train codes (N, D) vote for their label.

    Codes are standardised on the train split first, so that the AE's large codes and the EM-AE's
    shrunken ones are compared on the same footing (Euclidean neighbours otherwise follow the
    dimensions with the largest scale). Brute-force search: exact, and deterministic.
    """
    # Imported here: the classifier stage loads this module for its class-share helpers and never needs sklearn.
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=k, algorithm="brute"))
    classifier.fit(np.asarray(train_codes, dtype=np.float64), np.asarray(train_labels))
    predicted = classifier.predict(np.asarray(test_codes, dtype=np.float64))
    return float(np.mean(predicted == np.asarray(test_labels)))


def _grid(grid_images: torch.Tensor) -> torch.Tensor:
    """(S, S, H, W) or (S*S, H, W), row-major -> (S, S, H*W) float64."""
    if grid_images.ndim == 3:
        side = math.isqrt(len(grid_images))
        if side * side != len(grid_images):
            raise ValueError(f"a flat grid needs S*S images, got {len(grid_images)}")
        grid_images = grid_images.reshape(side, side, *grid_images.shape[1:])
    if grid_images.ndim != 4 or grid_images.shape[0] != grid_images.shape[1] or grid_images.shape[0] < 2:
        raise ValueError(f"grid images must be (S, S, H, W) or (S*S, H, W) with S >= 2, got {tuple(grid_images.shape)}")
    return grid_images.flatten(2).double()


def grid_roughness(
    grid_images: torch.Tensor | np.ndarray,
    reference_images: torch.Tensor | np.ndarray,
    *,
    generator: torch.Generator,
    pairs: int = DEFAULT_PAIRS,
) -> float:
    """Mean distance between grid neighbours / mean distance between random pairs of reference images.

    grid_images: the images decoded at an S x S grid of latent points, (S, S, H, W) or row-major
    (S*S, H, W); reference_images (M, H, W): real test images. Distances are Euclidean over pixels.
    All 2 S (S - 1) horizontal and vertical neighbour pairs are used; `pairs` random pairs of two
    different reference images (drawn with `generator`, on the CPU) give the yardstick.
    Small: the grid changes smoothly. Near or above 1: neighbours differ as much as random images.
    """
    grid = _grid(torch.as_tensor(grid_images))  # (S, S, P)
    reference = torch.as_tensor(reference_images)  # (M, H, W)
    if reference.ndim != 3 or len(reference) < 2 or reference[0].numel() != grid.shape[2]:
        raise ValueError(f"reference images must be (M >= 2, H, W) with the grid's pixels, got {tuple(reference.shape)}")
    reference = reference.flatten(1).double()  # (M, P)
    horizontal = (grid[:, 1:] - grid[:, :-1]).norm(dim=-1)  # (S, S-1)
    vertical = (grid[1:] - grid[:-1]).norm(dim=-1)  # (S-1, S)
    neighbours = torch.cat([horizontal.flatten(), vertical.flatten()]).mean()
    first = torch.randint(len(reference), (pairs,), generator=generator)  # (pairs,)
    # an offset in 1..M-1 makes the second image always a different one
    second = (first + torch.randint(1, len(reference), (pairs,), generator=generator)) % len(reference)
    random_pairs = (reference[first] - reference[second]).norm(dim=-1).mean()
    return float(neighbours / random_pairs)


def interpolation_classes(labels_of_frames: np.ndarray, *, start_label: int, end_label: int) -> int:
    """How many distinct classes other than the two endpoints' appear among the frames' labels (T,)."""
    return len({int(label) for label in np.asarray(labels_of_frames).ravel()} - {int(start_label), int(end_label)})


@dataclass(frozen=True)
class AggregateMoments:
    """How far the aggregate posterior (the training means) is from N(0, I), by its first two moments."""

    mean_norm: float  # ||mean||
    covariance_error: float  # ||Cov - I||_F / ||I||_F = ||Cov - I||_F / sqrt(D)
    eigenvalues: np.ndarray  # (D,) of Cov, largest first


def aggregate_posterior_moments(codes: np.ndarray | torch.Tensor) -> AggregateMoments:
    """Moments of codes (N, D); Cov is the unbiased one, so its diagonal is `latent.activity`.

    For N samples of N(0, I) both numbers are near zero: ||mean|| ~ sqrt(D / N) and the
    covariance error ~ sqrt((D + 1) / N).
    """
    values = np.asarray(codes, dtype=np.float64)
    if values.ndim != 2 or len(values) < 2:
        raise ValueError(f"aggregate_posterior_moments needs codes of shape (N >= 2, D), got {values.shape}")
    covariance = np.atleast_2d(np.cov(values, rowvar=False, ddof=1))  # (D, D)
    dims = values.shape[1]
    return AggregateMoments(
        mean_norm=float(np.linalg.norm(values.mean(axis=0))),
        covariance_error=float(np.linalg.norm(covariance - np.eye(dims)) / math.sqrt(dims)),
        eigenvalues=np.linalg.eigvalsh(covariance)[::-1].copy(),
    )


def _class_frequencies(histogram) -> np.ndarray:
    """histogram (C,) of counts -> frequencies (C,) summing to 1."""
    counts = np.asarray(histogram, dtype=np.float64)
    if counts.ndim != 1 or len(counts) < 2 or np.any(counts < 0) or counts.sum() == 0:
        raise ValueError(f"a class histogram needs C >= 2 non-negative counts, not all zero, got {counts}")
    return counts / counts.sum()


def top_class_share(histogram) -> float:
    """Fraction of the images in the most frequent class: 1/C when all are equal, 1 for one class."""
    return float(_class_frequencies(histogram).max())


def normalised_class_entropy(histogram) -> float:
    """Entropy of the class frequencies / log(C): 0 when one class has every image, 1 when uniform."""
    frequencies = _class_frequencies(histogram)
    nonzero = frequencies[frequencies > 0]
    return float(-(nonzero * np.log(nonzero)).sum() / math.log(len(frequencies)))


# --- the paths and grids those measures are taken on (the figures draw the same ones) ---------

INTERPOLATION_CLASSES = (0, 7)  # vae-explained walks from a 0 to a 7


def manifold_grid(steps: int, extent: float) -> torch.Tensor:
    """The decoded manifold's codes: (steps^2, 2), row 0 at the top holding the largest z_2."""
    axis = torch.linspace(-extent, extent, steps)
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # (steps, steps) each
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def interpolation_ends(labels: torch.Tensor) -> tuple[int, int]:
    """Indices of the path's two test images: the first 0 and the first 7 (else the first two classes)."""
    first = {int(c): int(torch.nonzero(labels == c)[0]) for c in labels.unique()}
    start_class, end_class = INTERPOLATION_CLASSES
    if start_class in first and end_class in first:
        return first[start_class], first[end_class]
    different = torch.nonzero(labels != labels[0]).flatten()
    return 0, int(different[0]) if len(different) else 0


@torch.inference_mode()
def interpolation_path(model, ends: torch.Tensor, steps: int, *, device) -> torch.Tensor:
    """Codes evenly spaced on the straight line between the posterior means of two images (2, 1, 28, 28)."""
    mu, _ = model.encode(ends.to(device))  # (2, D)
    weights = torch.linspace(0.0, 1.0, steps, device=mu.device).unsqueeze(1)  # (steps, 1)
    return ((1 - weights) * mu[0] + weights * mu[1]).cpu()  # (steps, D)
